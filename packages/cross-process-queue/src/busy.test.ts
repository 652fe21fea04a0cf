import { describe, expect, it } from "vitest";
import { SPIN_ATTEMPTS, busyDelayMs } from "./database";

describe("waiting for the write lock", () => {
  it("tries every millisecond for a while after the spin, then backs off up to 50 ms", () => {
    // A lock held a few ms (a paused process mid-commit, a checkpoint's fsync) is retaken within
    // about a millisecond of its release; doubling from 1 ms made a 5 ms hold cost up to 7 ms.
    for (let i = 0; i < 16; i++) expect(busyDelayMs(SPIN_ATTEMPTS + i)).toBe(1);
    const later = Array.from({ length: 40 }, (_, i) => busyDelayMs(SPIN_ATTEMPTS + 16 + i));
    expect(later[0]).toBeGreaterThanOrEqual(1);
    expect(later[0]).toBeLessThanOrEqual(3);
    expect(Math.max(...later)).toBeLessThanOrEqual(75);
    expect(Math.min(...later.slice(10))).toBeGreaterThanOrEqual(25);
  });
});
