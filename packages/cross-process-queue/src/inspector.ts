import type Database from "better-sqlite3";
import type {
  Capabilities,
  CausationTree,
  CountQuery,
  DeadLetterCounts,
  DeadLetterFilter,
  DeadLetterInfo,
  DeadLetterListQuery,
  DeadLetterPage,
  DeadLetterStatus,
  DeliveryInfo,
  DeliveryStep,
  DeliveryStepKind,
  EventCounts,
  EventPage,
  EventQuery,
  HeartbeatInfo,
  Inspector,
  StoredEvent,
  SubscriberBacklog,
} from "@switchyard/transport";
import {
  TransportClosedError,
  abortReason,
  checkCountBuckets,
  isDaemonContracts,
  timeInputMs,
} from "@switchyard/transport";
import { type EventRow, decodeRow } from "./claim";
import { type DeadLetter, type DeadLetterRow, toDeadLetter } from "./dead-letters";
import { BACKLOG_SQL, type BacklogRow } from "./backlog";
import { InspectorQueryError } from "./errors";
import {
  type DeliveryInfo as RowDelivery,
  lastSeqBefore,
  listSubscribers,
  traceEvent,
} from "./introspect";
import type { Snapshot } from "./read-only";

/**
 * What the SQLite driver's inspector and admin can do: everything but `audit` (no ack floor:
 * each delivery is a row of its own). `history`: each delivery comes
 * with its timeline — the steps off the happy path stored in `delivery_steps` (schema version 4),
 * plus `claimed`/`acked` read from the delivery row where it still has them. A file older than
 * version 4 opened read-only has no such table: its deliveries come with an empty timeline, or
 * only those row-derived steps.
 */
export const SQLITE_CAPABILITIES: Capabilities = Object.freeze({
  deliveries: true,
  history: true,
  heartbeats: true,
  deadLetters: true,
  replay: true,
  purge: true,
  clearPending: true,
  backup: true,
  audit: false,
  expiredLeases: "retrying",
});

/** Options of {@link SqliteInspector}. */
export interface SqliteInspectorOptions {
  /** The file, for messages. @defaultValue the connection's name */
  readonly path?: string;
  /** Set when the connection reads a copy of the file (see `openQueueFileReadOnly`). */
  readonly snapshot?: Snapshot;
  /** Called once by `close()` (e.g. to close the connection it reads). @defaultValue nothing */
  readonly onClose?: () => void;
  /** Clock, for tests. @defaultValue Date.now */
  readonly now?: () => number;
}

/** Totals of a queue file, for `switchyard stats` (SQLite only; not part of the `Inspector` contract). */
export interface QueueTotals {
  /** Events stored. */
  readonly events: number;
  readonly lastSeq: number;
  /** Oldest and newest stored event (RFC 3339). */
  readonly oldestAt?: string;
  readonly newestAt?: string;
  /** Events stored, per type. */
  readonly byType: Readonly<Record<string, number>>;
  /** Delivery rows by status (`pending`, `leased`, `acked`, `dead`). */
  readonly deliveriesByStatus: Readonly<Record<string, number>>;
  /** Dead deliveries no dead-letter sink holds: the queue's row is their only copy. */
  readonly deadKept: number;
}

const DEPTH_STATUSES: readonly DeadLetterStatus[] = [
  "pending_retry",
  "retrying",
  "permanently_failed",
];

/** Seqs one statement of a filtered scan covers (see `SqliteInspector.#scan`). */
const SCAN_WINDOW = 5_000;

const EVENT_COLUMNS = `seq, created_at, id, type, source, subject, time, dataversion, payload, extensions`;
const EVENT_COLUMN_COUNT = 10;
type Raw = [seq: number, createdAt: number, ...row: EventRow];

const iso = (at: number): string => new Date(at).toISOString();

function positive(
  option: string,
  value: number | undefined,
  fallback: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1 || value > max)
    throw new InspectorQueryError(
      option,
      `expected a whole number from 1 to ${max}, got ${value}.`,
    );
  return value;
}

