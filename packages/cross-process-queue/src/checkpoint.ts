import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";
import type { Logger } from "@switchyard/transport";
import { type FileIdentity, fileIdentity } from "./database";
import { timerDelay } from "./timers";

/**
 * WAL checkpoints off the hot path. SQLite's own auto-checkpoint runs inside the commit that
 * crosses the threshold: that commit (a publish, or a claim that acks) copies the WAL into the
 * database file and fsyncs both, stalling its caller for milliseconds. The transport's
 * connections run with `wal_autocheckpoint = 0` instead, and one worker thread per file and
 * process checkpoints over its own connection:
 *
 * - every `intervalMs`, if another connection committed since it last looked (`PRAGMA
 *   data_version`, which reads no table), a PASSIVE checkpoint: copies what it can, never waits
 *   for and never blocks readers or writers;
 * - the WAL is reused from its start only once everything in it was copied and a writer starts
 *   before anything new is appended. Under steady load writers may never leave that gap, so when
 *   the WAL holds `maxWalPages` or more, a RESTART checkpoint: it takes the write lock only if it
 *   is free at that instant (`busy_timeout = 0`: it waits for nobody) and lets the next writer
 *   start the WAL over. It runs only once a passive pass copied everything and nobody committed
 *   since (`data_version` unchanged), so it has nothing to copy and no fsync to wait for while
 *   it holds the lock: microseconds instead of the 1–8 ms a RESTART that copied held it at 500
 *   events/s, stalling every publish and claim meanwhile. Our writers never block on that lock;
 *   they yield and retry. Past twice `maxWalPages` (no such moment, or the lock was never free
 *   when it looked) a FULL checkpoint waits up to {@link ESCALATED_WAIT_MS} for the lock.
 */

/** Options of {@link startCheckpointer}. */
export interface CheckpointerOptions {
  /** How often the worker looks for new commits. */
  readonly intervalMs: number;
  /** WAL size (pages) at which it restarts the WAL instead of waiting for a natural gap. */
  readonly maxWalPages: number;
}

/** What the checkpointer of a file did since it started (shared by the transports of one process). */
export interface CheckpointStats {
  /** `background` while the worker thread runs; `inline` when it could not start (SQLite's own auto-checkpoint is back on). */
  readonly mode: "background" | "inline";
  /** PASSIVE checkpoints run (only after other connections committed). */
  readonly passive: number;
  /** RESTART checkpoints that completed (the WAL starts over at the next write). */
  readonly restarts: number;
  /** Checkpoints that could not finish because a reader or writer was active (tried again later). */
  readonly busy: number;
  /** Checkpoints that failed with an error (logged). */
  readonly errors: number;
  /** Pages in the WAL at the last checkpoint. */
  readonly walPages: number;
  /** The most pages the WAL held at any checkpoint. */
  readonly maxWalPagesSeen: number;
}

/** A transport's hold on the checkpointer of its file. */
export interface CheckpointHandle {
  stats(): CheckpointStats;
  /** Let go; the last holder stops the worker (and its connection). Idempotent. */
  release(): Promise<void>;
}

/** The page count SQLite's own auto-checkpoint uses on our connections when no worker runs. */
export const INLINE_CHECKPOINT_PAGES = 4000;

/**
 * How long a checkpoint waits for the write lock once the WAL has grown to twice `maxWalPages`
 * (the worker thread waits, not the event loop). It then holds the lock while it copies the last
 * pages and waits for readers of older snapshots — short for our readers, at most this long for
 * someone else's long read — so writers see at most this plus two fsyncs, and only then.
 */
const ESCALATED_WAIT_MS = 10;

/**
 * Passive passes a look at a WAL of `maxWalPages` or more runs after the first, each copying what
 * was committed during the one before, to find a moment with no commit in between at which a
 * RESTART has nothing to copy. Then it tries again at its next look.
 */
const RESTART_TRIES = 3;

/** Counter slots in the buffer shared with the worker (the worker's source uses the same numbers). */
const Slot = { Passive: 0, Restarts: 1, Busy: 2, Errors: 3, WalPages: 4, MaxWalPages: 5 } as const;
const SLOTS = 6;

