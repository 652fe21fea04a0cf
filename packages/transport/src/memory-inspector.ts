import { TransportClosedError, UnsupportedOperationError } from "./errors";
import {
  InspectorQueryError,
  UnboundedPurgeError,
  matchesDeadLetterFilter,
  checkCountBuckets,
  timeInputMs,
  type ActionResult,
  type Admin,
  type AuditReport,
  type Capabilities,
  type CausationNode,
  type CausationTree,
  type CountQuery,
  type DeadLetterCounts,
  type DeadLetterFilter,
  type DeadLetterInfo,
  type DeadLetterListQuery,
  type DeadLetterPage,
  type DeadLetterStatus,
  type DeliveryInfo,
  type DeliveryState,
  type EventCounts,
  type EventPage,
  type EventQuery,
  type HeartbeatInfo,
  type Inspector,
  type PurgeOptions,
  type ReplayOptions,
  type ReplayResult,
  type StoredEvent,
  type SubscriberBacklog,
} from "./inspector";
import type {
  MemoryDeadLetter,
  MemoryStore,
  StoredMemoryEvent,
  SubscriberState,
} from "./memory-transport";
import { replaySkipReason } from "./replay-rule";

/**
 * What the memory transport supports: every read, replay and purge; no `clearPending`, no
 * `backup` (there is no file to copy) and no `audit` (there is no ack floor).
 */
export const memoryCapabilities: Capabilities = Object.freeze({
  deliveries: true,
  history: true,
  heartbeats: true,
  deadLetters: true,
  replay: true,
  purge: true,
  clearPending: false,
  backup: false,
  audit: false,
  expiredLeases: "retrying",
});

const iso = (ms: number) => new Date(ms).toISOString();

/** The timeline fields of one delivery (copies: the caller cannot change the store's). */
function historyOf(
  state: SubscriberState,
  eventId: string,
): Pick<DeliveryInfo, "history" | "historyTruncated"> {
  const history = state.history.get(eventId);
  if (!history) return { history: [] };
  return {
    history: [...history.steps],
    ...(history.truncated ? { historyTruncated: true } : {}),
  };
}

function pageSize(limit: number | undefined): number {
  const size = limit ?? 100;
  if (!Number.isInteger(size) || size < 1)
    throw new InspectorQueryError("limit", `must be a positive integer; got ${String(limit)}.`);
  return size;
}

function cursorValue(cursor: string | undefined): number | undefined {
  if (cursor === undefined) return undefined;
  const n = /^\d+$/.test(cursor) ? Number(cursor) : NaN;
  if (!Number.isSafeInteger(n))
    throw new InspectorQueryError(
      "cursor",
      `${JSON.stringify(cursor)} is not one this inspector gave: pass the \`next\` of the previous page.`,
    );
  return n;
}

/** A dead-letter cursor (`<lastFailedAt ms>.<id>` of the last record of the previous page). */
function deadLetterCursor(cursor: string | undefined): { at: number; id: number } | undefined {
  if (cursor === undefined) return undefined;
  const match = /^(\d+)\.(\d+)$/.exec(cursor);
  if (!match)
    throw new InspectorQueryError(
      "cursor",
      `${JSON.stringify(cursor)} is not one this inspector gave: pass the \`next\` of the previous page.`,
    );
  return { at: Number(match[1]), id: Number(match[2]) };
}

function storedEvent(e: StoredMemoryEvent): StoredEvent {
  const { envelope } = e;
  return {
    seq: e.seq,
    id: envelope.id,
    type: envelope.type,
    source: envelope.source,
    ...(envelope.subject !== undefined ? { subject: envelope.subject } : {}),
    time: envelope.time,
    storedAt: iso(e.storedAt),
    envelope: structuredClone(envelope),
    ...(envelope.causationid !== undefined ? { causedBy: envelope.causationid } : {}),
  };
}

