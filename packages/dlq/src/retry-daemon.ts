import type { AnyCatalog, Envelope } from "@switchyard/event-schema";
import { HandlerBase } from "@switchyard/handler-base";
import {
  type BackoffOptions,
  type DeadLetterReason,
  type HealthCheckResult,
  type Logger,
  type Router,
  backoffDelay,
} from "@switchyard/router";
import type {
  ClaimedDeadLetter,
  ReplayTarget,
  SqliteDeadLetterStore,
} from "@switchyard/cross-process-queue";

/** Options of {@link DlqRetryDaemon}. `C` is the catalog of its router. */
export interface DlqRetryDaemonOptions<C extends AnyCatalog = AnyCatalog> {
  readonly store: SqliteDeadLetterStore;
  /** Where replays go, usually `replayTo({ router, transport })`. */
  readonly target: ReplayTarget;
  /**
   * Emits DLQ_PERMANENTLY_FAILED and DLQ_DEPTH_EXCEEDED through it, each only if its catalog has
   * that type (add `DlqPermanentlyFailed` and `DlqDepthExceeded` of `@switchyard/event-schema`
   * to your catalog to get them; the pipeline catalog has both). @defaultValue the process-wide router
   */
  readonly router?: Router<C>;
  /** @defaultValue "dlq_retry" */
  readonly name?: string;
  /** Time between passes over due records, in ms. @defaultValue 5000 */
  readonly cycleIntervalMs?: number;
  /** Replays of one record before it is given up as permanently failed. @defaultValue 5 */
  readonly maxReplays?: number;
  /**
   * Reasons worth retrying automatically. Poison (`unrecoverable`, `invalid_payload`) will fail the
   * same way again: it is marked permanently failed at once and waits for an operator.
   * @defaultValue ["max_attempts", "timeout"]
   */
  readonly retryReasons?: readonly DeadLetterReason[];
  /** Delay after a replay that could not be delivered (subscriber gone, target down). @defaultValue { initialMs: 30_000, maxMs: 3_600_000 } */
  readonly replayErrorBackoff?: BackoffOptions;
  /** Records claimed per pass. @defaultValue 50 */
  readonly batchSize?: number;
  /** How long a claimed record stays ours; another replayer takes it over after that. @defaultValue 60_000 */
  readonly leaseMs?: number;
  /** Emit DLQ_DEPTH_EXCEEDED when the depth rises past this (once per crossing). @defaultValue 100 */
  readonly depthAlertThreshold?: number;
  readonly logger?: Logger;
}

/**
 * The dead-letter retry daemon: each cycle it claims due records (with a lease, so two daemons in
 * two processes never replay the same record), hands each back to the subscriber that failed it,
 * and gives up after `maxReplays` as `permanently_failed`, emitting DLQ_PERMANENTLY_FAILED (caused by
 * the dead-lettered envelope, so it carries that event's correlation and trace). It also
 * raises DLQ_DEPTH_EXCEEDED when the queue grows past its threshold. It works over a router of any
 * catalog (its type comes from the `router` option); the two alerts are emitted only when that
 * catalog has their types.
 *
 * @example
 * ```ts
 * // not runnable (see the README)
 * const daemon = new DlqRetryDaemon({ store, target: replayTo({ router, transport }), router });
 * await daemon.start();
 * ```
 */
export class DlqRetryDaemon<C extends AnyCatalog = AnyCatalog> extends HandlerBase<C> {
  readonly #store: SqliteDeadLetterStore;
  readonly #target: ReplayTarget;
  readonly #maxReplays: number;
  readonly #retryReasons: ReadonlySet<DeadLetterReason>;
  readonly #replayErrorBackoff: BackoffOptions;
  readonly #batchSize: number;
  readonly #leaseMs: number;
  readonly #depthThreshold: number;
  #aboveThreshold = false;
  #replayed = 0;
  #givenUp = 0;
  #replayErrors = 0;

