import type { Envelope } from "@switchyard/event-schema";
import type { DeliveryContext } from "../context";
import { type Middleware, defineBuiltInMiddleware } from "./types";

/** Options of {@link dedup}. */
export interface DedupOptions {
  /**
   * How long a handled key is remembered, in ms: a number ≥ 0 (`0`: only deliveries in flight are
   * skipped; `Infinity`: until forgotten by `maxEntries`). @defaultValue 300_000 (5 minutes)
   */
  readonly ttlMs?: number;
  /** Most keys remembered (an integer ≥ 1); the oldest are forgotten first. @defaultValue 10_000 */
  readonly maxEntries?: number;
  /**
   * The identity of an event: a non-empty string. A delivery whose key is anything else (a
   * missing field: `undefined`) fails with a `TypeError` instead of being taken for a duplicate
   * of every other event without one. @defaultValue the envelope id
   */
  readonly key?: (event: Envelope) => string;
  /** Clock, for tests. @defaultValue Date.now */
  readonly now?: () => number;
}

/**
 * Skip events whose key was already handled successfully within `ttlMs` (and events with the same
 * key currently in flight). Failed deliveries are not remembered, so a retry or a replay runs.
 * Memory is bounded by `maxEntries`.
 */
export function dedup(options: DedupOptions = {}): Middleware {
  const ttlMs = options.ttlMs ?? 300_000;
  if (!(typeof ttlMs === "number" && ttlMs >= 0))
    throw new RangeError(`dedup: ttlMs must be a number of ms ≥ 0, got ${String(ttlMs)}`);
  const maxEntries = options.maxEntries ?? 10_000;
  if (!Number.isInteger(maxEntries) || maxEntries < 1)
    throw new RangeError(`dedup: maxEntries must be an integer ≥ 1, got ${String(maxEntries)}`);
  if (options.key !== undefined && typeof options.key !== "function")
    throw new TypeError(
      `dedup: key must be a function (event) => string, got ${typeof options.key}`,
    );
  const keyOf = options.key ?? ((event: Envelope) => event.id);
  const now = options.now ?? Date.now;
  return defineBuiltInMiddleware("dedup", function dedup(next, scope) {
    // Insertion-ordered: the first entries are the oldest.
    const seen = new Map<string, number>();
    const inFlight = new Set<string>();
    return async (event, ctx) => {
      const key: unknown = keyOf(event);
      if (typeof key !== "string" || key.length === 0)
        // One shared `undefined` (a missing field) would make every later event a "duplicate".
        throw new TypeError(
          `dedup: the key of ${event.type} ${event.id} must be a non-empty string, got ${key === "" ? '""' : typeof key}`,
        );
      const expiresAt = seen.get(key);
      if ((expiresAt !== undefined && expiresAt > now()) || inFlight.has(key)) {
        (ctx as DeliveryContext).outcome = "deduplicated";
        scope.counters.deduplicated();
        return;
      }
      inFlight.add(key);
      try {
        await next(event, ctx);
        seen.delete(key);
        seen.set(key, now() + ttlMs);
        if (seen.size > maxEntries) seen.delete(seen.keys().next().value!);
      } finally {
        inFlight.delete(key);
      }
    };
  });
}
