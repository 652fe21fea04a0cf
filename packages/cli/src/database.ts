import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import type Database from "better-sqlite3";
import {
  DEFAULT_PATH,
  SCHEMA_VERSION,
  backupQueue,
  openDatabase,
  openQueueReadOnly,
  schemaVersion,
} from "@switchyard/cross-process-queue";
import { SqliteDeadLetterStore } from "@switchyard/dlq";
import { CliError, ExitCode } from "./output";
import { hasTable } from "./queries";

/** The environment variable naming the coordination database. */
export const DB_ENV = "SWITCHYARD_DB";

/** The database a command works on: `--db`, else `$SWITCHYARD_DB`, else the default path. */
export function resolveDbPath(
  option: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string {
  const chosen = option ?? (env[DB_ENV] || undefined) ?? DEFAULT_PATH;
  return resolve(chosen);
}

/** Refuse a path with no file behind it, before SQLite would create one. */
export function assertDatabaseExists(path: string): void {
  if (!existsSync(path)) {
    throw new CliError(
      "DATABASE_NOT_FOUND",
      `No coordination database at ${path}. Daemons create it on first start (the SQLite ` +
        `transport opens it); start them, or point at the file with --db <path> or ${DB_ENV}.`,
    );
  }
  if (statSync(path).isDirectory()) {
    throw new CliError(
      "DATABASE_IS_DIRECTORY",
      `${path} is a directory; pass the database file itself, e.g. --db ${resolve(path, "coordination.db")}.`,
    );
  }
}

/** Where the read-only open says that it reads a snapshot (an {@link Output}). */
export interface Notes {
  note(text: string): void;
}

/** SQLite's own error code (`SQLITE_…`) of `error` or of any error in its `cause` chain. */
function sqliteCode(error: unknown): string | undefined {
  for (let e = error, n = 0; e && n < 8; e = (e as { cause?: unknown }).cause, n++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("SQLITE_")) return code;
  }
  return undefined;
}

/**
 * Open a file read-only without writing anything next to it. A reader of a WAL database maps the
 * `-shm` file and must create it when no writer has; in a directory it cannot write (a read-only
 * mount, another user's directory) that fails with `SQLITE_READONLY_*` or `SQLITE_CANTOPEN`.
 * Then this reads a copy (the file and its `-wal`) in a temp directory instead, removed on
 * close, and says so through `notes`: a snapshot, which sees nothing written after it. (SQLite's
 * `immutable=1` would avoid the copy, but better-sqlite3 does not open URI file names.)
 */
function openFile(path: string, notes: Notes | undefined): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = openQueueReadOnly(path);
    // The first read maps the -shm: fail here, not in the middle of a command.
    db.prepare(`SELECT COUNT(*) FROM sqlite_master`).get();
    return db;
  } catch (error) {
    db?.close();
    const code = sqliteCode(error);
    if (!code || !/^SQLITE_(READONLY|CANTOPEN)/.test(code)) throw error;
    return openSnapshot(path, code, notes);
  }
}

const snapshots = new WeakSet<Database.Database>();

/** Whether {@link openReadOnly} gave a snapshot copy rather than the file itself: it never changes. */
export function isSnapshot(db: Database.Database): boolean {
  return snapshots.has(db);
}

