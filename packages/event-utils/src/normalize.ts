import { isEnvelopeLike, isObject, isPlainObject, parseJson, toPlainObject } from "./shape";

/**
 * The payload of an event, whatever shape the event arrived in. Checked in this order:
 *
 * 1. an envelope (has `specversion`, or a string `type` beside an object `data`, or beside a
 *    `data` holding the JSON text of an object) → its `data`;
 * 2. an object with an object `payload` → `payload`;
 * 3. an object with an object `metadata` → `metadata`;
 * 4. a plain object → the object itself.
 *
 * A JSON string is parsed first and then treated the same way, as is a `data`, `payload` or
 * `metadata` field holding a JSON string. Anything else (`null`, arrays, numbers, invalid JSON,
 * an envelope whose `data` is not an object) gives `{}`: this never throws. The result is the
 * payload object itself, not a copy.
 *
 * @example
 * ```ts
 * normalizeEventPayload({ specversion: "1.0", type: "TRAINING_COMPLETED", data: { loss: 0.1 } });
 * // → { loss: 0.1 }
 * normalizeEventPayload({ payload: { config_key: "hex8_2p" } }); // → { config_key: "hex8_2p" }
 * normalizeEventPayload('{"config_key":"hex8_2p"}');               // → { config_key: "hex8_2p" }
 * normalizeEventPayload(null);                                      // → {}
 * ```
 */
export function normalizeEventPayload(event: unknown): Readonly<Record<string, unknown>> {
  try {
    const payload = payloadValueOf(event);
    return isPlainObject(payload) ? payload : {};
  } catch {
    // Hostile objects (throwing getters, revoked proxies) must not take a daemon's handler down.
    return {};
  }
}

/**
 * The value `normalizeEventPayload` takes the payload from, before it insists on a plain object:
 * an envelope's `data` (a JSON string parsed) whatever it holds, else a plain `payload` or
 * `metadata`, else the event itself (a JSON string parsed). Content hashing needs it: an
 * envelope whose `data` is an array or a string has content, which `{}` would erase. May throw
 * on hostile objects.
 */
export function payloadValueOf(event: unknown): unknown {
  const outer = parsedOrSelf(event);
  if (!isObject(outer)) return outer;
  if (isEnvelopeLike(outer)) return parsedOrSelf(outer.data);
  return toPlainObject(outer.payload) ?? toPlainObject(outer.metadata) ?? outer;
}

/** The value a JSON string holds, or the value itself when it is not a string of valid JSON. */
function parsedOrSelf(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const parsed = parseJson(value);
  return parsed === undefined ? value : parsed;
}