function deadLetterInfo(entry: MemoryDeadLetter): DeadLetterInfo {
  const { record } = entry;
  return {
    id: entry.id,
    eventId: record.envelope.id,
    eventType: record.envelope.type,
    subscriber: record.subscriber,
    origin: record.origin,
    reason: record.reason,
    status: entry.status,
    error: record.error,
    attempts: entry.attempts,
    replays: entry.replays,
    firstFailedAt: entry.firstFailedAt,
    lastFailedAt: record.failedAt,
    ...(entry.replayedAt !== undefined ? { replayedAt: entry.replayedAt } : {}),
    ...(entry.status !== "purged" ? { envelope: structuredClone(record.envelope) } : {}),
  };
}

function matches(entry: MemoryDeadLetter, filter: DeadLetterFilter): boolean {
  return matchesDeadLetterFilter(deadLetterInfo(entry), filter);
}

/** Dead letters newest first (last failure, then id). */
function newestFirst(a: MemoryDeadLetter, b: MemoryDeadLetter): number {
  return (
    Date.parse(b.record.failedAt) - Date.parse(a.record.failedAt) || Number(b.id) - Number(a.id)
  );
}

/**
 * The {@link Inspector} of a {@link MemoryStore}: the read side of the memory transport, with the
 * same numbers as the durable transports' inspectors (see `SubscriberBacklog`). Create it with
 * `memoryDriver` or `new MemoryInspector(store)`.
 */
export class MemoryInspector implements Inspector {
  readonly transport = "memory";
  readonly capabilities = memoryCapabilities;
  readonly #store: MemoryStore;
  #closed = false;

  constructor(store: MemoryStore) {
    this.#store = store;
  }

  #open(signal: AbortSignal | undefined): void {
    if (this.#closed) throw new TransportClosedError("memory inspector");
    signal?.throwIfAborted();
  }

