import type Database from "better-sqlite3";
import { cursorSql } from "../claim";
import { SchemaVersionError } from "../errors";

/** One forward-only schema step. `up` runs inside the migration's immediate transaction. */
export interface Migration {
  /** The `PRAGMA user_version` the file has after this step. */
  readonly version: number;
  readonly description: string;
  readonly up: (db: Database.Database) => void;
}

/**
 * The `backlog` view of versions 2 to 5 (see {@link BACKLOG_VIEW_V6}): the one definition of a subscriber's backlog
 * (`SubscriberBacklog` in `@switchyard/transport`). Every matching event not settled is in exactly
 * one state: `pending` (never attempted, including events after the subscriber's cursor),
 * `in_flight` (leased, lease not expired), `retrying` (attempted and waiting: a failure's backoff,
 * or an expired lease). `lag` is their sum; `oldest_pending_at` (ms since the epoch) is the
 * publish time of the oldest pending or retrying event. "Now" is the clock of the reader, in ms.
 * `SqliteInspector.subscribers()` runs the same counts.
 */
const BACKLOG_VIEW_V2 = `
        CREATE VIEW backlog AS
        SELECT subscriber, pending, in_flight, retrying, dead,
               pending + in_flight + retrying AS lag,
               MIN(COALESCE(oldest_open_at, oldest_queued_at), COALESCE(oldest_queued_at, oldest_open_at)) AS oldest_pending_at
          FROM (
            SELECT s.name AS subscriber,
                   (SELECT COUNT(*) FROM deliveries d INDEXED BY deliveries_due
                     WHERE d.subscriber = s.name AND d.status IN ('pending', 'leased')
                       AND d.status = 'pending' AND d.attempts = 0)
                 + (SELECT COUNT(*) FROM subscriber_types st
                      JOIN events e ON e.type = st.type AND e.seq > s.cursor_seq AND e.seq > st.since_seq
                     WHERE st.subscriber = s.name) AS pending,
                   (SELECT COUNT(*) FROM deliveries d INDEXED BY deliveries_due
                     WHERE d.subscriber = s.name AND d.status IN ('pending', 'leased')
                       AND d.status = 'leased' AND d.lease_until > n.now) AS in_flight,
                   (SELECT COUNT(*) FROM deliveries d INDEXED BY deliveries_due
                     WHERE d.subscriber = s.name AND d.status IN ('pending', 'leased')
                       AND ((d.status = 'pending' AND d.attempts > 0)
                         OR (d.status = 'leased' AND d.lease_until <= n.now))) AS retrying,
                   (SELECT COUNT(*) FROM deliveries d
                     WHERE d.subscriber = s.name AND d.status = 'dead') AS dead,
                   (SELECT MIN(e.created_at) FROM deliveries d INDEXED BY deliveries_due
                      JOIN events e ON e.seq = d.event_seq
                     WHERE d.subscriber = s.name AND d.status IN ('pending', 'leased')
                       AND (d.status = 'pending' OR d.lease_until <= n.now)) AS oldest_open_at,
                   (SELECT MIN(e.created_at) FROM subscriber_types st
                      JOIN events e ON e.type = st.type AND e.seq > s.cursor_seq AND e.seq > st.since_seq
                     WHERE st.subscriber = s.name) AS oldest_queued_at
              FROM subscribers s,
                   (SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS now) n
          );`;

/**
 * The `backlog` view from version 6 on: {@link BACKLOG_VIEW_V2} with the subscriber's cursor read
 * as a claim reads it (`cursorSql`): a cursor another program overwrote with text or a BLOB counts
 * every matching event since the registration as pending, which is what the next claim delivers
 * (version 2 compared `seq` with the text, above every number, and counted none).
 */
