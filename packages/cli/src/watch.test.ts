import { describe, expect, it } from "vitest";
import { CliError } from "./output";
import { CLEAR_SCREEN, DEFAULT_WATCH_INTERVAL_MS, watch, watchIntervalOf } from "./watch";

/** A clock that moves one second per reading, and a sleep that records its waits. */
function fakeTime() {
  let t = Date.parse("2026-01-02T03:04:05Z");
  const waits: number[] = [];
  return {
    now: () => new Date((t += 1000)),
    waits,
    sleep: async (ms: number) => void waits.push(ms),
  };
}

describe("watch", () => {
  it("appends each run under a time separator when the output is not a terminal", async () => {
    const time = fakeTime();
    const written: string[] = [];
    const result = await watch(
      ({ write, run }) => {
        write(`run ${run}\n`);
        write("second line\n");
        return run * 10;
      },
      { ...time, write: (t) => void written.push(t), tty: false, maxRuns: 3, intervalMs: 5000 },
    );
    expect(result).toBe(30);
    // One write per run: the frame is buffered, not drawn piece by piece.
    expect(written).toEqual([
      "--- 2026-01-02T03:04:06Z\nrun 1\nsecond line\n",
      "\n--- 2026-01-02T03:04:07Z\nrun 2\nsecond line\n",
      "\n--- 2026-01-02T03:04:08Z\nrun 3\nsecond line\n",
    ]);
    expect(time.waits).toEqual([5000, 5000]);
  });

  it("clears the screen and redraws under a title on a terminal", async () => {
    const time = fakeTime();
    const written: string[] = [];
    await watch(({ write }) => write("table\n"), {
      ...time,
      write: (t) => void written.push(t),
      tty: true,
      maxRuns: 2,
      title: "switchyard health",
    });
    expect(written).toEqual([
      `${CLEAR_SCREEN}Every 2s: switchyard health  2026-01-02T03:04:06Z\n\ntable\n`,
      `${CLEAR_SCREEN}Every 2s: switchyard health  2026-01-02T03:04:07Z\n\ntable\n`,
    ]);
    expect(time.waits).toEqual([DEFAULT_WATCH_INTERVAL_MS]);
  });

  it("writes runs bare when not framed (one JSON document per run)", async () => {
    const written: string[] = [];
    await watch(({ write, run }) => write(`{"run":${run}}\n`), {
      ...fakeTime(),
      write: (t) => void written.push(t),
      tty: true,
      framed: false,
      maxRuns: 2,
    });
    expect(written.join("")).toBe('{"run":1}\n{"run":2}\n');
  });

  it("stops when the caller's signal aborts, and drops a run cut short", async () => {
    const stop = new AbortController();
    const written: string[] = [];
    const result = await watch(
      ({ write, run, signal }) => {
        if (run === 3) stop.abort();
        write(signal.aborted ? "partial\n" : `run ${run}\n`);
        return run;
      },
      { ...fakeTime(), write: (t) => void written.push(t), tty: false, signal: stop.signal },
    );
    expect(result).toBe(2);
    expect(written.join("")).toContain("run 2");
    expect(written.join("")).not.toContain("partial");
    expect(written).toHaveLength(2);
  });

  it("runs once and returns when the signal is already aborted", async () => {
    const time = fakeTime();
    const result = await watch(() => "once", {
      ...time,
      write: () => {},
      signal: AbortSignal.abort(),
    });
    expect(result).toBe("once");
    expect(time.waits).toEqual([]);
  });

  it("stops on Ctrl-C and removes its SIGINT listener", async () => {
    const before = process.listeners("SIGINT");
    let runs = 0;
    await watch(
      () => {
        runs++;
        const added = process.listeners("SIGINT").filter((l) => !before.includes(l));
        expect(added).toHaveLength(1);
        if (runs === 2) (added[0] as () => void)();
      },
      { ...fakeTime(), write: () => {} },
    );
    expect(runs).toBe(2);
    expect(process.listeners("SIGINT")).toEqual(before);
  });

  it("ends with the error of a run that throws, and cleans up", async () => {
    const before = process.listenerCount("SIGINT");
    await expect(
      watch(
        ({ run }) => {
          if (run === 2) throw new Error("database locked");
        },
        { ...fakeTime(), write: () => {} },
      ),
    ).rejects.toThrow("database locked");
    expect(process.listenerCount("SIGINT")).toBe(before);
  });

  it("waits on the real clock and wakes at once when stopped", async () => {
    const stop = new AbortController();
    const written: string[] = [];
    const started = Date.now();
    setTimeout(() => stop.abort(), 120);
    await watch(({ write, run }) => write(`run ${run}\n`), {
      write: (t) => void written.push(t),
      tty: false,
      intervalMs: 50,
      signal: stop.signal,
      sigint: false,
    });
    const elapsed = Date.now() - started;
    expect(written.length).toBeGreaterThanOrEqual(2);
    expect(elapsed).toBeLessThan(1000);
  });
});

describe("watchIntervalOf", () => {
  it("reads --watch alone, --watch <duration>, and its absence", () => {
    expect(watchIntervalOf(undefined)).toBeUndefined();
    expect(watchIntervalOf(true)).toBe(2000);
    expect(watchIntervalOf("10s")).toBe(10_000);
    expect(watchIntervalOf("5")).toBe(5000);
    expect(() => watchIntervalOf("often")).toThrow(CliError);
    expect(() => watchIntervalOf("often")).toThrow(/^--watch: "often" is not a duration/);
  });
});
