import { EventValidationError, pipelineCatalog, type Envelope } from "@switchyard/event-schema";
import { afterEach, describe, expect, expectTypeOf, it, vi } from "vitest";
import { NoRouterError, QueueFullError, RouterClosedError } from "./errors";
import { HandlerTimeoutError, UnrecoverableError } from "@switchyard/transport";
import { retry } from "./middleware/retry";
import { createRouter, getRouter, hasRouter, resetRouter, type Router } from "./router";
import { traceIdOf } from "./trace";
import { delay, eventually, memoryLogger, testCatalog, type TestCatalog } from "./test/fixtures";

const routers: Router<never>[] = [];
function make(options: Partial<Parameters<typeof createRouter<TestCatalog>>[0]> = {}) {
  const router = createRouter({ catalog: testCatalog, ...options });
  routers.push(router as never);
  return router;
}
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close({ timeoutMs: 100 })));
});

describe("publish", () => {
  it("builds an envelope from the catalog and delivers the parsed payload", async () => {
    const router = make({ source: "tests" });
    const seen: Envelope[] = [];
    router.subscribe("JOB_STARTED", (e) => void seen.push(e));
    const sent = await router.publish("JOB_STARTED", { n: 1, extra: "kept" });
    await router.drain();
    expect(seen).toEqual([sent]);
    expect(sent).toMatchObject({
      type: "JOB_STARTED",
      source: "tests",
      specversion: "1.0",
      data: { n: 1, extra: "kept" },
    });
  });

  it("rejects an unknown type with EventValidationError and delivers nothing", async () => {
    const router = make();
    const handler = vi.fn();
    router.subscribe("*", handler);
    await expect(router.publish("JOB_STARTD" as never, { n: 1 } as never)).rejects.toThrow(
      /Did you mean "JOB_STARTED"/,
    );
    await router.drain();
    expect(handler).not.toHaveBeenCalled();
  });

  it("rejects a bad payload naming the bad field, and delivers nothing", async () => {
    const router = make();
    const handler = vi.fn();
    router.subscribe("JOB_FAILED", handler);
    const error = await router
      .publish("JOB_FAILED", { n: 1, error: 42 } as never)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EventValidationError);
    expect((error as EventValidationError).issues).toEqual([
      expect.objectContaining({ path: "error", received: "number" }),
    ]);
    await router.drain();
    expect(handler).not.toHaveBeenCalled();
  });

  it("skips validation when created with validate: false, still refusing unknown types", async () => {
    const router = make({ validate: false });
    const seen: unknown[] = [];
    router.subscribe("JOB_STARTED", (e) => void seen.push(e.data));
    await router.publish("JOB_STARTED", { n: "not checked" } as never);
    await router.drain();
    expect(seen).toEqual([{ n: "not checked" }]);
    await expect(router.publish("NOPE" as never, {} as never)).rejects.toBeInstanceOf(
      EventValidationError,
    );
  });

  it("publishes a batch only when every payload is valid", async () => {
    const router = make();
    const seen: number[] = [];
    router.subscribe("JOB_*", (e) => void seen.push(e.data.n));
    await expect(
      router.publishBatch([
        { type: "JOB_STARTED", data: { n: 1 } },
        { type: "JOB_FAILED", data: { n: 2 } as never },
      ]),
    ).rejects.toBeInstanceOf(EventValidationError);
    await router.publishBatch([
      { type: "JOB_STARTED", data: { n: 1 } },
      { type: "JOB_FINISHED", data: { n: 2 } },
    ]);
    await router.drain();
    expect(seen).toEqual([1, 2]);
  });

  it("rejects publishes after shutdown with RouterClosedError", async () => {
    const router = make();
    await router.close();
    await expect(router.publish("JOB_STARTED", { n: 1 })).rejects.toBeInstanceOf(RouterClosedError);
  });
});

