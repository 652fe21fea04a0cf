import type Database from "better-sqlite3";
import { DeadLetterSchemaError } from "../dead-letter-errors";

/** Forward-only migrations of the `dead_letters` table, versioned in `switchyard_schema`. */
const migrations: readonly { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE IF NOT EXISTS dead_letters (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id        TEXT    NOT NULL,            -- the original envelope id
        event_type      TEXT    NOT NULL,
        subscriber      TEXT    NOT NULL,            -- subscriber / subscription that failed it
        origin          TEXT    NOT NULL,            -- "router" (in process) or the transport name
        reason          TEXT    NOT NULL,            -- max_attempts | unrecoverable | invalid_payload | timeout
        envelope        TEXT,                        -- the full original envelope as JSON (NULL once purged)
        error_name      TEXT    NOT NULL,
        error_message   TEXT    NOT NULL,
        error_code      TEXT,
        error_stack     TEXT,
        attempts        INTEGER NOT NULL,            -- delivery attempts, all failures added up
        replays         INTEGER NOT NULL DEFAULT 0,  -- times it was replayed
        first_failed_at TEXT    NOT NULL,            -- RFC 3339
        last_failed_at  TEXT    NOT NULL,            -- RFC 3339
        status          TEXT    NOT NULL,            -- pending_retry | retrying | replayed | permanently_failed | purged
        next_retry_at   INTEGER,                     -- Unix ms; when the retry daemon may replay it
        lease_token     TEXT,                        -- who is replaying it right now
        lease_until     INTEGER,                     -- Unix ms
        replayed_at     TEXT,
        created_at      INTEGER NOT NULL,            -- Unix ms
        updated_at      INTEGER NOT NULL,            -- Unix ms
        UNIQUE (event_id, subscriber)
      );
      CREATE INDEX IF NOT EXISTS dead_letters_due ON dead_letters (status, next_retry_at);
      CREATE INDEX IF NOT EXISTS dead_letters_created ON dead_letters (created_at);
      CREATE INDEX IF NOT EXISTS dead_letters_type ON dead_letters (event_type, created_at);
    `,
  },
];

/** The dead-letter schema version this package writes. */
export const DLQ_SCHEMA_VERSION = migrations.at(-1)!.version;

/** Create or upgrade the dead-letter table; refuses a newer schema. */
export function migrateDeadLetters(db: Database.Database, path: string): void {
  db.exec(
    "CREATE TABLE IF NOT EXISTS switchyard_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
  );
  const upgrade = db.transaction(() => {
    const row = db
      .prepare("SELECT version FROM switchyard_schema WHERE component = 'dlq'")
      .get() as { version: number } | undefined;
    const current = row?.version ?? 0;
    if (current > DLQ_SCHEMA_VERSION)
      throw new DeadLetterSchemaError(path, current, DLQ_SCHEMA_VERSION);
    for (const step of migrations) {
      if (step.version <= current) continue;
      db.exec(step.sql);
      db.prepare(
        "INSERT INTO switchyard_schema (component, version) VALUES ('dlq', ?) ON CONFLICT(component) DO UPDATE SET version = excluded.version",
      ).run(step.version);
    }
  });
  upgrade.immediate();
}