  async subscribers(options: { readonly signal?: AbortSignal } = {}): Promise<SubscriberBacklog[]> {
    this.#open(options.signal);
    const now = Date.now();
    return [...this.#store.subscribers.values()].map((state) => {
      let pending = 0;
      let inFlight = 0;
      let retrying = 0;
      let oldest = Infinity;
      for (const d of state.deliveries) {
        const s = this.#state(d, now);
        if (s === "in_flight") inFlight++;
        else {
          if (s === "pending") pending++;
          else retrying++;
          oldest = Math.min(
            oldest,
            this.#store.eventsById.get(d.envelope.id)?.storedAt ?? d.enqueuedAt,
          );
        }
      }
      let dead = 0;
      for (const s of state.settled.values()) if (s.state === "dead") dead++;
      return {
        subscriber: state.name,
        types: [...state.types].sort(),
        ephemeral: state.ephemeral,
        pending,
        inFlight,
        retrying,
        dead,
        lag: pending + inFlight + retrying,
        ...(oldest !== Infinity ? { oldestPendingMs: Math.max(0, now - oldest) } : {}),
        ...(state.lastSeen !== undefined ? { lastSeen: iso(state.lastSeen) } : {}),
      };
    });
  }

  /** The one backlog rule, for an open delivery (see `SubscriberBacklog`). */
  #state(
    d: SubscriberState["deliveries"][number],
    now: number,
  ): "pending" | "in_flight" | "retrying" {
    if (d.token !== 0) return d.leaseUntil > now ? "in_flight" : "retrying";
    return d.attempts > 0 ? "retrying" : "pending";
  }

  async events(query: EventQuery & { readonly signal?: AbortSignal } = {}): Promise<EventPage> {
    this.#open(query.signal);
    const limit = pageSize(query.limit);
    const after = cursorValue(query.cursor);
    const since = query.since !== undefined ? timeInputMs(query.since, "since") : -Infinity;
    const until = query.until !== undefined ? timeInputMs(query.until, "until") : Infinity;
    const newest = (query.order ?? "newest") === "newest";
    if (query.order !== undefined && query.order !== "newest" && query.order !== "oldest")
      throw new InspectorQueryError(
        "order",
        `must be "newest" or "oldest"; got ${String(query.order)}.`,
      );
    const types = query.types ? new Set(query.types) : undefined;
    const all = this.#store.events;
    const found: StoredMemoryEvent[] = [];
    let more = false;
    for (let i = 0; i < all.length; i++) {
      const e = all[newest ? all.length - 1 - i : i]!;
      if (after !== undefined && (newest ? e.seq >= after : e.seq <= after)) continue;
      if (types && !types.has(e.envelope.type)) continue;
      if (query.subject !== undefined && e.envelope.subject !== query.subject) continue;
      if (e.storedAt < since || e.storedAt >= until) continue;
      if (found.length === limit) {
        more = true;
        break;
      }
      found.push(e);
    }
    return {
      events: found.map(storedEvent),
      ...(more ? { next: String(found[found.length - 1]!.seq) } : {}),
    };
  }

  async event(
    id: string,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<StoredEvent | undefined> {
    this.#open(options.signal);
    const e = this.#store.eventsById.get(id);
    return e && storedEvent(e);
  }

  async deliveries(
    id: string,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<DeliveryInfo[]> {
    this.#open(options.signal);
    const event = this.#store.eventsById.get(id);
    const now = Date.now();
    const out: DeliveryInfo[] = [];
    for (const state of this.#store.subscribers.values()) {
      const open = state.deliveries.find((d) => d.envelope.id === id);
      if (open) {
        const s: DeliveryState = this.#state(open, now);
        out.push({
          subscriber: state.name,
          state: s,
          attempts: open.attempts,
          ...(open.lastError ? { lastError: open.lastError } : {}),
          ...(s === "in_flight" ? { leaseUntil: iso(open.leaseUntil) } : {}),
          ...(s === "retrying" ? { availableAt: iso(Math.max(open.availableAt, now)) } : {}),
          updatedAt: iso(open.updatedAt),
          ...historyOf(state, id),
        });
        continue;
      }
      const settled = state.settled.get(id);
      if (settled) {
        out.push({
          subscriber: state.name,
          state: settled.state,
          attempts: settled.attempts,
          ...(settled.lastError ? { lastError: settled.lastError } : {}),
          ...(settled.deadReason ? { deadReason: settled.deadReason } : {}),
          updatedAt: iso(settled.at),
          ...historyOf(state, id),
        });
        continue;
      }
      // Registered for the type when the event was stored, yet no trace of it: say so.
      if (event && state.types.has(event.envelope.type) && state.createdAt <= event.storedAt)
        out.push({ subscriber: state.name, state: "unknown", attempts: 0 });
    }
    return out.sort((a, b) => a.subscriber.localeCompare(b.subscriber));
  }

  async causation(
    id: string,
    options: {
      readonly depth?: number;
      readonly limit?: number;
      readonly signal?: AbortSignal;
    } = {},
  ): Promise<CausationTree | undefined> {
    this.#open(options.signal);
    const depth = options.depth ?? 10;
    const limit = options.limit ?? 1000;
    if (!Number.isInteger(depth) || depth < 0)
      throw new InspectorQueryError(
        "depth",
        `must be a non-negative integer; got ${String(depth)}.`,
      );
    pageSize(limit);
    const byId = this.#store.eventsById;
    const start = byId.get(id);
    if (!start) return undefined;
    const causes: StoredEvent[] = [];
    const seen = new Set([id]);
    for (
      let cause = start.envelope.causationid;
      cause !== undefined && !seen.has(cause);
      cause = byId.get(cause)?.envelope.causationid
    ) {
      const e = byId.get(cause);
      if (!e) break;
      seen.add(cause);
      causes.unshift(storedEvent(e));
    }
    const children = new Map<string, StoredMemoryEvent[]>();
    for (const e of this.#store.events) {
      const parent = e.envelope.causationid;
      if (parent === undefined) continue;
      const list = children.get(parent);
      if (list) list.push(e);
      else children.set(parent, [e]);
    }
    let count = 1;
    let truncated = false;
    const inTree = new Set([id]);
    const grow = (e: StoredMemoryEvent, level: number): CausationNode => {
      const caused: CausationNode[] = [];
      for (const child of children.get(e.envelope.id) ?? []) {
        if (inTree.has(child.envelope.id)) continue;
        if (level >= depth || count >= limit) {
          truncated = true;
          break;
        }
        inTree.add(child.envelope.id);
        count++;
        caused.push(grow(child, level + 1));
      }
      return { event: storedEvent(e), caused };
    };
    const root = grow(start, 0);
    return { causes, root, truncated };
  }

  async counts(query: CountQuery & { readonly signal?: AbortSignal }): Promise<EventCounts> {
    this.#open(query.signal);
    const since = timeInputMs(query.since, "since");
    const until = query.until !== undefined ? timeInputMs(query.until, "until") : Date.now();
    const bucketMs = query.bucketMs ?? 60_000;
    if (!Number.isInteger(bucketMs) || bucketMs < 1)
      throw new InspectorQueryError(
        "bucketMs",
        `must be a positive integer; got ${String(bucketMs)}.`,
      );
    const n = Math.max(0, Math.ceil((until - since) / bucketMs));
    checkCountBuckets(n, bucketMs);
    const types = query.types ? new Set(query.types) : undefined;
    const buckets = Array.from({ length: n }, (_, i) => {
      const counts: Record<string, number> = {};
      return { start: iso(since + i * bucketMs), counts };
    });
    const totals: Record<string, number> = {};
    for (const e of this.#store.events) {
      if (e.storedAt < since || e.storedAt >= until) continue;
      const type = e.envelope.type;
      if (types && !types.has(type)) continue;
      const bucket = buckets[Math.floor((e.storedAt - since) / bucketMs)]!;
      bucket.counts[type] = (bucket.counts[type] ?? 0) + 1;
      totals[type] = (totals[type] ?? 0) + 1;
    }
    return { bucketMs, buckets, totals };
  }

  async heartbeats(options: { readonly signal?: AbortSignal } = {}): Promise<HeartbeatInfo[]> {
    this.#open(options.signal);
    const now = Date.now();
    return [...this.#store.heartbeats.values()]
      .map((beat) => ({
        ...structuredClone(beat),
        ageMs: Math.max(0, now - Date.parse(beat.at)),
      }))
      .sort((a, b) => a.daemon.localeCompare(b.daemon));
  }

  async deadLetters(
    query: DeadLetterListQuery & { readonly signal?: AbortSignal } = {},
  ): Promise<DeadLetterPage> {
    this.#open(query.signal);
    const limit = pageSize(query.limit);
    const after = deadLetterCursor(query.cursor);
    const all = [...this.#store.deadLetterEntries.values()]
      .filter((e) => matches(e, query))
      .sort(newestFirst);
    // Keyset paging (last failure, id) rather than an offset: records written while someone
    // pages are neither repeated nor skipped.
    const start = after
      ? all.findIndex(
          (e) =>
            Date.parse(e.record.failedAt) < after.at ||
            (Date.parse(e.record.failedAt) === after.at && Number(e.id) < after.id),
        )
      : 0;
    const page = start < 0 ? [] : all.slice(start, start + limit);
    const last = page[page.length - 1];
    return {
      deadLetters: page.map(deadLetterInfo),
      ...(last && start + limit < all.length
        ? { next: `${Date.parse(last.record.failedAt)}.${last.id}` }
        : {}),
    };
  }

  async deadLetter(
    id: string,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<DeadLetterInfo | undefined> {
    this.#open(options.signal);
    const entry = this.#store.deadLetterEntries.get(id);
    return entry && deadLetterInfo(entry);
  }

  async deadLetterCounts(
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<DeadLetterCounts> {
    this.#open(options.signal);
    const now = Date.now();
    const byStatus: Partial<Record<DeadLetterStatus, number>> = {};
    const byReason: Record<string, number> = {};
    const byType: Record<string, number> = {};
    const bySubscriber: Record<string, number> = {};
    let depth = 0;
    let oldest = Infinity;
    for (const entry of this.#store.deadLetterEntries.values()) {
      byStatus[entry.status] = (byStatus[entry.status] ?? 0) + 1;
      if (entry.status === "replayed" || entry.status === "purged") continue;
      const { record } = entry;
      depth++;
      byReason[record.reason] = (byReason[record.reason] ?? 0) + 1;
      byType[record.envelope.type] = (byType[record.envelope.type] ?? 0) + 1;
      bySubscriber[record.subscriber] = (bySubscriber[record.subscriber] ?? 0) + 1;
      oldest = Math.min(oldest, Date.parse(entry.firstFailedAt));
    }
    return {
      depth,
      byStatus,
      byReason,
      byType,
      bySubscriber,
      ...(oldest !== Infinity ? { oldestAgeMs: Math.max(0, now - oldest) } : {}),
    };
  }

  /** Idempotent; later reads reject with `TransportClosedError`. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The {@link Admin} of a {@link MemoryStore}: replay and purge of dead letters. `clearPending`,
 * `backup` and `audit` reject with `UnsupportedOperationError` (see {@link memoryCapabilities}).
 */
export class MemoryAdmin implements Admin {
  readonly #store: MemoryStore;
  readonly #readOnly: boolean;

  constructor(store: MemoryStore, options: { readonly readOnly?: boolean } = {}) {
    this.#store = store;
    this.#readOnly = options.readOnly ?? false;
  }

  #writable(operation: string, signal: AbortSignal | undefined): void {
    signal?.throwIfAborted();
    if (this.#readOnly)
      throw new UnsupportedOperationError("memory", `${operation} (opened read-only)`, {
        hint: "Open the driver without readOnly to change anything.",
      });
  }

  async replay(filter: DeadLetterFilter, options: ReplayOptions = {}): Promise<ReplayResult> {
    const dryRun = options.dryRun ?? false;
    if (!dryRun) this.#writable("replay dead letters", options.signal);
    const entries = [...this.#store.deadLetterEntries.values()]
      .filter((e) => matches(e, filter))
      .sort((a, b) => Number(a.id) - Number(b.id));
    const replayed: string[] = [];
    const wouldReplay: string[] = [];
    const skipped: { id: string; reason: string }[] = [];
    const failed: { id: string; error: string }[] = [];
    for (const entry of entries) {
      // A memory record shows its envelope until purged (as its DeadLetterInfo) and is never
      // held by a replayer's claim (a replay here is synchronous).
      const why = replaySkipReason(
        { status: entry.status, hasEnvelope: entry.status !== "purged", claimLive: false },
        { again: options.again === true },
      );
      if (why !== undefined) {
        skipped.push({ id: entry.id, reason: why });
        continue;
      }
      if (dryRun) {
        wouldReplay.push(entry.id);
        continue;
      }
      try {
        this.#store.requeue(entry.record.subscriber, entry.record.envelope, "replayed");
      } catch (error) {
        failed.push({
          id: entry.id,
          error: error instanceof Error ? error.message : String(error),
        });
        continue;
      }
      entry.status = "replayed";
      entry.replays++;
      entry.replayedAt = new Date().toISOString();
      replayed.push(entry.id);
    }
    return { dryRun, matched: entries.length, replayed, skipped, failed, wouldReplay };
  }

  async purge(filter: DeadLetterFilter, options: PurgeOptions = {}): Promise<ActionResult> {
    const dryRun = options.dryRun ?? false;
    if (!dryRun) this.#writable("purge dead letters", options.signal);
    const bounded = Object.values(filter).some((v) => v !== undefined);
    if (!bounded && !options.all) throw new UnboundedPurgeError();
    const hit = [...this.#store.deadLetterEntries.values()].filter(
      (e) => (options.hard || e.status !== "purged") && matches(e, filter),
    );
    if (!dryRun) {
      for (const entry of hit) {
        if (options.hard) this.#store.deadLetterEntries.delete(entry.id);
        else entry.status = "purged";
      }
    }
    return { dryRun, count: hit.length };
  }

  async clearPending(): Promise<ActionResult> {
    throw new UnsupportedOperationError("memory", "clear pending deliveries", {
      hint: "Close the subscriptions, or open a new store (another memory:<name>), instead.",
    });
  }

  async backup(): Promise<string> {
    throw new UnsupportedOperationError("memory", "take a backup", {
      hint: "It keeps nothing on disk: nothing survives the process to back up.",
    });
  }

  async audit(): Promise<AuditReport> {
    throw new UnsupportedOperationError("memory", "audit ack floors", {
      hint: "Each delivery is tracked on its own: there is no ack floor that could pass an event.",
    });
  }
}
