import type Database from "better-sqlite3";
import { lastSeqBefore } from "@switchyard/cross-process-queue";

/**
 * Questions the CLI asks that `@switchyard/cross-process-queue` and `@switchyard/dlq` have no
 * function for, written against their documented tables (`events`, `deliveries`, `dead_letters`).
 * SQL text is constant; every value is a bound parameter.
 */

/** Whether a table exists in the file. */
export function hasTable(db: Database.Database, name: string): boolean {
  return (
    db
      .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`)
      .pluck()
      .get(name) === 1
  );
}

/** The newest event's `seq` (0 when the table is empty). */
export function maxSeq(db: Database.Database): number {
  return db.prepare(`SELECT COALESCE(MAX(seq), 0) FROM events`).pluck().get() as number;
}

/** Ids of the events after `seq`, in publish order, optionally of one type and subject. */
export function eventIdsAfter(
  db: Database.Database,
  seq: number,
  filter: { readonly type?: string; readonly subject?: string; readonly limit: number },
): { seq: number; id: string }[] {
  return db
    .prepare(
      `SELECT seq, id FROM events
        WHERE seq > @seq AND (@type IS NULL OR type = @type) AND (@subject IS NULL OR subject = @subject)
        ORDER BY seq LIMIT @limit`,
    )
    .all({
      seq,
      type: filter.type ?? null,
      subject: filter.subject ?? null,
      limit: filter.limit,
    }) as {
    seq: number;
    id: string;
  }[];
}

/**
 * Ids of the events whose `causationid` is `id` (published after it), in publish order. A row
 * whose `extensions` are not JSON (damaged, see `damaged.ts`) is skipped, not an error.
 */
export function causedEventIds(
  db: Database.Database,
  id: string,
  afterSeq: number,
  limit: number,
): string[] {
  return db
    .prepare(
      `SELECT id FROM events
        WHERE seq > ? AND extensions IS NOT NULL
          AND CASE WHEN json_valid(extensions) THEN json_extract(extensions, '$.causationid') END = ?
        ORDER BY seq LIMIT ?`,
    )
    .pluck()
    .all(afterSeq, id, limit) as string[];
}

/** Whether any event of `type` is stored. */
export function hasEventType(db: Database.Database, type: string): boolean {
  return db.prepare(`SELECT 1 FROM events WHERE type = ? LIMIT 1`).pluck().get(type) === 1;
}

/** Whether any dead letter of `type` is stored. */
export function hasDeadLetterType(db: Database.Database, type: string): boolean {
  if (!hasTable(db, "dead_letters")) return false;
  return (
    db.prepare(`SELECT 1 FROM dead_letters WHERE event_type = ? LIMIT 1`).pluck().get(type) === 1
  );
}

/** Storage times (Unix ms) of the events of `type` stored at or after `since`. */
export function eventTimesSince(db: Database.Database, type: string, since: number): number[] {
  const after = lastSeqBefore(db, since);
  return db
    .prepare(`SELECT created_at FROM events WHERE seq > ? AND type = ? AND created_at >= ?`)
    .pluck()
    .all(after, type, since) as number[];
}

/** Totals of the `events` table. */
export interface EventTotals {
  readonly total: number;
  readonly lastSeq: number;
  readonly oldestAt: number | null;
  readonly newestAt: number | null;
  readonly byType: Record<string, number>;
}

/** How many events are stored, of which types, spanning which times. */
export function eventTotals(db: Database.Database): EventTotals {
  const row = db
    .prepare(
      `SELECT COUNT(*) AS total, COALESCE(MAX(seq), 0) AS last_seq,
              MIN(created_at) AS oldest_at, MAX(created_at) AS newest_at FROM events`,
    )
    .get() as {
    total: number;
    last_seq: number;
    oldest_at: number | null;
    newest_at: number | null;
  };
  const byType = db
    .prepare(`SELECT type, COUNT(*) AS n FROM events GROUP BY type ORDER BY n DESC, type`)
    .all() as { type: string; n: number }[];
  return {
    total: row.total,
    lastSeq: row.last_seq,
    oldestAt: row.oldest_at,
    newestAt: row.newest_at,
    byType: Object.fromEntries(byType.map((r) => [r.type, r.n])),
  };
}

/** Delivery rows by status (`pending`, `leased`, `acked`, `dead`). */
export function deliveriesByStatus(db: Database.Database): Record<string, number> {
  const rows = db.prepare(`SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status`).all() as {
    status: string;
    n: number;
  }[];
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

/** Dead deliveries that no dead-letter sink holds: the queue's row is their only copy. */
export function deadDeliveriesKept(db: Database.Database): number {
  return db
    .prepare(`SELECT COUNT(*) FROM deliveries WHERE status = 'dead' AND handed_off = 0`)
    .pluck()
    .get() as number;
}

/**
 * Stored events per pipeline stage for one key value (envelope `subject`, or the payload field
 * `field`, `config_key` unless given). A row whose `payload` is not JSON (damaged) counts by its
 * `subject` only.
 */
export function stageCounts(
  db: Database.Database,
  options: {
    readonly configKey: string;
    /** The payload field holding the key (a plain field name). @defaultValue "config_key" */
    readonly field?: string;
    readonly types: readonly string[];
    readonly since: number;
    readonly until: number;
  },
): { type: string; count: number; lastAt: number }[] {
  const after = lastSeqBefore(db, options.since);
  return db
    .prepare(
      `SELECT type, COUNT(*) AS count, MAX(created_at) AS lastAt FROM events
        WHERE seq > @after AND created_at >= @since AND created_at <= @until
          AND type IN (SELECT value FROM json_each(@types))
          AND (subject = @key
               OR CASE WHEN json_valid(payload) THEN json_extract(payload, '$.' || @field) END = @key)
        GROUP BY type`,
    )
    .all({
      after,
      since: options.since,
      until: options.until,
      types: JSON.stringify(options.types),
      key: options.configKey,
      field: options.field ?? "config_key",
    }) as { type: string; count: number; lastAt: number }[];
}

/**
 * Where the file's complete record of events begins: the first event after the last gap in
 * `seq`, or `undefined` when no event was ever removed. `seq` is `MAX(seq) + 1` at every publish,
 * so a gap means removed events: retention pruned them (the SQLite transport's `retentionMs`,
 * 24 h by default, which the file does not record), keeping only those a subscriber still needs.
 * Before this time some events are gone; from it on, every event is still stored.
 */
export function completeSince(db: Database.Database): { seq: number; at: number } | undefined {
  // Walks back from the newest event and stops at the first whose predecessor is missing.
  const row = db
    .prepare(
      `SELECT seq, created_at AS at FROM events e
        WHERE NOT EXISTS (SELECT 1 FROM events p WHERE p.seq = e.seq - 1)
        ORDER BY seq DESC LIMIT 1`,
    )
    .get() as { seq: number; at: number } | undefined;
  return row === undefined || row.seq <= 1 ? undefined : row;
}

/** Dead letters recorded for one event id (one per subscriber that failed it). */
export function deadLettersOfEvent(
  db: Database.Database,
  eventId: string,
): { id: number; subscriber: string; status: string; reason: string; attempts: number }[] {
  if (!hasTable(db, "dead_letters")) return [];
  return db
    .prepare(
      `SELECT id, subscriber, status, reason, attempts FROM dead_letters WHERE event_id = ? ORDER BY subscriber`,
    )
    .all(eventId) as {
    id: number;
    subscriber: string;
    status: string;
    reason: string;
    attempts: number;
  }[];
}

/** Dead letters by event type that last failed at or after `since`, most first. */
export function deadLettersByType(
  db: Database.Database,
  since: number,
  limit: number,
): { type: string; count: number }[] {
  if (!hasTable(db, "dead_letters")) return [];
  return db
    .prepare(
      `SELECT event_type AS type, COUNT(*) AS count FROM dead_letters WHERE last_failed_at >= ?
        GROUP BY event_type ORDER BY count DESC, type LIMIT ?`,
    )
    .all(new Date(since).toISOString(), limit) as { type: string; count: number }[];
}

/** Criteria of a dead-letter purge, as `SqliteDeadLetterStore.purge` applies them. */
export interface PurgeCriteria {
  readonly before?: Date;
  readonly type?: string;
  readonly subscriber?: string;
  readonly statuses?: readonly string[];
}

/** How many dead letters a purge with these criteria would touch (it skips purged and retrying ones). */
export function countPurgeable(db: Database.Database, criteria: PurgeCriteria): number {
  if (!hasTable(db, "dead_letters")) return 0;
  return db
    .prepare(
      `SELECT COUNT(*) FROM dead_letters
        WHERE (@type IS NULL OR event_type = @type)
          AND (@subscriber IS NULL OR subscriber = @subscriber)
          AND (@statuses IS NULL OR status IN (SELECT value FROM json_each(@statuses)))
          AND (@before IS NULL OR last_failed_at < @before)
          AND status NOT IN ('purged', 'retrying')`,
    )
    .pluck()
    .get({
      type: criteria.type ?? null,
      subscriber: criteria.subscriber ?? null,
      statuses: criteria.statuses ? JSON.stringify(criteria.statuses) : null,
      before: criteria.before ? criteria.before.toISOString() : null,
    }) as number;
}
