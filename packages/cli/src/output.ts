import Table from "cli-table3";
import { InvalidArgumentError } from "commander";
import picocolors from "picocolors";
import stringWidth from "string-width";
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
import { EventValidationError, SwitchyardError, escapeJsonText } from "@switchyard/event-schema";
import { UnknownSubscriptionError } from "@switchyard/router";

/** Colour functions (picocolors'): each returns its input unchanged when colour is off. */
export type Colors = Omit<ReturnType<typeof picocolors.createColors>, "isColorSupported">;

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
  /**
   * Stopped before it finished (128 + SIGINT, what a shell reports for Ctrl-C): the caller's
   * `signal` was aborted before the command ran, or while a one-shot command was still working.
   * Not a verdict on the system, and nothing claims to be done. A command whose job is to run
   * until stopped (`events tail`, `--watch`, `metrics`, `dashboard`) ends normally when stopped
   * after it started: 0, or the last run's verdict.
   */
  interrupted: 130,
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

/**
 * How text output looks on the stream it goes to: see {@link terminalOf}, which works it out for
 * the process's stdout. Every field is off by default, so output captured by a test or an
 * embedding program is plain and whole.
 */
export interface OutputStyle {
  /** Colour (ANSI escapes) in tables and lines. @defaultValue false */
  readonly color?: boolean;
  /**
   * The width tables fit: long cells are cut with `…`, the last column wraps instead.
   * `undefined` fits nothing (a pipe gets whole rows; cells but the last still stop at 72).
   * @defaultValue undefined
   */
  readonly columns?: number;
}

/** Where a command writes: text for people, or one JSON document for machines. */
export class Output {
  readonly json: boolean;
  /**
   * Colour functions for commands to mark cells and lines (`out.colors.red("FAIL")`); they return
   * their input unchanged when colour is off, so output stays plain for pipes and `NO_COLOR`.
   */
  readonly colors: Colors;
  /** The style this output was created with. */
  readonly style: OutputStyle;
  readonly #stdout: (text: string) => void;
  readonly #stderr: (text: string) => void;

  constructor(
    json: boolean,
    stdout: (text: string) => void,
    stderr: (text: string) => void,
    style: OutputStyle = {},
  ) {
    this.json = json;
    this.#stdout = stdout;
    this.#stderr = stderr;
    this.style = style;
    this.colors = picocolors.createColors(style.color === true);
  }

  /**
   * One line for people (ignored in `--json` mode). Control characters in it are shown, not
   * obeyed (see {@link printable}): the text may carry data from events and dead letters.
   */
  line(text = ""): void {
    if (!this.json) this.#stdout(`${printable(text, this.style.color === true)}\n`);
  }

  /**
   * A table for people (ignored in `--json` mode), fitted to {@link OutputStyle.columns}: see
   * {@link formatTable}; `whole` names the columns never cut (ids).
   */
  table(
    headers: readonly string[],
    rows: readonly (readonly Cell[])[],
    options: Pick<TableOptions, "whole"> = {},
  ): void {
    if (!this.json)
      this.#stdout(
        formatTable(headers, rows.map(this.#printableRow), {
          ...options,
          ...(this.style.columns !== undefined ? { columns: this.style.columns } : {}),
          colors: this.colors,
        }),
      );
  }

  readonly #printableRow = (row: readonly Cell[]): Cell[] =>
    row.map((cell) =>
      typeof cell === "string"
        ? printable(cell.replace(/\s+/g, " "), this.style.color === true)
        : cell,
    );

  /** The machine-readable result (printed only in `--json` mode), nested at most {@link MAX_JSON_DEPTH} deep. */
  data(value: unknown): void {
    if (this.json) this.#stdout(`${escapeJsonText(JSON.stringify(limitDepth(value), null, 2))}\n`);
  }

  /** One compact JSON line (for streams such as `events tail --json`), nested at most {@link MAX_JSON_DEPTH} deep. */
  jsonLine(value: unknown): void {
    this.#stdout(`${jsonText(value)}\n`);
  }

  /** A message on stderr, in either mode: progress, warnings, backups written. */
  note(text: string): void {
    this.#stderr(`${printable(text, this.style.color === true)}\n`);
  }

  /**
   * Report an error without a stack trace and return its exit code. In `--json` mode the error is
   * also printed on stdout as `{ "error": { "code", "message" } }`.
   */
  error(error: unknown): number {
    const { code, message, exitCode } = describeError(error);
    this.#stderr(`error: ${printable(message)}\n`);
    if (this.json)
      this.#stdout(`${escapeJsonText(JSON.stringify({ error: { code, message } }, null, 2))}\n`);
    return exitCode;
  }
}

