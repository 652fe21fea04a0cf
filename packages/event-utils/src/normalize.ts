import { isEnvelopeLike, isPlainObject, toObject, toPlainObject } from "./shape";

/**
 * The payload of an event, whatever shape the event arrived in. Checked in this order:
 *
 * 1. an envelope (has `specversion`, or a string `type` beside an object `data`) → its `data`;
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
    const outer = toObject(event);
    return (outer && payloadOf(outer)) ?? {};
  } catch {
    // Hostile objects (throwing getters, revoked proxies) must not take a daemon's handler down.
    return {};
  }
}

function payloadOf(event: Record<string, unknown>): Record<string, unknown> | undefined {
  if (isEnvelopeLike(event)) return toPlainObject(event.data);
  return (
    toPlainObject(event.payload) ??
    toPlainObject(event.metadata) ??
    (isPlainObject(event) ? event : undefined)
  );
}
