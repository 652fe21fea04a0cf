import { describe, expect, it } from "vitest";
import {
  backoffDelay,
  backoffProblem,
  deadLetterRetryDelay,
  defaultDeadLetterBackoff,
  sleep,
} from "./backoff";

describe("deadLetterRetryDelay", () => {
  it("doubles per replay from initialMs, capped at maxMs", () => {
    expect(
      [0, 1, 2, 3, 4].map((r) => deadLetterRetryDelay(r, { initialMs: 100, maxMs: 1000 })),
    ).toEqual([100, 200, 400, 800, 1000]);
  });

  it("waits 1 s before the first replay and at most an hour by default", () => {
    expect(deadLetterRetryDelay(0)).toBe(defaultDeadLetterBackoff.initialMs);
    expect(defaultDeadLetterBackoff).toEqual({ initialMs: 1000, maxMs: 3_600_000 });
    expect(deadLetterRetryDelay(1_000)).toBe(3_600_000);
  });

  it("reads a negative, fractional or missing replay count as whole replays from zero", () => {
    expect(deadLetterRetryDelay(-3, { initialMs: 50 })).toBe(50);
    expect(deadLetterRetryDelay(1.9, { initialMs: 50 })).toBe(100);
    expect(deadLetterRetryDelay(2, { initialMs: 0 })).toBe(0);
    expect(deadLetterRetryDelay(Number.NaN, { initialMs: 50 })).toBe(50);
  });
});

describe("backoffDelay with fields given as undefined", () => {
  it("keeps the default of a field given as undefined instead of returning NaN", () => {
    expect(backoffDelay(2, { initialMs: undefined, multiplier: undefined, jitter: 0 })).toBe(200);
  });
});

describe("backoffProblem", () => {
  it("names the first field out of range, and accepts undefined fields", () => {
    expect(backoffProblem({ initialMs: undefined, jitter: 0.5 })).toBeUndefined();
    expect(backoffProblem({ multiplier: 0 })).toMatchObject({ field: "multiplier", value: 0 });
    expect(backoffProblem({ maxMs: 2 ** 31 })).toMatchObject({ field: "maxMs" });
    expect(backoffProblem({ jitter: Number.NaN })).toMatchObject({ field: "jitter" });
  });
});

describe("sleep", () => {
  it("clamps a wait longer than a timer takes instead of firing after 1 ms", async () => {
    const controller = new AbortController();
    let settled = false;
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      const sleeping = sleep(2 ** 40, { signal: controller.signal }).then(
        () => (settled = true),
        () => "aborted",
      );
      await new Promise((r) => setTimeout(r, 30));
      expect(settled).toBe(false);
      controller.abort();
      expect(await sleeping).toBe("aborted");
      await new Promise((r) => setImmediate(r));
      expect(warnings).not.toContain("TimeoutOverflowWarning");
    } finally {
      process.off("warning", onWarning);
    }
  });
});