/**
 * Characters a terminal acts on instead of showing: C0 controls but tab and newline (carriage
 * return and backspace overwrite, escape starts a command: clear the screen, set the title, move
 * the cursor), DEL, C1 controls (U+009B is a one-byte CSI), and the bidirectional overrides and
 * isolates, which reorder the text after them.
 */
const UNPRINTABLE = "\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069";
const unprintable = new RegExp(`[${UNPRINTABLE}]`, "g");
/** The same, but a colour escape (SGR: `ESC [ digits m`, what picocolors writes) is matched whole. */
const unprintableOrColor = new RegExp(`\u001b\\[[0-9;]*m|[${UNPRINTABLE}]`, "g");

const escapeChar = (c: string): string => {
  const code = c.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
};

/**
 * `text` safe to print on a terminal: every character it would act on instead of showing (see
 * above) written out as `\x1b` or `\u202e`, so text from events, subjects and error messages
 * cannot clear the screen, move the cursor, retitle the window or reorder a line. With
 * `keepColor`, colour escapes (SGR) stay: the CLI colours its own output with them when colour is
 * on, and colour cannot move or hide anything outside its own text.
 *
 * @example
 * ```ts
 * import { printable } from "./output";
 * printable("evil\u001b[2Jsubject"); // "evil\\x1b[2Jsubject"
 * ```
 */
export function printable(text: string, keepColor = false): string {
  return keepColor
    ? text.replace(unprintableOrColor, (m) => (m.length > 1 ? m : escapeChar(m)))
    : text.replace(unprintable, escapeChar);
}

/** Where {@link terminalOf} looks. Each field defaults to the running process's. */
export interface TerminalOptions {
  /** The stream output goes to. @defaultValue `process.stdout` */
  readonly stream?: { readonly isTTY?: boolean; readonly columns?: number };
  /** `NO_COLOR`, `FORCE_COLOR`, `TERM`, `COLUMNS`. @defaultValue `process.env` */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Command-line arguments, searched for `--no-color` and `--color`. @defaultValue `process.argv` */
  readonly argv?: readonly string[];
  /** The program's own `--no-color` flag, when it parsed one (`false` from commander's `color`). */
  readonly color?: boolean;
}

/**
 * The {@link OutputStyle} for a stream. Colour, first rule that applies: `--no-color` (or
 * `color: false`) → off; `--color` (or `color: true`) → on; `NO_COLOR` set and not empty → off
 * (no-color.org); `FORCE_COLOR` → on, but `0` or `false` → off; `TERM=dumb` → off; else on
 * exactly when the stream is a terminal. Width: `COLUMNS` when it is a positive number, else the
 * terminal's width, else none: piped output is not cut to fit anything, so `grep` and `awk` see
 * whole rows.
 *
 * @example
 * ```ts
 * import { Output, terminalOf } from "./output";
 * const out = new Output(false, (t) => void process.stdout.write(t), (t) => void process.stderr.write(t), terminalOf());
 * out.table(["status", "check"], [[out.colors.green("ok"), "database"]]);
 * ```
 */
export function terminalOf(options: TerminalOptions = {}): OutputStyle {
  const stream = options.stream ?? process.stdout;
  const env = options.env ?? process.env;
  const argv = options.argv ?? process.argv;
  const tty = stream.isTTY === true;
  let color: boolean;
  if (options.color === false || argv.includes("--no-color")) color = false;
  else if (options.color === true || argv.includes("--color")) color = true;
  else if (env.NO_COLOR) color = false;
  else if (env.FORCE_COLOR !== undefined)
    color = !["0", "false"].includes(env.FORCE_COLOR.toLowerCase());
  else color = tty && env.TERM !== "dumb";
  const fromEnv = Number(env.COLUMNS);
  const columns =
    Number.isInteger(fromEnv) && fromEnv > 0
      ? fromEnv
      : tty && stream.columns !== undefined && stream.columns > 0
        ? stream.columns
        : undefined;
  return columns === undefined ? { color } : { color, columns };
}

