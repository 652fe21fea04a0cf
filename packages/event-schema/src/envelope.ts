import { z } from "zod";
import {
  EventValidationError,
  describeType,
  envelopeProblemText,
  toIssues,
  unreadableError,
} from "./errors";
import { uuidv7 } from "./uuid";

/**
 * The wire form of every event, attribute names as in CloudEvents 1.0: bridging to CloudEvents
 * tooling is a rename, not a mapping. `data` is the payload the catalog validates.
 */
export interface Envelope<T extends string = string, D = unknown> {
  /** CloudEvents spec version; always `"1.0"`. */
  readonly specversion: "1.0";
  /** Unique id, a UUIDv7 by default (time-sortable). Doubles as the idempotency key on publish. */
  readonly id: string;
  /** The event type, e.g. `"TRAINING_COMPLETED"`. */
  readonly type: T;
  /** Who emitted it, e.g. `"training_daemon"`. */
  readonly source: string;
  /** RFC 3339 timestamp of creation. */
  readonly time: string;
  /** What the event is about; the config key when there is one (`"hex8_2p"`). */
  readonly subject?: string;
  /** Media type of `data`; always `"application/json"`. */
  readonly datacontenttype: "application/json";
  /** Version of the payload schema `data` was written against. */
  readonly dataversion: number;
  /** The payload. */
  readonly data: D;
  /** W3C trace context of the trace this event belongs to. */
  readonly traceparent?: string;
  /** W3C `tracestate`: vendor trace data carried with `traceparent` (extension). */
  readonly tracestate?: string;
  /** Groups every event of one logical operation (e.g. one pipeline generation). */
  readonly correlationid?: string;
  /** The id of the event whose handling caused this one. */
  readonly causationid?: string;
}

// An id or name with an unpaired surrogate cannot survive UTF-8 (SQLite, NATS headers, JSON on the
// wire replace it with U+FFFD): two distinct ids would arrive as one, and the second would be
// dropped as a duplicate. Such strings are rejected, never stored.
const LONE_SURROGATE = /\p{Cs}/u;
const nativeIsWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean })
  .isWellFormed;

/** True when `text` is well-formed UTF-16 (no unpaired surrogate), so it round-trips through UTF-8. */
export function isWellFormed(text: string): boolean {
  return nativeIsWellFormed ? nativeIsWellFormed.call(text) : !LONE_SURROGATE.test(text);
}

/**
 * Zod schema of the envelope attributes. `data` is left `unknown` here: the catalog validates it
 * per event type. Unknown extension attributes pass through, as CloudEvents allows.
 */
const identifier = () =>
  z.string().refine(isWellFormed, {
    message: "Must be well-formed Unicode (it has an unpaired UTF-16 surrogate)",
  });

export const envelopeSchema = z.looseObject({
  specversion: z.literal("1.0"),
  id: identifier().min(1),
  type: identifier().min(1),
  source: identifier().min(1),
  // The rule assertEnvelope applies (not zod's own datetime, which refuses 24:00:00 and a day the
  // month lacks): an envelope accepted on publish must be accepted again on delivery and replay.
  time: z.string().refine(isTime, {
    message: "Invalid RFC 3339 date-time (e.g. 2026-12-06T21:30:15.123Z)",
  }),
  subject: identifier().optional(),
  datacontenttype: z.literal("application/json"),
  dataversion: z.number().int().positive(),
  data: z.unknown(),
  traceparent: z.string().optional(),
  tracestate: z.string().optional(),
  correlationid: identifier().optional(),
  causationid: identifier().optional(),
});

/** Options of {@link createEnvelope}; everything but `type`, `source` and `data` is filled in. */
export interface CreateEnvelopeOptions<T extends string, D> {
  readonly type: T;
  readonly data: D;
  readonly source: string;
  /** @defaultValue a new UUIDv7 */
  readonly id?: string | undefined;
  /** @defaultValue now */
  readonly time?: string | Date | undefined;
  /** @defaultValue `data.config_key` when it is a string, else absent */
  readonly subject?: string | undefined;
  /** @defaultValue 1 */
  readonly dataversion?: number | undefined;
  readonly traceparent?: string | undefined;
  readonly tracestate?: string | undefined;
  readonly correlationid?: string | undefined;
  readonly causationid?: string | undefined;
}

