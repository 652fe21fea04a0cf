import type Database from "better-sqlite3";
import type { Envelope } from "@switchyard/event-schema";
import {
  type DeadLetterReason,
  InspectorQueryError,
  type SerializedError,
  timeInputMs,
} from "@switchyard/transport";
import { BACKLOG_SQL, type BacklogRow } from "./backlog";
import { type EventRow, cursorSql, decodeRow } from "./claim";
import { DEFAULT_PATH, openDatabase } from "./database";

/**
 * Read-only questions an operator asks of a queue file (the runbook's monitoring queries as typed
 * functions). Each takes a connection: from {@link openQueueReadOnly} in a CLI, or the
 * transport's own. SQL text is constant; every value is a bound parameter.
 */

const cache = new WeakMap<Database.Database, Map<string, Database.Statement>>();

function statement(db: Database.Database, sql: string): Database.Statement {
  let statements = cache.get(db);
  if (!statements) cache.set(db, (statements = new Map<string, Database.Statement>()));
  let stmt = statements.get(sql);
  if (!stmt) statements.set(sql, (stmt = db.prepare(sql)));
  return stmt;
}

/**
 * Open a queue file read-only, for a CLI or a dashboard, without starting a transport. Checks
 * the schema version (refuses files from a newer version) and never writes.
 *
 * @example
 * ```ts
 * // not runnable
 * const db = openQueueReadOnly("data/coordination/coordination.db");
 * console.log(countPending(db));
 * db.close();
 * ```
 *
 * @deprecated Open the file with `sqliteDriver.open(target, { readOnly: true })` and read it through `driver.inspector()` (the same reads on every transport); `openQueueFileReadOnly` for the raw connection.
 */
export function openQueueReadOnly(
  path: string = DEFAULT_PATH,
  options: { busyTimeoutMs?: number } = {},
): Database.Database {
  return openDatabase(path, { readonly: true, ...options });
}

type Time = Date | number | string;

/** The contract's reading of a time (`InspectorQueryError` naming `what`; NaN was read as a time). */
const ms = (time: Time, what: string): number => timeInputMs(time, what);

/**
 * A row limit (an integer ≥ 1; `fallback` when absent), else `InspectorQueryError` naming it:
 * SQLite refuses a fraction, NaN or Infinity with a bare "datatype mismatch" and reads a
 * negative LIMIT as none.
 */
function limitOf(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1)
    throw new InspectorQueryError(
      "limit",
      `expected a whole number ≥ 1, got ${typeof value === "number" ? value : JSON.stringify(value)}.`,
    );
  return value;
}

/**
 * The window `[since, now]` of {@link WindowOptions}: `windowMs` a number ≥ 0 and `now` a finite
 * number, else `InspectorQueryError` naming the option (NaN answered every query with nothing).
 */
function windowOf(options: WindowOptions, windowMs: number): { since: number; now: number } {
  const now = options.now ?? Date.now();
  if (typeof now !== "number" || !Number.isFinite(now))
    throw new InspectorQueryError("now", `expected epoch milliseconds, got ${String(now)}.`);
  const length = options.windowMs ?? windowMs;
  if (typeof length !== "number" || !(length >= 0 && Number.isFinite(length)))
    throw new InspectorQueryError(
      "windowMs",
      `expected a number of milliseconds ≥ 0, got ${String(length)}.`,
    );
  return { since: now - length, now };
}

const iso = (at: number | null): string | undefined =>
  at === null ? undefined : new Date(at).toISOString();

/**
 * A JSON column of a row another program wrote or someone edited: its value, or why it cannot be
 * read (`damaged`, naming the table, column and row). Never throws, so one bad row does not hide
 * the others: the readers below return it with a `damaged` reason and carry on.
 */
