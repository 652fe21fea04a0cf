import { afterEach, describe, expect, it } from "vitest";
import { HandlerTimeoutError, memoryTransport } from "@switchyard/transport";
import { QueueFullError, RouterClosedError } from "./errors";
import { retry } from "./middleware/retry";
import { defineMiddleware } from "./middleware/types";
import { type Router, type RouterOptions, createRouter } from "./router";
import { delay, eventually, testCatalog, type TestCatalog } from "./test/fixtures";

const open: Router<TestCatalog>[] = [];
function make(options: Partial<RouterOptions<TestCatalog>> = {}): Router<TestCatalog> {
  const router = createRouter({ catalog: testCatalog, ...options });
  open.push(router);
  return router;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.close({ timeoutMs: 100 })));
});

/** A custom middleware that never calls `next` and never settles (until `release`). */
function stuckBeforeNext() {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let nextCalls = 0;
  const middleware = defineMiddleware("custom", function stuck(next) {
    return async (event, ctx) => {
      await gate;
      nextCalls++;
      return next(event, ctx);
    };
  });
  return { middleware, release: () => release(), nextCalls: () => nextCalls };
}

describe("a custom middleware that hangs", () => {
  it("regression: before next(), it fails the delivery after timeoutMs and frees the worker slot", async () => {
    const router = make();
    const stuck = stuckBeforeNext();
    const handled: number[] = [];
    const signals: AbortSignal[] = [];
    const sub = router.subscribe(
      "JOB_STARTED",
      (e, ctx) => {
        handled.push(e.data.n);
        signals.push(ctx.signal);
      },
      {
        name: "hangs",
        timeoutMs: 30,
        middleware: [stuck.middleware],
      },
    );
    await router.publish("JOB_STARTED", { n: 1 });
    await eventually(() => router.stats().timedOut === 1, 2_000);
    expect(router.stats().subscriptions[0]).toMatchObject({ failed: 1, inFlight: 0 });
    expect(router.stats().subscriptions[0]!.lastError?.message).toMatch(
      /did not finish within 30 ms/,
    );
    // The slot is free: the subscription goes idle and close() resolves.
    await router.drain({ signal: AbortSignal.timeout(1_000) });
    // A next() called after the delivery timed out does not run the handler.
    stuck.release();
    await eventually(() => stuck.nextCalls() === 1);
    await delay(5);
    expect(handled).toEqual([]);
    expect(signals).toEqual([]);
    await expect(
      Promise.race([
        sub.close(),
        delay(1_000).then(() => Promise.reject(new Error("close() did not resolve"))),
      ]),
    ).resolves.toBeUndefined();
  });

  it("before next(), the timeout reaches the middleware outside it (audit records it) and aborts ctx.signal", async () => {
    const router = make({ audit: true });
    let seen: AbortSignal | undefined;
    router.subscribe("JOB_STARTED", () => {}, {
      name: "hangs-audited",
      timeoutMs: 30,
      middleware: [
        defineMiddleware("custom", function neverCalls() {
          return (_event, ctx) => {
            seen = ctx.signal;
            return new Promise<void>(() => {});
          };
        }),
      ],
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await eventually(() => router.stats().timedOut === 1, 2_000);
    await router.drain({ signal: AbortSignal.timeout(1_000) });
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toBeInstanceOf(HandlerTimeoutError);
    expect(router.auditLog!.entries()).toMatchObject([
      { result: "failed", error: { name: "HandlerTimeoutError" } },
    ]);
  });

  it("after next() settles, it is bounded again by timeoutMs", async () => {
    const router = make();
    router.subscribe("JOB_STARTED", () => {}, {
      name: "hangs-after",
      timeoutMs: 30,
      middleware: [
        defineMiddleware("custom", function hangsAfter(next) {
          return async (event, ctx) => {
            await next(event, ctx);
            await new Promise<void>(() => {});
          };
        }),
      ],
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await eventually(() => router.stats().timedOut === 1, 2_000);
    await router.drain({ signal: AbortSignal.timeout(1_000) });
  });

  it("does not count the time spent in next() (retries and backoff below it) against it", async () => {
    const router = make();
    let attempts = 0;
    router.subscribe(
      "JOB_STARTED",
      async () => {
        attempts++;
        await delay(25);
        if (attempts < 3) throw new Error("flaky");
      },
      {
        name: "slow-inside",
        timeoutMs: 40,
        middleware: [
          defineMiddleware("custom", function passes(next) {
            return (event, ctx) => next(event, ctx);
          }),
          retry({ attempts: 3, backoff: { initialMs: 20, maxMs: 20, jitter: 0 } }),
        ],
      },
    );
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain({ signal: AbortSignal.timeout(2_000) });
    expect(router.stats().subscriptions[0]).toMatchObject({
      delivered: 1,
      failed: 0,
      timedOut: 0,
    });
    expect(attempts).toBe(3);
  });

  it("is not bounded when timeoutMs is 0 (timeouts disabled), as a bare handler is not", async () => {
    const router = make();
    const stuck = stuckBeforeNext();
    const handled: number[] = [];
    router.subscribe("JOB_STARTED", (e) => void handled.push(e.data.n), {
      name: "no-timeout",
      timeoutMs: 0,
      middleware: [stuck.middleware],
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await delay(40);
    expect(router.stats().subscriptions[0]).toMatchObject({ inFlight: 1, timedOut: 0 });
    stuck.release();
    await router.drain({ signal: AbortSignal.timeout(1_000) });
    expect(handled).toEqual([1]);
  });

  it("regression: a transport delivery fails after timeoutMs, so the transport can retry it", async () => {
    const transport = memoryTransport();
    const router = make({ transport });
    let calls = 0;
    const handled: number[] = [];
    await router.subscribe("MODEL_SAVED", (e) => void handled.push(e.data.n), {
      name: "durable-hangs",
      timeoutMs: 30,
      backoff: { initialMs: 1, maxMs: 1, jitter: 0 },
      middleware: [
        defineMiddleware("custom", function hangsOnce(next) {
          return (event, ctx) => {
            if (++calls === 1) return new Promise<void>(() => {});
            return next(event, ctx);
          };
        }),
      ],
    }).ready;
    await router.publish("MODEL_SAVED", { config_key: "k", n: 7 });
    await eventually(() => handled.length === 1, 3_000);
    expect(handled).toEqual([7]);
    expect(router.stats().subscriptions[0]).toMatchObject({ timedOut: 1, delivered: 1 });
  });
});

describe("redeliver into a full queue", () => {
  /** A subscription whose worker is busy and whose queue (size 1) is full. */
  async function full(overflow: "drop-newest" | "drop-oldest" | "error" | "wait") {
    const router = make();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const handled: number[] = [];
    const sub = router.subscribe(
      "JOB_STARTED",
      async (e) => {
        handled.push(e.data.n);
        await gate;
      },
      { name: "full", queueSize: 1, overflow, timeoutMs: 0 },
    );
    await router.publish("JOB_STARTED", { n: 1 }); // running
    await router.publish("JOB_STARTED", { n: 2 }); // queued: the queue is full
    // A dead letter to replay: an envelope published where nothing subscribes.
    const replay = await make().publish("JOB_STARTED", { n: 9 });
    return { router, sub, release: () => release(), handled, replay };
  }

  it("regression: rejects with QueueFullError under drop-newest, since the event was dropped", async () => {
    const { router, release, handled, replay } = await full("drop-newest");
    expect(router.stats().dropped).toBe(0);
    await expect(router.redeliver("full", replay)).rejects.toBeInstanceOf(QueueFullError);
    expect(router.stats().dropped).toBe(1); // counted, as a publish dropped under this policy is
    release();
    await router.drain({ signal: AbortSignal.timeout(1_000) });
    expect(handled).toEqual([1, 2]);
  });

  it("resolves under drop-oldest: the redelivered event is queued and an older one dropped", async () => {
    const { router, release, handled, replay } = await full("drop-oldest");
    await expect(router.redeliver("full", replay)).resolves.toBeUndefined();
    release();
    await router.drain({ signal: AbortSignal.timeout(1_000) });
    expect(handled).toEqual([1, 9]);
  });

  it("rejects with QueueFullError under error, as publish does", async () => {
    const { router, release, replay } = await full("error");
    await expect(router.redeliver("full", replay)).rejects.toBeInstanceOf(QueueFullError);
    release();
  });

  it("regression: rejects with RouterClosedError when the subscription closes while the redelivery waits for room", async () => {
    const { router, sub, release, handled, replay } = await full("wait");
    const redelivered = router.redeliver("full", replay);
    const outcome = redelivered.then(
      () => "resolved",
      (error: unknown) => error,
    );
    await delay(5);
    const closed = sub.close();
    await expect(outcome).resolves.toBeInstanceOf(RouterClosedError);
    release();
    await closed;
    expect(handled).not.toContain(9);
  });

  it("gives up waiting for room when its signal aborts, and the envelope is not queued later", async () => {
    const { router, release, handled, replay } = await full("wait");
    const controller = new AbortController();
    const redelivered = router.redeliver("full", replay, { signal: controller.signal });
    const outcome = redelivered.then(
      () => "resolved",
      (error: unknown) => error,
    );
    await delay(5);
    controller.abort(new Error("operator gave up"));
    await expect(outcome).resolves.toMatchObject({ message: "operator gave up" });
    release();
    await router.drain({ signal: AbortSignal.timeout(1_000) });
    expect(handled).toEqual([1, 2]);
  });
});
