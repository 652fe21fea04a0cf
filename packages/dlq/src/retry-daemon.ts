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
import type { DeadLetterRelease } from "@switchyard/transport";

/** What the retry daemon reads of a claimed dead letter (the claimed records of both stores have it). */
export interface RetryableDeadLetter {
  readonly id: string | number;
  readonly eventId: string;
  readonly eventType: string;
  readonly subscriber: string;
  /** `"router"` for in-process handlers, else the transport name. */
  readonly origin: string;
  readonly reason: DeadLetterReason;
  /** Times it was replayed. */
  readonly replays: number;
  readonly error: { readonly message: string };
  /** The original envelope; absent once purged or when damaged. */
  readonly envelope?: Envelope | undefined;
}

/**
 * A dead-letter store the retry daemon can work: claims due records under a lease (so two daemons
 * never replay one record), settles them, and tells its depth. `SqliteDeadLetterStore` and
 * `NatsDeadLetterStore` (of `@switchyard/transport-nats`) are.
 */
export interface RetryableDeadLetterStore {
  /** Due records, each leased to the caller for `leaseMs`. */
  claim(options: { limit: number; leaseMs: number }): Promise<readonly RetryableDeadLetter[]>;
  /** Settle a claimed record; rejects (`LeaseLostError`) when its lease is no longer held. */
  release(record: RetryableDeadLetter, outcome: DeadLetterRelease): Promise<void>;
  /** The depth (records still needing attention) and its breakdowns, now or when read. */
  stats(): RetryStoreStats | Promise<RetryStoreStats>;
}

/** What the retry daemon reads of {@link RetryableDeadLetterStore.stats}. */
export interface RetryStoreStats {
  /** Records still needing attention (not replayed, not purged). */
  readonly depth: number;
  readonly byType: Readonly<Record<string, number>>;
  readonly byStatus?: Readonly<Partial<Record<string, number>>>;
  /** Age of the oldest record in the depth, in ms. */
  readonly oldestAgeMs?: number | undefined;
}

/** Where the retry daemon hands a dead letter back: `replayTo({ router, transport })` is one. */
export interface RetryTarget {
  replay(record: RetryableDeadLetter & { readonly envelope: Envelope }): Promise<void>;
}

/** Options of {@link DlqRetryDaemon}. `C` is the catalog of its router. */
export interface DlqRetryDaemonOptions<C extends AnyCatalog = AnyCatalog> {
  /** The dead letters to retry: a `SqliteDeadLetterStore` or a `NatsDeadLetterStore`. */
  readonly store: RetryableDeadLetterStore;
  /** Where replays go, usually `replayTo({ router, transport })`. */
  readonly target: RetryTarget;
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
  readonly #store: RetryableDeadLetterStore;
  readonly #target: RetryTarget;
  readonly #maxReplays: number;
  readonly #retryReasons: ReadonlySet<DeadLetterReason>;
  readonly #replayErrorBackoff: BackoffOptions;
  readonly #batchSize: number;
  readonly #leaseMs: number;
  readonly #depthThreshold: number;
  #aboveThreshold = false;
  /** The store's stats as last read (by a cycle or a health check). */
  #lastStats: RetryStoreStats | undefined;
  /** The store's `stats()` returned a promise: health checks leave the reading to the cycles. */
  #statsAsync = false;
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
        await this.#release(record, { status: "pending_retry", nextRetryAt: Date.now() });
        continue;
      }
      await this.#retry(record);
    }
    await this.#checkDepth();
  }

  async #retry(record: RetryableDeadLetter): Promise<void> {
    const poison = !this.#retryReasons.has(record.reason);
    if (poison || record.replays >= this.#maxReplays) {
      if (!(await this.#release(record, { status: "permanently_failed" }))) return;
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
      await this.#target.replay(record as RetryableDeadLetter & { readonly envelope: Envelope });
    } catch (error) {
      this.#replayErrors++;
      const delay = backoffDelay(record.replays + 1, this.#replayErrorBackoff);
      this.logger.warn(
        { err: error, deadLetter: record.id },
        `replaying dead letter ${record.id} failed; next try in ${delay} ms`,
      );
      await this.#release(record, { status: "pending_retry", nextRetryAt: Date.now() + delay });
      return;
    }
    // Handed back: a replay, whether or not the settle below still holds the claim (the copy may
    // already have failed again and been dead-lettered anew, which counts this replay itself).
    this.#replayed++;
    await this.#release(record, { status: "replayed" });
  }

  /**
   * Settle a claimed record. False when the claim no longer held (the store's `LeaseLostError`):
   * the record changed meanwhile — its lease ran out and another replayer took it, or its
   * replayed copy failed again and was dead-lettered anew — and that newer version stands, so
   * the cycle goes on with the next record. Any other failure is the cycle's.
   */
  async #release(record: RetryableDeadLetter, outcome: DeadLetterRelease): Promise<boolean> {
    try {
      await this.#store.release(record, outcome);
      return true;
    } catch (error) {
      if ((error as { code?: unknown } | null)?.code !== "LEASE_LOST") throw error;
      this.logger.info(
        { deadLetter: record.id, eventId: record.eventId, outcome: outcome.status },
        `dead letter ${record.id} changed while it was claimed (its lease ran out, or the replayed copy failed again); its newer version stands`,
      );
      return false;
    }
  }

  async #checkDepth(): Promise<void> {
    const stats = await this.#store.stats();
    this.#lastStats = stats;
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

  /**
   * The base health, degraded while the depth is over the alert threshold. A store that answers
   * `stats()` synchronously (SQLite) is read now. One that answers asynchronously (NATS reads its
   * whole stream) is not read again here: the check uses the depth each cycle reads.
   */
  override healthCheck(): HealthCheckResult {
    const base = super.healthCheck();
    if (!this.#statsAsync) {
      const read = this.#store.stats();
      if (read instanceof Promise) {
        this.#statsAsync = true;
        read.then(
          (stats) => (this.#lastStats ??= stats),
          () => undefined, // the cycle's own read reports a store that fails
        );
      } else this.#lastStats = read;
    }
    const stats = this.#lastStats;
    if (stats === undefined) return { ...base, details: { ...base.details, ...this.retryStats } };
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
          byStatus: stats.byStatus ?? null,
          oldestAgeMs: stats.oldestAgeMs ?? null,
        },
        ...this.retryStats,
      },
    };
  }
}