/**
 * Build an envelope around an (already validated) payload. Fills `specversion`, `id` (UUIDv7),
 * `time`, `datacontenttype` and `subject` (from `config_key` when present). Absent optional
 * attributes are left out rather than set to `undefined`, so the JSON stays minimal. Throws an
 * `EventValidationError` (reason `invalid_envelope`, naming the attribute) instead of building
 * something that is not an envelope: a `type` or `source` that is not a non-empty string, an
 * empty `id`, a `time` that is an invalid `Date` or not an RFC 3339 string, a `dataversion` that
 * is not a positive integer, `data` left `undefined`, or an id or name (`id`, `type`, `source`,
 * `subject`, `correlationid`, `causationid`) holding an unpaired UTF-16 surrogate: such a string
 * does not survive UTF-8, so two distinct ids could arrive as one.
 *
 * @example
 * ```ts
 * const e = createEnvelope({ type: "MODEL_PROMOTED", source: "promotion_daemon",
 *   data: { config_key: "hex8_2p", model_path: "models/hex8_2p.pt", elo: 1612 } });
 * e.subject; // "hex8_2p"
 * ```
 */
export function createEnvelope<T extends string, D>(
  options: CreateEnvelopeOptions<T, D>,
): Envelope<T, D> {
  const now = options.time === undefined ? Date.now() : undefined;
  const id = options.id ?? uuidv7(now);
  const time =
    now !== undefined
      ? isoTime(now)
      : options.time instanceof Date
        ? dateTime(options.time)
        : (options.time as string);
  const dataversion = options.dataversion ?? 1;
  const subject = options.subject ?? configKeyOf(options.data);
  const traceparent = options.traceparent;
  type Mutable = { -readonly [K in keyof Envelope<T, D>]: Envelope<T, D>[K] };
  // The common shape (a subject and a trace, as every router publish has) is built in one literal:
  // adding two attributes afterwards cost a second allocation per envelope. Same attribute order.
  const envelope: Mutable =
    subject !== undefined && traceparent !== undefined
      ? {
          specversion: "1.0",
          id,
          type: options.type,
          source: options.source,
          time,
          datacontenttype: "application/json",
          dataversion,
          data: options.data,
          subject,
          traceparent,
        }
      : {
          specversion: "1.0",
          id,
          type: options.type,
          source: options.source,
          time,
          datacontenttype: "application/json",
          dataversion,
          data: options.data,
        };
  if (subject !== undefined && traceparent === undefined) envelope.subject = subject;
  else if (subject === undefined && traceparent !== undefined) envelope.traceparent = traceparent;
  if (options.tracestate !== undefined) envelope.tracestate = options.tracestate;
  if (options.correlationid !== undefined) envelope.correlationid = options.correlationid;
  if (options.causationid !== undefined) envelope.causationid = options.causationid;
  // A generated id is hex and dashes, a generated time is valid: only what the caller passed
  // needs the check (JavaScript callers can pass anything).
  if (
    (options.type !== checkedType && !wellFormedType(options.type)) ||
    (options.source !== checkedSource && !wellFormedSource(options.source)) ||
    !requiredOrAbsent(options.id) ||
    (subject !== undefined && subject !== checkedSubject && !wellFormedSubject(subject)) ||
    !wellFormedOrAbsent(options.correlationid) ||
    !wellFormedOrAbsent(options.causationid) ||
    (now === undefined && (typeof time !== "string" || !isTime(time))) ||
    (traceparent !== undefined && typeof traceparent !== "string") ||
    (options.tracestate !== undefined && typeof options.tracestate !== "string") ||
    (dataversion !== 1 && !(Number.isInteger(dataversion) && dataversion >= 1)) ||
    options.data === undefined
  )
    assertEnvelope(envelope);
  return envelope;
}

// `toISOString` costs more than the rest of an envelope; events come many per millisecond.
let cachedMs = -1;
let cachedIso = "";
function isoTime(ms: number): string {
  if (ms !== cachedMs) {
    cachedMs = ms;
    cachedIso = new Date(ms).toISOString();
  }
  return cachedIso;
}

// The type, source and subject of the previous envelope that passed the check: a producer sends
// the same few strings over and over, and comparing a string with the same string is one pointer
// compare.
let checkedType: string | undefined;
let checkedSource: string | undefined;
let checkedSubject: string | undefined;

/** A `Date`'s ISO string; for an invalid date a text that fails the envelope's time check. */
function dateTime(date: Date): string {
  return Number.isNaN(date.getTime()) ? "Invalid Date" : date.toISOString();
}

function wellFormedType(type: string): boolean {
  if (!requiredText(type)) return false;
  checkedType = type;
  return true;
}

function wellFormedSource(source: string): boolean {
  if (!requiredText(source)) return false;
  checkedSource = source;
  return true;
}

function wellFormedSubject(subject: string): boolean {
  if (!optionalText(subject)) return false;
  checkedSubject = subject;
  return true;
}

function wellFormedOrAbsent(text: string | undefined): boolean {
  return optionalText(text);
}

function requiredOrAbsent(text: string | undefined): boolean {
  return text === undefined || requiredText(text);
}