describe("subscribe", () => {
  it("delivers in publish order at concurrency 1", async () => {
    const router = make();
    const seen: number[] = [];
    router.subscribe("JOB_STARTED", async (e) => {
      await delay(Math.random() * 2);
      seen.push(e.data.n);
    });
    for (let n = 0; n < 50; n++) void router.publish("JOB_STARTED", { n });
    await eventually(() => seen.length === 50);
    expect(seen).toEqual([...Array(50).keys()]);
  });

  it("keeps order and counts across handlers that return synchronously, throw, or re-publish", async () => {
    const router = make({ logger: memoryLogger() });
    const seen: number[] = [];
    router.subscribe("JOB_STARTED", (e) => {
      const n = e.data.n;
      if (n % 5 === 1) throw new Error(`sync failure ${n}`); // thrown, not returned
      if (n % 5 === 2) return delay(1).then(() => void seen.push(n)); // a promise now and then
      seen.push(n);
      // Re-entrant publish from inside a synchronous handler: queued behind what is already there.
      if (n < 20 && n % 5 === 0) void router.publish("JOB_STARTED", { n: n + 100 });
    });
    for (let n = 0; n < 20; n++) void router.publish("JOB_STARTED", { n });
    await eventually(() => seen.length === 20);
    await router.drain();
    const firsts = [...Array(20).keys()].filter((n) => n % 5 !== 1);
    expect(seen.filter((n) => n < 100)).toEqual(firsts);
    expect(seen.filter((n) => n >= 100)).toEqual([100, 105, 110, 115]);
    // Each re-published event comes after the event that published it.
    for (const n of [0, 5, 10, 15]) expect(seen.indexOf(n + 100)).toBeGreaterThan(seen.indexOf(n));
    const stats = router.stats().subscriptions[0]!;
    expect(stats).toMatchObject({ delivered: 20, failed: 4, inFlight: 0, queueDepth: 0 });
  });

  it("runs up to `concurrency` deliveries at once", async () => {
    const router = make();
    let running = 0;
    let peak = 0;
    router.subscribe(
      "JOB_STARTED",
      async () => {
        peak = Math.max(peak, ++running);
        await delay(10);
        running--;
      },
      { concurrency: 3 },
    );
    for (let n = 0; n < 9; n++) await router.publish("JOB_STARTED", { n });
    await router.drain();
    expect(peak).toBe(3);
  });

  it("matches `*`, prefix wildcards and lists of patterns", async () => {
    const router = make();
    const all: string[] = [];
    const jobs: string[] = [];
    const listed: string[] = [];
    router.subscribe("*", (e) => void all.push(e.type));
    router.subscribe("JOB_*", (e) => void jobs.push(e.type));
    router.subscribe(["NODE_JOINED", "JOB_FAILED"], (e) => void listed.push(e.type));
    await router.publish("JOB_STARTED", { n: 1 });
    await router.publish("NODE_JOINED", { host: "a" });
    await router.publish("JOB_FAILED", { n: 1, error: "x" });
    await router.drain();
    expect(all).toEqual(["JOB_STARTED", "NODE_JOINED", "JOB_FAILED"]);
    expect(jobs).toEqual(["JOB_STARTED", "JOB_FAILED"]);
    expect(listed).toEqual(["NODE_JOINED", "JOB_FAILED"]);
  });

  it("refuses patterns that match no event type", () => {
    const router = make();
    expect(() => router.subscribe("JOBS_*" as never, () => {})).toThrow(EventValidationError);
    expect(() => router.subscribe("JOB_STARTD" as never, () => {})).toThrow(
      /Did you mean "JOB_STARTED"/,
    );
  });

  it("unsubscribes when called, when disposed by `using`, and when its signal aborts", async () => {
    const router = make();
    const a = vi.fn();
    const b = vi.fn();
    const c = vi.fn();
    const unsubscribe = router.subscribe("JOB_STARTED", a);
    {
      using _sub = router.subscribe("JOB_STARTED", b);
      expect(router.listSubscriptions()).toHaveLength(2);
    }
    const controller = new AbortController();
    router.subscribe("JOB_STARTED", c, { signal: controller.signal });
    unsubscribe();
    unsubscribe(); // idempotent
    controller.abort();
    expect(router.listSubscriptions()).toHaveLength(0);
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    expect(a).not.toHaveBeenCalled();
    expect(b).not.toHaveBeenCalled();
    expect(c).not.toHaveBeenCalled();
  });

  it("lists subscriptions with their types", () => {
    const router = make();
    router.subscribe("JOB_*", () => {}, { name: "jobs" });
    expect(router.listSubscriptions()).toEqual([
      expect.objectContaining({
        name: "jobs",
        types: ["JOB_STARTED", "JOB_FINISHED", "JOB_FAILED"],
        concurrency: 1,
      }),
    ]);
  });
});

