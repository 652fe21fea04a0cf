import type { DaemonStats } from "@switchyard/transport";

export type { DaemonStats };

/** One entry of `daemon.recentErrors()`: JSON-safe. */
export interface DaemonErrorRecord {
  /** ISO time of the failure. */
  readonly at: string;
  /** What failed: a handler delivery, a cycle, an emit, or start/stop. */
  readonly kind: "handler" | "cycle" | "emit" | "start" | "stop";
  /** The error's class name (`"TypeError"`, `"EventValidationError"` …). */
  readonly name: string;
  /** The error's message, cut after 2,000 characters (saying how many more there were). */
  readonly message: string;
  /** The error's stable `code`, when it has one. */
  readonly code?: string;
  /** The event being handled or emitted. */
  readonly eventType?: string;
  /** The id of the event being handled. */
  readonly eventId?: string;
}

/** The mutable side of {@link DaemonStats}. */
export class StatsCounters {
  eventsProcessed = 0;
  eventsDeduplicated = 0;
  successCount = 0;
  errorsCount = 0;
  lastActivity: number | null = null;
  cyclesRun = 0;
  cycleFailures = 0;
  consecutiveCycleFailures = 0;
  eventsEmitted = 0;
  emitFailures = 0;
  consecutiveEmitFailures = 0;

  snapshot(): DaemonStats {
    const work = this.successCount + this.errorsCount;
    return {
      eventsProcessed: this.eventsProcessed,
      eventsDeduplicated: this.eventsDeduplicated,
      successCount: this.successCount,
      errorsCount: this.errorsCount,
      successRate: work === 0 ? 1 : this.successCount / work,
      lastActivity: this.lastActivity,
      cyclesRun: this.cyclesRun,
      cycleFailures: this.cycleFailures,
      consecutiveCycleFailures: this.consecutiveCycleFailures,
      eventsEmitted: this.eventsEmitted,
      emitFailures: this.emitFailures,
      consecutiveEmitFailures: this.consecutiveEmitFailures,
    };
  }
}

/** The outcomes of the last `size` units of work, for the health verdict. */
export class OutcomeWindow {
  readonly #failures: Uint8Array;
  #next = 0;
  #count = 0;

  constructor(size = 100) {
    this.#failures = new Uint8Array(size);
  }

  record(failed: boolean): void {
    this.#failures[this.#next] = failed ? 1 : 0;
    this.#next = (this.#next + 1) % this.#failures.length;
    this.#count = Math.min(this.#count + 1, this.#failures.length);
  }

  /** Share of failures (0..1) and how many outcomes it is based on. */
  failureRate(): { rate: number; samples: number } {
    if (this.#count === 0) return { rate: 0, samples: 0 };
    let failures = 0;
    for (let i = 0; i < this.#count; i++) failures += this.#failures[i]!;
    return { rate: failures / this.#count, samples: this.#count };
  }
}
