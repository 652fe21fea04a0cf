import { eventContentHash } from "@switchyard/event-utils";
import { messageOf } from "./errors";

/** Options of {@link DedupCache}. */
export interface DedupCacheOptions {
  /** How long a content hash is remembered after it was first seen, in ms. @defaultValue 300_000 (5 minutes) */
  readonly ttlMs?: number;
  /** Most hashes remembered at once; past it the oldest is forgotten first. @defaultValue 10_000 */
  readonly maxEntries?: number;
  /** The clock, in ms. Inject one in tests instead of faking timers. @defaultValue Date.now */
  readonly now?: () => number;
}

/** Options of {@link DedupCache.isDuplicate}. */
export interface DedupCheckOptions {
  /**
   * Only these payload fields (plus the event type) make an event's identity, e.g.
   * `["config_key", "model_path"]` when re-emissions differ by a timestamp.
   * @defaultValue every payload field
   */
  readonly keyFields?: readonly string[];
}

/**
 * Consume-side deduplication by content: remembers the SHA-256 content hash of every event it
 * is asked about (type + normalized payload, see `eventContentHash`) for `ttlMs`, and answers
 * whether the same content was seen before within that time. Memory is bounded by `maxEntries`:
 * the oldest hash is evicted first. Expiry counts from the first sighting; a repeat does not
 * extend it.
 *
 * @example
 * ```ts
 * const seen = new DedupCache({ ttlMs: 60_000 });
 * seen.isDuplicate(event);                             // false: first time
 * seen.isDuplicate({ ...event, id: "other" });          // true: same type and payload
 * seen.isDuplicate(event, { keyFields: ["config_key"] });
 * ```
 */
export class DedupCache {
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly #now: () => number;
  /** hash → expiry time. Insertion order is first-sighting order, hence expiry order. */
  readonly #expires = new Map<string, number>();

  constructor(options: DedupCacheOptions = {}) {
    this.ttlMs = options.ttlMs ?? 300_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.#now = options.now ?? Date.now;
    // typeof first: a string ttlMs ("60000") would pass `> 0`, then make `now + ttlMs` a string.
    if (typeof this.ttlMs !== "number" || !(this.ttlMs > 0)) {
      throw new RangeError(
        `DedupCache: ttlMs must be a positive number of ms, got ${show(this.ttlMs)}`,
      );
    }
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) {
      throw new RangeError(
        `DedupCache: maxEntries must be an integer ≥ 1, got ${show(this.maxEntries)}`,
      );
    }
    if (typeof this.#now !== "function") {
      throw new TypeError(
        `DedupCache: now must be a function returning ms, got ${show(this.#now)}`,
      );
    }
  }

  /** Hashes currently remembered (expired ones are dropped lazily, on the next check). */
  get size(): number {
    return this.#expires.size;
  }

  /**
   * True when an event with the same content was seen within the TTL; otherwise remembers it and
   * returns false. Accepts any event shape (envelope, `{ payload }`, plain object, JSON string).
   * Throws a `TypeError` for `keyFields` that is not a non-empty array of non-empty strings: an
   * empty list would make every event of a type a duplicate of the first, a string would be
   * ignored, both silently.
   */
  isDuplicate(event: unknown, options: DedupCheckOptions = {}): boolean {
    const hash = hashOf(event, options);
    const now = this.#now();
    this.#prune(now);
    const expiresAt = this.#expires.get(hash);
    if (expiresAt !== undefined && expiresAt > now) return true;
    if (expiresAt !== undefined) this.#expires.delete(hash);
    this.#expires.set(hash, now + this.ttlMs);
    while (this.#expires.size > this.maxEntries) {
      const oldest = this.#expires.keys().next().value as string;
      this.#expires.delete(oldest);
    }
    return false;
  }

  /** Forget one event's content (same `keyFields` as when it was checked): its next sighting counts as new. */
  forget(event: unknown, options: DedupCheckOptions = {}): void {
    this.#expires.delete(hashOf(event, options));
  }

  /** Forget every hash: the next sighting of any event counts as new. */
  clear(): void {
    this.#expires.clear();
  }

  #prune(now: number): void {
    for (const [hash, expiresAt] of this.#expires) {
      // First-sighting order is expiry order (fixed TTL), so the first live entry ends the scan.
      if (expiresAt > now) return;
      this.#expires.delete(hash);
    }
  }
}

/** The content hash `options` asks for, once its `keyFields` are checked. */
function hashOf(event: unknown, options: DedupCheckOptions | undefined): string {
  const keyFields = options?.keyFields;
  if (keyFields === undefined) return eventContentHash(event);
  if (
    !Array.isArray(keyFields) ||
    keyFields.length === 0 ||
    !keyFields.every((field) => typeof field === "string" && field !== "")
  ) {
    throw new TypeError(
      `DedupCache: keyFields must be a non-empty array of payload field names, got ${show(keyFields)}; ` +
        `leave it out to compare whole payloads`,
    );
  }
  return eventContentHash(event, { keyFields });
}

function show(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : messageOf(value);
}
