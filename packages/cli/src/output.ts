import { InvalidArgumentError } from "commander";
import {
  QueueBusyError,
  QueueFileError,
  SchemaVersionError,
} from "@switchyard/cross-process-queue";
import {
  DeadLetterNotFoundError,
  DeadLetterSchemaError,
  ReplayConflictError,
  ReplayTargetMissingError,
  UnboundedPurgeError,
} from "@switchyard/dlq";
import { EventValidationError, SwitchyardError } from "@switchyard/event-schema";
import { UnknownSubscriptionError } from "@switchyard/router";

/**
 * Exit codes of every command (documented in the package README): a script can tell "the
 * system is unhealthy" (1) from "the command was wrong" (2) from "the CLI broke" (3).
 */
export const ExitCode = {
  /** Done; every check passed. Damaged rows shown as such do not change it. */
  ok: 0,
  /**
   * A check failed or could not be verified (unhealthy, a pipeline stage missing or unknown), or
   * an operation did not complete (a replay conflict, a database locked too long).
   */
  failed: 1,
  /**
   * Bad usage or input: unknown option, a database that is missing, unreadable or not a
   * coordination database, unknown id or event type, NATS not reachable at `--nats-url`, no `--yes`.
   */
  usage: 2,
  /** An unexpected failure inside the CLI (a bug): not a verdict on the system. */
  internal: 3,
} as const;

/**
 * An error meant for the person at the terminal: its message is printed as is (no stack), and
 * the process exits with `exitCode`.
 */
export class CliError extends SwitchyardError {
  readonly exitCode: number;

  constructor(
    code: string,
    message: string,
    exitCode: number = ExitCode.usage,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.exitCode = exitCode;
  }
}

/** Where a command writes: text for people, or one JSON document for machines. */
export class Output {
  readonly json: boolean;
  readonly #stdout: (text: string) => void;
  readonly #stderr: (text: string) => void;

  constructor(json: boolean, stdout: (text: string) => void, stderr: (text: string) => void) {
    this.json = json;
    this.#stdout = stdout;
    this.#stderr = stderr;
  }

  /** One line for people (ignored in `--json` mode). */
  line(text = ""): void {
    if (!this.json) this.#stdout(`${text}\n`);
  }

  /** A table for people (ignored in `--json` mode). */
  table(headers: readonly string[], rows: readonly (readonly Cell[])[]): void {
    if (!this.json) this.#stdout(formatTable(headers, rows));
  }

  /** The machine-readable result (printed only in `--json` mode), nested at most {@link MAX_JSON_DEPTH} deep. */
  data(value: unknown): void {
    if (this.json) this.#stdout(`${JSON.stringify(limitDepth(value), null, 2)}\n`);
  }

  /** One compact JSON line (for streams such as `events tail --json`), nested at most {@link MAX_JSON_DEPTH} deep. */
  jsonLine(value: unknown): void {
    this.#stdout(`${jsonText(value)}\n`);
  }

  /** A message on stderr, in either mode: progress, warnings, backups written. */
  note(text: string): void {
    this.#stderr(`${text}\n`);
  }

  /**
   * Report an error without a stack trace and return its exit code. In `--json` mode the error is
   * also printed on stdout as `{ "error": { "code", "message" } }`.
   */
  error(error: unknown): number {
    const { code, message, exitCode } = describeError(error);
    this.#stderr(`error: ${message}\n`);
    if (this.json) this.#stdout(`${JSON.stringify({ error: { code, message } }, null, 2)}\n`);
    return exitCode;
  }
}

/** The code, message and exit code a failure is reported with. */
export function describeError(error: unknown): { code: string; message: string; exitCode: number } {
  if (error instanceof CliError)
    return { code: error.code, message: error.message, exitCode: error.exitCode };
  if (
    error instanceof QueueFileError ||
    error instanceof SchemaVersionError ||
    error instanceof DeadLetterSchemaError ||
    error instanceof EventValidationError ||
    error instanceof DeadLetterNotFoundError ||
    error instanceof UnboundedPurgeError
  ) {
    return { code: error.code, message: error.message, exitCode: ExitCode.usage };
  }
  if (
    error instanceof QueueBusyError ||
    error instanceof ReplayConflictError ||
    error instanceof ReplayTargetMissingError ||
    error instanceof UnknownSubscriptionError ||
    error instanceof SwitchyardError
  ) {
    return { code: error.code, message: error.message, exitCode: ExitCode.failed };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: "UNEXPECTED",
    message: `unexpected failure: ${message}`,
    exitCode: ExitCode.internal,
  };
}

/** How deep {@link limitDepth} (and so every JSON output) shows nested values. */
export const MAX_JSON_DEPTH = 64;

/**
 * A copy of `value` for printing, nested at most `maxDepth` levels: deeper arrays and objects are
 * replaced by a short note. Stored payloads are written by other programs and can nest 100,000
 * deep; `JSON.stringify` would overflow the stack on them. Recurses `maxDepth` levels at most.
 */
