import { afterEach, describe, expect, it, vi } from "vitest";
import { MAX_TIMER_MS, MemoryTransport } from "@switchyard/transport";
import { timeout } from "./middleware/timeout";
import { retry } from "./middleware/retry";
import { type Router, createRouter } from "./router";
import { delay, eventually, testCatalog, type TestCatalog } from "./test/fixtures";

const open: Router<TestCatalog>[] = [];
function make(transport?: MemoryTransport): Router<TestCatalog> {
  const router = createRouter({ catalog: testCatalog, ...(transport ? { transport } : {}) });
  open.push(router);
  return router;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.close({ timeoutMs: 100 })));
});

/** Drain, failing the test instead of hanging it when the subscription never goes idle. */
const drained = (router: Router<TestCatalog>) =>
  router.drain({ signal: AbortSignal.timeout(1_000) });

describe("handlers returning thenables that are not promises", () => {
  it("settles a delivery once when its thenable calls back twice or calls both callbacks", async () => {
    const router = make();
    const seen: number[] = [];
    router.subscribe(
      "JOB_STARTED",
      (e) => {
        seen.push(e.data.n);
        return {
          then(resolve: () => void, reject: (error: unknown) => void) {
            resolve();
            resolve();
            reject(new Error("called after resolve"));
          },
        };
      },
      { name: "twice" },
    );
    for (let n = 1; n <= 3; n++) await router.publish("JOB_STARTED", { n });
    await drained(router);
    expect(seen).toEqual([1, 2, 3]);
    expect(router.stats().subscriptions[0]).toMatchObject({
      delivered: 3,
      failed: 0,
      inFlight: 0,
      queueDepth: 0,
    });
  });

  it("counts a thenable that throws after resolving as delivered once, and keeps handling the queue", async () => {
    const router = make();
    const seen: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    router.subscribe(
      "JOB_STARTED",
      (e) => {
        seen.push(e.data.n);
        if (e.data.n === 1) return gate;
        return {
          then(resolve: () => void) {
            resolve();
            throw new Error("thrown after resolving");
          },
        };
      },
      { name: "throws-after" },
    );
    for (let n = 1; n <= 4; n++) void router.publish("JOB_STARTED", { n });
    release();
    await drained(router);
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(router.stats().subscriptions[0]).toMatchObject({
      delivered: 4,
      failed: 0,
      inFlight: 0,
    });
  });

  it("keeps concurrency 1 when a thenable calls back again after its delivery was settled", async () => {
    const router = make();
    let running = 0;
    let most = 0;
    router.subscribe(
      "JOB_STARTED",
      (e) => {
        most = Math.max(most, ++running);
        if (e.data.n === 1) {
          return {
            then(resolve: () => void) {
              setTimeout(() => {
                running--;
                resolve();
              }, 1);
              setTimeout(resolve, 5); // again, while the next delivery runs
            },
          };
        }
        return delay(20).then(() => void running--);
      },
      { name: "late-callback" },
    );
    for (let n = 1; n <= 3; n++) void router.publish("JOB_STARTED", { n });
    await drained(router);
    expect(most).toBe(1);
    expect(router.stats().subscriptions[0]).toMatchObject({ delivered: 3, inFlight: 0 });
  });
});

describe("a handler result whose then getter throws", () => {
  // `await` reads `then` once and rejects with what the getter throws: the delivery fails.
  const hostile = () => ({
    get then(): never {
      throw new Error("then getter threw");
    },
  });

  it("fails that delivery (publish does not throw) and keeps handling the queue", async () => {
    const router = make();
    const seen: number[] = [];
    router.subscribe(
      "JOB_STARTED",
      (e) => {
        seen.push(e.data.n);
        return e.data.n === 2 ? hostile() : undefined;
      },
      { name: "then-getter" },
    );
    router.subscribe(
      "JOB_STARTED",
      (e) => {
        if (e.data.n === 2) return hostile();
        return undefined;
      },
      { name: "then-getter-sibling" },
    );
    for (let n = 1; n <= 3; n++) await router.publish("JOB_STARTED", { n });
    await drained(router);
    expect(seen).toEqual([1, 2, 3]);
    for (const sub of router.stats().subscriptions)
      expect(sub, sub.name).toMatchObject({ delivered: 2, failed: 1, inFlight: 0, queueDepth: 0 });
  });
});

