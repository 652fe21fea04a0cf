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

/** One entry of `daemon.recentErrors()`: JSON-safe. */
export interface DaemonErrorRecord {
  /** ISO time of the failure. */
  readonly at: string;
  /** What failed: a handler delivery, a cycle, an emit, or start/stop. */
  readonly kind: "handler" | "cycle" | "emit" | "start" | "stop";
  /** The error's class name (`"TypeError"`, `"EventValidationError"` …). */
  readonly name: string;
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