  constructor(options: DlqRetryDaemonOptions<C>) {
    super({
      name: options.name ?? "dlq_retry",
      ...(options.router ? { router: options.router } : {}),
      cycleIntervalMs: options.cycleIntervalMs ?? 5000,
      ...(options.logger ? { logger: options.logger } : {}),
    });
    this.#store = options.store;
    this.#target = options.target;
    this.#maxReplays = options.maxReplays ?? 5;
    this.#retryReasons = new Set(options.retryReasons ?? ["max_attempts", "timeout"]);
    this.#replayErrorBackoff = options.replayErrorBackoff ?? {
      initialMs: 30_000,
      maxMs: 3_600_000,
    };
    this.#batchSize = options.batchSize ?? 50;
    this.#leaseMs = options.leaseMs ?? 60_000;
    this.#depthThreshold = options.depthAlertThreshold ?? 100;
  }

  /** Replayed, given up and failed-replay counts since start. */
  get retryStats(): { replayed: number; givenUp: number; replayErrors: number } {
    return { replayed: this.#replayed, givenUp: this.#givenUp, replayErrors: this.#replayErrors };
  }

  protected override async runCycle(signal: AbortSignal): Promise<void> {
    const claimed = await this.#store.claim({ limit: this.#batchSize, leaseMs: this.#leaseMs });
    for (const record of claimed) {
      if (signal.aborted) {
        // Stopping: hand the rest back untouched.
        await this.#store.release(record, { status: "pending_retry", nextRetryAt: Date.now() });
        continue;
      }
      await this.#retry(record);
    }
    await this.#checkDepth();
  }

  async #retry(record: ClaimedDeadLetter): Promise<void> {
    const poison = !this.#retryReasons.has(record.reason);
    if (poison || record.replays >= this.#maxReplays) {
      await this.#store.release(record, { status: "permanently_failed" });
      this.#givenUp++;
      this.logger.warn(
        {
          deadLetter: record.id,
          eventId: record.eventId,
          subscriber: record.subscriber,
          reason: record.reason,
          replays: record.replays,
        },
        `dead letter ${record.id} (${record.eventType} for ${record.subscriber}) given up: ${poison ? `reason ${record.reason} is not retried` : `${record.replays} replays failed`}`,
      );
      // Caused by the dead-lettered event: the alert joins its causation chain and its trace.
      await this.#alert(
        "DLQ_PERMANENTLY_FAILED",
        {
          dead_letter_id: record.id,
          event_id: record.eventId,
          event_type: record.eventType,
          subscriber: record.subscriber,
          replays: record.replays,
          error: `${record.reason}: ${record.error.message}`,
        },
        record.envelope,
      );
      return;
    }
    try {
      await this.#target.replay(
        record as ClaimedDeadLetter & { envelope: NonNullable<ClaimedDeadLetter["envelope"]> },
      );
      await this.#store.release(record, { status: "replayed" });
      this.#replayed++;
    } catch (error) {
      this.#replayErrors++;
      const delay = backoffDelay(record.replays + 1, this.#replayErrorBackoff);
      await this.#store.release(record, {
        status: "pending_retry",
        nextRetryAt: Date.now() + delay,
      });
      this.logger.warn(
        { err: error, deadLetter: record.id },
        `replaying dead letter ${record.id} failed; next try in ${delay} ms`,
      );
    }
  }

  async #checkDepth(): Promise<void> {
    const stats = this.#store.stats();
    const above = stats.depth > this.#depthThreshold;
    if (above && !this.#aboveThreshold) {
      await this.#alert("DLQ_DEPTH_EXCEEDED", {
        depth: stats.depth,
        threshold: this.#depthThreshold,
        by_type: stats.byType,
      });
    }
    this.#aboveThreshold = above;
  }

  /** Emit one of the daemon's alerts, if the router's catalog declares its type. */
  async #alert(alert: string, data: Record<string, unknown>, causedBy?: Envelope): Promise<void> {
    const type: unknown = alert;
    if (this.router.catalog.has(type)) {
      // The catalog declares the type; its schema validates the payload on publish.
      await this.emit(type, data as never, causedBy ? { causedBy } : {});
      return;
    }
    this.logger.debug(
      { eventType: alert },
      `${alert} not emitted: the router's catalog does not declare it`,
    );
  }

  override healthCheck(): HealthCheckResult {
    const base = super.healthCheck();
    const stats = this.#store.stats();
    const deep = stats.depth > this.#depthThreshold;
    return {
      ...base,
      healthy: base.healthy && !deep,
      status: base.status === "healthy" && deep ? "degraded" : base.status,
      message: deep
        ? `dead-letter depth ${stats.depth} > ${this.#depthThreshold}; ${base.message}`
        : base.message,
      details: {
        ...base.details,
        dlq: {
          depth: stats.depth,
          byStatus: stats.byStatus,
          oldestAgeMs: stats.oldestAgeMs ?? null,
        },
        ...this.retryStats,
      },
    };
  }
}