function toStored(raw: Raw): StoredEvent {
  const [seq, createdAt] = raw;
  const decoded = decodeRow(raw, 2, seq);
  const e = decoded.envelope;
  const causedBy = decoded.error ? undefined : e.causationid;
  return {
    seq,
    id: e.id,
    type: e.type,
    source: e.source,
    ...(e.subject !== undefined ? { subject: e.subject } : {}),
    time: e.time,
    storedAt: iso(createdAt),
    ...(decoded.error ? { damaged: decoded.error.message } : { envelope: e }),
    ...(causedBy !== undefined ? { causedBy } : {}),
  };
}

/** A `delivery_steps` row. */
interface StepRecord {
  subscriber: string;
  n: number;
  at: number;
  kind: string;
  attempt: number | null;
  error: string | null;
  delay_ms: number | null;
  reason: string | null;
  actor: string | null;
  detail: string | null;
}

/** One delivery's stored timeline. */
interface StoredSteps {
  readonly steps: DeliveryStep[];
  /** The oldest kept step is not the first: the bound dropped some. */
  readonly truncated: boolean;
}

function toStep(row: StepRecord): DeliveryStep {
  let error: DeliveryStep["error"];
  if (row.error !== null) {
    try {
      error = JSON.parse(row.error) as DeliveryStep["error"];
    } catch {
      // Text another program wrote: keep it readable rather than drop the step.
      error = { name: "Error", message: row.error };
    }
  }
  return {
    at: new Date(row.at).toISOString(),
    kind: row.kind as DeliveryStepKind,
    ...(row.attempt !== null ? { attempt: row.attempt } : {}),
    ...(error !== undefined ? { error } : {}),
    ...(row.delay_ms !== null ? { delayMs: row.delay_ms } : {}),
    ...(row.reason !== null ? { reason: row.reason as DeliveryStep["reason"] } : {}),
    ...(row.actor !== null ? { by: row.actor } : {}),
    ...(row.detail !== null ? { detail: row.detail } : {}),
  };
}

/**
 * The delivery with its timeline: the stored steps, then what the delivery row itself says and
 * no step holds yet — a first claim and its ack write no step (the happy path costs no write), so
 * an attempt in flight gets a `claimed` step at the row's `updated_at` (the claim, or its last
 * lease extension) and a kept acked row (`keepAcked`) an `acked` one. A row deleted by its ack
 * (the default) leaves no time for it: that `acked` step is absent unless the delivery was off the
 * happy path, when its ack was stored.
 */
function withHistory(
  info: DeliveryInfo,
  row: RowDelivery,
  stored: StoredSteps | undefined,
): DeliveryInfo {
  const history = stored ? [...stored.steps] : [];
  // The latest step that changed the delivery (a fenced step changed nothing).
  const last = history.findLast((s) => s.kind !== "fenced");
  if (!row.fromCursor) {
    if (info.state === "in_flight" && !(last?.kind === "claimed" && last.attempt === row.attempts))
      history.push({
        at: row.updatedAt,
        kind: "claimed",
        attempt: row.attempts,
        detail: "from the delivery row: the claim or its last lease extension",
      });
    else if (info.state === "acked" && last?.kind !== "acked")
      history.push({
        at: row.updatedAt,
        kind: "acked",
        attempt: row.attempts,
        detail: "from the delivery row",
      });
  }
  return { ...info, history, ...(stored?.truncated ? { historyTruncated: true } : {}) };
}

function toDeliveryInfo(d: RowDelivery, now: number): DeliveryInfo {
  const leaseUntil = d.leaseUntil === undefined ? undefined : Date.parse(d.leaseUntil);
  const state: DeliveryInfo["state"] =
    d.status === "acked"
      ? "acked"
      : d.status === "dead"
        ? "dead"
        : d.status === "leased"
          ? leaseUntil !== undefined && leaseUntil > now
            ? "in_flight"
            : "retrying"
          : d.attempts > 0
            ? "retrying"
            : "pending";
  return {
    subscriber: d.subscriber,
    state,
    attempts: d.attempts,
    ...(d.lastError ? { lastError: d.lastError } : {}),
    ...(state === "dead" && d.deadReason ? { deadReason: d.deadReason } : {}),
    ...(state === "in_flight" && d.leaseUntil ? { leaseUntil: d.leaseUntil } : {}),
    ...(state === "retrying" ? { availableAt: d.availableAt } : {}),
    ...(d.fromCursor ? {} : { updatedAt: d.updatedAt }),
    ...(d.damaged !== undefined ? { damaged: d.damaged } : {}),
  };
}

