import type Database from "better-sqlite3";
import {
  type DaemonContracts,
  type HeartbeatSink,
  type Logger,
  isDaemonContracts,
  silentLogger,
} from "@switchyard/transport";
import { DEFAULT_BUSY_TIMEOUT_MS, DEFAULT_PATH, busyPause, openDatabase } from "./database";
import { QueueBusyError, TransportClosedError, integerOption, isBusy } from "./errors";

/** One daemon heartbeat, as `@switchyard/handler-base`'s `DaemonManager` writes it. */
export interface Heartbeat {
  readonly daemon: string;
  readonly pid: number;
  readonly host: string;
  readonly status: string;
  /** JSON-safe health report. */
  readonly health: unknown;
  /** JSON-safe counters. */
  readonly stats: unknown;
  /** Successful restarts after crashes, since the manager started. @defaultValue 0 */
  readonly restarts?: number;
  /** When the daemon's current run started (RFC 3339); `null` when it is not running. */
  readonly startedAt: string | null;
  /** RFC 3339: when this heartbeat was taken. */
  readonly at: string;
  /** What the daemon publishes and consumes, when it announces it (kept as JSON). */
  readonly contracts?: DaemonContracts;
}

/** Options of {@link SqliteHeartbeatSink}. */
export interface SqliteHeartbeatSinkOptions {
  /** The queue file. @defaultValue `"data/coordination/coordination.db"` */
  readonly path?: string;
  /** Use this open connection instead of opening `path` (it is not closed by {@link SqliteHeartbeatSink.close}). */
  readonly database?: Database.Database;
  /**
   * How long a heartbeat keeps being retried (asynchronously) while another process holds the
   * write lock, before it is given up (counted and logged). @defaultValue 5_000
   */
  readonly busyTimeoutMs?: number;
  /** Told (`warn`) about heartbeats given up. @defaultValue silent */
  readonly logger?: Logger;
}

/**
 * Writes daemon heartbeats into the `daemon_heartbeats` table of the queue file (one row per
 * daemon, upserted), where `switchyard health` and {@link listHeartbeats} read them from any process.
 *
 * @example
 * ```ts
 * // not runnable
 * const sink = new SqliteHeartbeatSink({ path: "data/coordination/coordination.db" });
 * new DaemonManager({ router, daemons, heartbeats: sink });
 * ```
 */
export class SqliteHeartbeatSink implements HeartbeatSink {
  readonly #db: Database.Database;
  readonly #owned: boolean;
  readonly #path: string;
  readonly #busyTimeoutMs: number;
  readonly #upsert: Database.Statement;
  readonly #logger: Logger;
  /** Rows waiting for the lock, by daemon: a newer heartbeat replaces an older one still waiting. */
  readonly #waiting = new Map<string, Record<string, unknown>>();
  #retrying: Promise<void> | undefined;
  #missed = 0;

