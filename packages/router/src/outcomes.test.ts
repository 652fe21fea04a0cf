import { afterEach, describe, expect, it } from "vitest";
import { UnrecoverableError } from "@switchyard/transport";
import { MemoryTransport } from "@switchyard/transport";
import { type RouterOptions, createRouter, type Router } from "./router";
import type { DeadLetterRecord } from "@switchyard/transport";
import { eventually, testCatalog, type TestCatalog } from "./test/fixtures";

const open: Router<TestCatalog>[] = [];
function make(options: Partial<RouterOptions<TestCatalog>> = {}): Router<TestCatalog> {
  const router = createRouter({ catalog: testCatalog, ...options });
  open.push(router);
  return router;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.shutdown({ timeoutMs: 100 })));
});

/** Lets every callback already due run (microtasks, then one turn of the event loop). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A sink that keeps what it is given. */
function sink() {
  const records: DeadLetterRecord[] = [];
  return { records, deadLetter: (record: DeadLetterRecord) => void records.push(record) };
}

/** Values a handler typed `void` may still return at run time. */
const returnValues: [string, () => unknown][] = [
  ["a number (Array.prototype.push)", () => 1],
  ["an object", () => ({ ok: true })],
  ["null", () => null],
  ["a function", () => () => {}],
  ["a thenable that is not a Promise", () => ({ then: (resolve: () => void) => resolve() })],
];

describe("what a handler returns", () => {
  it.each(returnValues)(
    "ignores %s in process: the event is handled once and counted as delivered",
    async (_what, value) => {
      const router = make();
      let calls = 0;
      router.subscribe(
        "JOB_STARTED",
        () => {
          calls++;
          return value();
        },
        { name: "returns-something" },
      );
      await router.publish("JOB_STARTED", { n: 1 });
      await router.drain();
      expect(calls).toBe(1);
      expect(router.getStats()).toMatchObject({ delivered: 1, failed: 0, deadLettered: 0 });
    },
  );

  it.each(returnValues)(
    "ignores %s on the durable path: the delivery is acked once, never retried or dead-lettered",
    async (_what, value) => {
      const transport = new MemoryTransport();
      const router = make({
        transport,
        subscriptionDefaults: { maxAttempts: 3, backoff: { initialMs: 1, jitter: 0 } },
      });
      let calls = 0;
      await router.subscribe(
        "MODEL_SAVED",
        () => {
          calls++;
          return value();
        },
        { name: "returns-something" },
      ).ready;
      await router.publish("MODEL_SAVED", { config_key: "k", n: 1 });
      await eventually(() => router.getStats().delivered === 1);
      await eventually(async () => (await transport.stats()).subscribers[0]!.lag === 0);
      expect(calls).toBe(1);
      expect(transport.deadLetters).toEqual([]);
      expect(router.getStats()).toMatchObject({ failed: 0, retried: 0, deadLettered: 0 });
    },
  );

  it("ignores a pushed count from the README's one-liner handler on the durable path", async () => {
    const transport = new MemoryTransport();
    const router = make({ transport, subscriptionDefaults: { maxAttempts: 2 } });
    const seen: unknown[] = [];
    await router.subscribe("MODEL_SAVED", (e) => seen.push(e), { name: "collector" }).ready;
    await router.publish("MODEL_SAVED", { config_key: "k", n: 1 });
    await eventually(() => router.getStats().delivered === 1);
    expect(seen).toHaveLength(1);
    expect(transport.deadLetters).toEqual([]);
  });
});