describe("isolation", () => {
  it("keeps delivering to others when one handler throws", async () => {
    const logger = memoryLogger();
    const router = make({ logger });
    const good: number[] = [];
    router.subscribe(
      "JOB_STARTED",
      () => {
        throw new Error("boom");
      },
      { name: "bad" },
    );
    router.subscribe("JOB_STARTED", (e) => void good.push(e.data.n), { name: "good" });
    for (let n = 0; n < 3; n++) await router.publish("JOB_STARTED", { n });
    await router.drain();
    expect(good).toEqual([0, 1, 2]);
    const stats = router.stats();
    expect(stats.subscriptions.find((s) => s.name === "bad")).toMatchObject({
      failed: 3,
      delivered: 0,
      lastError: { message: "boom" },
    });
    expect(stats).toMatchObject({ delivered: 3, failed: 3 });
    expect(logger.lines.filter((l) => l.level === "error")).toHaveLength(3);
  });

  it("keeps delivering to others while one handler hangs", async () => {
    const router = make();
    const good: number[] = [];
    router.subscribe("JOB_STARTED", () => new Promise(() => {}), { name: "hangs", timeoutMs: 0 });
    router.subscribe("JOB_STARTED", (e) => void good.push(e.data.n), { name: "good" });
    for (let n = 0; n < 3; n++) await router.publish("JOB_STARTED", { n });
    await eventually(() => good.length === 3);
    expect(router.stats().subscriptions.find((s) => s.name === "hangs")).toMatchObject({
      inFlight: 1,
      queueDepth: 2,
    });
  });

  it("times out a hanging attempt, aborting its signal with HandlerTimeoutError, and moves on", async () => {
    const router = make();
    const reasons: unknown[] = [];
    const seen: number[] = [];
    router.subscribe(
      "JOB_STARTED",
      (e, ctx) => {
        seen.push(e.data.n);
        if (e.data.n === 0) {
          return new Promise<void>((resolve) =>
            ctx.signal.addEventListener("abort", () => {
              reasons.push(ctx.signal.reason);
              resolve();
            }),
          );
        }
      },
      { name: "slow", timeoutMs: 30 },
    );
    await router.publish("JOB_STARTED", { n: 0 });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    expect(seen).toEqual([0, 1]);
    expect(reasons).toEqual([expect.any(HandlerTimeoutError)]);
    expect(router.stats().subscriptions[0]).toMatchObject({
      timedOut: 1,
      failed: 1,
      delivered: 1,
    });
  });

  it("logs slow handlers with their duration", async () => {
    const logger = memoryLogger();
    const router = make({ logger, slowHandlerMs: 10 });
    router.subscribe("JOB_STARTED", () => delay(20), { name: "sluggish" });
    await router.publish("JOB_STARTED", { n: 0 });
    await router.drain();
    expect(logger.lines.find((l) => l.level === "warn")?.msg).toMatch(
      /handler sluggish took \d+ ms for JOB_STARTED/,
    );
  });
});

