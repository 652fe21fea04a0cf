import { afterEach, describe, expect, it } from "vitest";
import { type Router, createRouter } from "./router";
import { type TestCatalog, delay, eventually, testCatalog } from "./test/fixtures";

// The in-process delivery path: an idle subscription runs the handler straight from `publish`,
// and a clock read is shared by the bookkeeping of one microtask checkpoint.
let router: Router<TestCatalog>;
const make = () => (router = createRouter({ catalog: testCatalog }));
afterEach(() => router.shutdown({ timeoutMs: 100 }));

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

describe("in-process delivery", () => {
  it("times a handler that blocks synchronously, even when nothing else reads the clock between", async () => {
    make();
    router.subscribe("JOB_STARTED", () => busy(20), { name: "sync" });
    router.subscribe("JOB_STARTED", async () => busy(20), { name: "async" });
    router.subscribe(
      "JOB_STARTED",
      async () => {
        await Promise.resolve();
        busy(20); // after its first step: settles in a later microtask
      },
      { name: "later" },
    );
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    for (const sub of router.getStats().subscriptions) {
      expect(sub.durationMs.count, sub.name).toBe(1);
      expect(sub.durationMs.max, sub.name).toBeGreaterThanOrEqual(19);
    }
  });

  it("regression: does not count the publisher's own work between two publishes as handler time", async () => {
    make();
    router.subscribe("JOB_STARTED", async () => {}, { name: "noop" });
    await router.publish("JOB_STARTED", { n: 1 });
    // The handler settled and its settle read the shared clock in this same microtask checkpoint;
    // the publisher's code then ran for 100 ms before publishing again.
    busy(100);
    await router.publish("JOB_STARTED", { n: 2 });
    await router.drain();
    const [stats] = router.getStats().subscriptions;
    expect(stats!.durationMs.count).toBe(2);
    expect(stats!.durationMs.max).toBeLessThan(50);
  });

  it("regression: starts a queued delivery at its own start, not at a clock read made before other code ran", async () => {
    make();
    router.subscribe("JOB_STARTED", async () => {}, { name: "a" });
    let first = true;
    router.subscribe(
      ["JOB_STARTED", "JOB_FINISHED"],
      async () => {
        // Queued between a's settlement (which reads the clock) and b's own: 100 ms of other code.
        if (first) queueMicrotask(() => busy(100));
        first = false;
      },
      { name: "b" },
    );
    const one = router.publish("JOB_STARTED", { n: 1 });
    const two = router.publish("JOB_FINISHED", { n: 2 }); // b is busy: queued behind event 1
    await Promise.all([one, two]);
    await router.drain();
    const b = router.getStats().subscriptions.find((s) => s.name === "b")!;
    expect(b.durationMs.count).toBe(2);
    expect(b.durationMs.max).toBeLessThan(50);
  });

  it("awaits a thenable a handler returns, and counts its rejection as a failure", async () => {
    make();
    const seen: number[] = [];
    router.subscribe("JOB_STARTED", (e) => ({
      then(resolve: () => void, reject: (error: unknown) => void) {
        setTimeout(() => {
          seen.push(e.data.n);
          if (e.data.n === 2) reject(new Error("thenable rejected"));
          else resolve();
        }, 2);
      },
    }));
    for (let n = 1; n <= 3; n++) await router.publish("JOB_STARTED", { n });
    await router.drain();
    expect(seen).toEqual([1, 2, 3]);
    expect(router.getStats().subscriptions[0]).toMatchObject({ delivered: 2, failed: 1 });
  });

  it("fails the delivery, not the publish, when a returned thenable's then() throws", async () => {
    make();
    const seen: number[] = [];
    router.subscribe("JOB_STARTED", (e) => {
      seen.push(e.data.n);
      return {
        then() {
          throw new Error("then() threw");
        },
      };
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.publish("JOB_STARTED", { n: 2 });
    await router.drain();
    expect(seen).toEqual([1, 2]);
    const stats = router.getStats().subscriptions[0]!;
    expect(stats).toMatchObject({ delivered: 0, failed: 2, inFlight: 0, queueDepth: 0 });
    expect(stats.lastError?.message).toBe("then() threw");
  });

  it("ignores non-promise results and isolates a synchronous throw per subscriber", async () => {
    make();
    const seen: string[] = [];
    router.subscribe("JOB_STARTED", () => {
      throw new Error("sync");
    });
    router.subscribe("JOB_STARTED", (e) => seen.push(`count ${e.data.n}`)); // returns a number
    router.subscribe("JOB_STARTED", (e) => {
      seen.push(`null ${e.data.n}`);
      return null;
    });
    for (let n = 1; n <= 2; n++) await router.publish("JOB_STARTED", { n });
    await router.drain();
    expect(seen).toEqual(["count 1", "null 1", "count 2", "null 2"]);
    expect(router.getStats()).toMatchObject({ delivered: 4, failed: 2 });
  });

  it("queues behind a running delivery and keeps publish order at concurrency 1", async () => {
    make();
    const seen: number[] = [];
    router.subscribe("JOB_STARTED", async (e) => {
      seen.push(e.data.n);
      if (e.data.n === 0) await delay(5);
    });
    for (let n = 0; n < 5; n++) void router.publish("JOB_STARTED", { n });
    expect(seen).toEqual([0]); // the first started at once, the rest wait in the queue
    expect(router.getStats().queued).toBe(4);
    await eventually(() => seen.length === 5);
    expect(seen).toEqual([0, 1, 2, 3, 4]);
  });

  it("times out every hanging delivery at concurrency 2 and keeps working with the slots they free later", async () => {
    make();
    const seen: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    router.subscribe(
      "JOB_STARTED",
      async (e) => {
        seen.push(e.data.n);
        if (e.data.n <= 2) await gate; // past the timeout; settles once released
      },
      { concurrency: 2, timeoutMs: 30 },
    );
    for (let n = 1; n <= 4; n++) await router.publish("JOB_STARTED", { n });
    await eventually(() => router.getStats().timedOut === 2);
    await eventually(() => seen.length === 4);
    release(); // the abandoned handlers settle: their slots come back
    await delay(5);
    for (let n = 5; n <= 8; n++) await router.publish("JOB_STARTED", { n });
    await router.drain();
    expect(seen.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(router.getStats().subscriptions[0]).toMatchObject({
      timedOut: 2,
      failed: 2,
      delivered: 6,
      inFlight: 0,
      queueDepth: 0,
    });
  });
});
