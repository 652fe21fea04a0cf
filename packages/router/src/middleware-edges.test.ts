import { afterEach, describe, expect, it } from "vitest";
import type { DeadLetterRecord } from "@switchyard/transport";
import { dedup } from "./middleware/dedup";
import { deadLetter } from "./middleware/dead-letter";
import { rateLimit } from "./middleware/limit";
import { retry } from "./middleware/retry";
import { defineMiddleware, type Middleware } from "./middleware/types";
import { type Router, type RouterOptions, createRouter } from "./router";
import { delay, eventually, memoryLogger, testCatalog, type TestCatalog } from "./test/fixtures";

const open: Router<TestCatalog>[] = [];
function make(options: Partial<RouterOptions<TestCatalog>> = {}): Router<TestCatalog> {
  const router = createRouter({ catalog: testCatalog, ...options });
  open.push(router);
  return router;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.close({ timeoutMs: 100 })));
});

/** Drain, failing the test instead of hanging it when a subscription never goes idle. */
const drained = (router: Router<TestCatalog>, ms = 1_000) =>
  router.drain({ signal: AbortSignal.timeout(ms) });

describe("retry options", () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ["backoff.initialMs NaN", { backoff: { initialMs: Number.NaN } }, /retry: backoff\.initialMs/],
    ["backoff.maxMs past the longest timer", { backoff: { maxMs: 1e12 } }, /retry: backoff\.maxMs/],
    ["backoff not an object", { backoff: 5 }, /retry: backoff must be an object/],
  ])("refuses %s with RangeError naming it", (_what, bad, message) => {
    expect(() => retry(bad)).toThrow(RangeError);
    expect(() => retry(bad)).toThrow(message);
    expect(() => createRouter({ catalog: testCatalog, retry: bad })).toThrow(message);
  });

  it("refuses a shouldRetry that is not a function", () => {
    expect(() => retry({ shouldRetry: 5 as never })).toThrow(
      /retry: shouldRetry must be a function/,
    );
  });

  it("reports the handler's error, not a throwing shouldRetry's, and does not retry", async () => {
    const logger = memoryLogger();
    const router = make({ audit: true, logger });
    let calls = 0;
    router.subscribe(
      "JOB_STARTED",
      () => {
        calls++;
        throw new Error("handler failed");
      },
      {
        name: "predicate-throws",
        middleware: [
          retry({
            attempts: 3,
            backoff: { initialMs: 1 },
            shouldRetry: () => {
              throw new Error("predicate bug");
            },
          }),
        ],
      },
    );
    await router.publish("JOB_STARTED", { n: 1 });
    await drained(router);
    expect(calls).toBe(1);
    expect(router.auditLog!.entries()).toMatchObject([
      { result: "failed", error: { message: "handler failed" } },
    ]);
    expect(router.stats()).toMatchObject({ failed: 1, retried: 0 });
    expect(
      logger.lines.some((l) => l.level === "error" && /shouldRetry threw/.test(l.msg ?? "")),
    ).toBe(true);
  });
});

describe("unsubscribing during a retry backoff", () => {
  /** A subscription whose handler fails once, then would succeed, retried after `backoffMs`. */
  function failingOnce(router: Router<TestCatalog>, signal?: AbortSignal) {
    const calls: number[] = [];
    const sub = router.subscribe(
      "JOB_STARTED",
      (e) => {
        calls.push(e.data.n);
        if (calls.length === 1) throw new Error("first attempt failed");
      },
      {
        name: "retried",
        middleware: [retry({ attempts: 3, backoff: { initialMs: 200, jitter: 0 } })],
        ...(signal ? { signal } : {}),
      },
    );
    return { calls, sub };
  }

  it.each([
    ["calling it", (sub: { (): void }) => sub()],
    ["aborting its signal", (_sub: unknown, controller: AbortController) => controller.abort()],
  ])(
    "starts no new attempt after unsubscribing by %s, and fails that delivery with its last error",
    async (_how, unsubscribe) => {
      const router = make({ audit: true });
      const controller = new AbortController();
      const { calls, sub } = failingOnce(router, controller.signal);
      await router.publish("JOB_STARTED", { n: 1 });
      await eventually(() => router.stats().subscriptions[0]?.retried === 1); // sleeping now
      unsubscribe(sub, controller);
      // Resolves once in-flight work is done: the backoff ended without another attempt.
      await Promise.race([
        sub.close(),
        delay(1_000).then(() => {
          throw new Error("close() still waiting");
        }),
      ]);
      expect(calls).toEqual([1]);
      expect(router.stats()).toMatchObject({ delivered: 0, failed: 1, retried: 1 });
      expect(router.auditLog!.entries()).toMatchObject([
        { result: "failed", error: { message: "first attempt failed" } },
      ]);
    },
  );
});

