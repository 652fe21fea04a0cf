import {
  accessSync,
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import Database from "better-sqlite3";
import { DEFAULT_BUSY_TIMEOUT_MS } from "./database";
import {
  QueueFileError,
  QueueFileNotFoundError,
  QueueNotInitialisedError,
  isCorrupt,
} from "./errors";
import { assertSupportedVersion } from "./schema/migrations";

/** Why a read-only open reads a copy of the file instead of the file itself. */
export interface Snapshot {
  /** When the copy was taken (RFC 3339): nothing written after it is seen. */
  readonly takenAt: string;
  /** Why, in a sentence, for a note to the user. */
  readonly reason: string;
}

/** A read-only connection to a queue file, and what to do when done with it. */
export interface ReadOnlyFile {
  readonly path: string;
  readonly db: Database.Database;
  /** Set when the connection reads a copy (see {@link openQueueFileReadOnly}). */
  readonly snapshot?: Snapshot;
  /** Close the connection and remove the copy, if any. Idempotent. */
  close(): void;
}

/** Whether the file's header says WAL (bytes 18 and 19 are 2). */
function isWalFile(path: string): boolean {
  const header = Buffer.alloc(20);
  const fd = openSync(path, "r");
  try {
    return readSync(fd, header, 0, 20, 0) === 20 && header[18] === 2 && header[19] === 2;
  } finally {
    closeSync(fd);
  }
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

const sqliteCode = (error: unknown): string => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
};

/**
 * Open a queue file for reading without writing anything, next to it or in it.
 *
 * A reader of a WAL database needs its `-wal` and `-shm` files and creates them when no writer
 * has (every process closed cleanly), even on a read-only connection. So the file is read in place
 * only when it is not in WAL mode, or when its `-wal` exists (a writer has it open: the reader
 * joins it, as any reader does) and its directory is writable. Otherwise a copy of the file (and
 * its `-wal`) in a temp directory is read, removed on close, and `snapshot` says so.
 *
 * Refuses a missing file ({@link QueueFileNotFoundError}), a directory or a file that is not a
 * SQLite database ({@link QueueFileError}), a file from a newer version (`SchemaVersionError`) and
 * a database no transport has initialised ({@link QueueNotInitialisedError}). An older schema is
 * read as it is (nothing is migrated).
 */
export function openQueueFileReadOnly(
  path: string,
  options: { readonly busyTimeoutMs?: number } = {},
): ReadOnlyFile {
  const file = resolve(path);
  let stat;
  try {
    stat = statSync(file);
  } catch (error) {
    throw new QueueFileNotFoundError(file, { cause: error });
  }
  if (stat.isDirectory())
    throw new QueueFileError(file, "unopenable", {
      cause: new Error(`${file} is a directory; name the database file itself`),
    });
  let wal: boolean;
  try {
    wal = isWalFile(file);
  } catch (error) {
    throw new QueueFileError(file, "unopenable", { cause: error });
  }
  const inPlace = !wal || (existsSync(`${file}-wal`) && writable(dirname(file)));
  if (inPlace) {
    try {
      return connect(file, file, undefined, options.busyTimeoutMs, () => {});
    } catch (error) {
      // A -shm this process cannot write, a directory it cannot write to: read a copy instead.
      if (
        !/^SQLITE_(READONLY|CANTOPEN|PERM)/.test(
          sqliteCode((error as { cause?: unknown }).cause ?? error),
        )
      )
        throw error;
    }
  }
  const dir = mkdtempSync(join(tmpdir(), "switchyard-snapshot-"));
  const copy = join(dir, basename(file));
  try {
    copyFileSync(file, copy);
    if (existsSync(`${file}-wal`)) copyFileSync(`${file}-wal`, `${copy}-wal`);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw new QueueFileError(file, "unopenable", { cause: error });
  }
  const snapshot: Snapshot = {
    takenAt: new Date().toISOString(),
    reason: wal
      ? `reading a copy of ${file}: a reader of a WAL database would create its -wal and -shm files ` +
        `next to it (no process has it open, or its directory is not writable); changes made after ` +
        `the copy are not shown`
      : `reading a copy of ${file}: it cannot be opened in place`,
  };
  return connect(copy, file, snapshot, options.busyTimeoutMs, () =>
    rmSync(dir, { recursive: true, force: true }),
  );
}

function connect(
  at: string,
  file: string,
  snapshot: Snapshot | undefined,
  busyTimeoutMs: number | undefined,
  cleanup: () => void,
): ReadOnlyFile {
  let db: Database.Database;
  try {
    db = new Database(at, { readonly: true, fileMustExist: true });
  } catch (error) {
    cleanup();
    throw new QueueFileError(file, isCorrupt(error) ? "corrupt" : "unopenable", { cause: error });
  }
  try {
    db.pragma(
      `busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS))}`,
    );
    const version = assertSupportedVersion(db, file);
    // The first read maps the -shm: fail here, not in the middle of a query.
    const hasEvents =
      db
        .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'`)
        .pluck()
        .get() === 1;
    if (version === 0 || !hasEvents) throw new QueueNotInitialisedError(file);
  } catch (error) {
    db.close();
    cleanup();
    if (isCorrupt(error)) throw new QueueFileError(file, "corrupt", { cause: error });
    if (/^SQLITE_/.test(sqliteCode(error)))
      throw new QueueFileError(
        file,
        /^SQLITE_READONLY/.test(sqliteCode(error)) ? "readonly" : "unopenable",
        { cause: error },
      );
    throw error;
  }
  let closed = false;
  return {
    path: file,
    db,
    ...(snapshot ? { snapshot } : {}),
    close() {
      if (closed) return;
      closed = true;
      try {
        db.close();
      } finally {
        cleanup();
      }
    },
  };
}
