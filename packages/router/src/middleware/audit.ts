import type { DeliveryContext } from "../context";
import { serializeError, type SerializedError } from "@switchyard/transport";
import { type Middleware, defineBuiltInMiddleware } from "./types";

/** The final outcome of one delivery, as the audit log records it. */
export type AuditResult = "ok" | "failed" | "deduplicated" | "dead_lettered";

/** One audited delivery. */
export interface AuditEntry {
  /** When the delivery finished (RFC 3339). */
  readonly timestamp: string;
  readonly eventType: string;
  readonly eventId: string;
  /** The subscription that handled it. */
  readonly handler: string;
  readonly result: AuditResult;
  readonly durationMs: number;
  /** Attempts used (in-process retries or transport redeliveries). */
  readonly attempt: number;
  readonly error?: SerializedError;
}

/** Filter of {@link AuditLog.entries}. */
export interface AuditQuery {
  /** Newest entries returned at most: an integer ≥ 0. @defaultValue all */
  readonly limit?: number;
  readonly eventType?: string;
  readonly eventId?: string;
  readonly handler?: string;
  readonly result?: AuditResult;
}

/**
 * A bounded, in-memory log of delivery outcomes: the newest `capacity` entries are kept.
 * Read it with {@link AuditLog.entries}; the router exposes its own as `router.auditLog`.
 */
export class AuditLog {
  readonly capacity: number;
  #ring: (AuditEntry | undefined)[];
  #next = 0;
  #size = 0;

  /** @param options.capacity entries kept. @defaultValue 1000 */
  constructor(options: { capacity?: number } = {}) {
    this.capacity = options.capacity ?? 1000;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) {
      throw new RangeError(`AuditLog: capacity must be an integer ≥ 1, got ${this.capacity}`);
    }
    this.#ring = new Array<AuditEntry | undefined>(this.capacity);
  }

  /** Append an entry, forgetting the oldest when full. */
  record(entry: AuditEntry): void {
    this.#ring[this.#next] = entry;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
  }

  /** Entries oldest first, filtered; with `limit`, the newest `limit` matches. */
  entries(query: AuditQuery = {}): AuditEntry[] {
    const { limit } = query;
    // NaN returned everything and a negative limit nothing, each without a word.
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0))
      throw new RangeError(`AuditLog.entries: limit must be an integer ≥ 0, got ${String(limit)}`);
    const out: AuditEntry[] = [];
    const start = (this.#next - this.#size + this.capacity) % this.capacity;
    for (let i = 0; i < this.#size; i++) {
      const e = this.#ring[(start + i) % this.capacity]!;
      if (query.eventType !== undefined && e.eventType !== query.eventType) continue;
      if (query.eventId !== undefined && e.eventId !== query.eventId) continue;
      if (query.handler !== undefined && e.handler !== query.handler) continue;
      if (query.result !== undefined && e.result !== query.result) continue;
      out.push(e);
    }
    return limit !== undefined ? out.slice(Math.max(0, out.length - limit)) : out;
  }

  /** Number of entries held. */
  get size(): number {
    return this.#size;
  }

  clear(): void {
    this.#ring = new Array<AuditEntry | undefined>(this.capacity);
    this.#next = 0;
    this.#size = 0;
  }
}

/**
 * Record every delivery's final outcome (after retries and dead-lettering) in an {@link AuditLog}.
 * The router installs one for you with `createRouter({ audit: true })`.
 */
export function audit(options: { log: AuditLog }): Middleware {
  const { log } = options;
  return defineBuiltInMiddleware("audit", function audit(next, scope) {
    return async (event, context) => {
      const ctx = context as DeliveryContext;
      const start = performance.now();
      let error: unknown;
      let failed = false;
      try {
        await next(event, ctx);
      } catch (e) {
        failed = true;
        error = e;
        throw e;
      } finally {
        log.record({
          timestamp: new Date().toISOString(),
          eventType: event.type,
          eventId: event.id,
          handler: scope.subscription,
          result: failed ? "failed" : ctx.outcome,
          durationMs: performance.now() - start,
          attempt: ctx.attempt,
          ...(failed ? { error: serializeError(error) } : {}),
        });
      }
    };
  });
}