/** A stream {@link exitQuietlyOnBrokenPipe} watches: `process.stdout` or `process.stderr`. */
export interface WatchedStream {
  on(event: "error", listener: (error: NodeJS.ErrnoException) => void): unknown;
}

/**
 * Make a closed reader end the process quietly: `switchyard events list | head -1` closes the
 * pipe after one line, and the next write fails with `EPIPE`, which Node reports as an unhandled
 * `'error'` event (a stack trace, exit 1). That is the reader's choice, not a failure: exit with
 * the exit code already set, else 0, and print nothing. Other stream errors are rethrown.
 *
 * @param exit How to leave. @defaultValue `process.exit`
 */
export function exitQuietlyOnBrokenPipe(
  streams: readonly WatchedStream[] = [process.stdout, process.stderr],
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  for (const stream of streams)
    stream.on("error", function exitOnBrokenPipe(error) {
      if (error.code !== "EPIPE") throw error;
      const code = Number(process.exitCode ?? ExitCode.ok);
      exit(Number.isInteger(code) ? code : ExitCode.ok);
    });
}

/**
 * Error codes of the transport contract that mean "the command was wrong" (exit 2): a target
 * with no driver, a query the inspector refuses, a purge with no filter, an operation the
 * transport does not support ("not supported on nats").
 */
const USAGE_CODES: ReadonlySet<string> = new Set([
  "UNKNOWN_TARGET",
  "INVALID_QUERY",
  "UNBOUNDED_PURGE",
  "UNSUPPORTED_OPERATION",
]);

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
  if (error instanceof SwitchyardError && USAGE_CODES.has(error.code))
    return { code: error.code, message: error.message, exitCode: ExitCode.usage };
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
  return escapeJsonText(JSON.stringify(limitDepth(value)) ?? "undefined");
}

/** One table cell; `undefined` prints as `-`. */
export type Cell = string | number | boolean | undefined | null;

/** The widest a cell but the last may be, fitted or not. */
const MAX_CELL = 72;
/** The narrowest the last column is squeezed to before the others give way (it wraps, others cut). */
const MIN_LAST = 24;
/** The narrowest any cut column gets, unless its header is wider. */
const MIN_CELL = 6;
const GAP = 2;

/** Options of {@link formatTable}. */
export interface TableOptions {
  /** The width to fit, in terminal columns. @defaultValue undefined: no fitting */
  readonly columns?: number;
  /** Colours for the headers (bold). @defaultValue none */
  readonly colors?: Colors;
  /**
   * Columns (by header, as given) that are never cut nor wrapped, whatever the width: ids a user
   * copies from the table into the next command. The table runs wider rather than cut them.
   * @defaultValue none
   */
  readonly whole?: readonly string[];
}

const BLANK_CHARS = {
  top: "",
  "top-mid": "",
  "top-left": "",
  "top-right": "",
  bottom: "",
  "bottom-mid": "",
  "bottom-left": "",
  "bottom-right": "",
  left: "",
  "left-mid": "",
  mid: "",
  "mid-mid": "",
  right: "",
  "right-mid": "",
  middle: " ".repeat(GAP),
} as const;