const BACKLOG_VIEW_V6 = ((): string => {
  const raw = "e.seq > s.cursor_seq";
  const view = BACKLOG_VIEW_V2.replaceAll(raw, `e.seq > ${cursorSql("s.cursor_seq")}`);
  // Both reads of the cursor (the pending count and the oldest queued event) must change.
  if (BACKLOG_VIEW_V2.split(raw).length !== 3 || view.includes(raw))
    throw new Error("the backlog view no longer reads the cursor where migration 6 expects");
  return view;
})();

/**
 * Every schema step, oldest first. Never edit a released step: add a new one. Timestamps are
 * milliseconds since the Unix epoch (`datetime(created_at / 1000, 'unixepoch')` in the sqlite3
 * shell); JSON columns hold text. The `dead_letters` table is the `SqliteDeadLetterStore`'s, with
 * its own version (`switchyard_schema`), created on the store's first use, not here.
 *
 * Fan-out uses per-subscriber cursors: publishing appends to `events` only; a claim first takes
 * the subscriber's matching events after `subscribers.cursor_seq` into `deliveries` (as
 * `pending` rows) and advances the cursor, in the same transaction.
 */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    description: "events, subscribers, deliveries, daemon heartbeats",
    up: (db) =>
      db.exec(`
        CREATE TABLE events (
          seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: cursors rely on it growing
          id           TEXT    NOT NULL UNIQUE,
          type         TEXT    NOT NULL,
          source       TEXT    NOT NULL,
          subject      TEXT,
          time         TEXT    NOT NULL,
          dataversion  INTEGER NOT NULL DEFAULT 1,
          payload      TEXT    NOT NULL,
          extensions   TEXT,
          created_at   INTEGER NOT NULL
        );

        CREATE TABLE subscribers (
          name         TEXT    PRIMARY KEY,
          types        TEXT    NOT NULL,
          ephemeral    INTEGER NOT NULL DEFAULT 0,
          cursor_seq   INTEGER NOT NULL,
          lease_token  INTEGER NOT NULL DEFAULT 0,
          created_at   INTEGER NOT NULL,
          last_seen    INTEGER NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE subscriber_types (
          subscriber   TEXT    NOT NULL,
          type         TEXT    NOT NULL,
          since_seq    INTEGER NOT NULL,
          PRIMARY KEY (subscriber, type)
        ) WITHOUT ROWID;

        CREATE TABLE deliveries (
          subscriber   TEXT    NOT NULL,
          event_seq    INTEGER NOT NULL,
          type         TEXT    NOT NULL,
          status       TEXT    NOT NULL DEFAULT 'pending'
                               CHECK (status IN ('pending', 'leased', 'acked', 'dead')),
          attempts     INTEGER NOT NULL DEFAULT 0,
          available_at INTEGER NOT NULL,
          lease_token  INTEGER,
          lease_until  INTEGER,
          last_error   TEXT,
          dead_reason  TEXT,
          handed_off   INTEGER NOT NULL DEFAULT 0,
          updated_at   INTEGER NOT NULL,
          PRIMARY KEY (subscriber, event_seq)
        ) WITHOUT ROWID;

        CREATE INDEX deliveries_due ON deliveries (subscriber, available_at)
          WHERE status IN ('pending', 'leased');
        CREATE INDEX deliveries_dead ON deliveries (subscriber, updated_at)
          WHERE status = 'dead';

        CREATE TABLE daemon_heartbeats (
          daemon       TEXT    PRIMARY KEY,
          pid          INTEGER NOT NULL,
          host         TEXT    NOT NULL,
          status       TEXT    NOT NULL,
          health       TEXT,
          stats        TEXT,
          started_at   INTEGER,
          updated_at   INTEGER NOT NULL
        ) WITHOUT ROWID;


        -- Per subscriber: deliveries waiting (pending: claimable now or after a retry delay,
        -- including matching events not yet taken into deliveries), leased (in flight) and dead.
        CREATE VIEW backlog AS
        SELECT s.name AS subscriber,
               (SELECT COUNT(*) FROM deliveries d INDEXED BY deliveries_due
                 WHERE d.subscriber = s.name AND d.status IN ('pending', 'leased') AND d.status = 'pending')
             + (SELECT COUNT(*) FROM events e
                  JOIN subscriber_types st ON st.subscriber = s.name AND st.type = e.type
                 WHERE e.seq > s.cursor_seq AND e.seq > st.since_seq) AS pending,
               (SELECT COUNT(*) FROM deliveries d INDEXED BY deliveries_due
                 WHERE d.subscriber = s.name AND d.status IN ('pending', 'leased') AND d.status = 'leased') AS leased,
               (SELECT COUNT(*) FROM deliveries d WHERE d.subscriber = s.name AND d.status = 'dead') AS dead
          FROM subscribers s;
      `),
  },
  {
    version: 2,
    description:
      "daemon_heartbeats.restarts; the backlog view counts expired leases as retrying (one definition of backlog)",
    up: (db) =>
      db.exec(`
        ALTER TABLE daemon_heartbeats ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;

        DROP VIEW IF EXISTS backlog;
        ${BACKLOG_VIEW_V2}
      `),
  },
  {
    version: 3,
    description:
      "daemon_heartbeats.contracts: what each daemon publishes and consumes, announced with its heartbeats",
    up: (db) => db.exec(`ALTER TABLE daemon_heartbeats ADD COLUMN contracts TEXT;`),
  },
  {
    version: 4,
    description:
      "delivery_steps: each delivery's timeline off the happy path (retries, expired leases, fencing, dead letters, replays)",
    // Written in the transaction of the change each step records, and only off the happy path: a
    // first claim and its ack write nothing here. Numbered per delivery (n = 1, 2, …); a delivery
    // keeps its latest HISTORY_LIMIT steps. Retention removes steps with their deliveries.
    up: (db) =>
      db.exec(`
        CREATE TABLE delivery_steps (
          subscriber   TEXT    NOT NULL,
          event_seq    INTEGER NOT NULL,
          n            INTEGER NOT NULL,  -- 1, 2, … per delivery: a first kept n > 1 means older steps were dropped
          at           INTEGER NOT NULL,  -- ms since the epoch
          kind         TEXT    NOT NULL,  -- claimed | acked | retry_scheduled | lease_expired | fenced | dead_lettered | replayed | requeued
          attempt      INTEGER,
          error        TEXT,              -- a serialized error, JSON
          delay_ms     INTEGER,           -- retry_scheduled: the backoff applied
          reason       TEXT,              -- dead_lettered: max_attempts | unrecoverable | invalid_payload | timeout
          actor        TEXT,              -- who wrote it: host:pid
          detail       TEXT,
          PRIMARY KEY (subscriber, event_seq, n)
        ) WITHOUT ROWID;
        CREATE INDEX delivery_steps_seq ON delivery_steps (event_seq);
      `),
  },
  {
    version: 5,
    description:
      "events.seq without AUTOINCREMENT: the high-water mark of removed events is kept in events_high_water by a delete trigger, so a publish no longer rewrites sqlite_sequence",
    // `seq` still never goes back: a new event takes MAX(MAX(seq), events_high_water.seq) + 1,
    // where the high-water mark starts at the version-4 AUTOINCREMENT counter and a DELETE
    // (retention's, or anyone's) that removes the newest row raises it to that row's seq. So
    // MAX(MAX(seq), high-water mark) is the largest seq ever handed out. The rows are copied
    // (SQLite cannot drop AUTOINCREMENT in place); the columns and the unique id are unchanged.
    up: (db) =>
      db.exec(`
        DROP VIEW IF EXISTS backlog;

        CREATE TABLE events_v5 (
          seq          INTEGER PRIMARY KEY, -- never reused: MAX(MAX(seq), events_high_water.seq) + 1
          id           TEXT    NOT NULL UNIQUE,
          type         TEXT    NOT NULL,
          source       TEXT    NOT NULL,
          subject      TEXT,
          time         TEXT    NOT NULL,
          dataversion  INTEGER NOT NULL DEFAULT 1,
          payload      TEXT    NOT NULL,
          extensions   TEXT,
          created_at   INTEGER NOT NULL
        );
        INSERT INTO events_v5 (seq, id, type, source, subject, time, dataversion, payload, extensions, created_at)
          SELECT seq, id, type, source, subject, time, dataversion, payload, extensions, created_at
            FROM events ORDER BY seq;

        -- One row: no new event takes a seq at or below this one (cursors may point up to it).
        CREATE TABLE events_high_water (
          one          INTEGER PRIMARY KEY CHECK (one = 1),
          seq          INTEGER NOT NULL
        );
        INSERT INTO events_high_water (one, seq)
          VALUES (1, MAX(0, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)));

        DROP TABLE events;
        ALTER TABLE events_v5 RENAME TO events;

        -- Only the removal of the newest row can lower MAX(seq): older rows cost a lookup, no write.
        CREATE TRIGGER events_keep_high_water AFTER DELETE ON events
          WHEN OLD.seq > (SELECT seq FROM events_high_water)
           AND NOT EXISTS (SELECT 1 FROM events WHERE seq > OLD.seq)
        BEGIN
          UPDATE events_high_water SET seq = OLD.seq;
        END;

        ${BACKLOG_VIEW_V2}
      `),
  },
  {
    version: 6,
    description:
      "deliveries_leased index (each subscriber's highest fencing token held, one seek per claim); the backlog view reads a cursor that is not a number as the claim does",
    // The claim's next token is above both the subscriber's counter and every token its leases
    // hold, so a counter another program set back cannot hand a stale holder's token out again;
    // this index makes the highest held token one seek instead of a walk of every open delivery.
    up: (db) =>
      db.exec(`
        CREATE INDEX deliveries_leased ON deliveries (subscriber, lease_token)
          WHERE status = 'leased';

        DROP VIEW IF EXISTS backlog;
        ${BACKLOG_VIEW_V6}
      `),
  },
];