export function limitDepth(value: unknown, maxDepth: number = MAX_JSON_DEPTH): unknown {
  if (value === null || typeof value !== "object") return value;
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") return limitDepth(toJSON.call(value), maxDepth);
  if (maxDepth <= 0) return `…(nested deeper than ${MAX_JSON_DEPTH} levels, not shown)`;
  if (Array.isArray(value)) return value.map((item) => limitDepth(item, maxDepth - 1));
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) copy[key] = limitDepth(item, maxDepth - 1);
  return copy;
}

/** `value` as compact JSON, nested at most {@link MAX_JSON_DEPTH} deep (see {@link limitDepth}). */
export function jsonText(value: unknown): string {
  return JSON.stringify(limitDepth(value)) ?? "undefined";
}

/** One table cell; `undefined` prints as `-`. */
export type Cell = string | number | boolean | undefined | null;

const MAX_CELL = 72;

/**
 * Aligned columns under upper-case headers, two spaces apart; numeric columns are right-aligned,
 * long cells (but in the last column) are cut with `…`. Returns the text with a trailing newline.
 */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly Cell[])[],
): string {
  // The last column is free to run long (details, errors); the others are cut to keep alignment.
  const last = headers.length - 1;
  const text = rows.map((row) =>
    headers.map((_, i) => cellText(row[i], i === last ? Infinity : MAX_CELL)),
  );
  const numeric = headers.map(
    (_, i) =>
      rows.some((row) => typeof row[i] === "number") &&
      rows.every((row) => typeof row[i] === "number" || row[i] == null),
  );
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const render = (cells: readonly string[]) =>
    cells
      .map((cell, i) => {
        const last = i === cells.length - 1;
        if (numeric[i]) return cell.padStart(widths[i]!);
        return last ? cell : cell.padEnd(widths[i]!);
      })
      .join("  ")
      .trimEnd();
  return [render(headers.map((h) => h.toUpperCase())), ...text.map(render)].join("\n") + "\n";
}

function cellText(cell: Cell, max = MAX_CELL): string {
  if (cell === undefined || cell === null) return "-";
  const text = String(cell).replace(/\s+/g, " ");
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Label/value lines, labels aligned. */
export function formatPairs(pairs: readonly (readonly [string, Cell])[]): string {
  const width = Math.max(0, ...pairs.map(([label]) => label.length));
  return pairs
    .map(([label, value]) => `${label.padEnd(width)}  ${cellText(value, Infinity)}`)
    .join("\n");
}

const UNITS: readonly (readonly [string, number])[] = [
  ["ms", 1],
  ["s", 1000],
  ["m", 60_000],
  ["h", 3_600_000],
  ["d", 86_400_000],
  ["w", 604_800_000],
];

/**
 * Milliseconds of a duration such as `500ms`, `30s`, `30m`, `2h`, `7d`, `1w` or `1h30m`
 * (a bare number is seconds); `undefined` when the text is not one.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;
  let total = 0;
  let at = 0;
  while (at < trimmed.length) {
    part.lastIndex = at;
    const match = part.exec(trimmed);
    if (!match) return undefined;
    total += Number(match[1]) * UNITS.find(([unit]) => unit === match[2])![1];
    at = part.lastIndex;
  }
  return at === 0 ? undefined : total;
}

/** Commander option parser for durations. */
export function durationOption(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0)
    throw new InvalidArgumentError("Expected a duration such as 30s, 30m, 2h or 7d.");
  return ms;
}

/** Commander option parser for a time: a duration back from now (`2h`) or an ISO time. */
export function sinceOption(text: string): Date {
  const ms = parseDuration(text);
  if (ms !== undefined) return new Date(Date.now() - ms);
  const at = Date.parse(text);
  if (Number.isNaN(at))
    throw new InvalidArgumentError(
      "Expected a duration back from now (2h, 30m, 7d) or an ISO time (2025-01-15T10:00:00Z).",
    );
  return new Date(at);
}

/** Commander option parser for a positive integer. */
export function positiveIntOption(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("Expected a positive integer.");
  return n;
}

/** Commander option parser for a non-negative integer. */
export function countOption(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError("Expected a non-negative integer.");
  return n;
}

/** Commander option parser for a positive number. */
export function positiveNumberOption(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("Expected a positive number.");
  return n;
}

/** A duration for people, two units at most: `850ms`, `42s`, `3m 12s`, `1h`, `2h 5m`, `3d 4h`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  const two = (big: number, bigUnit: string, small: number, smallUnit: string) =>
    small === 0 ? `${big}${bigUnit}` : `${big}${bigUnit} ${small}${smallUnit}`;
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return two(m, "m", s % 60, "s");
  const h = Math.floor(m / 60);
  if (h < 24) return two(h, "h", m % 60, "m");
  return two(Math.floor(h / 24), "d", h % 24, "h");
}

/** An RFC 3339 time shortened for tables: seconds precision, `Z`. */
export function formatTime(iso: string | number | undefined): string | undefined {
  if (iso === undefined) return undefined;
  const at = typeof iso === "number" ? iso : Date.parse(iso);
  if (Number.isNaN(at)) return String(iso);
  return new Date(at).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** `1 event`, `2 events`. */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}