function configKeyOf(data: unknown): string | undefined {
  if (typeof data !== "object" || data === null) return undefined;
  const key = (data as { config_key?: unknown }).config_key;
  return typeof key === "string" && key.length > 0 ? key : undefined;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;
const Z = 90;
const ZERO = 48;

/** The two-digit number at `at` of a string the RFC 3339 pattern matched. */
function twoDigits(text: string, at: number): number {
  return (text.charCodeAt(at) - ZERO) * 10 + text.charCodeAt(at + 1) - ZERO;
}

/**
 * An RFC 3339 date-time with fields in range: the times `Date.parse` accepts in that form (month
 * 1–12, day 1–31, hour 0–23 or exactly 24:00:00, minute and second 0–59, zone offset up to 23:59),
 * checked by hand: `Date.parse` cost a transport half of this whole check on every delivery.
 */
function isTime(text: string): boolean {
  if (!RFC3339.test(text)) return false;
  const month = twoDigits(text, 5);
  const day = twoDigits(text, 8);
  const hour = twoDigits(text, 11);
  const minute = twoDigits(text, 14);
  const second = twoDigits(text, 17);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 24 || minute > 59 || second > 59)
    return false;
  const end = text.length;
  const zoned = text.charCodeAt(end - 1) !== Z;
  if (zoned && (twoDigits(text, end - 5) > 23 || twoDigits(text, end - 2) > 59)) return false;
  if (hour === 24) {
    if (minute !== 0 || second !== 0) return false;
    // 24:00:00 is the end of the day only with no fraction beyond zeros.
    for (let i = 20, zone = zoned ? end - 6 : end - 1; i < zone; i++)
      if (text.charCodeAt(i) !== ZERO) return false;
  }
  return true;
}

/** An optional attribute: absent, or a well-formed string. */
function optionalText(text: unknown): boolean {
  return text === undefined || (typeof text === "string" && isWellFormed(text));
}

/** A required attribute: a non-empty, well-formed string. */
function requiredText(text: unknown): boolean {
  return typeof text === "string" && text !== "" && isWellFormed(text);
}

// Hand-written: transports call this for every published and every delivered envelope, so it must
// cost next to nothing (each attribute read by name: a loop over names is a keyed lookup per key).
function envelopeProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "";
  const e = value as Partial<Record<keyof Envelope, unknown>>;
  if (e.specversion !== "1.0") return "specversion";
  if (!requiredText(e.id)) return "id";
  if (!requiredText(e.type)) return "type";
  if (!requiredText(e.source)) return "source";
  if (typeof e.time !== "string" || !isTime(e.time)) return "time";
  if (e.datacontenttype !== "application/json") return "datacontenttype";
  const version = e.dataversion;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1)
    return "dataversion";
  if (e.data === undefined) return "data";
  if (!optionalText(e.subject)) return "subject";
  if (!optionalText(e.traceparent)) return "traceparent";
  if (!optionalText(e.tracestate)) return "tracestate";
  if (!optionalText(e.correlationid)) return "correlationid";
  if (!optionalText(e.causationid)) return "causationid";
  return undefined;
}

/** True when `value` has the shape of an envelope (attributes and a `data` field; `data` itself is not validated). */
export function isEnvelope(value: unknown): value is Envelope {
  try {
    return envelopeProblem(value) === undefined;
  } catch {
    return false; // a getter or proxy trap threw, or a revoked proxy: not an envelope
  }
}

/**
 * Throw an `EventValidationError` (reason `invalid_envelope`, naming the bad attribute) unless
 * `value` is an envelope. Transports call it on publish so that nothing they store can fail to
 * decode later.
 */
export function assertEnvelope(value: unknown): asserts value is Envelope {
  let problem: string | undefined;
  let attributes: ReturnType<typeof envelopeSchema.safeParse>;
  try {
    problem = envelopeProblem(value);
    if (problem === undefined) return;
    attributes = envelopeSchema.safeParse(value);
  } catch (error) {
    // A getter or proxy trap threw, or a revoked proxy: a typed error, not the reader's exception.
    throw unreadableError("<unknown>", "invalid_envelope", value, error);
  }
  const issues = attributes.success
    ? [
        {
          path: problem,
          message: "Required",
          code: "invalid_type",
          received: describeType((value as Record<string, unknown>)[problem]),
        },
      ]
    : toIssues(value, attributes.error);
  const type =
    typeof (value as { type?: unknown } | null)?.type === "string"
      ? (value as { type: string }).type
      : "<unknown>";
  throw new EventValidationError({
    eventType: type,
    reason: "invalid_envelope",
    issues,
    receivedType: describeType(value),
    message:
      `Not an event envelope${envelopeProblemText(type, value, issues)}. ` +
      `Build envelopes with createEnvelope() or router.publish().`,
  });
}