function jsonColumn(
  text: string | null,
  where: string,
): { readonly value: unknown; readonly damaged?: undefined } | { readonly damaged: string } {
  if (text === null) return { value: null };
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (error) {
    // SyntaxError for text that is not JSON; RangeError when V8 gives up on deep nesting.
    return { damaged: `${where} is not JSON (${(error as Error).message})` };
  }
}

/**
 * The largest event `seq` created before `at` (0 when none). Binary search over the primary key:
 * `created_at` grows with `seq`, so no index on `created_at` is needed.
 *
 * @deprecated Use `driver.inspector().events({ until })`, which pages by time on every transport.
 */
export function lastSeqBefore(db: Database.Database, at: Time): number {
  const cutoff = ms(at, "at");
  // Two subqueries, not `MIN(seq), MAX(seq)` in one SELECT: SQLite only reads the ends of the
  // primary key for a lone MIN or MAX; both together scan the whole table.
  const bounds = statement(
    db,
    `SELECT (SELECT MIN(seq) FROM events) AS lo, (SELECT MAX(seq) FROM events) AS hi`,
  ).get() as {
    lo: number | null;
    hi: number | null;
  };
  if (bounds.lo === null || bounds.hi === null) return 0;
  const first = statement(
    db,
    `SELECT seq, created_at FROM events WHERE seq >= ? ORDER BY seq LIMIT 1`,
  );
  const at0 = first.get(bounds.lo) as { seq: number; created_at: number };
  if (at0.created_at >= cutoff) return bounds.lo - 1;
  let lo = bounds.lo; // created before the cutoff
  let hi = bounds.hi + 1; // at or after the cutoff (or past the end)
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    const row = first.get(mid) as { seq: number; created_at: number } | undefined;
    if (!row || row.seq >= hi) hi = mid;
    else if (row.created_at < cutoff) lo = row.seq;
    else hi = row.seq;
  }
  return lo;
}

/**
 * Filter of {@link countPending} and {@link depthByHour}.
 *
 * @deprecated Filter of deprecated functions; `driver.inspector().subscribers()` reports every subscriber.
 */
export interface SubscriberFilter {
  /** Only this subscriber. @defaultValue every subscriber */
  readonly subscriber?: string;
}

/**
 * Matching events after a subscriber's cursor (read as a claim reads it: `cursorSql`): published,
 * not yet taken into its deliveries.
 * Joined from `subscribers s`; yields `e` (the event) and `st` (the subscription type).
 */
const QUEUED = `subscribers s
  JOIN subscriber_types st ON st.subscriber = s.name
  JOIN events e ON e.type = st.type AND e.seq > ${cursorSql("s.cursor_seq")} AND e.seq > st.since_seq`;

/**
 * Deliveries not acked yet (waiting, waiting for a retry, or in flight), including events
 * published but not yet taken by the subscriber's cursor: the seed's `count_pending()`. Dead
 * deliveries are not counted.
 *
 * @deprecated Use `driver.inspector().subscribers()`: each subscriber's `lag` (`pending + inFlight + retrying`).
 */
export function countPending(db: Database.Database, filter: SubscriberFilter = {}): number {
  if (filter.subscriber === undefined) {
    return statement(
      db,
      `SELECT (SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'leased'))
            + (SELECT COUNT(*) FROM ${QUEUED})`,
    )
      .pluck()
      .get() as number;
  }
  return statement(
    db,
    `SELECT (SELECT COUNT(*) FROM deliveries INDEXED BY deliveries_due
            WHERE subscriber = @s AND status IN ('pending', 'leased'))
          + (SELECT COUNT(*) FROM ${QUEUED} WHERE s.name = @s)`,
  )
    .pluck()
    .get({ s: filter.subscriber }) as number;
}

/**
 * Backlog of one subscriber, as {@link subscriberStats} reports it (the one definition: see `SubscriberBacklog` of `@switchyard/transport`).
 *
 * @deprecated Use `SubscriberBacklog` of `@switchyard/transport`, what `driver.inspector().subscribers()` returns.
 */
