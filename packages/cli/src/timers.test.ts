import { describe, expect, it, vi } from "vitest";
import { longTimeout, sleep, untilStopped } from "./timers";

const DAY = 86_400_000;

describe("timers of the CLI", () => {
  it("longTimeout fires after 30 days, not after the 1 ms an overflowing setTimeout would", () => {
    vi.useFakeTimers();
    try {
      const fire = vi.fn();
      longTimeout(fire, 30 * DAY);
      vi.advanceTimersByTime(1_000);
      expect(fire).not.toHaveBeenCalled();
      vi.advanceTimersByTime(30 * DAY - 1_001);
      expect(fire).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1);
      expect(fire).toHaveBeenCalledTimes(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it("longTimeout does not fire once cleared", () => {
    vi.useFakeTimers();
    try {
      const fire = vi.fn();
      longTimeout(fire, 30 * DAY).clear();
      vi.advanceTimersByTime(31 * DAY);
      expect(fire).not.toHaveBeenCalled();
    } finally {
      vi.useRealTimers();
    }
  });

  it("sleep ends early, without an error, when its signal aborts (at once if aborted already)", async () => {
    await sleep(30 * DAY, AbortSignal.abort());
    const controller = new AbortController();
    const sleeping = sleep(30 * DAY, controller.signal);
    controller.abort();
    await sleeping;
  });

  it("untilStopped resolves at once for a signal aborted already, adding no listener", async () => {
    const sigint = process.listenerCount("SIGINT");
    await untilStopped(AbortSignal.abort());
    expect(process.listenerCount("SIGINT")).toBe(sigint);
  });

  it("untilStopped removes its SIGINT and SIGTERM listeners when the signal stops it", async () => {
    const sigint = process.listenerCount("SIGINT");
    const sigterm = process.listenerCount("SIGTERM");
    const controller = new AbortController();
    const stopped = untilStopped(controller.signal);
    expect(process.listenerCount("SIGINT")).toBe(sigint + 1);
    controller.abort();
    await stopped;
    expect(process.listenerCount("SIGINT")).toBe(sigint);
    expect(process.listenerCount("SIGTERM")).toBe(sigterm);
  });
});
