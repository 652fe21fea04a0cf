import { createHash, randomUUID } from "node:crypto";
import { canonicalJsonOf } from "./canonical-json";
import { payloadValueOf } from "./normalize";
import { isEnvelopeLike, isPlainObject, toObject } from "./shape";

/** Options of {@link eventContentHash}. */
export interface ContentHashOptions {
  /**
   * Only these payload fields count towards the hash (the event type always does). Use it when
   * a re-emission differs in fields that do not matter, such as a timestamp.
   *
   * @defaultValue every payload field
   */
  readonly keyFields?: readonly string[] | undefined;
}

/**
 * A SHA-256 hex digest of an event's content: its type (an envelope's `type`, else an
 * `event_type` or `type` string field) and its payload as `normalizeEventPayload` sees it.
 * Envelope attributes such as `id`, `time` and `source` do not count, so two emissions of the
 * same content hash alike, whatever shape they arrived in and whatever their key order.
 *
 * A payload that is not a plain object (an envelope whose `data` is an array, a string, a
 * number or a class instance; an event that is an array) counts as it is, whole, even with
 * `keyFields`.
 *
 * The payload is written as canonical JSON, as a transport would carry it: keys sorted at every
 * level, `undefined` left out, non-finite numbers as `null`, dates as ISO strings, strings as they
 * are (no Unicode normalisation: an NFC and an NFD spelling of one text hash differently). What
 * JSON cannot carry never hashes like data that it can: a bigint (`1n` is not `"1"`) and a
 * circular reference (not the string `"[Circular]"`; which ancestor it points to counts) are
 * written as markers no JSON text holds. A payload that cannot be compared in
 * full — nested deeper than 1000 levels, more than a million values, or holding an object that
 * cannot be read (a throwing getter, a revoked proxy) — gets a hash of its own on every call:
 * two such events never hash alike, so dedup never drops one it could not compare. Never throws.
 *
 * @example
 * ```ts
 * const a = eventContentHash({ type: "TRAINING_COMPLETED", id: "1", data: { loss: 0.1, epochs: 3 } });
 * const b = eventContentHash({ type: "TRAINING_COMPLETED", id: "2", data: { epochs: 3, loss: 0.1 } });
 * a === b; // true
 * eventContentHash(event, { keyFields: ["config_key", "model_path"] }); // only those fields count
 * ```
 */
export function eventContentHash(event: unknown, options: ContentHashOptions = {}): string {
  const type = eventTypeOf(event);
  const payload = payloadOf(event);
  const keyFields = options?.keyFields;
  let unreadableField = false;
  const data =
    Array.isArray(keyFields) && isPlainObject(payload)
      ? pick(payload, keyFields, () => (unreadableField = true))
      : payload;
  const content = type === undefined || type === UNREADABLE ? { data } : { type, data };
  const { text, complete } = canonicalJsonOf(content);
  const hash = createHash("sha256").update(text);
  // Content that could not be read or written in full cannot be compared: two different events
  // could give the same text, and dedup would drop the second. A hash of its own keeps it apart.
  if (!complete || unreadableField || type === UNREADABLE || payload === UNREADABLE)
    hash.update(`\0incomplete:${randomUUID()}`);
  return hash.digest("hex");
}

/**
 * The payload as `normalizeEventPayload` sees it, except that one which is not a plain object
 * (an envelope's array, string or number `data`, a class instance, an array event) is kept as it
 * is instead of becoming `{}`: otherwise every such event of a type would hash alike, and dedup
 * would drop all but the first.
 */
function payloadOf(event: unknown): unknown {
  try {
    const payload = payloadValueOf(event);
    // An envelope without data has no content to tell it apart from an empty payload.
    return payload === undefined ? {} : payload;
  } catch {
    return UNREADABLE;
  }
}

/** An event (or its type) that threw when read: a getter, a proxy trap, a revoked proxy. */
const UNREADABLE: unique symbol = Symbol("unreadable");

function eventTypeOf(event: unknown): string | typeof UNREADABLE | undefined {
  try {
    const outer = toObject(event);
    if (outer === undefined) return undefined;
    if (isEnvelopeLike(outer)) return typeof outer.type === "string" ? outer.type : undefined;
    if (typeof outer.event_type === "string") return outer.event_type;
    return typeof outer.type === "string" ? outer.type : undefined;
  } catch {
    return UNREADABLE;
  }
}

function pick(
  payload: Readonly<Record<string, unknown>>,
  keys: readonly unknown[],
  onUnreadable: () => void,
): Record<string, unknown> {
  // A null prototype keeps a field named "__proto__" an ordinary field.
  const picked = Object.create(null) as Record<string, unknown>;
  for (const key of keys) {
    if (typeof key !== "string") continue;
    try {
      if (Object.hasOwn(payload, key)) picked[key] = payload[key];
    } catch {
      // An unreadable field is left out, and the hash made unique by the caller.
      onUnreadable();
    }
  }
  return picked;
}