describe("retries", () => {
  it("retries with backoff and reports the attempt to the handler", async () => {
    const router = make({ retry: { attempts: 3, backoff: { initialMs: 20, jitter: 0 } } });
    const attempts: [number, number][] = [];
    const start = Date.now();
    router.subscribe("JOB_STARTED", (_e, ctx) => {
      attempts.push([ctx.attempt, Date.now() - start]);
      if (ctx.attempt < 3) throw new Error("transient");
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    expect(attempts.map(([a]) => a)).toEqual([1, 2, 3]);
    // 20 ms then 40 ms of backoff (no jitter).
    expect(attempts[1]![1] - attempts[0]![1]).toBeGreaterThanOrEqual(18);
    expect(attempts[2]![1] - attempts[1]![1]).toBeGreaterThanOrEqual(38);
    expect(router.stats()).toMatchObject({ retried: 2, delivered: 1, failed: 0 });
  });

  it("does not retry an UnrecoverableError", async () => {
    const router = make();
    const handler = vi.fn(() => {
      throw new UnrecoverableError("poison");
    });
    router.subscribe("JOB_STARTED", handler, {
      middleware: [retry({ attempts: 5, backoff: { initialMs: 1 } })],
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    expect(handler).toHaveBeenCalledTimes(1);
    expect(router.stats()).toMatchObject({ retried: 0, failed: 1 });
  });

  it("asks shouldRetry and stops when it says no", async () => {
    const router = make();
    const handler = vi.fn(() => {
      throw new Error("permanent: disk full");
    });
    const shouldRetry = vi.fn(
      (error: unknown) => !String((error as Error).message).startsWith("permanent"),
    );
    router.subscribe("JOB_STARTED", handler, { middleware: [retry({ attempts: 5, shouldRetry })] });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    expect(handler).toHaveBeenCalledTimes(1);
    expect(shouldRetry).toHaveBeenCalledWith(expect.any(Error), 1);
  });

  it("gives each attempt a fresh signal after a timeout", async () => {
    const router = make({ retry: { attempts: 2, backoff: { initialMs: 1 } } });
    const abortedAtStart: boolean[] = [];
    router.subscribe(
      "JOB_STARTED",
      async (_e, ctx) => {
        abortedAtStart.push(ctx.signal.aborted);
        if (ctx.attempt === 1) await delay(100);
      },
      { timeoutMs: 20 },
    );
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    expect(abortedAtStart).toEqual([false, false]);
    expect(router.stats()).toMatchObject({ timedOut: 1, retried: 1, delivered: 1 });
  });
});

describe("backpressure", () => {
  it("makes publish wait while a subscription queue is full", async () => {
    const router = make();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    router.subscribe("JOB_STARTED", () => gate, { queueSize: 2, timeoutMs: 0 });
    await router.publish("JOB_STARTED", { n: 0 }); // taken by the worker
    await router.publish("JOB_STARTED", { n: 1 });
    await router.publish("JOB_STARTED", { n: 2 }); // queue now full
    let fourth = false;
    const pending = router.publish("JOB_STARTED", { n: 3 }).then(() => (fourth = true));
    await delay(20);
    expect(fourth).toBe(false);
    expect(router.stats().queued).toBe(2);
    release();
    await pending;
    expect(fourth).toBe(true);
  });

  it("bounds memory for a stalled subscriber with drop policies, counting drops", async () => {
    const router = make();
    const seen: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    router.subscribe(
      "JOB_STARTED",
      async (e) => {
        await gate;
        seen.push(e.data.n);
      },
      { name: "stalled", queueSize: 10, overflow: "drop-oldest", timeoutMs: 0 },
    );
    for (let n = 0; n < 10_000; n++) await router.publish("JOB_STARTED", { n });
    expect(router.stats().subscriptions[0]).toMatchObject({
      queueDepth: 10,
      dropped: 10_000 - 11,
    });
    release();
    await router.drain();
    expect(seen).toEqual([0, ...Array.from({ length: 10 }, (_, i) => 9990 + i)]);
  });

  it("rejects with QueueFullError under overflow: error", async () => {
    const router = make();
    router.subscribe("JOB_STARTED", () => new Promise(() => {}), {
      queueSize: 1,
      overflow: "error",
      timeoutMs: 0,
    });
    await router.publish("JOB_STARTED", { n: 0 });
    await router.publish("JOB_STARTED", { n: 1 });
    await expect(router.publish("JOB_STARTED", { n: 2 })).rejects.toBeInstanceOf(QueueFullError);
  });
});

describe("events() and waitFor()", () => {
  it("iterates matching events until the signal aborts", async () => {
    const router = make();
    const controller = new AbortController();
    const got: number[] = [];
    const loop = (async () => {
      for await (const e of router.events("JOB_STARTED", { signal: controller.signal })) {
        got.push(e.data.n);
        if (got.length === 3) controller.abort();
      }
    })();
    await delay(1);
    for (let n = 0; n < 5; n++) void router.publish("JOB_STARTED", { n });
    await loop;
    expect(got).toEqual([0, 1, 2]);
    expect(router.listSubscriptions()).toHaveLength(0);
  });

  it("unsubscribes when the loop breaks", async () => {
    const router = make();
    const loop = (async () => {
      for await (const _e of router.events("JOB_STARTED")) break;
    })();
    await delay(1);
    await router.publish("JOB_STARTED", { n: 0 });
    await loop;
    expect(router.listSubscriptions()).toHaveLength(0);
  });

  it("waits for the first event matching a predicate", async () => {
    const router = make();
    const waiting = router.waitFor("JOB_FINISHED", { predicate: (e) => e.data.n === 2 });
    for (let n = 0; n < 4; n++) await router.publish("JOB_FINISHED", { n });
    expect((await waiting).data.n).toBe(2);
    expect(router.listSubscriptions()).toHaveLength(0);
  });

  it("stops waiting on abort and on timeout", async () => {
    const router = make();
    const controller = new AbortController();
    const aborted = router.waitFor("JOB_FINISHED", { signal: controller.signal });
    controller.abort(new Error("no longer needed"));
    await expect(aborted).rejects.toThrow("no longer needed");
    await expect(router.waitFor("JOB_FINISHED", { timeoutMs: 10 })).rejects.toMatchObject({
      name: "TimeoutError",
    });
    expect(router.listSubscriptions()).toHaveLength(0);
  });
});

describe("causation and trace context", () => {
  it("carries traceparent, correlation and causation from a handled event to what it publishes", async () => {
    const router = make();
    router.subscribe("JOB_STARTED", async (e, ctx) => {
      await ctx.publish("JOB_FINISHED", { n: e.data.n, ok: true });
    });
    const finished = router.waitFor("JOB_FINISHED");
    const parent = await router.publish(
      "JOB_STARTED",
      { n: 7 },
      {
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        correlationid: "gen-1",
      },
    );
    const child = await finished;
    expect(child.causationid).toBe(parent.id);
    expect(child.correlationid).toBe("gen-1");
    expect(child.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    expect(child.traceparent).not.toBe(parent.traceparent);
  });

  it("uses the parent's id as correlation id when it has none", async () => {
    const router = make();
    const parent = await router.publish("JOB_STARTED", { n: 1 });
    const child = await router.publish("JOB_FINISHED", { n: 1 }, { causedBy: parent });
    expect(child).toMatchObject({ causationid: parent.id, correlationid: parent.id });
    expect(traceIdOf(child.traceparent)).toBe(traceIdOf(parent.traceparent));
  });
});

describe("audit log", () => {
  it("records each delivery's outcome, bounded, with a public reader", async () => {
    const router = make({ audit: { capacity: 3 } });
    router.subscribe(
      "JOB_STARTED",
      (e) => {
        if (e.data.n === 1) throw new Error("nope");
      },
      { name: "auditor" },
    );
    for (let n = 0; n < 4; n++) await router.publish("JOB_STARTED", { n });
    await router.drain();
    const entries = router.auditLog!.entries();
    expect(entries).toHaveLength(3);
    expect(entries.map((e) => e.result)).toEqual(["failed", "ok", "ok"]);
    expect(entries[0]).toMatchObject({
      eventType: "JOB_STARTED",
      handler: "auditor",
      attempt: 1,
      error: { message: "nope" },
    });
    expect(router.auditLog!.entries({ result: "failed" })).toHaveLength(1);
    expect(router.auditLog!.entries({ limit: 1 })[0]!.eventId).toBe(entries[2]!.eventId);
  });

  it("is off unless asked for", () => {
    expect(make().auditLog).toBeUndefined();
  });
});

describe("stats and health", () => {
  it("reports duration percentiles per handler", async () => {
    const router = make();
    router.subscribe("JOB_STARTED", () => delay(2), { name: "timed" });
    for (let n = 0; n < 5; n++) await router.publish("JOB_STARTED", { n });
    await router.drain();
    const { durationMs } = router.stats().subscriptions[0]!;
    expect(durationMs.count).toBe(5);
    expect(durationMs.p50).toBeGreaterThan(1);
    expect(durationMs.max).toBeGreaterThanOrEqual(durationMs.p99);
  });

  it("is healthy when idle, degraded when a handler keeps failing, unhealthy after shutdown", async () => {
    const router = make();
    expect(router.health()).toMatchObject({ healthy: true, status: "healthy" });
    router.subscribe(
      "JOB_FAILED",
      () => {
        throw new Error("x");
      },
      { name: "always-fails" },
    );
    for (let n = 0; n < 6; n++) await router.publish("JOB_FAILED", { n, error: "e" });
    await router.drain();
    const degraded = router.health();
    expect(degraded).toMatchObject({ healthy: false, status: "degraded" });
    expect(degraded.message).toContain("always-fails failed 100% of its last 6 deliveries");
    await router.close();
    expect(router.health().status).toBe("unhealthy");
  });

  it("is degraded while a queue is nearly full", async () => {
    const router = make();
    router.subscribe("JOB_STARTED", () => new Promise(() => {}), {
      name: "stuck",
      queueSize: 10,
      timeoutMs: 0,
      overflow: "drop-newest",
    });
    for (let n = 0; n < 12; n++) await router.publish("JOB_STARTED", { n });
    expect(router.health()).toMatchObject({
      status: "degraded",
      message: expect.stringContaining("stuck queue 10/10"),
    });
  });

  it("keeps totals of removed subscriptions", async () => {
    const router = make();
    const unsubscribe = router.subscribe("JOB_STARTED", () => {});
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    unsubscribe();
    expect(router.stats()).toMatchObject({ subscriptionCount: 0, delivered: 1, published: 1 });
  });
});

describe("close", () => {
  it("drains queued and in-flight work before resolving", async () => {
    const router = make();
    const done: number[] = [];
    router.subscribe("JOB_STARTED", async (e) => {
      await delay(5);
      done.push(e.data.n);
    });
    for (let n = 0; n < 5; n++) await router.publish("JOB_STARTED", { n });
    await router.close();
    expect(done).toEqual([0, 1, 2, 3, 4]);
  });

  it("aborts what still runs after the timeout, and is idempotent", async () => {
    const router = make();
    let signal: AbortSignal | undefined;
    router.subscribe(
      "JOB_STARTED",
      (_e, ctx) => {
        signal = ctx.signal;
        return new Promise(() => {});
      },
      { timeoutMs: 0 },
    );
    await router.publish("JOB_STARTED", { n: 1 });
    await delay(1);
    const first = router.close({ timeoutMs: 20 });
    expect(router.close()).toBe(first);
    await first;
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBeInstanceOf(RouterClosedError);
  });

  it("keeps shutdown, getStats and healthCheck as deprecated aliases of close, stats and health", async () => {
    const router = make();
    router.subscribe("JOB_STARTED", () => {}, { name: "worker" });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    expect(router.getStats()).toEqual(router.stats());
    expect(router.stats()).toMatchObject({ published: 1, delivered: 1 });
    expect(router.healthCheck()).toEqual(router.health());
    const closing = router.shutdown({ timeoutMs: 20 });
    expect(router.close()).toBe(closing); // one close, whichever name asked first
    expect(router.shutdown()).toBe(closing);
    await closing;
    expect(router.closed).toBe(true);
    expect(router.health().status).toBe("unhealthy");
    expect(router.healthCheck()).toEqual(router.health());
  });

  it("shuts down at the end of an `await using` scope", async () => {
    let outside: Router<TestCatalog> | undefined;
    {
      await using router = createRouter({ catalog: testCatalog });
      outside = router;
    }
    expect(outside.closed).toBe(true);
  });
});

describe("process-wide router", () => {
  afterEach(() => resetRouter());

  it("returns the same router until reset", async () => {
    const a = getRouter({ catalog: testCatalog });
    expect(getRouter()).toBe(a);
    expect(a.catalog).toBe(testCatalog);
    await resetRouter();
    expect(a.closed).toBe(true);
    expect(hasRouter()).toBe(false);
    expect(getRouter({ catalog: testCatalog })).not.toBe(a);
  });

  it("refuses options once the router exists", () => {
    getRouter({ catalog: testCatalog });
    expect(() => getRouter({ catalog: pipelineCatalog })).toThrow(/already exists/);
  });

  it("has no default catalog: getRouter() before the router exists throws NoRouterError", () => {
    expect(hasRouter()).toBe(false);
    expect(() => getRouter()).toThrow(NoRouterError);
    expect(() => getRouter()).toThrow(/getRouter\(\{ catalog/);
    expect(hasRouter()).toBe(false);
  });

  it("types the process-wide router from the options that create it", () => {
    expectTypeOf(getRouter({ catalog: testCatalog })).toEqualTypeOf<Router<TestCatalog>>();
    // @ts-expect-error -- there is no default catalog: Router needs its catalog type
    type _Bare = Router;
  });
});

describe("types", () => {
  it("types handlers from the pattern and payloads from the event type", () => {
    const router = createRouter({ catalog: testCatalog });
    router.subscribe("JOB_STARTED", (e) => {
      expectTypeOf(e.type).toEqualTypeOf<"JOB_STARTED">();
      expectTypeOf(e.data.n).toEqualTypeOf<number>();
    });
    router.subscribe("JOB_*", (e) => {
      expectTypeOf(e.type).toEqualTypeOf<"JOB_STARTED" | "JOB_FINISHED" | "JOB_FAILED">();
      if (e.type === "JOB_FAILED") expectTypeOf(e.data.error).toEqualTypeOf<string>();
    });
    const publishStarted = () => router.publish("JOB_STARTED", { n: 1 });
    expectTypeOf(publishStarted)
      .returns.resolves.toHaveProperty("type")
      .toEqualTypeOf<"JOB_STARTED">();
    void router.close();
  });

  it("does not compile with a wrong name, a wrong pattern or a bad payload", () => {
    const router = createRouter({ catalog: testCatalog });
    const check = () => {
      // @ts-expect-error — not an event type
      void router.publish("JOB_STARTD", { n: 1 });
      // @ts-expect-error — n is required
      void router.publish("JOB_STARTED", {});
      // @ts-expect-error — n must be a number
      void router.publish("JOB_STARTED", { n: "1" });
      // @ts-expect-error — no event type starts with JOBS_
      router.subscribe("JOBS_*", () => {});
    };
    expect(check).toBeTypeOf("function");
    void router.close();
  });
});

describe("redeliver", () => {
  it("delivers an envelope again to one named subscription only, keeping its id", async () => {
    const router = createRouter({ catalog: testCatalog });
    const a: string[] = [];
    const b: string[] = [];
    router.subscribe("JOB_STARTED", (e) => void a.push(e.id), { name: "a" });
    router.subscribe("JOB_STARTED", (e) => void b.push(e.id), { name: "b" });
    const sent = await router.publish("JOB_STARTED", { n: 1 });
    await router.redeliver("b", sent);
    await router.drain();
    expect(a).toEqual([sent.id]);
    expect(b).toEqual([sent.id, sent.id]);
    await router.close();
  });

  it("refuses a subscription that does not exist or does not take the type", async () => {
    const router = createRouter({ catalog: testCatalog });
    router.subscribe("JOB_FINISHED", () => {}, { name: "finisher" });
    const sent = await router.publish("JOB_STARTED", { n: 1 });
    await expect(router.redeliver("gone", sent)).rejects.toThrow(
      /No subscription "gone" receives JOB_STARTED here \(known: finisher\)/,
    );
    await expect(router.redeliver("finisher", sent)).rejects.toMatchObject({
      code: "UNKNOWN_SUBSCRIPTION",
    });
    await router.close();
  });
});

describe("closing a subscription", () => {
  it("names the handle after the subscription", () => {
    const router = createRouter({ catalog: testCatalog });
    expect(router.subscribe("JOB_STARTED", () => {}, { name: "named" }).name).toBe("named");
    void router.close();
  });

  it("handles the queued backlog first with close({ drain: true })", async () => {
    const router = createRouter({ catalog: testCatalog });
    const done: number[] = [];
    const sub = router.subscribe("JOB_STARTED", async (e) => {
      await delay(2);
      done.push(e.data.n);
    });
    for (let n = 0; n < 5; n++) await router.publish("JOB_STARTED", { n });
    await sub.close({ drain: true });
    expect(done).toEqual([0, 1, 2, 3, 4]);
    await router.publish("JOB_STARTED", { n: 9 });
    await router.drain();
    expect(done).toEqual([0, 1, 2, 3, 4]);
    expect(router.stats()).toMatchObject({ subscriptionCount: 0, dropped: 0 });
    await router.close();
  });

  it("discards the backlog with close() but waits for the in-flight handler", async () => {
    const router = createRouter({ catalog: testCatalog });
    const done: number[] = [];
    const sub = router.subscribe("JOB_STARTED", async (e) => {
      await delay(5);
      done.push(e.data.n);
    });
    for (let n = 0; n < 3; n++) await router.publish("JOB_STARTED", { n });
    await delay(1);
    await sub.close();
    expect(done).toEqual([0]);
    expect(router.stats()).toMatchObject({ dropped: 2, delivered: 1 });
    await router.close();
  });
});
