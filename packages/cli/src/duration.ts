import { InvalidArgumentError } from "commander";
import { CliError } from "./output";

/** Milliseconds per unit a duration flag accepts, longest unit first. */
const UNITS = [
  ["w", 604_800_000],
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1000],
  ["ms", 1],
] as const;

/** A unit of {@link parseDuration}: `ms`, `s`, `m`, `h`, `d` or `w`. */
export type DurationUnit = (typeof UNITS)[number][0];

/** Options of {@link parseDuration}. */
export interface ParseDurationOptions {
  /**
   * The unit of a bare number (`--window 90`). Seconds, as every duration flag of this CLI took
   * before units were required, so old invocations keep their meaning. A flag that always took
   * another unit (`--hours 24`) passes it here.
   * @defaultValue "s"
   */
  readonly bareUnit?: DurationUnit;
  /**
   * The longest the flag takes, in ms, with why (a usage error names both), e.g. a window the
   * transports can count in per-minute buckets. @defaultValue none (up to `Number.MAX_SAFE_INTEGER`)
   */
  readonly max?: { readonly ms: number; readonly why: string };
}

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;
const BARE = /^\d+(?:\.\d+)?$/;

/**
 * Milliseconds of a duration as a user types it on `flag`: `500ms`, `90s`, `15m`, `24h`, `7d`,
 * `2w`, or several at once (`1h30m`, `1d12h`). Units are case-insensitive; a fraction is allowed
 * (`1.5h`); a bare number is seconds (see {@link ParseDurationOptions.bareUnit}). The result is
 * rounded to whole milliseconds and is always more than 0.
 *
 * @throws CliError `USAGE` (exit code 2) naming `flag` and the text, for anything else: no unit
 *   it knows, a sign, spaces inside, zero, or a value beyond `Number.MAX_SAFE_INTEGER` ms.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./duration";
 * parseDuration("1h30m", "--window"); // 5_400_000
 * parseDuration("90", "--stale-after"); // 90_000 (a bare number is seconds)
 * ```
 */
export function parseDuration(
  text: string,
  flag: string,
  options: ParseDurationOptions = {},
): number {
  const trimmed = text.trim().toLowerCase();
  let total = 0;
  if (BARE.test(trimmed)) {
    total = Number(trimmed) * unitMs(options.bareUnit ?? "s");
  } else {
    let at = 0;
    while (at < trimmed.length) {
      PART.lastIndex = at;
      const match = PART.exec(trimmed);
      if (!match) {
        total = Number.NaN;
        break;
      }
      total += Number(match[1]) * unitMs(match[2] as DurationUnit);
      at = PART.lastIndex;
    }
    if (at === 0) total = Number.NaN;
  }
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    const why =
      Number.isNaN(total) || trimmed === ""
        ? "is not a duration"
        : ms <= 0
          ? "is not more than 0"
          : "is too long";
    throw new CliError(
      "USAGE",
      `${flag}: ${JSON.stringify(text)} ${why}. Expected a number with a unit — ms, s, m, h, d ` +
        `or w — such as 500ms, 90s, 15m, 24h, 7d or 1h30m (a bare number is ` +
        `${UNIT_NAMES[options.bareUnit ?? "s"]}).`,
    );
  }
  if (options.max !== undefined && ms > options.max.ms)
    throw new CliError(
      "USAGE",
      `${flag}: ${JSON.stringify(text)} is too long: at most ${formatDuration(options.max.ms)} ` +
        `(${options.max.why}).`,
    );
  return ms;
}

const UNIT_NAMES: Readonly<Record<DurationUnit, string>> = {
  ms: "milliseconds",
  s: "seconds",
  m: "minutes",
  h: "hours",
  d: "days",
  w: "weeks",
};

function unitMs(unit: DurationUnit): number {
  return UNITS.find(([u]) => u === unit)![1];
}

/**
 * A commander option parser for a duration flag: `parseDuration` bound to the flag's name.
 *
 * @example
 * ```ts
 * // not runnable
 * command.option("--window <duration>", `how far back (default: ${formatDuration(3_600_000)})`,
 *   durationParser("--window"), 3_600_000);
 * ```
 */
export function durationParser(
  flag: string,
  options: ParseDurationOptions = {},
): (text: string) => number {
  return function parseDurationFlag(text) {
    return parseDuration(text, flag, options);
  };
}

/**
 * A duration as a flag takes it, exactly: in the longest unit (of `d`, `h`, `m`, `s`, `ms`) that
 * divides it — `15m`, `24h`, `7d`, `90s`, `1500ms` — so that `parseDuration(formatDuration(ms))`
 * gives `ms` back. For help texts and defaults; weeks are written as days. Rounds to whole
 * milliseconds; `0ms` for zero or less. For an approximate age for people (`3m 12s ago`), see
 * `formatDuration` in `output.ts`.
 */
export function formatDuration(ms: number): string {
  const whole = Math.round(ms);
  if (!(whole > 0)) return "0ms";
  for (const [unit, size] of UNITS) {
    if (unit !== "w" && whole % size === 0) return `${whole / size}${unit}`;
  }
  return `${whole}ms`;
}

/**
 * The time `ms` back from now, as a `Date`; a usage error naming `flag` when that is before the
 * earliest time a `Date` can hold (about 271,000 years back), which would reach the transport as
 * an Invalid Date.
 */
export function agoDate(ms: number, flag: string): Date {
  const at = new Date(Date.now() - ms);
  if (Number.isNaN(at.getTime()))
    throw new CliError(
      "USAGE",
      `${flag}: ${formatDuration(ms)} back from now is before the earliest time a date can hold. ` +
        `Give a shorter duration.`,
    );
  return at;
}

/**
 * A commander option parser for a time flag (`--since`): a duration back from now, as
 * {@link parseDuration} reads it (`2h`, `30m`, `7d`, `1h30m`; a bare number is seconds), or an
 * ISO time (`2025-01-15T10:00:00Z`).
 *
 * @throws InvalidArgumentError (commander's usage error) for anything else.
 */
export function sinceOption(text: string): Date {
  let ms: number | undefined;
  try {
    ms = parseDuration(text, "--since");
  } catch (error) {
    // Not a duration: an ISO time, then.
    if (!(error instanceof CliError)) throw error;
  }
  if (ms !== undefined) {
    const at = new Date(Date.now() - ms);
    if (Number.isNaN(at.getTime()))
      throw new InvalidArgumentError(
        "That duration reaches before the earliest time a date can hold: give a shorter one.",
      );
    return at;
  }
  const at = Date.parse(text);
  if (Number.isNaN(at))
    throw new InvalidArgumentError(
      "Expected a duration back from now (2h, 30m, 7d) or an ISO time (2025-01-15T10:00:00Z).",
    );
  return new Date(at);
}
