import type { HealthCheckResult } from "@switchyard/router";
import type { DaemonStatus } from "./handler-base";
import type { DaemonStats } from "./stats";

/**
 * A daemon's state as its manager sees it: the daemon's own {@link DaemonStatus}, or `"failed"`
 * once the manager gave up restarting it.
 */
export type DaemonRunState = DaemonStatus | "failed";

/**
 * One periodic snapshot of a daemon, written by a `DaemonManager` to its {@link HeartbeatSink}
 * so that another process (the CLI) can tell what runs and how it is doing. JSON-safe.
 */
export interface DaemonHeartbeat {
  /** The daemon's name. */
  readonly daemon: string;
  readonly pid: number;
  readonly host: string;
  readonly status: DaemonRunState;
  readonly health: HealthCheckResult;
  readonly stats: DaemonStats;
  /** Successful restarts after crashes, since the manager started. */
  readonly restarts: number;
  /** When the daemon's current run started (ISO); `null` when it is not running. */
  readonly startedAt: string | null;
  /** When this heartbeat was taken (ISO). */
  readonly at: string;
}

/**
 * Where heartbeats go. `write` may be sync or async; a throw or rejection is logged by the
 * manager and never stops it. Implementations: {@link memoryHeartbeatSink} here; a SQLite table
 * the CLI reads lives with the cross-process queue.
 */
export interface HeartbeatSink {
  write(beat: DaemonHeartbeat): void | Promise<void>;
}

/** A {@link HeartbeatSink} that keeps heartbeats in memory: for tests and single-process tools. */
export interface MemoryHeartbeatSink extends HeartbeatSink {
  /** The heartbeats written, oldest first (JSON round-tripped copies). */
  readonly beats: readonly DaemonHeartbeat[];
  /** The last heartbeat of one daemon. */
  latest(daemon: string): DaemonHeartbeat | undefined;
  /** Forget every heartbeat. */
  clear(): void;
}

/**
 * Keep heartbeats in memory, at most `capacity` of them (the oldest is dropped first). Each is
 * stored as a JSON round-tripped copy, as a persistent sink would see it.
 *
 * @example
 * ```ts
 * const sink = memoryHeartbeatSink();
 * const manager = new DaemonManager({ daemons: [daemon], heartbeatSink: sink, heartbeatIntervalMs: 1000 });
 * await manager.startAll();
 * sink.latest("quality_monitor")?.status; // "running"
 * ```
 */
export function memoryHeartbeatSink(
  options: { readonly capacity?: number } = {},
): MemoryHeartbeatSink {
  const capacity = options.capacity ?? 1000;
  const beats: DaemonHeartbeat[] = [];
  return {
    beats,
    write(beat) {
      beats.push(JSON.parse(JSON.stringify(beat)) as DaemonHeartbeat);
      if (beats.length > capacity) beats.splice(0, beats.length - capacity);
    },
    latest(daemon) {
      for (let i = beats.length - 1; i >= 0; i--) if (beats[i]!.daemon === daemon) return beats[i];
      return undefined;
    },
    clear() {
      beats.length = 0;
    },
  };
}
