import type {
  DaemonContracts,
  DaemonHeartbeat,
  DaemonRunState,
  HeartbeatSink,
} from "@switchyard/transport";
import { DaemonOptionsError } from "./errors";

export type { DaemonContracts, DaemonHeartbeat, DaemonRunState, HeartbeatSink };

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
 * Keep heartbeats in memory, at most `capacity` of them (the oldest is dropped first; an integer
 * ≥ 1, else {@link DaemonOptionsError}). Each is stored as a JSON round-tripped copy, as a
 * persistent sink would see it.
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
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new DaemonOptionsError("memoryHeartbeatSink", "capacity", "an integer ≥ 1", capacity);
  }
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