describe("close({ timeoutMs })", () => {
  it.each([
    ["past the longest timer", MAX_TIMER_MS + 1],
    ["far past the longest timer", 1e12],
    ["NaN", Number.NaN],
  ])(
    "lets in-flight handlers finish when the timeout is %s, instead of aborting them at once",
    async (_what, timeoutMs) => {
      const router = make();
      let finished = false;
      let aborted: boolean | undefined;
      router.subscribe("JOB_STARTED", async (_e, ctx) => {
        await delay(30);
        aborted = ctx.signal.aborted;
        finished = true;
      });
      await router.publish("JOB_STARTED", { n: 1 });
      await router.close({ timeoutMs });
      expect(finished).toBe(true);
      expect(aborted).toBe(false);
      expect(router.stats().dropped).toBe(0);
    },
  );

  it("aborts what still runs at once when the timeout is negative, as with 0", async () => {
    const router = make();
    let signal: AbortSignal | undefined;
    router.subscribe("JOB_STARTED", (_e, ctx) => {
      signal = ctx.signal;
      return new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.close({ timeoutMs: -5 });
    expect(signal?.aborted).toBe(true);
  });
});

describe("publish({ signal }) under backpressure", () => {
  /** A subscription with room for one queued event, whose handler waits for `release`. */
  function stalled(router: Router<TestCatalog>) {
    const seen: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    router.subscribe(
      "JOB_STARTED",
      async (e) => {
        seen.push(e.data.n);
        await gate;
      },
      { name: "stalled", queueSize: 1, overflow: "wait", timeoutMs: 0 },
    );
    return { seen, release };
  }

  it("rejects a publish waiting for queue room when its signal aborts, and never delivers that event", async () => {
    const router = make();
    const { seen, release } = stalled(router);
    await router.publish("JOB_STARTED", { n: 1 }); // running
    await router.publish("JOB_STARTED", { n: 2 }); // queued: the queue is full
    const controller = new AbortController();
    const waiting = router.publish("JOB_STARTED", { n: 3 }, { signal: controller.signal });
    const reason = new Error("gave up");
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    release();
    await drained(router);
    expect(seen).toEqual([1, 2]);
  });

  it("rejects at once when the queue is full and the signal is already aborted", async () => {
    const router = make();
    const { seen, release } = stalled(router);
    await router.publish("JOB_STARTED", { n: 1 });
    await router.publish("JOB_STARTED", { n: 2 });
    await expect(
      router.publish("JOB_STARTED", { n: 3 }, { signal: AbortSignal.abort() }),
    ).rejects.toThrow(/aborted/);
    release();
    await drained(router);
    expect(seen).toEqual([1, 2]);
  });

  it("queues the event when room comes before the signal aborts", async () => {
    const router = make();
    const { seen, release } = stalled(router);
    await router.publish("JOB_STARTED", { n: 1 });
    await router.publish("JOB_STARTED", { n: 2 });
    const controller = new AbortController();
    const three = router.publish("JOB_STARTED", { n: 3 }, { signal: controller.signal });
    release();
    await expect(three).resolves.toMatchObject({ data: { n: 3 } });
    controller.abort(); // too late to matter
    await drained(router);
    expect(seen).toEqual([1, 2, 3]);
  });

  it("hands the room to a publisher still waiting after others gave up", async () => {
    const router = make();
    const { seen, release } = stalled(router);
    await router.publish("JOB_STARTED", { n: 1 });
    await router.publish("JOB_STARTED", { n: 2 });
    const controller = new AbortController();
    const three = router.publish("JOB_STARTED", { n: 3 }, { signal: controller.signal });
    const four = router.publish("JOB_STARTED", { n: 4 }, { signal: controller.signal });
    const five = router.publish("JOB_STARTED", { n: 5 });
    controller.abort();
    await expect(three).rejects.toThrow(/aborted/);
    await expect(four).rejects.toThrow(/aborted/);
    release();
    await five;
    await drained(router);
    expect(seen).toEqual([1, 2, 5]);
  });

  it("releases a publisher waiting for room when the subscription closes, counting its event as dropped", async () => {
    const router = make();
    const { seen, release } = stalled(router);
    await router.publish("JOB_STARTED", { n: 1 });
    await router.publish("JOB_STARTED", { n: 2 });
    const waiting = router.publish("JOB_STARTED", { n: 3 });
    const closing = router.close({ timeoutMs: 50 }); // the handler never finishes in time
    await expect(waiting).resolves.toMatchObject({ data: { n: 3 } });
    await closing;
    release();
    await delay(10); // the closed subscription's numbers join the totals once its handler is done
    expect(seen).toEqual([1]);
    expect(router.stats().dropped).toBe(2); // the queued event 2, and event 3 that never got room
  });

  it("aborts waiting for room in a batch with the batch's signal", async () => {
    const router = make();
    const { seen, release } = stalled(router);
    await router.publish("JOB_STARTED", { n: 1 });
    await router.publish("JOB_STARTED", { n: 2 });
    const controller = new AbortController();
    const batch = router.publishBatch([{ type: "JOB_STARTED", data: { n: 3 } }], {
      signal: controller.signal,
    });
    controller.abort();
    await expect(batch).rejects.toThrow(/aborted/);
    release();
    await drained(router);
    expect(seen).toEqual([1, 2]);
  });
});

describe("subscribe({ signal }) with a signal already aborted", () => {
  it.each([
    ["a durable type (through the transport)", "MODEL_SAVED" as const],
    ["an in-process type", "JOB_STARTED" as const],
  ])("subscribes nothing for %s and returns a closed subscription", async (_what, type) => {
    const transport = new MemoryTransport();
    const subscribeSpy = vi.spyOn(transport, "subscribe");
    const router = make(transport);
    const sub = router.subscribe(type, () => {}, {
      name: "never",
      signal: AbortSignal.abort(),
    });
    expect(subscribeSpy).not.toHaveBeenCalled();
    await expect(sub.ready).resolves.toBeUndefined();
    await sub.close();
    expect(router.listSubscriptions()).toEqual([]);
    expect(router.stats().subscriptions).toEqual([]);
    expect(subscribeSpy).not.toHaveBeenCalled();
  });

  it("still refuses bad options with a signal already aborted", () => {
    const router = make(new MemoryTransport());
    expect(() =>
      router.subscribe("MODEL_SAVED", () => {}, {
        name: "never",
        concurrency: 0,
        signal: AbortSignal.abort(),
      }),
    ).toThrow(/concurrency/);
  });
});

describe("subscription options", () => {
  const badTimeouts: [string, number][] = [
    ["NaN", Number.NaN],
    ["below 0", -1],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["past the longest timer", MAX_TIMER_MS + 1],
  ];

  it.each(badTimeouts)(
    "refuses timeoutMs %s with RangeError, with or without middleware",
    (_what, timeoutMs) => {
      const router = make();
      expect(() => router.subscribe("JOB_STARTED", () => {}, { timeoutMs })).toThrow(RangeError);
      expect(() =>
        router.subscribe("JOB_STARTED", () => {}, {
          timeoutMs,
          middleware: [retry({ attempts: 2 })],
        }),
      ).toThrow(RangeError);
      expect(() => timeout({ ms: timeoutMs })).toThrow(RangeError);
      expect(router.listSubscriptions()).toEqual([]);
    },
  );

  it("refuses a bad timeoutMs from the router's subscription defaults", () => {
    const router = createRouter({
      catalog: testCatalog,
      subscriptionDefaults: { timeoutMs: MAX_TIMER_MS + 1 },
    });
    open.push(router);
    expect(() => router.subscribe("JOB_STARTED", () => {})).toThrow(/timeoutMs/);
  });

  it.each<[string, Record<string, unknown>]>([
    ["maxAttempts NaN (it would never dead-letter)", { maxAttempts: Number.NaN }],
    ["maxAttempts 0", { maxAttempts: 0 }],
    ["backoff.initialMs NaN", { backoff: { initialMs: Number.NaN } }],
    ["backoff.jitter 2", { backoff: { jitter: 2 } }],
    ["leaseMs NaN", { leaseMs: Number.NaN }],
  ])("refuses %s with RangeError naming it, and subscribes nothing", (_what, bad) => {
    const router = make();
    const name = Object.keys(bad)[0]!;
    expect(() => router.subscribe("JOB_STARTED", () => {}, bad)).toThrow(
      new RegExp(`subscribe: ${name}`),
    );
    expect(() => router.subscribe("JOB_STARTED", () => {}, bad)).toThrow(RangeError);
    expect(router.listSubscriptions()).toEqual([]);
  });

  it("accepts 0 (no timeout) and the longest timer as timeoutMs", async () => {
    const router = make();
    const seen: number[] = [];
    router.subscribe("JOB_STARTED", (e) => void seen.push(e.data.n), { timeoutMs: 0 });
    router.subscribe("JOB_STARTED", async (e) => void seen.push(e.data.n), {
      timeoutMs: MAX_TIMER_MS,
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await drained(router);
    expect(seen).toEqual([1, 1]);
    expect(router.stats().timedOut).toBe(0);
  });

  it("refuses an unknown overflow policy instead of losing events silently when the queue is full", () => {
    const router = make();
    expect(() =>
      router.subscribe("JOB_STARTED", () => {}, { overflow: "drop" as never, queueSize: 1 }),
    ).toThrow(/overflow must be one of "wait", "drop-newest", "drop-oldest", "error"/);
    expect(router.listSubscriptions()).toEqual([]);
  });
});

describe("waitFor({ timeoutMs })", () => {
  it.each([
    ["past the longest timer", MAX_TIMER_MS + 1],
    ["NaN", Number.NaN],
  ])("keeps waiting for the event when the timeout is %s", async (_what, timeoutMs) => {
    const router = make();
    const waiting = router.waitFor("JOB_STARTED", { timeoutMs });
    await waiting.ready;
    await delay(20);
    await router.publish("JOB_STARTED", { n: 7 });
    await expect(waiting).resolves.toMatchObject({ data: { n: 7 } });
  });

  it("rejects with TimeoutError at once, not by throwing, when the timeout is below 0", async () => {
    const router = make();
    let waiting: Promise<unknown> | undefined;
    expect(() => (waiting = router.waitFor("JOB_STARTED", { timeoutMs: -1 }))).not.toThrow();
    await expect(waiting).rejects.toMatchObject({ name: "TimeoutError" });
    await eventually(() => router.listSubscriptions().length === 0);
  });
});

describe("a payload that cannot be read", () => {
  it("rejects the publish with EventValidationError, not the getter's own error, and delivers nothing", async () => {
    const router = make();
    const seen: number[] = [];
    router.subscribe("JOB_STARTED", (e) => void seen.push(e.data.n));
    const payload = {
      get n(): number {
        throw new Error("n getter exploded");
      },
    };
    await expect(router.publish("JOB_STARTED", payload)).rejects.toMatchObject({
      name: "EventValidationError",
      reason: "invalid_payload",
    });
    await drained(router);
    expect(seen).toEqual([]);
  });
});

describe("publishBatch", () => {
  it("refuses an item carrying a signal of its own (it could not abort that event alone), delivering nothing", async () => {
    const router = make();
    const seen: number[] = [];
    router.subscribe("JOB_STARTED", (e) => void seen.push(e.data.n));
    const items = [
      { type: "JOB_STARTED", data: { n: 1 } },
      // Not allowed by the type: a JavaScript caller (or a cast) could still pass it.
      { type: "JOB_STARTED", data: { n: 2 }, options: { signal: new AbortController().signal } },
    ] as unknown as Parameters<typeof router.publishBatch>[0];
    await expect(router.publishBatch(items)).rejects.toThrow(/pass it to the batch/);
    await expect(router.publishBatch(items)).rejects.toBeInstanceOf(TypeError);
    await drained(router);
    expect(seen).toEqual([]);
  });

  it("does not type an item's signal: the compiler refuses it", () => {
    const refused: Parameters<Router<TestCatalog>["publishBatch"]>[0] = [
      // @ts-expect-error an item's options have no signal; the batch takes it
      { type: "JOB_STARTED", data: { n: 1 }, options: { signal: AbortSignal.abort() } },
    ];
    expect(refused).toHaveLength(1);
  });
});