  constructor(options: SqliteHeartbeatSinkOptions = {}) {
    this.#path = options.path ?? options.database?.name ?? DEFAULT_PATH;
    // NaN or Infinity here never gave a heartbeat up while the file stayed locked: flush() and
    // close() then waited as long as the lock was held.
    this.#busyTimeoutMs = integerOption(
      "busyTimeoutMs",
      options.busyTimeoutMs,
      DEFAULT_BUSY_TIMEOUT_MS,
      0,
    );
    this.#owned = options.database === undefined;
    this.#logger = options.logger ?? silentLogger;
    this.#db = options.database ?? openDatabase(this.#path, { busyTimeoutMs: this.#busyTimeoutMs });
    // Our own connection never waits inside SQLite (that would block the event loop): a write that
    // finds the lock taken fails at once and is retried after a yield. A shared one keeps its setting
    // (the transport's runs with 0 already).
    if (this.#owned) this.#db.pragma("busy_timeout = 0");
    this.#upsert = this.#db.prepare(
      `INSERT INTO daemon_heartbeats (daemon, pid, host, status, health, stats, restarts, contracts, started_at, updated_at)
       VALUES (@daemon, @pid, @host, @status, @health, @stats, @restarts, @contracts, @started_at, @updated_at)
       ON CONFLICT (daemon) DO UPDATE SET
         pid = excluded.pid, host = excluded.host, status = excluded.status, health = excluded.health,
         stats = excluded.stats, restarts = excluded.restarts, contracts = excluded.contracts,
         started_at = excluded.started_at, updated_at = excluded.updated_at`,
    );
  }

  /** Heartbeats given up because the file stayed locked for `busyTimeoutMs` (each one logged). */
  get missed(): number {
    return this.#missed;
  }

  /**
   * Upsert the daemon's row. Never blocks the event loop on another process's lock: uncontended,
   * the row is durable when this returns; while another process holds the write lock, the row is
   * retried asynchronously (after yielding) and is durable once {@link SqliteHeartbeatSink.flush}
   * resolves. A newer heartbeat of the same daemon replaces one still waiting. After
   * `busyTimeoutMs` of trying, the waiting heartbeats are given up: counted in
   * {@link SqliteHeartbeatSink.missed} and logged; the next heartbeat tries again. After
   * {@link SqliteHeartbeatSink.close}, throws `TransportClosedError`.
   */
  write(beat: Heartbeat): void {
    if (this.#closed) throw new TransportClosedError(`heartbeat sink on ${this.#path}`);
    const at = Date.parse(beat.at);
    const startedAt = beat.startedAt === null ? Number.NaN : Date.parse(beat.startedAt);
    const row = {
      daemon: beat.daemon,
      pid: beat.pid,
      host: beat.host,
      status: beat.status,
      health: JSON.stringify(beat.health ?? null),
      stats: JSON.stringify(beat.stats ?? null),
      restarts: Number.isSafeInteger(beat.restarts) ? beat.restarts! : 0,
      contracts: isDaemonContracts(beat.contracts) ? JSON.stringify(beat.contracts) : null,
      started_at: Number.isNaN(startedAt) ? null : startedAt,
      updated_at: Number.isNaN(at) ? Date.now() : at,
    };
    if (this.#retrying) {
      this.#waiting.set(beat.daemon, row);
      return;
    }
    try {
      this.#upsert.run(row);
    } catch (error) {
      if (!isBusy(error)) throw error;
      this.#waiting.set(beat.daemon, row);
      this.#retrying = this.#retry().finally(() => {
        this.#retrying = undefined;
      });
    }
  }

  /** Resolves once every heartbeat written so far is durable or given up. */
  async flush(): Promise<void> {
    await this.#retrying;
  }

  async #retry(): Promise<void> {
    const start = Date.now();
    for (let attempt = 0; this.#waiting.size > 0 && this.#db.open; attempt++) {
      await busyPause(attempt);
      try {
        for (const [daemon, row] of this.#waiting) {
          this.#upsert.run(row);
          this.#waiting.delete(daemon);
        }
      } catch (error) {
        const waited = Date.now() - start;
        if (!isBusy(error) || waited >= this.#busyTimeoutMs) {
          const daemons = [...this.#waiting.keys()];
          this.#missed += daemons.length;
          this.#waiting.clear();
          this.#logger.warn(
            {
              err: isBusy(error) ? new QueueBusyError(this.#path, waited, { cause: error }) : error,
              daemons,
            },
            `heartbeats of ${daemons.join(", ")} not written: ${isBusy(error) ? `the file stayed locked for ${waited} ms` : "the write failed"}`,
          );
          return;
        }
      }
    }
  }

  #closed: Promise<void> | undefined;

  /**
   * Wait for heartbeats still being retried ({@link SqliteHeartbeatSink.flush}: a daemon's last
   * "stopped" beat must not be lost at exit), then close the connection if this sink opened it.
   * Idempotent: a second call returns the same promise.
   */
  close(): Promise<void> {
    return (this.#closed ??= this.flush().then(() => {
      if (this.#owned && this.#db.open) this.#db.close();
    }));
  }
}