// The worker: CommonJS, evaluated from this string, so that the package needs no second entry
// file and works from `src/`, `dist/` and bundles alike. It only ever runs checkpoints.
const WORKER_SOURCE = `"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const { statSync } = require("node:fs");
const { driver, file, identity, intervalMs, maxWalPages, counters } = workerData;
const ESCALATED_WAIT_MS = ${ESCALATED_WAIT_MS};
const RESTART_TRIES = ${RESTART_TRIES};
const c = new Int32Array(counters);
const [PASSIVE, RESTARTS, BUSY, ERRORS, WAL_PAGES, MAX_WAL_PAGES] = [0, 1, 2, 3, 4, 5];
// Whether the path still names the file the transport opened. A connection of this process to
// another file at that path (the queue file replaced by a rename, or deleted and created anew)
// would use the -wal and -shm that belong to the transport's file: it would truncate the -shm the
// transport's connection has mapped, copy that WAL's pages into the other file and delete both
// when it closes.
function sameFile() {
  if (!identity) return true;
  try {
    const { dev, ino } = statSync(file);
    return dev === identity.dev && ino === identity.ino;
  } catch {
    return false;
  }
}
const REPLACED = file + " no longer names the file the transport opened (deleted or replaced)";
let db;
try {
  if (!sameFile()) throw new Error(REPLACED);
  const Database = require(driver);
  db = new Database(file, { fileMustExist: true });
  // Opening reads nothing (the -wal and -shm are opened by the first read, below): checked again
  // now, the file SQLite has open is the transport's one.
  if (!sameFile()) {
    try { db.close(); } catch {}
    throw new Error(REPLACED);
  }
  db.pragma("busy_timeout = 0");
  db.pragma("wal_autocheckpoint = 0");
} catch (error) {
  parentPort.postMessage({ type: "failed", message: String((error && error.stack) || error) });
  process.exit(1);
}
const dataVersion = db.prepare("PRAGMA data_version").pluck();
const passive = db.prepare("PRAGMA wal_checkpoint(PASSIVE)").raw();
const restart = db.prepare("PRAGMA wal_checkpoint(RESTART)").raw();
const full = db.prepare("PRAGMA wal_checkpoint(FULL)").raw();
let version = -1;
let behind = true;
let reported = 0;
function pages(log) {
  Atomics.store(c, WAL_PAGES, log);
  if (log > Atomics.load(c, MAX_WAL_PAGES)) Atomics.store(c, MAX_WAL_PAGES, log);
}
function tick() {
  try {
    const v = dataVersion.get();
    if (v === version && !behind) return;
    version = v;
    let [busy, log, done] = passive.get();
    let deferred = false;
    Atomics.add(c, PASSIVE, 1);
    if (log < 0) return; // not in WAL mode (any more): nothing to do
    pages(log);
    if (log >= 2 * maxWalPages) {
      // The lock was never free at the instant we looked: wait for it a little (in this thread).
      // Not prepared statements: SQLite applies PRAGMA busy_timeout when it compiles one, so
      // re-running a prepared one would leave the timeout as the last prepare set it (0).
      db.pragma("busy_timeout = " + ESCALATED_WAIT_MS);
      try { [busy, log, done] = full.get(); } finally { db.pragma("busy_timeout = 0"); }
      if (busy === 0) Atomics.add(c, RESTARTS, 1);
    } else if (log >= maxWalPages) {
      // RESTART holds the write lock while it copies what the passive pass left and fsyncs the WAL
      // and the database: milliseconds in which every writer waits. Only when nothing was
      // committed since the pass looked (data_version unchanged) does it have nothing to copy and
      // hold the lock for microseconds; else copy the newcomers without the lock and look again.
      for (let tries = 0; ; tries++) {
        const now = dataVersion.get();
        if (now === version && busy === 0 && done === log) {
          [busy, log, done] = restart.get();
          if (busy === 0) Atomics.add(c, RESTARTS, 1);
          break;
        }
        version = now;
        if (tries === RESTART_TRIES) {
          deferred = true;
          break;
        }
        [busy, log, done] = passive.get();
        Atomics.add(c, PASSIVE, 1);
        pages(log);
      }
    }
    if (busy !== 0) Atomics.add(c, BUSY, 1);
    behind = busy !== 0 || done < log || deferred;
  } catch (error) {
    behind = true;
    // SQLITE_BUSY here only means someone else checkpoints right now: next time.
    if (String(error && error.code).startsWith("SQLITE_BUSY")) return void Atomics.add(c, BUSY, 1);
    Atomics.add(c, ERRORS, 1);
    if (reported++ < 5) parentPort.postMessage({ type: "error", message: String((error && error.stack) || error) });
  }
}
const timer = setInterval(tick, intervalMs);
parentPort.on("message", (m) => {
  if (m !== "stop") return;
  clearInterval(timer);
  try { db.close(); } catch {}
  parentPort.close();
});
`;

/** One worker per database file and process, shared by every transport on that file. */
interface Shared {
  readonly key: string;
  readonly file: string;
  readonly identity: FileIdentity | undefined;
  readonly counters: Int32Array;
  readonly holders: Set<Database.Database>;
  worker: Worker | undefined;
  mode: "background" | "inline";
  stopped: Promise<void> | undefined;
}

/** By path and inode: a transport on a path that names another file by now gets its own worker. */
const byFile = new Map<string, Shared>();

