import { createEnvelope, type Envelope } from "@switchyard/event-schema";
import { describe, expect, it } from "vitest";
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