/** A {@link DeadLetter} of the store as the contract's {@link DeadLetterInfo} (ids as strings). */
export function deadLetterInfo(record: DeadLetter): DeadLetterInfo {
  return {
    id: String(record.id),
    eventId: record.eventId,
    eventType: record.eventType,
    subscriber: record.subscriber,
    origin: record.origin,
    reason: record.reason,
    status: record.status,
    error: record.error,
    attempts: record.attempts,
    replays: record.replays,
    firstFailedAt: record.firstFailedAt,
    lastFailedAt: record.lastFailedAt,
    ...(record.replayedAt !== undefined ? { replayedAt: record.replayedAt } : {}),
    ...(record.nextRetryAt !== undefined ? { nextRetryAt: iso(record.nextRetryAt) } : {}),
    ...(record.envelope !== undefined ? { envelope: record.envelope } : {}),
    ...(record.damaged !== undefined ? { damaged: record.damaged } : {}),
  };
}

/**
 * The `WHERE` of a dead-letter filter over `dead_letters`, with its parameters. Ids that are not
 * whole numbers match nothing (ids are strings in the contract, integers here).
 */
export function deadLetterWhere(filter: DeadLetterFilter): {
  where: string;
  params: Record<string, unknown>;
} {
  const clauses: string[] = [];
  const params: Record<string, unknown> = {};
  if (filter.id !== undefined) {
    clauses.push("id = @id");
    params.id = /^\d+$/.test(filter.id) ? Number(filter.id) : -1;
  }
  if (filter.eventId !== undefined) {
    clauses.push("event_id = @eventId");
    params.eventId = filter.eventId;
  }
  if (filter.type !== undefined) {
    clauses.push("event_type = @type");
    params.type = filter.type;
  }
  if (filter.subscriber !== undefined) {
    clauses.push("subscriber = @subscriber");
    params.subscriber = filter.subscriber;
  }
  if (filter.reason !== undefined) {
    clauses.push("reason = @reason");
    params.reason = filter.reason;
  }
  if (filter.status !== undefined) {
    clauses.push("status IN (SELECT value FROM json_each(@statuses))");
    params.statuses = JSON.stringify(
      typeof filter.status === "string" ? [filter.status] : filter.status,
    );
  }
  if (filter.since !== undefined) {
    clauses.push("last_failed_at >= @since");
    params.since = iso(timeInputMs(filter.since, "since"));
  }
  if (filter.before !== undefined) {
    clauses.push("last_failed_at < @before");
    params.before = iso(timeInputMs(filter.before, "before"));
  }
  return { where: clauses.length ? clauses.join(" AND ") : "1", params };
}

/**
 * The read side of a SQLite queue file: the `Inspector` of `@switchyard/transport` over one
 * better-sqlite3 connection (read-only from {@link sqliteDriver}). Every answer is a few short
 * indexed queries, each bounded by a `LIMIT`, so a read never holds the file for long; a damaged
 * row comes back with `damaged`, never as a throw.
 *
 * @example
 * ```ts
 * // not runnable
 * await using driver = await sqliteDriver.open(parseTarget("data/coordination/coordination.db"), { readOnly: true });
 * for (const s of await driver.inspector().subscribers()) console.log(s.subscriber, s.lag);
 * ```
 */
export class SqliteInspector implements Inspector {
  readonly transport = "sqlite";
  readonly capabilities: Capabilities = SQLITE_CAPABILITIES;
  /** The queue file. */
  readonly path: string;
  /** Set when this inspector reads a copy of the file taken at open (its directory was not writable, or no process had it open). */
  readonly snapshot: Snapshot | undefined;
  readonly #db: Database.Database;
  readonly #now: () => number;
  readonly #onClose: (() => void) | undefined;
  readonly #statements = new Map<string, Database.Statement>();
  #closed: Promise<void> | undefined;
  #columns:
    { heartbeatRestarts: boolean; heartbeatContracts: boolean; deadLetters: boolean } | undefined;