/**
 * Checkpoint `file` from a worker thread for as long as `db` (a connection with
 * `wal_autocheckpoint = 0`) is held. If the worker cannot start or dies, SQLite's auto-checkpoint
 * is switched back on for every connection holding it (logged once), so the WAL never grows
 * without bound. The worker opens `file` only while the path still names the file `db` has open
 * (same device and inode): a worker that starts after the file was deleted or replaced falls back
 * the same way instead of opening the other file with this one's `-wal` and `-shm`.
 */
export function startCheckpointer(
  db: Database.Database,
  file: string,
  options: CheckpointerOptions,
  logger: Logger,
): CheckpointHandle {
  const identity = fileIdentity(db);
  const key = identity ? `${file}\0${identity.dev}:${identity.ino}` : file;
  let shared = byFile.get(key);
  if (!shared) {
    shared = {
      key,
      file,
      identity,
      counters: new Int32Array(new SharedArrayBuffer(SLOTS * 4)),
      holders: new Set(),
      worker: undefined,
      mode: "background",
      stopped: undefined,
    };
    byFile.set(key, shared);
    spawn(shared, options, logger);
  }
  shared.holders.add(db);
  if (shared.mode === "inline") inline(db);
  const held = shared;
  let released: Promise<void> | undefined;
  return {
    stats: () => statsOf(held),
    release: () => {
      released ??= (async () => {
        held.holders.delete(db);
        if (held.holders.size > 0) return;
        if (byFile.get(held.key) === held) byFile.delete(held.key);
        await stop(held);
      })();
      return released;
    },
  };
}

function spawn(shared: Shared, options: CheckpointerOptions, logger: Logger): void {
  const fallBack = (why: string, error?: unknown) => {
    if (shared.mode === "inline") return;
    shared.mode = "inline";
    shared.worker = undefined;
    for (const db of shared.holders) inline(db);
    logger.warn(
      { err: error, file: shared.file },
      `background WAL checkpoints unavailable (${why}); SQLite checkpoints inside commits every ${INLINE_CHECKPOINT_PAGES} pages instead`,
    );
  };
  const driver = driverPath();
  if (driver === undefined) return fallBack("better-sqlite3 cannot be located for a worker thread");
  let worker: Worker;
  try {
    worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        driver,
        file: shared.file,
        identity: shared.identity ? { dev: shared.identity.dev, ino: shared.identity.ino } : null,
        // Clamped: a longer interval overflows Node's timer and the worker would tick every 1 ms.
        intervalMs: timerDelay(options.intervalMs),
        maxWalPages: options.maxWalPages,
        counters: shared.counters.buffer,
      },
      stdout: false,
      stderr: false,
    });
  } catch (error) {
    return fallBack("cannot start a worker thread", error);
  }
  worker.unref();
  shared.worker = worker;
  worker.on("message", (m: { type: string; message: string }) => {
    if (m.type === "failed") fallBack(`the worker cannot open the file: ${m.message}`);
    else logger.warn({ file: shared.file, error: m.message }, "a background WAL checkpoint failed");
  });
  worker.on("error", (error) => fallBack("the worker thread failed", error));
  worker.on("exit", (code) => {
    if (shared.worker === worker && shared.stopped === undefined)
      fallBack(`the worker thread exited with code ${code}`);
  });
}

async function stop(shared: Shared): Promise<void> {
  shared.stopped ??= (async () => {
    const worker = shared.worker;
    shared.worker = undefined;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    worker.postMessage("stop");
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), 2_000);
    });
    // A checkpoint in progress finishes first; a worker that does not answer is terminated.
    if ((await Promise.race([exited, late])) === "late") await worker.terminate();
    clearTimeout(timer);
  })();
  return shared.stopped;
}

function inline(db: Database.Database): void {
  if (db.open) db.pragma(`wal_autocheckpoint = ${INLINE_CHECKPOINT_PAGES}`);
}

function statsOf(shared: Shared): CheckpointStats {
  const c = shared.counters;
  return {
    mode: shared.mode,
    passive: Atomics.load(c, Slot.Passive),
    restarts: Atomics.load(c, Slot.Restarts),
    busy: Atomics.load(c, Slot.Busy),
    errors: Atomics.load(c, Slot.Errors),
    walPages: Atomics.load(c, Slot.WalPages),
    maxWalPagesSeen: Atomics.load(c, Slot.MaxWalPages),
  };
}

let driver: string | null | undefined;

/**
 * Where the worker loads better-sqlite3 from: as this module would resolve it, else the copy this
 * process already loaded (bundles that keep better-sqlite3 external resolve from elsewhere).
 */
function driverPath(): string | undefined {
  if (driver !== undefined) return driver ?? undefined;
  const require = createRequire(import.meta.url);
  try {
    driver = require.resolve("better-sqlite3");
  } catch {
    const suffix = /[\\/]better-sqlite3[\\/]lib[\\/]index\.js$/;
    driver = Object.keys(require.cache).find((key) => suffix.test(key)) ?? null;
  }
  return driver ?? undefined;
}