function openSnapshot(path: string, code: string, notes: Notes | undefined): Database.Database {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-snapshot-"));
  const copy = join(dir, basename(path));
  let db: Database.Database;
  try {
    copyFileSync(path, copy);
    if (existsSync(`${path}-wal`)) copyFileSync(`${path}-wal`, `${copy}-wal`);
    db = openQueueReadOnly(copy);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw new CliError(
      "DATABASE_UNREADABLE",
      `Cannot read ${path}: SQLite could not open it read-only (${code}) and copying it failed ` +
        `(${(error as Error).message}). Check that this user may read the file.`,
      ExitCode.usage,
      { cause: error },
    );
  }
  snapshots.add(db);
  const close = db.close.bind(db);
  // The copy lives as long as the connection: removed with it.
  db.close = () => {
    try {
      return close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  notes?.note(
    `note: reading a snapshot of ${path} taken at ${new Date().toISOString()}: SQLite cannot ` +
      `open it in place (${code}; its directory is not writable, so the -shm file a reader of a ` +
      `WAL database needs cannot be created). Changes made after the snapshot are not shown.`,
  );
  return db;
}

/**
 * Open the coordination database read-only, refusing a missing file (it is never created here),
 * a file from a newer version (`SchemaVersionError`) and a file no daemon has initialised yet.
 * In a directory this process cannot write, reads a snapshot and says so through `notes`.
 */
export function openReadOnly(path: string, notes?: Notes): Database.Database {
  assertDatabaseExists(path);
  const db = openFile(path, notes);
  try {
    const version = schemaVersion(db);
    if (version === 0 || !hasTable(db, "events")) {
      throw new CliError(
        "DATABASE_NOT_INITIALISED",
        `${path} is not a Switchyard coordination database yet (schema version ${version}, no events ` +
          `table). Daemons create the tables on first start; check that --db names the right file.`,
      );
    }
    if (version < SCHEMA_VERSION) {
      throw new CliError(
        "DATABASE_SCHEMA_OLD",
        `${path} has schema version ${version}, older than the ${SCHEMA_VERSION} this CLI reads. ` +
          `Start one daemon of the current version (it migrates the file), then run this again.`,
      );
    }
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/** Run `fn` on a read-only connection ({@link openReadOnly}), closed afterwards. */
export async function withReadOnly<T>(
  path: string,
  fn: (db: Database.Database) => T | Promise<T>,
  notes?: Notes,
): Promise<T> {
  const db = openReadOnly(path, notes);
  try {
    return await fn(db);
  } finally {
    db.close();
  }
}

/**
 * The SQLite file that goes with a NATS stream: there the stream holds the events, while dead
 * letters (`SqliteDeadLetterStore`) and daemon heartbeats (`SqliteHeartbeatSink`) stay in a file
 * the daemons write. It is read only when named (`--db`, else `$SWITCHYARD_DB`) and must then
 * exist; `undefined` when none is named. It need not hold the queue's tables.
 */
export function openCompanion(
  option: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  notes?: Notes,
): { readonly path: string; readonly db: Database.Database } | undefined {
  const named = option ?? (env[DB_ENV] || undefined);
  if (named === undefined) return undefined;
  const path = resolve(named);
  if (!existsSync(path))
    throw new CliError(
      "DATABASE_NOT_FOUND",
      `No file at ${path}. With --transport nats, --db (or ${DB_ENV}) names the SQLite file the ` +
        `daemons keep dead letters and heartbeats in (SqliteDeadLetterStore, SqliteHeartbeatSink); ` +
        `leave it out to check the stream only.`,
    );
  assertDatabaseExists(path);
  return { path, db: openFile(path, notes) };
}

/**
 * The dead-letter store over an open connection, or `undefined` when no dead letter was ever
 * written (the `dead_letters` table does not exist yet; it is not created by reading).
 */
export function deadLetterReader(db: Database.Database): SqliteDeadLetterStore | undefined {
  if (!hasTable(db, "dead_letters")) return undefined;
  return new SqliteDeadLetterStore({ database: db });
}

/** A read-write dead-letter store on an existing database (for replay and purge). */
export function deadLetterWriter(path: string): SqliteDeadLetterStore {
  assertDatabaseExists(path);
  return new SqliteDeadLetterStore({ path });
}

/** A read-write queue connection on an existing database (for guarded recovery). */
export function openWritable(path: string): Database.Database {
  assertDatabaseExists(path);
  // Refuses newer files before touching them; the read-only open gives the clearer errors.
  openReadOnly(path).close();
  return openDatabase(path);
}

/**
 * Copy the database next to itself (`<file>.<UTC time>.bak`) with SQLite's online backup,
 * consistent while daemons keep writing. Returns the backup's path.
 */
export async function backupDatabase(path: string, now: Date = new Date()): Promise<string> {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}Z$/, "Z");
  let destination = `${path}.${stamp}.bak`;
  for (let n = 1; existsSync(destination); n++) destination = `${path}.${stamp}-${n}.bak`;
  const db = openReadOnly(path);
  try {
    await backupQueue(db, destination);
  } finally {
    db.close();
  }
  return destination;
}