export interface SubscriberBacklog {
  readonly subscriber: string;
  /** Never attempted, including events after the subscriber's cursor. */
  readonly pending: number;
  /** Leased to a live worker (lease not expired). */
  readonly inFlight: number;
  /** Attempted and waiting: a failure's backoff, or an expired lease. */
  readonly retrying: number;
  /** pending + inFlight + retrying. */
  readonly lag: number;
  /** Deliveries marked dead (kept in the table, or handed to the dead-letter sink and not pruned yet). */
  readonly deadLettered: number;
  /** Age in ms of the oldest pending or retrying delivery's event. */
  readonly oldestPendingMs?: number;
}

/**
 * Pending, in-flight, retrying, dead and lag per registered subscriber, plus the age of the oldest
 * pending or retrying event: the same numbers as `SqliteInspector.subscribers()` and the `backlog` view.
 *
 * @deprecated Use `sqliteDriver` and `driver.inspector().subscribers()`, the same on every transport.
 */
export function subscriberStats(
  db: Database.Database,
  now: number = Date.now(),
): SubscriberBacklog[] {
  const rows = statement(db, BACKLOG_SQL).all({ now }) as BacklogRow[];
  return rows.map((r) => {
    const oldest = minOf(r.oldest_open_at, r.oldest_queued_at);
    return {
      subscriber: r.subscriber,
      pending: r.pending,
      inFlight: r.in_flight,
      retrying: r.retrying,
      lag: r.pending + r.in_flight + r.retrying,
      deadLettered: r.dead,
      ...(oldest !== null ? { oldestPendingMs: Math.max(0, now - oldest) } : {}),
    };
  });
}

