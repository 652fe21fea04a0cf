import type { HealthCheckResult } from "./health";

/**
 * Where a daemon is in its life. `crashed`: `start()` rejected, or the daemon gave up after
 * `maxConsecutiveCycleFailures` failing cycles; it can be started again.
 */
export type DaemonStatus = "stopped" | "starting" | "running" | "stopping" | "crashed";

/**
 * A daemon's counters, as returned by `daemon.stats`: a JSON-safe snapshot.
 *
 * A *unit of work* is one handler delivery or one cycle; `successCount`, `errorsCount` and
 * `successRate` count units of work. Deliveries the handler recognised as duplicates
 * (`isDuplicateEvent` returned true) count in `eventsDeduplicated` only.
 */
export interface DaemonStats {
  /** Handler deliveries that ran to the end, successfully or not (duplicates excluded). */
  readonly eventsProcessed: number;
  /** Deliveries skipped because `isDuplicateEvent` recognised them. */
  readonly eventsDeduplicated: number;
  /** Handler deliveries and cycles that succeeded. */
  readonly successCount: number;
  /** Handler deliveries and cycles that threw. */
  readonly errorsCount: number;
  /** `successCount / (successCount + errorsCount)`; 1 before any work. */
  readonly successRate: number;
  /** Last time a delivery, cycle or emit finished, in ms since the epoch; `null` before any. */
  readonly lastActivity: number | null;
  /** Cycles run, failed ones included. */
  readonly cyclesRun: number;
  /** Cycles that threw. */
  readonly cycleFailures: number;
  /** Cycles that threw since the last one that succeeded. */
  readonly consecutiveCycleFailures: number;
  /** Events published by `emit`. */
  readonly eventsEmitted: number;
  /** `emit` calls that failed (invalid payload, router closed, transport down). */
  readonly emitFailures: number;
  /** `emit` calls that failed since the last one that succeeded. */
  readonly consecutiveEmitFailures: number;
}

/**
 * A daemon's state as its manager sees it: the daemon's own {@link DaemonStatus}, or `"failed"`
 * once the manager gave up on it (restarting it, or waiting for it to stop).
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
  /**
   * What the daemon publishes and consumes, announced with every heartbeat (so the inspector
   * knows the live topology without being given the catalog). Absent from daemons that do not say.
   */
  readonly contracts?: DaemonContracts;
}

/** One event type as a daemon announces it: `TypeContract` of `@switchyard/event-schema`. */
export interface AnnouncedType {
  readonly type: string;
  /** The catalog's schema version of the type. */
  readonly version: number;
  /** Hash of the payload's JSON Schema (see `typeContract`). */
  readonly schemaHash: string;
  /** The payload's JSON Schema (input side), when announced: lets readers tell breaking from additive. */
  readonly schema?: Record<string, unknown>;
}

/** What one daemon announces about the event types it publishes and consumes. */
export interface DaemonContracts {
  readonly publishes: readonly AnnouncedType[];
  readonly subscribes: readonly AnnouncedType[];
  /** The daemon's package, `name@version`, when it says. */
  readonly package?: string;
}

/**
 * Where heartbeats go. `write` may be sync or async; a throw or rejection is logged by the
 * manager and never stops it. Implementations: `memoryHeartbeatSink` (handler-base) and each
 * transport driver's sink, which its inspector reads back (`inspector.heartbeats()`).
 */
export interface HeartbeatSink {
  write(beat: DaemonHeartbeat): void | Promise<void>;
}

/**
 * Whether a stored value has the {@link DaemonContracts} shape: what heartbeat readers use to keep
 * an announcement read back from storage, or leave out one that was written by something else.
 */
export function isDaemonContracts(value: unknown): value is DaemonContracts {
  const types = (list: unknown) =>
    Array.isArray(list) &&
    list.every(
      (t: unknown) =>
        typeof t === "object" &&
        t !== null &&
        typeof (t as { type?: unknown }).type === "string" &&
        typeof (t as { version?: unknown }).version === "number" &&
        typeof (t as { schemaHash?: unknown }).schemaHash === "string",
    );
  const v = value as { publishes?: unknown; subscribes?: unknown; package?: unknown } | null;
  return (
    typeof v === "object" &&
    v !== null &&
    types(v.publishes) &&
    types(v.subscribes) &&
    (v.package === undefined || typeof v.package === "string")
  );
}
