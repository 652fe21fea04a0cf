import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { MAX_TIMER_MS, drainWithin, timerDelay } from "./timers";

describe("timerDelay", () => {
  it("clamps every delay to what Node's timers take", () => {
    expect(timerDelay(1e15)).toBe(MAX_TIMER_MS);
    expect(timerDelay(Number.POSITIVE_INFINITY)).toBe(MAX_TIMER_MS);
    expect(timerDelay(Number.NaN)).toBe(MAX_TIMER_MS);
    expect(timerDelay(-5)).toBe(0);
    expect(timerDelay(2.2)).toBe(3);
  });
});

describe("drainWithin", () => {
  it("resolves true as soon as the running handlers are idle", async () => {
    let idle!: () => void;
    const drain = drainWithin(new Promise<void>((resolve) => (idle = resolve)), 60_000);
    idle();
    await expect(drain).resolves.toBe(true);
  });

  it("resolves false at the deadline while a handler still runs", async () => {
    const started = Date.now();
    await expect(drainWithin(new Promise<void>(() => {}), 30)).resolves.toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
  });

  it("waits out a drain timeout beyond what setTimeout takes instead of giving up at once", async () => {
    // Unclamped, setTimeout fires such a delay after 1 ms: close() would abort every handler.
    let idle!: () => void;
    const drain = drainWithin(new Promise<void>((resolve) => (idle = resolve)), 1e15);
    const first = await Promise.race([drain, sleep(50).then(() => "still draining" as const)]);
    expect(first).toBe("still draining");
    idle();
    await expect(drain).resolves.toBe(true);
  });
});
