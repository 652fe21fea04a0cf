import type { z } from "zod";

/**
 * Base class of every error Switchyard throws on purpose. `code` is stable across releases:
 * match on it (or on the subclass), never on the message.
 */
export class SwitchyardError extends Error {
  /** A stable, machine-readable identifier of the condition, e.g. `"EVENT_VALIDATION_FAILED"`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Why an event was rejected. */
export type EventValidationReason = "unknown_type" | "invalid_payload" | "invalid_envelope";

/** One failing field of a rejected event. */
export interface EventValidationIssue {
  /** Dotted path to the field (`"config_key"`, `"hosts.0"`), or `""` for the payload itself. */
  readonly path: string;
  /** What was expected, in words. */
  readonly message: string;
  /** The validator's issue code (`"invalid_type"`, `"too_small"`, …). */
  readonly code: string;
  /** The JavaScript type of the value found at `path` (`"undefined"` when the field is missing). */
  readonly received: string;
}

/**
 * An event type that is not in the catalog, a payload that breaks its contract, or an envelope
 * that is not one. Thrown before anything is delivered.
 *
 * @example
 * ```ts
 * try { catalog.parse("TRAINING_COMPLETED", { config_key: "hex8_2p" }); }
 * catch (e) { if (e instanceof EventValidationError) console.log(e.issues.map((i) => i.path)); }
 * // → ["model_path", "loss"]
 * ```
 */
export class EventValidationError extends SwitchyardError {
  /** The event type the payload was validated against (as received, even when unknown). */
  readonly eventType: string;
  /** Which kind of rejection this is. */
  readonly reason: EventValidationReason;
  /** Every failing field; empty for `unknown_type`. */
  readonly issues: readonly EventValidationIssue[];
  /** The JavaScript type of the whole payload as received (`"object"`, `"array"`, `"null"`, …). */
  readonly receivedType: string;

  constructor(init: {
    eventType: string;
    reason: EventValidationReason;
    issues?: readonly EventValidationIssue[];
    receivedType: string;
    message: string;
    cause?: unknown;
  }) {
    super("EVENT_VALIDATION_FAILED", init.message, { cause: init.cause });
    this.eventType = init.eventType;
    this.reason = init.reason;
    this.issues = init.issues ?? [];
    this.receivedType = init.receivedType;
  }
}

/** The issues of a failed zod parse, each with the type of the value found at its path. */
export function toIssues(root: unknown, error: z.ZodError): EventValidationIssue[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join("."),
    message: issue.message,
    code: issue.code,
    received: describeType(valueAt(root, issue.path)),
  }));
}

/**
 * Issues in one line: `path: message (received type); …`, the received type left out when the
 * message says it already (zod's "expected number, received string"). A path names payload keys
 * the wire chose, so it is written through {@link safeText} like any other quoted input.
 */
export function formatIssues(issues: readonly EventValidationIssue[]): string {
  return issues
    .map((i) => {
      const received = `received ${i.received}`;
      const said = i.message.endsWith(received) ? "" : ` (${received})`;
      return `${i.path ? safeText(i.path) : "(value)"}: ${safeText(i.message, 200)}${said}`;
    })
    .join("; ");
}

/**
 * Why `value` is not an event envelope, to follow "Not an event envelope" in a message: a string
 * (the raw text of a message, say) said as such, with the hint to `JSON.parse` it when it looks
 * like a JSON object; anything else its type attribute and {@link formatIssues}.
 * @internal
 */
export function envelopeProblemText(
  type: string,
  value: unknown,
  issues: readonly EventValidationIssue[],
): string {
  if (typeof value === "string")
    return `: expected an envelope object, received a string${
      /^\s*\{/.test(value) ? " that looks like JSON text: JSON.parse it first" : ""
    }`;
  return ` (type ${shortText(type)}): ${formatIssues(issues)}`;
}

/**
 * What `JSON.stringify` leaves raw but a terminal, a log viewer or a page acts on: DEL, the C1
 * controls (U+009B is a one-byte CSI, U+0085 a line break to some), the bidirectional controls
 * (U+202E reverses what follows) and the Unicode line and paragraph separators.
 */
const UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const escapeCode = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/**
 * JSON text with every character `JSON.stringify` leaves raw but a reader would be misled by (DEL,
 * C1 controls, bidirectional controls, U+2028/U+2029) written as the `\uXXXX` escape it equals:
 * the same value once parsed, shown as visible escapes instead of acting on a terminal, a log
 * viewer or a page. The one rule of every JSON Switchyard writes for people (error messages, the
 * CLI's `--json`, the dashboard's answers).
 *
 * @example
 * ```ts
 * escapeJsonText(JSON.stringify({ type: "A\u202eB" })); // '{"type":"A\\u202eB"}'
 * ```
 */
export function escapeJsonText(json: string): string {
  return json.replace(UNSAFE, escapeCode);
}

/**
 * Input quoted into an error message, made harmless: cut to `max` characters (never splitting a
 * surrogate pair; the cut says how long the text was) and every control, bidirectional and
 * line-separator character written out as an escape (`\u001b`, `\u202e`), so a value from the
 * wire cannot drive the terminal or log that shows the message, nor make the message huge.
 * @internal
 */
export function safeText(text: string, max = 80): string {
  const kept = cut(text, max);
  const escaped = escape(kept);
  return kept === text ? escaped : `${escaped}… (${text.length} characters)`;
}

/**
 * A value for a message: a string JSON-quoted, cut and escaped as {@link safeText} does, anything
 * else its type.
 * @internal
 */
export function shortText(value: unknown, max = 80): string {
  if (typeof value !== "string") return describeType(value);
  const kept = cut(value, max);
  const quoted = `"${escape(kept)}"`;
  return kept === value ? quoted : `${quoted}… (${value.length} characters)`;
}

/** The first `max` code units of `text`, one fewer when the last would split a surrogate pair. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  const last = text.charCodeAt(max - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

/** `text` as inside JSON quotes, with what JSON leaves raw but terminals act on escaped too. */
function escape(text: string): string {
  return escapeJsonText(JSON.stringify(text).slice(1, -1));
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/**
 * A value that could not even be read (a getter or a proxy trap threw, a revoked proxy): the
 * error every validation raises for it, naming `reason`, instead of the reader's own exception.
 * @internal
 */
export function unreadableError(
  eventType: string,
  reason: "invalid_payload" | "invalid_envelope",
  value: unknown,
  error: unknown,
): EventValidationError {
  const what = reason === "invalid_payload" ? `${eventType} payload` : "event envelope";
  let detail: string;
  try {
    detail = safeText(
      error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      200,
    );
  } catch {
    detail = "an unreadable error";
  }
  const receivedType = describeType(value);
  return new EventValidationError({
    eventType,
    reason,
    issues: [
      {
        path: "",
        message: `could not be read (${detail})`,
        code: "unreadable",
        received: receivedType,
      },
    ],
    receivedType,
    message: `The ${what} could not be read: reading it threw ${detail}. Publish plain data (JSON values).`,
    cause: error,
  });
}

/** `typeof`, but telling `null` and arrays apart from objects. */
export function describeType(value: unknown): string {
  if (value === null) return "null";
  try {
    if (Array.isArray(value)) return "array";
  } catch {
    return "revoked proxy"; // the one value Array.isArray throws on
  }
  if (typeof value === "number" && Number.isNaN(value)) return "NaN";
  return typeof value;
}
