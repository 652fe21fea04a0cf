import { createEnvelope, type Envelope } from "@switchyard/event-schema";
import { describe, expect, it } from "vitest";
import { memoryTransport } from "./memory-transport";

const event = (n: number): Envelope =>
  createEnvelope({ type: "JOB", source: "memory-transport-test", data: { n } });

async function eventually(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A promise and the function that resolves it. */
function gate(): { open: () => void; opened: Promise<void> } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

// Hand-backs (rolling restarts, closing one handle of several) are in the conformance suite
// (@switchyard/transport-testkit, "hand-backs"), which this transport runs.

describe("memory transport: requeue", () => {
  it("regression: a requeue never takes over a live lease; the running handler's outcome stands and the event runs once", async () => {
    const transport = memoryTransport();
    const release = gate();
    const runs: number[] = [];
    await transport.subscribe({
      subscriber: "trainer",
      types: ["JOB"],
      concurrency: 4,
      handler: async (d) => {
        runs.push(d.attempt);
        if (runs.length === 1) await release.opened;
      },
    });
    const e = event(1);
    await transport.publish([e]);
    await eventually(() => runs.length === 1, "the handler to start");
    await Promise.all([transport.requeue("trainer", e), transport.requeue("trainer", e)]);
    release.open();
    await eventually(
      () => transport.store.subscribers.get("trainer")!.deliveries.length === 0,
      "the ack",
    );
    expect(runs).toEqual([1]);
    await transport.close();
  });

  it("runs a delivery again when a requeue met its last attempt failing, instead of dead-lettering it", async () => {
    const transport = memoryTransport();
    const release = gate();
    const runs: number[] = [];
    await transport.subscribe({
      subscriber: "trainer",
      types: ["JOB"],
      maxAttempts: 1,
      handler: async (d) => {
        runs.push(d.attempt);
        if (runs.length === 1) {
          await release.opened;
          throw new Error("the last attempt fails");
        }
      },
    });
    const e = event(1);
    await transport.publish([e]);
    await eventually(() => runs.length === 1, "the handler to start");
    await transport.requeue("trainer", e);
    release.open();
    await eventually(() => runs.length === 2, "the requeued run");
    expect(runs).toEqual([1, 1]);
    expect(transport.deadLetters).toEqual([]);
    await transport.close();
  });
});

describe("memory transport: timers", () => {
  it("arms no overflowing timer for a retry scheduled beyond what setTimeout takes", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => void warnings.push(w);
    process.on("warning", onWarning);
    const transport = memoryTransport({ drainTimeoutMs: 20 });
    try {
      let failures = 0;
      await transport.subscribe({
        subscriber: "patient",
        types: ["JOB"],
        backoff: { initialMs: 1e15, maxMs: 1e15, jitter: 0 },
        handler: async () => {
          failures++;
          throw new Error("try again in 30,000 years");
        },
      });
      await transport.publish([event(1)]);
      await eventually(() => failures === 1, "the first attempt");
      // The retry timer was armed as the attempt failed; its warning comes on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(failures).toBe(1);
      expect(warnings.map((w) => w.name)).not.toContain("TimeoutOverflowWarning");
    } finally {
      process.off("warning", onWarning);
      await transport.close();
    }
  });
});