describe("dedup", () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ["ttlMs NaN", { ttlMs: Number.NaN }, /dedup: ttlMs/],
    ["ttlMs below 0", { ttlMs: -1 }, /dedup: ttlMs/],
    ["maxEntries 0", { maxEntries: 0 }, /dedup: maxEntries/],
    ["maxEntries NaN (memory would be unbounded)", { maxEntries: Number.NaN }, /dedup: maxEntries/],
  ])("refuses %s with RangeError naming it", (_what, bad, message) => {
    expect(() => dedup(bad)).toThrow(RangeError);
    expect(() => dedup(bad)).toThrow(message);
  });

  it("refuses a key that is not a function", () => {
    expect(() => dedup({ key: "id" as never })).toThrow(/dedup: key must be a function/);
  });

  it("fails a delivery whose key is missing instead of skipping every later event as its duplicate", async () => {
    const router = make();
    const seen: number[] = [];
    router.subscribe("JOB_STARTED", (e) => void seen.push(e.data.n), {
      name: "keyed-on-missing",
      // A field the payload does not carry: undefined for every event.
      middleware: [dedup({ key: (e) => (e.data as { missing?: string }).missing as string })],
    });
    for (let n = 1; n <= 3; n++) await router.publish("JOB_STARTED", { n });
    await drained(router);
    expect(seen).toEqual([]);
    expect(router.stats()).toMatchObject({ failed: 3, deduplicated: 0 });
    expect(router.stats().subscriptions[0]!.lastError?.message).toMatch(
      /dedup: the key of JOB_STARTED .* must be a non-empty string, got undefined/,
    );
  });
});