/**
 * Aligned columns under upper-case headers, two spaces apart, no borders (drawn by cli-table3);
 * numeric columns are right-aligned. Cells but the last are cut with `…` at 72 columns. With
 * `columns`, the table fits that width: the last column (details, errors) first narrows to 24
 * and wraps, then the widest other columns are cut, down to 6 (or their header); a table that
 * cannot fit even so runs wider. Columns named in `whole` are never cut nor wrapped. Returns the
 * text with a trailing newline, no trailing spaces.
 */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly Cell[])[],
  options: TableOptions = {},
): string {
  const last = headers.length - 1;
  const text = rows.map((row) => headers.map((_, i) => cellText(row[i])));
  const numeric = headers.map(
    (_, i) =>
      rows.some((row) => typeof row[i] === "number") &&
      rows.every((row) => typeof row[i] === "number" || row[i] == null),
  );
  const head = headers.map((h) => h.toUpperCase());
  const natural = head.map((h, i) =>
    Math.max(stringWidth(h), ...text.map((r) => stringWidth(r[i]!))),
  );
  const whole = headers.map((h) => options.whole?.includes(h) === true);
  const widths = natural.map((w, i) => (i === last || whole[i] ? w : Math.min(w, MAX_CELL)));
  // A column kept whole fits like a number: its width is its floor.
  const fixed = numeric.map((n, i) => n || whole[i]!);
  if (options.columns !== undefined) fit(widths, head, fixed, options.columns);
  const table = new Table({
    head: options.colors ? head.map((h) => options.colors!.bold(h)) : head,
    chars: BLANK_CHARS,
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0 },
    colWidths: widths,
    colAligns: numeric.map((n) => (n ? "right" : "left")),
  });
  for (const row of text)
    table.push(
      row.map((cell, i) => (i === last && !whole[i] ? { content: cell, wordWrap: true } : cell)),
    );
  return (
    table
      .toString()
      .split("\n")
      .map((line) => line.trimEnd())
      .join("\n") + "\n"
  );
}

/** Narrow `widths` (in place) until they and the gaps fit `columns`, as {@link formatTable} says. */
function fit(
  widths: number[],
  head: readonly string[],
  fixed: readonly boolean[],
  columns: number,
): void {
  const last = widths.length - 1;
  let over = widths.reduce((a, b) => a + b, 0) + GAP * last - columns;
  if (over <= 0) return;
  const lastFloor = fixed[last]
    ? widths[last]!
    : Math.min(widths[last]!, Math.max(MIN_LAST, stringWidth(head[last]!)));
  const give = Math.min(over, widths[last]! - lastFloor);
  widths[last]! -= give;
  over -= give;
  const floor = widths.map((w, i) =>
    fixed[i] || i === last ? w : Math.min(w, Math.max(MIN_CELL, stringWidth(head[i]!))),
  );
  while (over > 0) {
    let widest = -1;
    for (let i = 0; i < last; i++)
      if (widths[i]! > floor[i]! && (widest < 0 || widths[i]! > widths[widest]!)) widest = i;
    if (widest < 0) break;
    widths[widest]!--;
    over--;
  }
  // Still too wide: the last column gives what it has left, down to its header.
  if (over > 0 && !fixed[last])
    widths[last] = Math.max(stringWidth(head[last]!), widths[last]! - over);
}

function cellText(cell: Cell): string {
  if (cell === undefined || cell === null) return "-";
  return String(cell).replace(/\s+/g, " ");
}

/** Label/value lines, labels aligned. */
export function formatPairs(pairs: readonly (readonly [string, Cell])[]): string {
  const width = Math.max(0, ...pairs.map(([label]) => label.length));
  return pairs.map(([label, value]) => `${label.padEnd(width)}  ${cellText(value)}`).join("\n");
}

/**
 * `text` as a whole number written in decimal digits (spaces around them allowed), else `NaN`.
 * `Number` alone reads "" and " " as 0, "0x10" as 16, "1e3" as 1000 and "1.0" as 1: an empty
 * `--max-pending ""` would have been a threshold of 0.
 */
export function wholeNumberOf(text: string): number {
  const digits = text.trim();
  return /^\d+$/.test(digits) ? Number(digits) : NaN;
}

/** Commander option parser for a positive integer (decimal digits, see {@link wholeNumberOf}). */
export function positiveIntOption(text: string): number {
  const n = wholeNumberOf(text);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError("Expected a positive integer.");
  return n;
}

/**
 * Commander option parser for `--port <port>`: a TCP port in decimal digits, 0 (any free port) to
 * 65535. An empty value is an error, not port 0 (`Number("")` is 0).
 */
export function portOption(text: string): number {
  const n = /^\d{1,5}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(n <= 65_535))
    throw new InvalidArgumentError("Expected a port number from 0 (any free port) to 65535.");
  return n;
}

/** Commander option parser for a non-negative integer (decimal digits, see {@link wholeNumberOf}). */
export function countOption(text: string): number {
  const n = wholeNumberOf(text);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new InvalidArgumentError("Expected a non-negative integer.");
  return n;
}

export { formatDuration } from "@switchyard/transport";

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