  constructor(db: Database.Database, options: SqliteInspectorOptions = {}) {
    this.#db = db;
    this.path = options.path ?? db.name;
    this.snapshot = options.snapshot;
    this.#now = options.now ?? Date.now;
    this.#onClose = options.onClose;
  }

  #statement(sql: string): Database.Statement {
    let stmt = this.#statements.get(sql);
    if (!stmt) this.#statements.set(sql, (stmt = this.#db.prepare(sql)));
    return stmt;
  }

  /** Run one read, after checking that the inspector is open and the caller has not given up. */
  async #read<T>(signal: AbortSignal | undefined, fn: () => T): Promise<T> {
    if (this.#closed) throw new TransportClosedError(`sqlite inspector of ${this.path}`);
    if (signal?.aborted) throw abortReason(signal);
    return fn();
  }

  /** Which optional parts the file has (an older schema is read as it is; the dead-letter table appears on first use). */
  #shape(): { heartbeatRestarts: boolean; heartbeatContracts: boolean; deadLetters: boolean } {
    const columns = this.#statement(`SELECT name FROM pragma_table_info('daemon_heartbeats')`)
      .pluck()
      .all() as string[];
    const deadLetters =
      this.#statement(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dead_letters'`)
        .pluck()
        .get() === 1;
    // Once the dead-letter table exists it stays; until then, look again next time.
    const shape = {
      heartbeatRestarts: columns.includes("restarts"),
      heartbeatContracts: columns.includes("contracts"),
      deadLetters,
    };
    if (deadLetters) this.#columns = shape;
    return shape;
  }

  #has(): { heartbeatRestarts: boolean; heartbeatContracts: boolean; deadLetters: boolean } {
    return this.#columns ?? this.#shape();
  }

  subscribers(options: { readonly signal?: AbortSignal } = {}): Promise<SubscriberBacklog[]> {
    return this.#read(options.signal, () => {
      const now = this.#now();
      const registered = new Map(listSubscribers(this.#db).map((s) => [s.name, s]));
      const rows = this.#statement(BACKLOG_SQL).all({ now }) as BacklogRow[];
      return rows.map((r) => {
        const info = registered.get(r.subscriber);
        const oldest = [r.oldest_open_at, r.oldest_queued_at].filter((t) => t !== null);
        return {
          subscriber: r.subscriber,
          types: info?.types ?? [],
          ephemeral: info?.ephemeral ?? false,
          pending: r.pending,
          inFlight: r.in_flight,
          retrying: r.retrying,
          dead: r.dead,
          lag: r.pending + r.in_flight + r.retrying,
          ...(oldest.length > 0 ? { oldestPendingMs: Math.max(0, now - Math.min(...oldest)) } : {}),
          ...(info ? { lastSeen: info.lastSeen } : {}),
          ...(info?.damaged !== undefined ? { damaged: info.damaged } : {}),
        };
      });
    });
  }

  async events(query: EventQuery & { readonly signal?: AbortSignal } = {}): Promise<EventPage> {
    const limit = positive("limit", query.limit, 100, 10_000);
    const newest = (query.order ?? "newest") === "newest";
    let cursor: number | undefined;
    if (query.cursor !== undefined) {
      if (!/^\d+$/.test(query.cursor))
        throw new InspectorQueryError(
          "cursor",
          `${JSON.stringify(query.cursor)} is not a cursor of this inspector; pass the \`next\` of the previous page.`,
        );
      cursor = Number(query.cursor);
    }
    const since = query.since === undefined ? undefined : timeInputMs(query.since, "since");
    const until = query.until === undefined ? undefined : timeInputMs(query.until, "until");
    // created_at grows with seq: the time window becomes a seq range (binary search on the key).
    const [low, high] = await this.#read(query.signal, () => [
      (since === undefined ? 0 : lastSeqBefore(this.#db, since)) + 1,
      until === undefined ? this.#maxSeq() : lastSeqBefore(this.#db, until),
    ]);
    const from = newest
      ? Math.min(high, (cursor ?? Infinity) - 1)
      : Math.max(low, (cursor ?? 0) + 1);
    const rows = await this.#scan(
      query.signal,
      `SELECT ${EVENT_COLUMNS} FROM events
        WHERE seq BETWEEN @lo AND @hi
          AND (@types IS NULL OR type IN (SELECT value FROM json_each(@types)))
          AND (@subject IS NULL OR subject = @subject)
        ORDER BY seq ${newest ? "DESC" : "ASC"} LIMIT @limit`,
      {
        types: query.types === undefined ? null : JSON.stringify(query.types),
        subject: query.subject ?? null,
      },
      newest ? { lo: low, hi: from, descending: true } : { lo: from, hi: high, descending: false },
      limit + 1,
    );
    const more = rows.length > limit;
    const events = rows.slice(0, limit).map(toStored);
    return { events, ...(more ? { next: String(events.at(-1)!.seq) } : {}) };
  }

  #maxSeq(): number {
    return this.#statement(`SELECT COALESCE(MAX(seq), 0) FROM events`).pluck().get() as number;
  }

  /**
   * Run a filtered read over `events` window by window of {@link SCAN_WINDOW} seqs (a filter on a
   * column without an index would otherwise read the whole table in one statement), yielding to
   * the event loop between windows, until `want` rows are found or the range ends.
   */
  async #scan(
    signal: AbortSignal | undefined,
    sql: string,
    params: Record<string, unknown>,
    range: { readonly lo: number; readonly hi: number; readonly descending: boolean },
    want: number,
  ): Promise<Raw[]> {
    const statement = this.#statement(sql).raw();
    const found: Raw[] = [];
    for (
      let edge = range.descending ? range.hi : range.lo;
      found.length < want && (range.descending ? edge >= range.lo : edge <= range.hi);
      edge += range.descending ? -SCAN_WINDOW : SCAN_WINDOW
    ) {
      const lo = range.descending ? Math.max(range.lo, edge - SCAN_WINDOW + 1) : edge;
      const hi = range.descending ? edge : Math.min(range.hi, edge + SCAN_WINDOW - 1);
      if (found.length > 0 || edge !== (range.descending ? range.hi : range.lo))
        await new Promise<void>((resolve) => setImmediate(resolve));
      const rows = await this.#read(
        signal,
        () => statement.all({ ...params, lo, hi, limit: want - found.length }) as Raw[],
      );
      found.push(...rows);
    }
    return found;
  }

  #event(id: string): StoredEvent | undefined {
    const row = this.#statement(`SELECT ${EVENT_COLUMNS} FROM events WHERE id = ?`)
      .raw()
      .get(id) as Raw | undefined;
    return row ? toStored(row) : undefined;
  }

  event(
    id: string,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<StoredEvent | undefined> {
    return this.#read(options.signal, () => this.#event(id));
  }

  deliveries(id: string, options: { readonly signal?: AbortSignal } = {}): Promise<DeliveryInfo[]> {
    return this.#read(options.signal, () => {
      const now = this.#now();
      const trace = traceEvent(this.#db, id);
      if (!trace) return [];
      const steps = this.#steps(trace.event.seq);
      return trace.deliveries.map((d) =>
        withHistory(toDeliveryInfo(d, now), d, steps.get(d.subscriber)),
      );
    });
  }

  /** The stored steps of every delivery of the event at `seq`, by subscriber, oldest first. */
  #steps(seq: number): Map<string, StoredSteps> {
    const out = new Map<string, StoredSteps>();
    const table = this.#statement(
      `SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'delivery_steps'`,
    ).get();
    // A file older than schema version 4, read as it is: nothing was recorded.
    if (table === undefined) return out;
    const rows = this.#statement(
      `SELECT subscriber, n, at, kind, attempt, error, delay_ms, reason, actor, detail
         FROM delivery_steps WHERE event_seq = ? ORDER BY subscriber, n`,
    ).all(seq) as StepRecord[];
    for (const row of rows) {
      let entry = out.get(row.subscriber);
      if (!entry) out.set(row.subscriber, (entry = { steps: [], truncated: row.n > 1 }));
      entry.steps.push(toStep(row));
    }
    return out;
  }

  async causation(
    id: string,
    options: {
      readonly depth?: number;
      readonly limit?: number;
      readonly signal?: AbortSignal;
    } = {},
  ): Promise<CausationTree | undefined> {
    const depth = options.depth ?? 10;
    const limit = positive("limit", options.limit, 1000, 100_000);
    if (!Number.isSafeInteger(depth) || depth < 0)
      throw new InspectorQueryError("depth", `expected a whole number ≥ 0, got ${depth}.`);
    const event = await this.event(id, options);
    if (!event) return undefined;
    // Causes, newest first while walking up; a cycle (hand-edited rows) stops the walk.
    const causes: StoredEvent[] = [];
    const seen = new Set([event.id]);
    for (let at = event.causedBy; at !== undefined && !seen.has(at) && causes.length < limit;) {
      seen.add(at);
      const cause = await this.event(at, options);
      if (!cause) break;
      causes.unshift(cause);
      at = cause.causedBy;
    }
    // Effects level by level: one windowed scan per level finds the children of all its events.
    type Node = { event: StoredEvent; caused: Node[] };
    const root: Node = { event, caused: [] };
    const sql = `SELECT ${EVENT_COLUMNS}, json_extract(extensions, '$.causationid') FROM events
        WHERE seq BETWEEN @lo AND @hi AND extensions IS NOT NULL
          AND CASE WHEN json_valid(extensions) THEN json_extract(extensions, '$.causationid') END
              IN (SELECT value FROM json_each(@ids))
        ORDER BY seq LIMIT @limit`;
    const high = await this.#read(options.signal, () => this.#maxSeq());
    const childrenOf = (level: Node[], want: number) =>
      this.#scan(
        options.signal,
        sql,
        { ids: JSON.stringify(level.map((n) => n.event.id)) },
        { lo: Math.min(...level.map((n) => n.event.seq)) + 1, hi: high, descending: false },
        want,
      );
    let count = 1;
    let truncated = false;
    let level = [root];
    for (let at = 0; level.length > 0; at++) {
      if (at >= depth) {
        // One probe tells whether the cut hid anything.
        truncated = (await childrenOf(level, 1)).length > 0;
        break;
      }
      const rows = await childrenOf(level, limit - count + 1);
      const byId = new Map(level.map((n) => [n.event.id, n]));
      const next: Node[] = [];
      for (const row of rows) {
        if (count >= limit) {
          truncated = true;
          break;
        }
        const child: Node = { event: toStored(row), caused: [] };
        // The cause as the query matched it: a damaged row (no envelope, no causedBy) keeps its place.
        const parent = byId.get((row as unknown[])[EVENT_COLUMN_COUNT] as string);
        if (!parent) continue;
        parent.caused.push(child);
        next.push(child);
        count++;
      }
      if (truncated) break;
      level = next;
    }
    return { causes, root, truncated };
  }

  counts(query: CountQuery & { readonly signal?: AbortSignal }): Promise<EventCounts> {
    return this.#read(query.signal, () => {
      const since = timeInputMs(query.since, "since");
      const until = query.until === undefined ? this.#now() : timeInputMs(query.until, "until");
      const bucketMs = positive("bucketMs", query.bucketMs, 60_000, Number.MAX_SAFE_INTEGER);
      if (until < since)
        throw new InspectorQueryError("until", `${iso(until)} is before since (${iso(since)}).`);
      const n = Math.max(1, Math.ceil((until - since) / bucketMs));
      checkCountBuckets(n, bucketMs);
      const buckets = Array.from({ length: n }, (_, i) => ({
        start: iso(since + i * bucketMs),
        counts: Object.create(null) as Record<string, number>,
      }));
      const totals: Record<string, number> = {};
      for (const t of query.types ?? []) {
        totals[t] = 0;
        for (const b of buckets) b.counts[t] = 0;
      }
      const rows = this.#statement(
        `SELECT (created_at - @since) / @bucket AS b, type, COUNT(*) AS n FROM events
          WHERE seq > @after AND created_at >= @since AND created_at < @until
            AND (@types IS NULL OR type IN (SELECT value FROM json_each(@types)))
          GROUP BY b, type`,
      ).all({
        after: lastSeqBefore(this.#db, since),
        since,
        until,
        bucket: bucketMs,
        types: query.types === undefined ? null : JSON.stringify(query.types),
      }) as { b: number; type: string; n: number }[];
      for (const r of rows) {
        const bucket = buckets[Math.min(n - 1, Math.floor(r.b))]!;
        bucket.counts[r.type] = (bucket.counts[r.type] ?? 0) + r.n;
        totals[r.type] = (totals[r.type] ?? 0) + r.n;
      }
      return { bucketMs, buckets, totals };
    });
  }

  heartbeats(options: { readonly signal?: AbortSignal } = {}): Promise<HeartbeatInfo[]> {
    return this.#read(options.signal, () => {
      const now = this.#now();
      const restarts = this.#has().heartbeatRestarts ? "restarts" : "0 AS restarts";
      const contracts = this.#has().heartbeatContracts ? "contracts" : "NULL AS contracts";
      const rows = this.#statement(
        `SELECT daemon, pid, host, status, health, stats, ${restarts}, ${contracts}, started_at, updated_at
           FROM daemon_heartbeats ORDER BY daemon`,
      ).all() as {
        daemon: string;
        pid: number;
        host: string;
        status: string;
        health: string | null;
        stats: string | null;
        restarts: number;
        contracts: string | null;
        started_at: number | null;
        updated_at: number;
      }[];
      return rows.map((r) => {
        const problems: string[] = [];
        const json = (text: string | null, column: string): unknown => {
          if (text === null) return null;
          try {
            return JSON.parse(text) as unknown;
          } catch (error) {
            problems.push(
              `daemon_heartbeats.${column} of ${JSON.stringify(r.daemon)} is not JSON (${(error as Error).message})`,
            );
            return null;
          }
        };
        const health = json(r.health, "health");
        const stats = json(r.stats, "stats");
        const announced = json(r.contracts, "contracts");
        if (announced !== null && !isDaemonContracts(announced))
          problems.push(
            `daemon_heartbeats.contracts of ${JSON.stringify(r.daemon)} is not an announcement of contracts`,
          );
        return {
          daemon: r.daemon,
          pid: r.pid,
          host: r.host,
          status: r.status,
          health,
          stats,
          restarts: r.restarts,
          ...(isDaemonContracts(announced) ? { contracts: announced } : {}),
          startedAt: r.started_at === null ? null : iso(r.started_at),
          at: iso(r.updated_at),
          ageMs: Math.max(0, now - r.updated_at),
          ...(problems.length > 0 ? { damaged: problems.join("; ") } : {}),
        };
      });
    });
  }

  deadLetters(
    query: DeadLetterListQuery & { readonly signal?: AbortSignal } = {},
  ): Promise<DeadLetterPage> {
    return this.#read(query.signal, () => {
      const limit = positive("limit", query.limit, 100, 10_000);
      if (!this.#has().deadLetters) return { deadLetters: [] };
      const { where, params } = deadLetterWhere(query);
      let after: [string, number] | undefined;
      if (query.cursor !== undefined) {
        const match = /^(.+)~(\d+)$/.exec(query.cursor);
        if (!match)
          throw new InspectorQueryError(
            "cursor",
            `${JSON.stringify(query.cursor)} is not a cursor of this inspector; pass the \`next\` of the previous page.`,
          );
        after = [match[1]!, Number(match[2])];
      }
      const rows = this.#statement(
        `SELECT * FROM dead_letters WHERE ${where}
            AND (@cursorAt IS NULL OR last_failed_at < @cursorAt OR (last_failed_at = @cursorAt AND id < @cursorId))
          ORDER BY last_failed_at DESC, id DESC LIMIT @limit`,
      ).all({
        ...params,
        cursorAt: after?.[0] ?? null,
        cursorId: after?.[1] ?? null,
        limit: limit + 1,
      }) as DeadLetterRow[];
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        deadLetters: page.map((r) => deadLetterInfo(toDeadLetter(r))),
        ...(rows.length > limit && last ? { next: `${last.last_failed_at}~${last.id}` } : {}),
      };
    });
  }

  deadLetter(
    id: string,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<DeadLetterInfo | undefined> {
    return this.#read(options.signal, () => {
      if (!this.#has().deadLetters || !/^\d+$/.test(id)) return undefined;
      const row = this.#statement(`SELECT * FROM dead_letters WHERE id = ?`).get(Number(id)) as
        DeadLetterRow | undefined;
      return row ? deadLetterInfo(toDeadLetter(row)) : undefined;
    });
  }

  deadLetterCounts(options: { readonly signal?: AbortSignal } = {}): Promise<DeadLetterCounts> {
    return this.#read(options.signal, () => {
      if (!this.#has().deadLetters)
        return { depth: 0, byStatus: {}, byReason: {}, byType: {}, bySubscriber: {} };
      const depthFilter = `status IN (SELECT value FROM json_each('${JSON.stringify(DEPTH_STATUSES)}'))`;
      const group = (column: string, where = depthFilter) =>
        Object.fromEntries(
          (
            this.#statement(
              `SELECT ${column} AS k, COUNT(*) AS n FROM dead_letters WHERE ${where} GROUP BY ${column} ORDER BY n DESC, k`,
            ).all() as { k: string; n: number }[]
          ).map((r) => [r.k, r.n]),
        );
      const byStatus = group("status", "1") as Partial<Record<DeadLetterStatus, number>>;
      const oldest = this.#statement(
        `SELECT MIN(created_at) FROM dead_letters WHERE ${depthFilter}`,
      )
        .pluck()
        .get() as number | null;
      return {
        depth: DEPTH_STATUSES.reduce((sum, s) => sum + (byStatus[s] ?? 0), 0),
        byStatus,
        byReason: group("reason"),
        byType: group("event_type"),
        bySubscriber: group("subscriber"),
        ...(oldest !== null ? { oldestAgeMs: Math.max(0, this.#now() - oldest) } : {}),
      };
    });
  }

  /** Totals of the file (SQLite only): events by type, delivery rows by status, dead rows kept. */
  totals(options: { readonly signal?: AbortSignal } = {}): Promise<QueueTotals> {
    return this.#read(options.signal, () => {
      const row = this.#statement(
        `SELECT COUNT(*) AS total, COALESCE(MAX(seq), 0) AS last_seq,
                MIN(created_at) AS oldest_at, MAX(created_at) AS newest_at FROM events`,
      ).get() as {
        total: number;
        last_seq: number;
        oldest_at: number | null;
        newest_at: number | null;
      };
      const pairs = (sql: string) =>
        Object.fromEntries(
          (this.#statement(sql).raw().all() as [string, number][]).map(([k, n]) => [k, n]),
        );
      return {
        events: row.total,
        lastSeq: row.last_seq,
        ...(row.oldest_at !== null ? { oldestAt: iso(row.oldest_at) } : {}),
        ...(row.newest_at !== null ? { newestAt: iso(row.newest_at) } : {}),
        byType: pairs(`SELECT type, COUNT(*) AS n FROM events GROUP BY type ORDER BY n DESC, type`),
        deliveriesByStatus: pairs(`SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status`),
        deadKept: this.#statement(
          `SELECT COUNT(*) FROM deliveries WHERE status = 'dead' AND handed_off = 0`,
        )
          .pluck()
          .get() as number,
      };
    });
  }

  /**
   * Where the file's complete record of events begins (SQLite only): the first event after the
   * last gap in `seq` (retention removed what came before), or `undefined` when none was removed.
   */
  completeSince(
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<{ readonly seq: number; readonly at: string } | undefined> {
    return this.#read(options.signal, () => {
      const row = this.#statement(
        `SELECT seq, created_at AS at FROM events e
          WHERE NOT EXISTS (SELECT 1 FROM events p WHERE p.seq = e.seq - 1)
          ORDER BY seq DESC LIMIT 1`,
      ).get() as { seq: number; at: number } | undefined;
      return row === undefined || row.seq <= 1 ? undefined : { seq: row.seq, at: iso(row.at) };
    });
  }

  /** Close the connection it reads (when it owns it). Idempotent. */
  close(): Promise<void> {
    return (this.#closed ??= Promise.resolve().then(() => this.#onClose?.()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
