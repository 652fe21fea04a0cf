import { mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { sleep } from "@switchyard/transport";
import {
  QueueBusyError,
  QueueFileError,
  QueueFileMissingError,
  QueueFileReplacedError,
  TransportClosedError,
  isBusy,
  isCorrupt,
  isReadOnly,
} from "./errors";
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
  identities.set(db, identityOf(file));
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
    if (isReadOnly(error)) throw new QueueFileError(file, "readonly", { cause: error });
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === "string" && code.startsWith("SQLITE_CANTOPEN")) {
      throw new QueueFileError(file, "unopenable", { cause: error });
    }
    throw error;
  }
}

const RETRY_FOR_MS = 30_000;

/** Lock attempts answered by `setImmediate` before backing off with timers. */
export const SPIN_ATTEMPTS = 16;
/** Lock attempts after the spin at the shortest timer (1 ms) before the pause starts doubling. */
const FLAT_ATTEMPTS = 16;

/**
 * The timer pause (ms) before lock attempt number `attempt` (0-based, at least
 * {@link SPIN_ATTEMPTS}) after a busy one. A lock held past the spin is most often held by a
 * process the scheduler paused mid-commit, or by a checkpoint's fsync: it comes free within a few
 * milliseconds, so the pause stays at 1 ms for {@link FLAT_ATTEMPTS} tries (a failed try costs
 * microseconds) and only then doubles, with jitter, up to 50 ms. Doubling from the first timer
 * (1, 2, 4, 8 ms) made a lock released after 5 ms look taken until 7 ms: most of the SQLite
 * transport's latency p99 at 500 events/s on a loaded machine.
 */
export function busyDelayMs(attempt: number): number {
  const doubling = attempt - SPIN_ATTEMPTS - FLAT_ATTEMPTS;
  return doubling < 0 ? 1 : Math.min(50, 2 ** (doubling + 1)) * (0.5 + Math.random());
}

/** Wait before lock attempt number `attempt` (0-based) after a busy one. */
export function busyPause(attempt: number, signal?: AbortSignal): Promise<void> {
  if (attempt < SPIN_ATTEMPTS) {
    return new Promise((resolve) => setImmediate(resolve));
  }
  return sleep(busyDelayMs(attempt), signal ? { signal } : {});
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
  readonly #db: Database.Database;
  readonly #file: string;
  readonly #busyTimeoutMs: number;
  readonly #identity: FileIdentity | undefined;
  #checkedAt = 0;
  #gone: Error | undefined;

  constructor(db: Database.Database, file: string, busyTimeoutMs: number) {
    this.#db = db;
    this.#file = file;
    this.#busyTimeoutMs = busyTimeoutMs;
    this.#identity = identities.get(db) ?? identityOf(file);
  }

  /**
   * Switch the connection to `busy_timeout = 0` for good, once what reads at open time has run.
   * Not a statement prepared once: SQLite applies `PRAGMA busy_timeout = N` while it *compiles*
   * the statement, so a prepared one re-run later changes nothing (issue 13, item 13).
   */
  stopWaiting(): void {
    this.#db.pragma("busy_timeout = 0");
  }

  /**
   * Throw {@link QueueFileMissingError} / {@link QueueFileReplacedError} once the path no longer
   * names the file this connection has open (deleted, or replaced by another file): writes would
   * go to a file nobody else can see. One `stat` at most every {@link FILE_CHECK_INTERVAL_MS}; once
   * found gone, every call throws.
   */
  assertFile(now: number = Date.now()): void {
    if (this.#gone) throw this.#gone;
    if (now - this.#checkedAt < FILE_CHECK_INTERVAL_MS) return;
    this.#checkedAt = now;
    const problem = fileProblem(this.#file, this.#identity);
    if (problem) {
      this.#gone = problem;
      throw problem;
    }
  }

  /**
   * Check the file every {@link FILE_CHECK_INTERVAL_MS} while the connection is open (an unref'd
   * timer) and call `onGone` once when the path stops naming it, so that idle subscriptions notice too.
   */
  watchFile(onGone: (error: Error) => void): void {
    const timer = setInterval(() => {
      if (!this.#db.open) return clearInterval(timer);
      const problem = this.fileProblem();
      if (problem) {
        clearInterval(timer);
        onGone(problem);
      }
    }, FILE_CHECK_INTERVAL_MS);
    timer.unref();
  }

  /** Why the path no longer names the open file (checked now), or `undefined` while it does. */
  fileProblem(): Error | undefined {
    try {
      this.assertFile(Date.now() + FILE_CHECK_INTERVAL_MS);
      return undefined;
    } catch (error) {
      return error as Error;
    }
  }

  /**
   * SQLite's low-level errors as the package's typed ones: corruption and read-only files become
   * {@link QueueFileError} (`cause` kept); anything else is returned as it is.
   */
  translate(error: unknown): unknown {
    if (isCorrupt(error)) return new QueueFileError(this.#file, "corrupt", { cause: error });
    if (isReadOnly(error)) return new QueueFileError(this.#file, "readonly", { cause: error });
    return error;
  }

  /**
   * Run `fn` (one statement, or its own immediate transaction) once; throws SQLite's busy error if
   * the lock is taken, and `TransportClosedError` once the connection was closed (a write that
   * was still waiting for another process's lock when `close()` ran).
   */
  attempt<T>(fn: () => T): T {
    this.#assertOpen();
    this.assertFile();
    try {
      return fn();
    } catch (error) {
      throw this.translate(error);
    }
  }

  #assertOpen(): void {
    if (!this.#db.open) throw new TransportClosedError(`SQLite transport on ${this.#file}`);
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
    this.#assertOpen();
    this.assertFile();
    this.#db.pragma(`busy_timeout = ${Math.max(0, Math.floor(this.#busyTimeoutMs))}`);
    try {
      return fn();
    } catch (error) {
      throw this.translate(error);
    } finally {
      this.#db.pragma("busy_timeout = 0");
    }
  }
}

/** How often (at most) a {@link Writer} checks that its path still names the open file. */
export const FILE_CHECK_INTERVAL_MS = 1_000;

/** Device and inode of a file: what tells one file from another at the same path. */
export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

/** The identity of each connection's file as it was when {@link openDatabase} opened it. */
const identities = new WeakMap<Database.Database, FileIdentity | undefined>();

/**
 * The device and inode of the file `db` has open, as {@link openDatabase} recorded them (or as the
 * path names now, for a connection opened elsewhere); `undefined` for an in-memory database or a
 * path that no longer exists.
 */
export function fileIdentity(db: Database.Database): FileIdentity | undefined {
  return identities.has(db) ? identities.get(db) : identityOf(db.name);
}

function identityOf(file: string): FileIdentity | undefined {
  try {
    const { dev, ino } = statSync(file);
    return { dev, ino };
  } catch {
    return undefined;
  }
}

function fileProblem(file: string, opened: FileIdentity | undefined): Error | undefined {
  if (opened === undefined || file === ":memory:" || file === "") return undefined;
  let now: FileIdentity;
  try {
    const { dev, ino } = statSync(file);
    now = { dev, ino };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return code === "ENOENT" || code === "ENOTDIR"
      ? new QueueFileMissingError(file, { cause: error })
      : undefined;
  }
  return now.dev === opened.dev && now.ino === opened.ino
    ? undefined
    : new QueueFileReplacedError(file, opened.ino, now.ino);
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