describe("rateLimit", () => {
  it("starts deliveries when perSecond is below 1 and no burst is given (the bucket held < 1 token)", async () => {
    const router = make();
    const seen: number[] = [];
    router.subscribe("JOB_STARTED", (e) => void seen.push(e.data.n), {
      middleware: [rateLimit({ perSecond: 0.5 })],
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await drained(router);
    expect(seen).toEqual([1]);
  });

  it.each([
    ["burst 0", { perSecond: 1, burst: 0 }],
    ["burst NaN", { perSecond: 1, burst: Number.NaN }],
    ["burst 0.5", { perSecond: 10, burst: 0.5 }],
    ["perSecond a string", { perSecond: "5" as never }],
  ])("refuses %s (no delivery could start) with RangeError", (_what, bad) => {
    expect(() => rateLimit(bad)).toThrow(RangeError);
    expect(() => rateLimit(bad)).toThrow(/rateLimit: (burst|perSecond)/);
  });
});

describe("middleware that is not one", () => {
  it("refuses a plain function (no stage) at subscribe, instead of running it outside every stage", () => {
    const router = make();
    const plain = ((next: unknown) => next) as unknown as Middleware;
    expect(() => router.subscribe("JOB_STARTED", () => {}, { middleware: [plain] })).toThrow(
      /middleware\[0\] .* is not a middleware: make it with defineMiddleware/,
    );
    expect(() =>
      router.subscribe("JOB_STARTED", () => {}, { middleware: [null as unknown as Middleware] }),
    ).toThrow(TypeError);
    expect(router.listSubscriptions()).toEqual([]);
  });

  it("refuses a middleware whose wrap returns no handler at subscribe, instead of failing every delivery", () => {
    const router = make();
    const broken = defineMiddleware("custom", function broken() {
      return undefined as never;
    });
    expect(() => router.subscribe("JOB_STARTED", () => {}, { middleware: [broken] })).toThrow(
      /middleware "broken" \(stage custom\) returned undefined instead of a handler function/,
    );
    expect(router.listSubscriptions()).toEqual([]);
  });
});

describe("a middleware calling next() twice", () => {
  it("runs the handler once and fails the delivery with an error naming the middleware and its stage", async () => {
    const logger = memoryLogger();
    const router = make({ audit: true, logger });
    let calls = 0;
    const twice = defineMiddleware("custom", function twice(next) {
      return async (event, ctx) => {
        await next(event, ctx);
        await next(event, ctx);
      };
    });
    router.subscribe("JOB_STARTED", () => void calls++, { name: "twice", middleware: [twice] });
    await router.publish("JOB_STARTED", { n: 1 });
    await drained(router);
    expect(calls).toBe(1);
    expect(router.stats()).toMatchObject({ delivered: 0, failed: 1 });
    expect(router.auditLog!.entries()).toMatchObject([
      {
        result: "failed",
        error: {
          message: expect.stringMatching(
            /middleware "twice" \(stage custom\) called next\(\) a second time/,
          ),
        },
      },
    ]);
  });

  it("logs a second call the middleware ignores, without an unhandled rejection, and runs the handler once", async () => {
    const logger = memoryLogger();
    const router = make({ logger });
    let calls = 0;
    const ignores = defineMiddleware("custom", function ignores(next) {
      return (event, ctx) => {
        void next(event, ctx);
        void next(event, ctx);
      };
    });
    router.subscribe("JOB_STARTED", () => void calls++, { name: "ignores", middleware: [ignores] });
    await router.publish("JOB_STARTED", { n: 1 });
    await drained(router);
    expect(calls).toBe(1);
    expect(
      logger.lines.some(
        (l) => l.level === "error" && /"ignores" \(stage custom\)/.test(l.msg ?? ""),
      ),
    ).toBe(true);
  });

  it("lets a middleware below retry call next once per attempt", async () => {
    const router = make();
    let calls = 0;
    let seen = 0;
    const perAttempt = defineMiddleware("timeout", function perAttempt(next) {
      return (event, ctx) => {
        seen++;
        return next(event, ctx);
      };
    });
    router.subscribe(
      "JOB_STARTED",
      () => {
        if (++calls < 3) throw new Error("not yet");
      },
      {
        name: "retried",
        middleware: [retry({ attempts: 3, backoff: { initialMs: 1 } }), perAttempt],
      },
    );
    await router.publish("JOB_STARTED", { n: 1 });
    await drained(router);
    expect([calls, seen]).toEqual([3, 3]);
    expect(router.stats()).toMatchObject({ delivered: 1, failed: 0, retried: 2 });
  });
});

describe("dead-letter sink", () => {
  const failing = () => {
    throw new Error("handler failed");
  };

  it("fails the delivery (counted) and frees the subscription when the sink never answers", async () => {
    const records: number[] = [];
    const hanging = { deadLetter: () => new Promise<void>(() => {}) };
    const router = make({ audit: true });
    router.subscribe(
      "JOB_STARTED",
      (e) => {
        records.push(e.data.n);
        throw new Error("handler failed");
      },
      { name: "hung-sink", middleware: [deadLetter({ sink: hanging, timeoutMs: 30 })] },
    );
    await router.publish("JOB_STARTED", { n: 1 });
    await router.publish("JOB_STARTED", { n: 2 });
    await drained(router);
    expect(records).toEqual([1, 2]);
    expect(router.stats()).toMatchObject({ failed: 2, deadLettered: 0, inFlight: 0 });
    expect(router.auditLog!.entries().map((e) => [e.result, e.error?.message])).toEqual([
      ["failed", "handler failed"],
      ["failed", "handler failed"],
    ]);
  });

  it("dead-letters with a sink that answers in time", async () => {
    const stored: DeadLetterRecord[] = [];
    const router = make({ deadLetter: { deadLetter: (r) => void stored.push(r) } });
    router.subscribe("JOB_STARTED", failing, { name: "fast-sink" });
    await router.publish("JOB_STARTED", { n: 1 });
    await drained(router);
    expect(stored).toHaveLength(1);
    expect(router.stats()).toMatchObject({ deadLettered: 1 });
  });

  it("refuses a sink without deadLetter() and a bad timeoutMs", () => {
    expect(() => deadLetter({ sink: {} as never })).toThrow(/deadLetter: sink must be/);
    expect(() =>
      createRouter({ catalog: testCatalog, deadLetter: { deadLetter: 5 } as never }),
    ).toThrow(TypeError);
    expect(() => deadLetter({ sink: { deadLetter() {} }, timeoutMs: Number.NaN })).toThrow(
      /deadLetter: timeoutMs/,
    );
  });
});

describe("patterns", () => {
  it("refuses an empty list (it would subscribe to nothing, silently)", () => {
    const router = make();
    expect(() => router.subscribe([] as never, () => {})).toThrow(TypeError);
    expect(() => router.subscribe([] as never, () => {})).toThrow(/non-empty list/);
    expect(router.listSubscriptions()).toEqual([]);
  });

  it("refuses a pattern that is not a string with a TypeError saying so", () => {
    const router = make();
    expect(() => router.subscribe(undefined as never, () => {})).toThrow(/patterns must be/);
    expect(() => router.subscribe([5] as never, () => {})).toThrow(
      /a pattern must be a string .*got number/,
    );
    expect(router.listSubscriptions()).toEqual([]);
  });

  it("rejects waitFor on an empty list at once instead of waiting for nothing", async () => {
    const router = make();
    await expect(router.waitFor([] as never, { timeoutMs: 1_000 })).rejects.toThrow(
      /non-empty list/,
    );
  });
});

describe("subscription names", () => {
  it.each([
    ["empty", ""],
    ["a number", 5],
  ])("refuses a name that is %s with TypeError naming it", async (_what, name) => {
    const router = make();
    expect(() => router.subscribe("JOB_STARTED", () => {}, { name: name as never })).toThrow(
      /subscribe: name must be a non-empty string/,
    );
    await expect(router.declareSubscriber(name as never, "JOB_STARTED")).rejects.toThrow(
      /declareSubscriber: name must be a non-empty string/,
    );
    expect(router.listSubscriptions()).toEqual([]);
  });
});

describe("waitFor with a predicate that throws", () => {
  it("rejects with what the predicate threw and unsubscribes, instead of waiting until its timeout", async () => {
    const router = make();
    const bug = new Error("predicate bug");
    const waiting = router.waitFor("JOB_STARTED", {
      predicate: () => {
        throw bug;
      },
      timeoutMs: 1_000,
    });
    await waiting.ready;
    await router.publish("JOB_STARTED", { n: 1 });
    await expect(waiting).rejects.toBe(bug);
    expect(router.listSubscriptions()).toEqual([]);
  });
});

describe("redeliver", () => {
  it.each([
    ["null", null],
    ["a number", 5],
    ["an empty object", {}],
  ])("rejects an envelope that is %s with EventValidationError", async (_what, envelope) => {
    const router = make();
    router.subscribe("JOB_STARTED", () => {}, { name: "target" });
    await expect(router.redeliver("target", envelope as never)).rejects.toMatchObject({
      name: "EventValidationError",
    });
  });
});

describe("openTelemetry options", () => {
  it("refuses an api that is not the OpenTelemetry API with a TypeError saying what to pass", () => {
    expect(() =>
      createRouter({ catalog: testCatalog, openTelemetry: { api: {} as never } }),
    ).toThrow(/openTelemetry: api must be the OpenTelemetry API/);
  });

  it("refuses an unknown spanRelationship instead of silently starting a new trace per delivery", async () => {
    const api = await import("@opentelemetry/api");
    expect(() =>
      createRouter({
        catalog: testCatalog,
        openTelemetry: { api, spanRelationship: "child" as never },
      }),
    ).toThrow(/openTelemetry: spanRelationship must be "parent" or "link", got "child"/);
  });
});

describe("auditLog.entries({ limit })", () => {
  it.each([
    ["NaN", Number.NaN],
    ["below 0", -1],
    ["not an integer", 1.5],
  ])("refuses a limit that is %s with RangeError", async (_what, limit) => {
    const router = make({ audit: true });
    router.subscribe("JOB_STARTED", () => {});
    await router.publish("JOB_STARTED", { n: 1 });
    await drained(router);
    expect(() => router.auditLog!.entries({ limit })).toThrow(/AuditLog.entries: limit/);
    expect(router.auditLog!.entries({ limit: 0 })).toEqual([]);
    expect(router.auditLog!.entries({ limit: 5 })).toHaveLength(1);
  });
});