describe("a handler that ignores ctx.signal and overruns timeoutMs", () => {
  it("is dead-lettered in process with reason timeout when the router has a sink, and audited so", async () => {
    const dlq = sink();
    const router = make({ deadLetter: dlq, audit: true });
    let finishLate!: () => void;
    router.subscribe("JOB_STARTED", () => new Promise<void>((resolve) => (finishLate = resolve)), {
      name: "overruns",
      timeoutMs: 20,
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await eventually(() => dlq.records.length === 1);
    expect(dlq.records[0]).toMatchObject({
      reason: "timeout",
      subscriber: "overruns",
      error: { name: "HandlerTimeoutError" },
    });
    finishLate(); // the handler ends long after its deadline: that changes nothing
    await settle();
    expect(router.auditLog!.entries().map((e) => e.result)).toEqual(["dead_lettered"]);
    expect(router.getStats()).toMatchObject({
      delivered: 0,
      failed: 1,
      deadLettered: 1,
      timedOut: 1,
    });
  });

  it("is audited as failed with HANDLER_TIMEOUT in process without a sink, never as ok", async () => {
    const router = make({ audit: true });
    let finishLate!: () => void;
    router.subscribe("JOB_STARTED", () => new Promise<void>((resolve) => (finishLate = resolve)), {
      name: "overruns",
      timeoutMs: 20,
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await eventually(() => router.auditLog!.size === 1);
    finishLate();
    await settle();
    const entries = router.auditLog!.entries();
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      result: "failed",
      handler: "overruns",
      error: { code: "HANDLER_TIMEOUT" },
    });
  });

  it("is audited as a failed attempt on the durable path, and dead-lettered with reason timeout", async () => {
    const transport = new MemoryTransport();
    const router = make({ transport, audit: true, subscriptionDefaults: { maxAttempts: 1 } });
    const finishers: (() => void)[] = [];
    await router.subscribe(
      "MODEL_SAVED",
      () => new Promise<void>((resolve) => finishers.push(resolve)),
      { name: "overruns", timeoutMs: 20 },
    ).ready;
    await router.publish("MODEL_SAVED", { config_key: "k", n: 1 });
    await eventually(() => transport.deadLetters.length === 1);
    expect(transport.deadLetters[0]).toMatchObject({ reason: "timeout", attempts: 1 });
    for (const finish of finishers) finish();
    await settle();
    const entries = router.auditLog!.entries();
    expect(entries.map((e) => e.result)).toEqual(["failed"]);
    expect(entries[0]!.error).toMatchObject({ code: "HANDLER_TIMEOUT" });
    expect(router.getStats()).toMatchObject({ timedOut: 1, failed: 1, deadLettered: 1 });
  });
});

describe("stats and health of the durable path", () => {
  it("counts failed attempts, retries and the dead letter, and reports the subscription degraded", async () => {
    const transport = new MemoryTransport();
    const router = make({
      transport,
      subscriptionDefaults: { maxAttempts: 3, backoff: { initialMs: 1, jitter: 0 } },
    });
    await router.subscribe(
      "MODEL_SAVED",
      () => {
        throw new Error("disk full");
      },
      { name: "always-fails" },
    ).ready;
    expect(router.health().status).toBe("healthy");
    await router.publish("MODEL_SAVED", { config_key: "k", n: 1 });
    await eventually(() => transport.deadLetters.length === 1);
    await eventually(() => router.getStats().deadLettered === 1);
    const stats = router.getStats();
    expect(stats).toMatchObject({ delivered: 0, failed: 1, retried: 2, deadLettered: 1 });
    expect(stats.subscriptions[0]).toMatchObject({
      name: "always-fails",
      failed: 1,
      retried: 2,
      deadLettered: 1,
      lastError: { message: "disk full" },
    });
    const health = router.health();
    expect(health).toMatchObject({ healthy: false, status: "degraded" });
    expect(health.message).toContain("always-fails: 1 of its last 3 deliveries failed for good");
  });

  it("counts a delivery that succeeds on its second attempt as one retry and one delivery", async () => {
    const transport = new MemoryTransport();
    const router = make({
      transport,
      subscriptionDefaults: { maxAttempts: 3, backoff: { initialMs: 1, jitter: 0 } },
    });
    await router.subscribe(
      "MODEL_SAVED",
      (_e, ctx) => {
        if (ctx.attempt === 1) throw new Error("transient");
      },
      { name: "flaky" },
    ).ready;
    await router.publish("MODEL_SAVED", { config_key: "k", n: 1 });
    await eventually(() => router.getStats().delivered === 1);
    expect(router.getStats()).toMatchObject({ failed: 0, retried: 1, deadLettered: 0 });
    expect(router.health().status).toBe("healthy");
  });

  it("counts an unrecoverable failure as dead-lettered at its first attempt", async () => {
    const transport = new MemoryTransport();
    const router = make({ transport, subscriptionDefaults: { maxAttempts: 5 } });
    await router.subscribe(
      "MODEL_SAVED",
      () => {
        throw new UnrecoverableError("poison");
      },
      { name: "poisoned" },
    ).ready;
    await router.publish("MODEL_SAVED", { config_key: "k", n: 1 });
    await eventually(() => transport.deadLetters.length === 1);
    await eventually(() => router.getStats().deadLettered === 1);
    expect(router.getStats()).toMatchObject({ failed: 1, retried: 0, deadLettered: 1 });
  });
});
