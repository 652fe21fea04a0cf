import type Database from "better-sqlite3";
import { DEFAULT_BUSY_TIMEOUT_MS, DEFAULT_PATH, openDatabase, retryBusySync } from "./database";

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
  /** When the daemon's current run started (RFC 3339); `null` when it is not running. */
  readonly startedAt: string | null;
  /** RFC 3339: when this heartbeat was taken. */
  readonly at: string;
}

/** Options of {@link SqliteHeartbeatSink}. */
export interface SqliteHeartbeatSinkOptions {
  /** The queue file. @defaultValue `"data/coordination/coordination.db"` */
  readonly path?: string;
  /** Use this open connection instead of opening `path` (it is not closed by {@link SqliteHeartbeatSink.close}). */
  readonly database?: Database.Database;
  /** @defaultValue 5_000 */
  readonly busyTimeoutMs?: number;
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
export class SqliteHeartbeatSink {
  readonly #db: Database.Database;
  readonly #owned: boolean;
  readonly #path: string;
  readonly #busyTimeoutMs: number;
  readonly #upsert: Database.Statement;

  constructor(options: SqliteHeartbeatSinkOptions = {}) {
    this.#path = options.path ?? options.database?.name ?? DEFAULT_PATH;
    this.#busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    this.#owned = options.database === undefined;
    this.#db = options.database ?? openDatabase(this.#path, { busyTimeoutMs: this.#busyTimeoutMs });
    this.#upsert = this.#db.prepare(
      `INSERT INTO daemon_heartbeats (daemon, pid, host, status, health, stats, started_at, updated_at)
       VALUES (@daemon, @pid, @host, @status, @health, @stats, @started_at, @updated_at)
       ON CONFLICT (daemon) DO UPDATE SET
         pid = excluded.pid, host = excluded.host, status = excluded.status, health = excluded.health,
         stats = excluded.stats, started_at = excluded.started_at, updated_at = excluded.updated_at`,
    );
  }

  /** Upsert the daemon's row. Synchronous and durable when it returns. */
  write(beat: Heartbeat): void {
    const at = Date.parse(beat.at);
    const startedAt = beat.startedAt === null ? Number.NaN : Date.parse(beat.startedAt);
    const row = {
      daemon: beat.daemon,
      pid: beat.pid,
      host: beat.host,
      status: beat.status,
      health: JSON.stringify(beat.health ?? null),
      stats: JSON.stringify(beat.stats ?? null),
      started_at: Number.isNaN(startedAt) ? null : startedAt,
      updated_at: Number.isNaN(at) ? Date.now() : at,
    };
    retryBusySync(this.#path, this.#busyTimeoutMs, () => this.#upsert.run(row));
  }

  /** Close the connection if this sink opened it. Idempotent. */
  close(): void {
    if (this.#owned && this.#db.open) this.#db.close();
  }
}
