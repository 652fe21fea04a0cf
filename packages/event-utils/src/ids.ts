import { isEnvelopeLike, nonEmptyString, toObject } from "./shape";

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;
const ZERO_TRACE_ID = "0".repeat(32);
const ZERO_SPAN_ID = "0".repeat(16);

/**
 * The id of an event: an envelope's `id`, else an `event_id`, `id` or `metadata.id` field, the
 * first that is a non-empty string. `undefined` when there is none; never throws.
 *
 * @example
 * ```ts
 * getEventId({ event_id: "evt-7", payload: {} });    // → "evt-7"
 * getEventId({ metadata: { id: "evt-8" } });         // → "evt-8"
 * getEventId({ id: 42 });                            // → undefined
 * ```
 */
export function getEventId(event: unknown): string | undefined {
  try {
    const outer = toObject(event);
    if (outer === undefined) return undefined;
    if (isEnvelopeLike(outer)) {
      const id = nonEmptyString(outer.id);
      if (id !== undefined) return id;
    }
    return (
      nonEmptyString(outer.event_id) ??
      nonEmptyString(outer.id) ??
      nonEmptyString(toObject(outer.metadata)?.id)
    );
  } catch {
    return undefined;
  }
}

/**
 * The W3C trace context of an event: its `traceparent` attribute, else `metadata.traceparent`.
 * Only a well-formed value is returned: `<version>-<trace id>-<span id>-<flags>` in lowercase
 * hex of 2, 32, 16 and 2 digits, with non-zero trace and span ids and a version other than `ff`.
 * Anything else gives `undefined`, so a malformed header starts a new trace instead of
 * poisoning one. Never throws.
 *
 * @example
 * ```ts
 * getTraceparent({ traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
 * // → "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
 * getTraceparent({ traceparent: "00-00000000000000000000000000000000-b7ad6b7169203331-01" });
 * // → undefined
 * ```
 */
export function getTraceparent(event: unknown): string | undefined {
  try {
    const outer = toObject(event);
    if (outer === undefined) return undefined;
    return (
      validTraceparent(outer.traceparent) ?? validTraceparent(toObject(outer.metadata)?.traceparent)
    );
  } catch {
    return undefined;
  }
}

function validTraceparent(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const match = TRACEPARENT.exec(value);
  if (!match) return undefined;
  const [, version, traceId, spanId] = match;
  // Version ff is forbidden by the W3C spec; all-zero ids are explicitly invalid.
  if (version === "ff" || traceId === ZERO_TRACE_ID || spanId === ZERO_SPAN_ID) return undefined;
  return value;
}
