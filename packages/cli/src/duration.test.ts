import fc from "fast-check";
import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { agoDate, durationParser, formatDuration, parseDuration, sinceOption } from "./duration";
import { CliError, ExitCode } from "./output";

describe("parseDuration", () => {
  it("reads each unit and sums several", () => {
    expect(parseDuration("500ms", "--x")).toBe(500);
    expect(parseDuration("90s", "--x")).toBe(90_000);
    expect(parseDuration("15m", "--x")).toBe(900_000);
    expect(parseDuration("24h", "--x")).toBe(86_400_000);
    expect(parseDuration("7d", "--x")).toBe(604_800_000);
    expect(parseDuration("2w", "--x")).toBe(1_209_600_000);
    expect(parseDuration("1h30m", "--x")).toBe(5_400_000);
    expect(parseDuration("1d12h", "--x")).toBe(129_600_000);
    expect(parseDuration(" 1.5H ", "--x")).toBe(5_400_000);
  });

  it("takes a bare number as seconds, as the duration flags always did", () => {
    expect(parseDuration("90", "--stale-after")).toBe(90_000);
    expect(parseDuration("0.25", "--interval")).toBe(250);
  });

  it("takes a bare number in the unit a flag names", () => {
    expect(parseDuration("24", "--hours", { bareUnit: "h" })).toBe(86_400_000);
    expect(parseDuration("90m", "--hours", { bareUnit: "h" })).toBe(5_400_000);
  });

  it.each([
    ["soon", "is not a duration"],
    ["", "is not a duration"],
    ["2 hours", "is not a duration"],
    ["-5m", "is not a duration"],
    ["5m garbage", "is not a duration"],
    ["1e3s", "is not a duration"],
    ["2025-01-15T10:00:00Z", "is not a duration"],
    ["0", "is not more than 0"],
    ["0s", "is not more than 0"],
    ["0.1ms", "is not more than 0"],
    ["99999999999999999999d", "is too long"],
  ])("refuses %j with a usage error naming the flag (%s)", (text, why) => {
    let thrown: unknown;
    try {
      parseDuration(text, "--older-than");
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(CliError);
    const error = thrown as CliError;
    expect(error.code).toBe("USAGE");
    expect(error.exitCode).toBe(ExitCode.usage);
    expect(error.message).toContain(`--older-than: ${JSON.stringify(text)} ${why}`);
    expect(error.message).toContain("such as 500ms, 90s, 15m, 24h, 7d");
  });

  it("durationParser binds the flag's name for commander", () => {
    const parse = durationParser("--window");
    expect(parse("15m")).toBe(900_000);
    expect(() => parse("later")).toThrow(/^--window: "later" is not a duration/);
    expect(parse.name).toBe("parseDurationFlag");
  });
});

describe("formatDuration", () => {
  it("writes the longest unit that divides the duration", () => {
    expect(formatDuration(900_000)).toBe("15m");
    expect(formatDuration(86_400_000)).toBe("1d");
    expect(formatDuration(36 * 3_600_000)).toBe("36h");
    expect(formatDuration(3_600_000 * 24 * 7)).toBe("7d");
    expect(formatDuration(90_000)).toBe("90s");
    expect(formatDuration(5_400_000)).toBe("90m");
    expect(formatDuration(1500)).toBe("1500ms");
    expect(formatDuration(250)).toBe("250ms");
    expect(formatDuration(0)).toBe("0ms");
  });

  it("round-trips through parseDuration for every positive whole number of milliseconds", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (ms) => {
        expect(parseDuration(formatDuration(ms), "--x")).toBe(ms);
      }),
      { numRuns: 2000 },
    );
  });

  it("round-trips durations built from whole units", () => {
    const unit = fc.constantFrom(1, 1000, 60_000, 3_600_000, 86_400_000);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), unit, (n, size) => {
        const text = formatDuration(n * size);
        expect(text).toMatch(/^\d+(ms|s|m|h|d)$/);
        expect(parseDuration(text, "--x")).toBe(n * size);
      }),
    );
  });
});

describe("sinceOption", () => {
  it("reads a duration back from now with the one duration parser, else an ISO time", () => {
    const near = (date: Date, ms: number) =>
      expect(Math.abs(Date.now() - ms - date.getTime())).toBeLessThan(1000);
    near(sinceOption("1h30m"), 5_400_000);
    near(sinceOption("1.5h"), 5_400_000); // a fraction, as every duration flag takes
    near(sinceOption("2W"), 2 * 604_800_000); // units in any case
    near(sinceOption("90"), 90_000); // a bare number is seconds
    expect(sinceOption("2025-01-15T10:00:00Z").toISOString()).toBe("2025-01-15T10:00:00.000Z");
    expect(() => sinceOption("2 hours")).toThrow(InvalidArgumentError);
    expect(() => sinceOption("0s")).toThrow(/duration back from now .* or an ISO time/);
  });

  it("refuses a duration reaching before the earliest time a date can hold, instead of an Invalid Date", () => {
    expect(() => sinceOption("104000000d")).toThrow(InvalidArgumentError);
    expect(() => sinceOption("104000000d")).toThrow(/earliest time a date can hold/);
  });
});

describe("agoDate", () => {
  it("is the time that long back from now, or a usage error naming the flag", () => {
    expect(Math.abs(Date.now() - 60_000 - agoDate(60_000, "--older-than").getTime())).toBeLessThan(
      1000,
    );
    expect(() => agoDate(104_000_000 * 86_400_000, "--older-than")).toThrow(
      /^--older-than: 104000000d back from now is before the earliest time a date can hold/,
    );
  });
});
