import type { Envelope } from "@switchyard/event-schema";
import type { DeliveryContext } from "../context";
import { type Middleware, defineMiddleware } from "./types";

/** Options of {@link dedup}. */
export interface DedupOptions {
  /** How long a handled key is remembered, in ms. @defaultValue 300_000 (5 minutes) */
  readonly ttlMs?: number;
  /** Most keys remembered; the oldest are forgotten first. @defaultValue 10_000 */
  readonly maxEntries?: number;
  /** The identity of an event. @defaultValue the envelope id */
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
  const maxEntries = options.maxEntries ?? 10_000;
  const keyOf = options.key ?? ((event: Envelope) => event.id);
  const now = options.now ?? Date.now;
  return defineMiddleware("dedup", function dedup(next, scope) {
    // Insertion-ordered: the first entries are the oldest.
    const seen = new Map<string, number>();
    const inFlight = new Set<string>();
    return async (event, ctx) => {
      const key = keyOf(event);
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