function minOf(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

/**
 * Age in ms of the oldest event still waiting for any subscriber, if any.
 *
 * @deprecated Use `oldestPendingMs` of each row of `driver.inspector().subscribers()`.
 */
export function oldestPendingAge(
  db: Database.Database,
  now: number = Date.now(),
): number | undefined {
  const row = statement(
    db,
    `SELECT (SELECT MIN(e.created_at) FROM deliveries d JOIN events e ON e.seq = d.event_seq
              WHERE d.status IN ('pending', 'leased')) AS open_at,
            (SELECT MIN(e.created_at) FROM ${QUEUED}) AS queued_at`,
  ).get() as { open_at: number | null; queued_at: number | null };
  const at = minOf(row.open_at, row.queued_at);
  return at === null ? undefined : Math.max(0, now - at);
}

/**
 * A registered subscriber.
 *
 * @deprecated Use `SubscriberBacklog` of `@switchyard/transport` (`subscriber`, `types`, `ephemeral`), from `driver.inspector().subscribers()`.
 */
export interface SubscriberInfo {
  readonly name: string;
  readonly types: readonly string[];
  /** Removed when its subscription closes (or is abandoned). */
  readonly ephemeral: boolean;
  readonly createdAt: string;
  /** Last sign of life of a process subscribed under this name. */
  readonly lastSeen: string;
  /** Why the row cannot be read as written (its `types` are not a JSON array of strings); `types` is then empty. */
  readonly damaged?: string;
}

const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((item) => typeof item === "string");

/**
 * Every registered subscriber with its event types; a row whose types cannot be read comes back `damaged`.
 *
 * @deprecated Use `driver.inspector().subscribers()`.
 */
export function listSubscribers(db: Database.Database): SubscriberInfo[] {
  const rows = statement(
    db,
    `SELECT name, types, ephemeral, created_at, last_seen FROM subscribers ORDER BY name`,
  ).all() as {
    name: string;
    types: string;
    ephemeral: number;
    created_at: number;
    last_seen: number;
  }[];
  return rows.map((r) => {
    const of = `subscribers.types of ${JSON.stringify(r.name)}`;
    const parsed = jsonColumn(r.types, of);
    const types = parsed.damaged === undefined ? parsed.value : undefined;
    const damaged =
      parsed.damaged ?? (isStringArray(types) ? undefined : `${of} is not a JSON array of strings`);
    return {
      name: r.name,
      types: isStringArray(types) ? types : [],
      ephemeral: r.ephemeral === 1,
      createdAt: iso(r.created_at)!,
      lastSeen: iso(r.last_seen)!,
      ...(damaged !== undefined ? { damaged } : {}),
    };
  });
}

/**
 * Options of the time-window queries.
 *
 * @deprecated Use `CountQuery` of `@switchyard/transport` with `driver.inspector().counts()`.
 */
export interface WindowOptions {
  /** Length of the window ending at `now`: milliseconds ≥ 0, else `InspectorQueryError`. */
  readonly windowMs?: number;
  /** Epoch milliseconds. @defaultValue `Date.now()` */
  readonly now?: number;
}

/**
 * Events published per minute (UTC, `YYYY-MM-DD HH:MM`) over the last hour by default.
 *
 * @deprecated Use `driver.inspector().counts({ since, bucketMs: 60_000 })`.
 */
export function eventsPerMinute(
  db: Database.Database,
  options: WindowOptions = {},
): { minute: string; count: number }[] {
  const { since, now } = windowOf(options, 3_600_000);
  const after = lastSeqBefore(db, since);
  return statement(
    db,
    `SELECT strftime('%Y-%m-%d %H:%M', created_at / 1000, 'unixepoch') AS minute, COUNT(*) AS count
       FROM events WHERE seq > ? AND created_at >= ? AND created_at <= ?
      GROUP BY minute ORDER BY minute`,
  ).all(after, since, now) as { minute: string; count: number }[];
}

/**
 * Failing event types: dead deliveries within the window (last 24 h by default) and deliveries retrying now.
 *
 * @deprecated Use `driver.inspector().deadLetterCounts()` (`byType`) and the `retrying` of `driver.inspector().subscribers()`.
 */
export function failuresByType(
  db: Database.Database,
  options: WindowOptions & { readonly limit?: number } = {},
): { type: string; dead: number; retrying: number }[] {
  const { since } = windowOf(options, 86_400_000);
  const limit = limitOf(options.limit, 10);
  return statement(
    db,
    `SELECT type, SUM(dead) AS dead, SUM(retrying) AS retrying FROM (
         SELECT type, 1 AS dead, 0 AS retrying FROM deliveries WHERE status = 'dead' AND updated_at >= @since
         UNION ALL
         SELECT type, 0, 1 FROM deliveries INDEXED BY deliveries_due
          WHERE status IN ('pending', 'leased') AND last_error IS NOT NULL)
      GROUP BY type ORDER BY dead DESC, retrying DESC, type LIMIT @limit`,
  ).all({ since, limit }) as {
    type: string;
    dead: number;
    retrying: number;
  }[];
}

/**
 * Queue depth over time: deliveries not acked yet, by the hour (UTC) their event was published.
 *
 * @deprecated Use `driver.inspector().subscribers()` for the backlog now and `driver.inspector().counts({ since, bucketMs: 3_600_000 })` for events per hour.
 */
export function depthByHour(
  db: Database.Database,
  filter: SubscriberFilter = {},
): { hour: string; pending: number }[] {
  const all = filter.subscriber === undefined;
  return statement(
    db,
    `SELECT strftime('%Y-%m-%d %H:00', at / 1000, 'unixepoch') AS hour, COUNT(*) AS pending FROM (
         SELECT e.created_at AS at FROM deliveries d INDEXED BY deliveries_due
           JOIN events e ON e.seq = d.event_seq
          WHERE d.status IN ('pending', 'leased') AND (@all OR d.subscriber = @s)
         UNION ALL
         SELECT e.created_at FROM ${QUEUED} WHERE (@all OR s.name = @s))
      GROUP BY hour ORDER BY hour`,
  ).all({ all: all ? 1 : 0, s: filter.subscriber ?? null }) as { hour: string; pending: number }[];
}

/**
 * An event as stored, with its envelope rebuilt.
 *
 * @deprecated Use `StoredEvent` of `@switchyard/transport`, what `driver.inspector().events()` and `event()` return.
 */
export interface StoredEvent {
  /** Publish order in this file. */
  readonly seq: number;
  readonly id: string;
  readonly type: string;
  readonly source: string;
  readonly subject?: string;
  /** The envelope's own `time`. */
  readonly time: string;
  /** When it was stored. */
  readonly createdAt: string;
  /** The envelope rebuilt from the row; `data` is the raw text when {@link payloadError} is set. */
  readonly envelope: Envelope;
  /** Set when the stored JSON cannot be parsed (the row was damaged by hand). */
  readonly payloadError?: string;
}

const EVENT_COLUMNS = `seq, created_at, id, type, source, subject, time, dataversion, payload, extensions`;

type StoredRow = [seq: number, createdAt: number, ...row: EventRow];

function toStored(raw: StoredRow): StoredEvent {
  const [seq, createdAt] = raw;
  const decoded = decodeRow(raw, 2, seq);
  const payloadError = decoded.error?.message;
  const envelope: Envelope = decoded.error
    ? { ...decoded.envelope, data: raw[2 + 6] }
    : decoded.envelope;
  return {
    ...(payloadError !== undefined ? { payloadError } : {}),
    seq,
    id: envelope.id,
    type: envelope.type,
    source: envelope.source,
    ...(envelope.subject !== undefined ? { subject: envelope.subject } : {}),
    time: envelope.time,
    createdAt: iso(createdAt)!,
    envelope,
  };
}

/**
 * Filter of {@link recentEvents}.
 *
 * @deprecated Use `EventQuery` of `@switchyard/transport` with `driver.inspector().events()`.
 */
export interface RecentEventsQuery {
  readonly type?: string;
  /** The envelope `subject` (the config key, e.g. `"hex8_2p"`). */
  readonly subject?: string;
  /** Only events stored at or after this time. */
  readonly since?: Time;
  /** @defaultValue 10 */
  readonly limit?: number;
}

/**
 * The newest events first, optionally of one type / subject / since a time.
 *
 * @deprecated Use `driver.inspector().events({ types, subject, since })`, paged with cursors.
 */
export function recentEvents(db: Database.Database, query: RecentEventsQuery = {}): StoredEvent[] {
  const limit = limitOf(query.limit, 10);
  const after = query.since === undefined ? 0 : lastSeqBefore(db, query.since);
  const rows = statement(
    db,
    `SELECT ${EVENT_COLUMNS} FROM events
      WHERE seq > @after AND (@type IS NULL OR type = @type) AND (@subject IS NULL OR subject = @subject)
        AND created_at >= @since
      ORDER BY seq DESC LIMIT @limit`,
  )
    .raw()
    .all({
      after,
      type: query.type ?? null,
      subject: query.subject ?? null,
      since: query.since === undefined ? 0 : ms(query.since, "since"),
      limit,
    }) as StoredRow[];
  return rows.map(toStored);
}

/**
 * One event by id.
 *
 * @deprecated Use `driver.inspector().event(id)`.
 */
export function getEvent(db: Database.Database, id: string): StoredEvent | undefined {
  const row = statement(db, `SELECT ${EVENT_COLUMNS} FROM events WHERE id = ?`).raw().get(id) as
    StoredRow | undefined;
  return row ? toStored(row) : undefined;
}

/**
 * Delivery state of one event for one subscriber.
 *
 * @deprecated Use `DeliveryInfo` of `@switchyard/transport`, what `driver.inspector().deliveries(id)` returns.
 */
export interface DeliveryInfo {
  readonly subscriber: string;
  readonly eventSeq: number;
  readonly type: string;
  readonly status: "pending" | "leased" | "acked" | "dead";
  readonly attempts: number;
  /** When it can next be claimed (a retry's time, or the end of the current lease). */
  readonly availableAt: string;
  readonly leaseToken?: number;
  readonly leaseUntil?: string;
  readonly lastError?: SerializedError;
  readonly deadReason?: DeadLetterReason;
  /** The dead-letter sink holds it (else, for a dead delivery, this row is the only copy). */
  readonly handedOff: boolean;
  readonly updatedAt: string;
  /**
   * No `deliveries` row exists; the status comes from the subscriber's cursor: `pending` when
   * the event is still ahead of it (a row is created when a worker next claims), `acked` when
   * the cursor passed it and its row was deleted on ack.
   */
  readonly fromCursor?: true;
  /** Why the row cannot be read as written (its `last_error` is not JSON); `lastError` is then absent. */
  readonly damaged?: string;
}

interface DeliveryRow {
  subscriber: string;
  event_seq: number;
  type: string;
  status: DeliveryInfo["status"];
  attempts: number;
  available_at: number;
  lease_token: number | null;
  lease_until: number | null;
  last_error: string | null;
  dead_reason: DeadLetterReason | null;
  handed_off: number;
  updated_at: number;
}

function toDeliveryInfo(r: DeliveryRow): DeliveryInfo {
  const lastError = jsonColumn(
    r.last_error,
    `deliveries.last_error of ${JSON.stringify(r.subscriber)} for seq ${r.event_seq}`,
  );
  return {
    subscriber: r.subscriber,
    eventSeq: r.event_seq,
    type: r.type,
    status: r.status,
    attempts: r.attempts,
    availableAt: iso(r.available_at)!,
    ...(r.lease_token !== null ? { leaseToken: r.lease_token } : {}),
    ...(r.lease_until !== null ? { leaseUntil: iso(r.lease_until)! } : {}),
    ...(lastError.damaged !== undefined
      ? { damaged: lastError.damaged }
      : lastError.value !== null
        ? { lastError: lastError.value as SerializedError }
        : {}),
    ...(r.dead_reason !== null ? { deadReason: r.dead_reason } : {}),
    handedOff: r.handed_off === 1,
    updatedAt: iso(r.updated_at)!,
  };
}

/**
 * One event and its delivery to every subscriber: where did it go, where is it stuck?
 *
 * @deprecated Use `driver.inspector().event(id)` with `driver.inspector().deliveries(id)`.
 */
export interface EventTrace {
  readonly event: StoredEvent;
  readonly deliveries: readonly DeliveryInfo[];
}

/**
 * Trace one event (by id) through every subscriber; `undefined` when no such event is stored. A
 * delivery whose `last_error` cannot be read comes back `damaged`.
 *
 * @deprecated Use `driver.inspector().event(id)` and `driver.inspector().deliveries(id)` (with each delivery's history).
 */
export function traceEvent(db: Database.Database, id: string): EventTrace | undefined {
  const event = getEvent(db, id);
  if (!event) return undefined;
  const rows = statement(
    db,
    `SELECT d.subscriber, d.event_seq, d.type, d.status, d.attempts, d.available_at, d.lease_token,
            d.lease_until, d.last_error, d.dead_reason, d.handed_off, d.updated_at
       FROM subscribers s JOIN deliveries d ON d.subscriber = s.name AND d.event_seq = ?
      ORDER BY d.subscriber`,
  ).all(event.seq) as DeliveryRow[];
  // Subscribers registered for the type when the event was published, without a row for it.
  const inferred = statement(
    db,
    `SELECT s.name, @seq > ${cursorSql("s.cursor_seq")} AS ahead FROM subscribers s
       JOIN subscriber_types st ON st.subscriber = s.name AND st.type = @type
      WHERE @seq > st.since_seq
        AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.subscriber = s.name AND d.event_seq = @seq)`,
  ).all({ type: event.type, seq: event.seq }) as { name: string; ahead: number }[];
  const deliveries: DeliveryInfo[] = rows.map(toDeliveryInfo);
  for (const { name, ahead } of inferred) {
    deliveries.push({
      subscriber: name,
      eventSeq: event.seq,
      type: event.type,
      status: ahead ? "pending" : "acked",
      attempts: 0,
      availableAt: event.createdAt,
      handedOff: false,
      updatedAt: event.createdAt,
      fromCursor: true,
    });
  }
  deliveries.sort((a, b) =>
    a.subscriber < b.subscriber ? -1 : a.subscriber > b.subscriber ? 1 : 0,
  );
  return { event, deliveries };
}

/**
 * Dead deliveries (newest first), optionally of one subscriber.
 *
 * @deprecated Use `driver.inspector().deadLetters({ subscriber })`.
 */
export function deadDeliveries(
  db: Database.Database,
  options: SubscriberFilter & { readonly limit?: number } = {},
): DeliveryInfo[] {
  const columns = `subscriber, event_seq, type, status, attempts, available_at, lease_token, lease_until,
            last_error, dead_reason, handed_off, updated_at`;
  const limit = limitOf(options.limit, 50);
  const rows =
    options.subscriber === undefined
      ? statement(
          db,
          `SELECT ${columns} FROM deliveries WHERE status = 'dead' ORDER BY updated_at DESC LIMIT ?`,
        ).all(limit)
      : statement(
          db,
          `SELECT ${columns} FROM deliveries WHERE subscriber = ? AND status = 'dead' ORDER BY updated_at DESC LIMIT ?`,
        ).all(options.subscriber, limit);
  return (rows as DeliveryRow[]).map(toDeliveryInfo);
}

/**
 * A daemon's last heartbeat, as written by {@link SqliteHeartbeatSink}.
 *
 * @deprecated Use `HeartbeatInfo` of `@switchyard/transport`, what `driver.inspector().heartbeats()` returns.
 */
export interface HeartbeatInfo {
  readonly daemon: string;
  readonly pid: number;
  readonly host: string;
  readonly status: string;
  readonly health: unknown;
  readonly stats: unknown;
  readonly startedAt?: string;
  readonly updatedAt: string;
  /** Milliseconds since the heartbeat was written. */
  readonly ageMs: number;
  /** Why the row cannot be read as written (`health` or `stats` not JSON); that field is then `null`. */
  readonly damaged?: string;
}

/**
 * Every daemon's latest heartbeat; a row whose `health` or `stats` cannot be read comes back `damaged`.
 *
 * @deprecated Use `driver.inspector().heartbeats()`.
 */
export function listHeartbeats(db: Database.Database, now: number = Date.now()): HeartbeatInfo[] {
  const rows = statement(
    db,
    `SELECT daemon, pid, host, status, health, stats, started_at, updated_at FROM daemon_heartbeats ORDER BY daemon`,
  ).all() as {
    daemon: string;
    pid: number;
    host: string;
    status: string;
    health: string | null;
    stats: string | null;
    started_at: number | null;
    updated_at: number;
  }[];
  return rows.map((r) => {
    const of = `of ${JSON.stringify(r.daemon)}`;
    const health = jsonColumn(r.health, `daemon_heartbeats.health ${of}`);
    const stats = jsonColumn(r.stats, `daemon_heartbeats.stats ${of}`);
    const damaged = [health.damaged, stats.damaged].filter((d) => d !== undefined).join("; ");
    return {
      daemon: r.daemon,
      pid: r.pid,
      host: r.host,
      status: r.status,
      health: health.damaged === undefined ? health.value : null,
      stats: stats.damaged === undefined ? stats.value : null,
      ...(r.started_at !== null ? { startedAt: iso(r.started_at)! } : {}),
      updatedAt: iso(r.updated_at)!,
      ageMs: Math.max(0, now - r.updated_at),
      ...(damaged !== "" ? { damaged } : {}),
    };
  });
}
