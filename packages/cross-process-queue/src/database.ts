import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { sleep } from "@switchyard/router";
import { QueueBusyError, QueueFileError, isBusy, isCorrupt } from "./errors";
import { assertSupportedVersion, migrate } from "./schema/migrations";

/** Where the queue lives unless told otherwise (relative to the working directory), as in the runbook. */
export const DEFAULT_PATH = "data/coordination/coordination.db";

/** How long a connection waits for another writer's lock before SQLite reports SQLITE_BUSY. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** Open read-only: no directory creation, no migrations, only a version check. */
  readonly readonly?: boolean;
  readonly busyTimeoutMs?: number;
  /**
   * SQLite's `wal_autocheckpoint` for this connection: a commit that leaves this many pages or
   * more in the WAL checkpoints on the spot (and fsyncs). 0 turns it off, for connections whose
   * checkpoints run elsewhere (the transport's worker thread). @defaultValue 4000
   */
  readonly walAutocheckpoint?: number;
}

/**
 * Open (creating directories and the file as needed) and configure a queue database: WAL,
 * `synchronous = NORMAL`, `busy_timeout`, then migrate to the current schema. Turns SQLite's
 * low-level failures into {@link QueueFileError} / `SchemaVersionError`.
 */
export function openDatabase(path: string, options: OpenDatabaseOptions = {}): Database.Database {
  const file = resolve(path);
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  let db: Database.Database;
  try {
    if (!options.readonly) mkdirSync(dirname(file), { recursive: true });
    db = new Database(file, options.readonly ? { readonly: true, fileMustExist: true } : {});
  } catch (error) {
    throw new QueueFileError(file, isCorrupt(error) ? "corrupt" : "unopenable", { cause: error });
  }
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    // Before anything writes (even switching to WAL): a file from a newer version stays untouched.
    assertSupportedVersion(db, file);
    if (options.readonly) return db;
    retryBusySync(file, busyTimeoutMs, () => {
      // Persistent once set; switching needs a moment of exclusive access, so only when needed.
      if (db.pragma("journal_mode", { simple: true }) !== "wal") db.pragma("journal_mode = WAL");
    });
    db.pragma("synchronous = NORMAL");
    // Inline checkpoints (which fsync) every ~16 MB of WAL instead of ~4 MB: fewer stalls for writers.
    db.pragma(`wal_autocheckpoint = ${Math.max(0, Math.floor(options.walAutocheckpoint ?? 4000))}`);
    retryBusySync(file, busyTimeoutMs, () => migrate(db, file));
    return db;
  } catch (error) {
    db.close();
    if (isCorrupt(error)) throw new QueueFileError(file, "corrupt", { cause: error });
    if (isBusy(error)) throw new QueueBusyError(file, busyTimeoutMs, { cause: error });
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === "string" && code.startsWith("SQLITE_CANTOPEN")) {
      throw new QueueFileError(file, "unopenable", { cause: error });
    }
    throw error;
  }
}

const RETRY_FOR_MS = 30_000;

/** Lock attempts answered by `setImmediate` before backing off with timers. */
const SPIN_ATTEMPTS = 16;

/** How long to wait before lock attempt number `attempt` (0-based) after a busy one. */
export function busyPause(attempt: number, signal?: AbortSignal): Promise<void> {
  if (attempt < SPIN_ATTEMPTS) {
    return new Promise((resolve) => setImmediate(resolve));
  }
  const ms = Math.min(50, 2 ** (attempt - SPIN_ATTEMPTS)) * (0.5 + Math.random());
  return sleep(ms, signal ? { signal } : {});
}

/**
 * Writes of one connection without ever blocking the event loop on another process's lock.
 * SQLite's own busy handler sleeps in steps of 1 ms and more while it holds the thread; here the
 * connection runs with `busy_timeout = 0`, so a write that finds the lock taken fails at once, and
 * the caller yields (`setImmediate`, then short growing sleeps) and tries again: handlers keep
 * running and the lock is retaken within microseconds of its release. SQLITE_BUSY never reaches
 * the caller: after `busyTimeoutMs` + 30 s of trying it becomes a {@link QueueBusyError}.
 *
 * Reads in WAL mode wait for nobody, save in rare moments (another connection recovering the WAL
 * after a crash): the few reads an operator calls go through {@link Writer.read}, which waits up
 * to `busyTimeoutMs` as a plain connection would; the poller's own reads simply try again later.
 */
export class Writer {
  readonly #file: string;
  readonly #busyTimeoutMs: number;
  readonly #noWait: Database.Statement;
  readonly #wait: Database.Statement;

  constructor(db: Database.Database, file: string, busyTimeoutMs: number) {
    this.#file = file;
    this.#busyTimeoutMs = busyTimeoutMs;
    this.#noWait = db.prepare("PRAGMA busy_timeout = 0");
    this.#wait = db.prepare(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
  }

  /**
   * Switch the connection to `busy_timeout = 0` for good, once what reads at open time has run.
   * Once, not around every write: switching cost two statements (~3–5 µs), a tenth of a publish.
   */
  stopWaiting(): void {
    this.#noWait.get();
  }

  /** Writes committed through this writer (the poller tells notifications of its own commits apart). */
  writes = 0;

  /** Run `fn` (one statement, or its own immediate transaction) once; throws SQLite's busy error if the lock is taken. */
  attempt<T>(fn: () => T): T {
    const result = fn();
    this.writes++;
    return result;
  }

  /** Run `fn`, retrying while the lock is taken (see the class comment). */
  async run<T>(fn: () => T, signal?: AbortSignal): Promise<T> {
    const start = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return this.attempt(fn);
      } catch (error) {
        if (!isBusy(error)) throw error;
        const waited = Date.now() - start;
        if (waited >= this.#busyTimeoutMs + RETRY_FOR_MS) {
          throw new QueueBusyError(this.#file, waited, { cause: error });
        }
        await busyPause(attempt, signal);
      }
    }
  }

  /** Run the reads in `fn` waiting up to `busyTimeoutMs` for a lock, like a connection with `busy_timeout`. */
  read<T>(fn: () => T): T {
    this.#wait.get();
    try {
      return fn();
    } finally {
      this.#noWait.get();
    }
  }
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * For the few writes that must stay synchronous (open, migrations, heartbeats): SQLite's
 * `busy_timeout`, then retries with short blocking pauses, up to 30 s.
 */
export function retryBusySync<T>(path: string, busyTimeoutMs: number, fn: () => T): T {
  const start = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return fn();
    } catch (error) {
      if (!isBusy(error)) throw error;
      const waited = Date.now() - start;
      if (waited >= Math.max(RETRY_FOR_MS, busyTimeoutMs))
        throw new QueueBusyError(path, waited, { cause: error });
      Atomics.wait(pause, 0, 0, Math.min(250, 2 ** attempt));
    }
  }
}
