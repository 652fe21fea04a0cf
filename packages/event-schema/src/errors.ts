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

/** Issues in one line: `path: message (received type); …`. */
export function formatIssues(issues: readonly EventValidationIssue[]): string {
  return issues
    .map((i) => `${i.path || "(value)"}: ${i.message} (received ${i.received})`)
    .join("; ");
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
    detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
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