/** The schema version this package writes. */
export const SCHEMA_VERSION: number = migrations[migrations.length - 1]!.version;

/** The schema version stored in the file (`PRAGMA user_version`). */
export function schemaVersion(db: Database.Database): number {
  return db.pragma("user_version", { simple: true }) as number;
}

/**
 * Bring the file to {@link SCHEMA_VERSION}: every missing step in one `BEGIN IMMEDIATE`
 * transaction each, re-checking the version under the write lock so concurrent processes
 * migrate once. Refuses a file from a newer version with {@link SchemaVersionError}.
 *
 * @returns the steps applied (empty when the file was current).
 */
export function migrate(db: Database.Database, path: string): Migration[] {
  const applied: Migration[] = [];
  if (schemaVersion(db) === SCHEMA_VERSION) return applied;
  for (const step of migrations) {
    const ran = db
      .transaction(() => {
        const current = schemaVersion(db);
        if (current > SCHEMA_VERSION) throw new SchemaVersionError(path, current, SCHEMA_VERSION);
        if (current >= step.version) return false;
        step.up(db);
        // PRAGMA takes no bound parameters; the value is an integer from the list above.
        db.pragma(`user_version = ${Number(step.version)}`);
        return true;
      })
      .immediate();
    if (ran) applied.push(step);
  }
  const final = schemaVersion(db);
  if (final > SCHEMA_VERSION) throw new SchemaVersionError(path, final, SCHEMA_VERSION);
  return applied;
}

/** Throw {@link SchemaVersionError} when the file is newer than this package (read-only check). */
export function assertSupportedVersion(db: Database.Database, path: string): number {
  const version = schemaVersion(db);
  if (version > SCHEMA_VERSION) throw new SchemaVersionError(path, version, SCHEMA_VERSION);
  return version;
}
