import { createEnvelope, type Envelope } from "@switchyard/event-schema";
import { describe, expect, it, vi } from "vitest";
import { memoryTransport } from "./memory-transport";
import { TransportOptionsError } from "./subscribe-options";
import { MAX_TIMER_MS } from "./timers";

const event = (n: number): Envelope =>
  createEnvelope({ type: "JOB", source: "memory-transport-test", data: { n } });

async function eventually(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// Hand-backs (rolling restarts, closing one handle of several) and requeues (one subscriber only,
// never over a live lease, a failing last attempt run again) are in the conformance suite
// (@switchyard/transport-testkit), which this transport runs in transport-testkit/src/memory.test.ts.

describe("memory transport: publish", () => {
  it("rejects a publish whose signal is already aborted with its reason, storing nothing", async () => {
    const transport = memoryTransport();
    const controller = new AbortController();
    const reason = new Error("gave up");
    controller.abort(reason);
    const sent = event(1);
    await expect(transport.publish([sent], { signal: controller.signal })).rejects.toBe(reason);
    expect(transport.store.events).toEqual([]);
    expect(await transport.publish([sent])).toEqual({ published: 1, duplicates: 0 });
    await transport.close();
  });
});

describe("memory transport: timers", () => {
  it("arms no overflowing timer for a retry scheduled as far as setTimeout takes", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => void warnings.push(w);
    process.on("warning", onWarning);
    const transport = memoryTransport({ drainTimeoutMs: 20 });
    try {
      let failures = 0;
      await transport.subscribe({
        subscriber: "patient",
        types: ["JOB"],
        backoff: { initialMs: MAX_TIMER_MS, maxMs: MAX_TIMER_MS, jitter: 0 },
        handler: async () => {
          failures++;
          throw new Error("try again in 24.8 days");
        },
      });
      await transport.publish([event(1)]);
      await eventually(() => failures === 1, "the first attempt");
      // The retry timer was armed as the attempt failed; a warning would come on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(failures).toBe(1);
      expect(warnings.map((w) => w.name)).not.toContain("TimeoutOverflowWarning");
    } finally {
      process.off("warning", onWarning);
      await transport.close();
    }
  });

  it("refuses a retry backoff beyond what setTimeout takes, naming it, before subscribing", async () => {
    const transport = memoryTransport();
    try {
      const subscribing = transport.subscribe({
        subscriber: "patient",
        types: ["JOB"],
        backoff: { initialMs: 1e15, maxMs: 1e15, jitter: 0 },
        handler: async () => {},
      });
      await expect(subscribing).rejects.toBeInstanceOf(TransportOptionsError);
      await expect(subscribing).rejects.toMatchObject({ option: "backoff.initialMs" });
      expect((await transport.stats()).subscribers).toEqual([]);
    } finally {
      await transport.close();
    }
  });
});

describe("memory transport: retries and signals", () => {
  it("runs a retry due soon on time while a later retry of another delivery is waiting", async () => {
    const transport = memoryTransport({ drainTimeoutMs: 20 });
    try {
      const attempts = new Map<number, number>();
      await transport.subscribe({
        subscriber: "retrier",
        types: ["JOB"],
        maxAttempts: 10,
        // 1st retry after 20 ms, 2nd after 1 min: event 1's second retry waits a minute.
        backoff: { initialMs: 20, multiplier: 3_000, maxMs: 60_000, jitter: 0 },
        handler: async ({ envelope }) => {
          const n = (envelope.data as { n: number }).n;
          attempts.set(n, (attempts.get(n) ?? 0) + 1);
          throw new Error("not yet");
        },
      });
      await transport.publish([event(1)]);
      await eventually(() => attempts.get(1) === 2, "event 1's first retry");
      // Event 1's next retry is a minute away; event 2's first retry is due 20 ms after it fails.
      await transport.publish([event(2)]);
      await eventually(
        () => (attempts.get(2) ?? 0) >= 2,
        "event 2's first retry, 20 ms later (not after event 1's, a minute away)",
        2_000,
      );
      expect(attempts.get(1)).toBe(2);
    } finally {
      await transport.close();
    }
  });

  it("never runs the handler of a subscription whose signal was aborted before subscribing", async () => {
    const transport = memoryTransport({ drainTimeoutMs: 20 });
    try {
      let ran = 0;
      await transport.subscribe({
        subscriber: "late",
        types: ["JOB"],
        ephemeral: true,
        signal: AbortSignal.abort(),
        handler: async () => {
          ran++;
        },
      });
      await transport.publish([event(1)]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(ran).toBe(0);
      // Closed as if aborted after subscribing: an ephemeral subscriber's state is gone.
      expect(await transport.hasSubscribers("JOB")).toBe(false);
    } finally {
      await transport.close();
    }
  });

  it("lets go of a long-lived signal when the subscription closes", async () => {
    const transport = memoryTransport({ drainTimeoutMs: 20 });
    const { signal } = new AbortController();
    const add = vi.spyOn(signal, "addEventListener");
    const remove = vi.spyOn(signal, "removeEventListener");
    try {
      const subscription = await transport.subscribe({
        subscriber: "shortlived",
        types: ["JOB"],
        signal,
        handler: async () => {},
      });
      await subscription.close();
      expect(add.mock.calls.map(([type]) => type)).toEqual(["abort"]);
      // The same listener it added, so the signal does not keep the closed subscription alive.
      expect(remove.mock.calls.map(([type, listener]) => [type, listener])).toEqual([
        ["abort", add.mock.calls[0]![1]],
      ]);
    } finally {
      await transport.close();
    }
  });
});
