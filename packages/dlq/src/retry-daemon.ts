import type { AnyCatalog, Envelope } from "@switchyard/event-schema";
import { DaemonOptionsError, HandlerBase } from "@switchyard/handler-base";
import {
  type BackoffOptions,
  type DeadLetterReason,
  type HealthCheckResult,
  type Logger,
  type Router,
  backoffDelay,
} from "@switchyard/router";
import { type DeadLetterRelease, backoffProblem } from "@switchyard/transport";
import { DamagedDeadLetterError, ReplayTimeoutError } from "./errors";

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
  /**
   * Hand the record back to its subscriber. `signal` aborts when the daemon stops or the record's
   * lease runs out: stop then. The daemon waits no longer than the lease in any case.
   */
  replay(
    record: RetryableDeadLetter & { readonly envelope: Envelope },
    options?: { readonly signal?: AbortSignal },
  ): Promise<void>;
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
  /** Replays of one record before it is given up as permanently failed (an integer ≥ 0). @defaultValue 5 */
  readonly maxReplays?: number;
  /**
   * Reasons worth retrying automatically (an array of `"max_attempts"`, `"timeout"`,
   * `"unrecoverable"`, `"invalid_payload"`). Poison (`unrecoverable`, `invalid_payload`) will fail
   * the same way again: it is marked permanently failed at once and waits for an operator.
   * @defaultValue ["max_attempts", "timeout"]
   */
  readonly retryReasons?: readonly DeadLetterReason[];
  /**
   * Delay after a replay that could not be delivered (subscriber gone, target down, no answer
   * within the lease); it grows with the record's replays and with its failed replays in a row.
   * @defaultValue { initialMs: 30_000, maxMs: 3_600_000 }
   */
  readonly replayErrorBackoff?: BackoffOptions;
  /** Records claimed per pass (an integer ≥ 1). @defaultValue 50 */
  readonly batchSize?: number;
  /**
   * How long a claimed record stays ours (an integer ≥ 1, in ms); another replayer takes it over
   * after that. It bounds each replay: a target that has not answered by then is given up on
   * (`ReplayTimeoutError`), and a record of the batch whose lease ran out meanwhile is not replayed.
   * @defaultValue 60_000
   */
  readonly leaseMs?: number;
  /**
   * Emit DLQ_DEPTH_EXCEEDED when the depth rises past this (once per crossing): an integer ≥ 0,
   * or `Infinity` for never. @defaultValue 100
   */
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
  /**
   * Replays in a row that could not be delivered, by record id: the store keeps no such count, and
   * without it `replayErrorBackoff` would never grow. Bounded (oldest dropped); lost on restart.
   */
  readonly #failuresInARow = new Map<string | number, number>();

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
    const retryReasons: unknown = options.retryReasons ?? ["max_attempts", "timeout"];
    this.#replayErrorBackoff = options.replayErrorBackoff ?? {
      initialMs: 30_000,
      maxMs: 3_600_000,
    };
    this.#batchSize = options.batchSize ?? 50;
    this.#leaseMs = options.leaseMs ?? 60_000;
    this.#depthThreshold = options.depthAlertThreshold ?? 100;
    const check = (option: string, ok: boolean, expected: string, value: unknown) => {
      if (!ok)
        throw new DaemonOptionsError(`DlqRetryDaemon(${this.name})`, option, expected, value);
    };
    const integerFrom = (least: number) => (v: unknown) =>
      Number.isInteger(v) && (v as number) >= least;
    const has = (value: unknown, method: string) =>
      typeof (value as Record<string, unknown> | null | undefined)?.[method] === "function";
    check(
      "store",
      has(this.#store, "claim") && has(this.#store, "release") && has(this.#store, "stats"),
      "a dead-letter store with claim(), release() and stats() (SqliteDeadLetterStore, NatsDeadLetterStore)",
      this.#store,
    );
    check(
      "target",
      has(this.#target, "replay"),
      "a replay target with replay(), e.g. replayTo({ router, transport })",
      this.#target,
    );
    // A string would be a set of its letters, an unknown reason a typo: either way every record
    // would count as poison and be given up at once.
    check(
      "retryReasons",
      Array.isArray(retryReasons) &&
        retryReasons.every((r) => typeof r === "string" && Object.hasOwn(REASONS, r)),
      `an array of dead-letter reasons (${Object.keys(REASONS).join(", ")})`,
      retryReasons,
    );
    this.#retryReasons = new Set(retryReasons as readonly DeadLetterReason[]);
    check("maxReplays", integerFrom(0)(this.#maxReplays), "an integer ≥ 0", this.#maxReplays);
    check("batchSize", integerFrom(1)(this.#batchSize), "an integer ≥ 1", this.#batchSize);
    check("leaseMs", integerFrom(1)(this.#leaseMs), "an integer ≥ 1 (ms)", this.#leaseMs);
    // The alert's payload carries the threshold as a count: with a fraction it would fail its
    // schema, and DLQ_DEPTH_EXCEEDED would never go out.
    check(
      "depthAlertThreshold",
      integerFrom(0)(this.#depthThreshold) || this.#depthThreshold === Number.POSITIVE_INFINITY,
      "an integer ≥ 0, or Infinity for no alert",
      this.#depthThreshold,
    );
    check(
      "replayErrorBackoff",
      typeof this.#replayErrorBackoff === "object" && !Array.isArray(this.#replayErrorBackoff),
      "an object of backoff options ({ initialMs, maxMs, multiplier, jitter })",
      this.#replayErrorBackoff,
    );
    const backoff = backoffProblem(this.#replayErrorBackoff);
    if (backoff)
      check(`replayErrorBackoff.${backoff.field}`, false, backoff.expected, backoff.value);
  }

  /** Replayed, given up and failed-replay counts since start. */
  get retryStats(): { replayed: number; givenUp: number; replayErrors: number } {
    return { replayed: this.#replayed, givenUp: this.#givenUp, replayErrors: this.#replayErrors };
  }

  protected override async runCycle(signal: AbortSignal): Promise<void> {
    // Read before the claim: the store dates the leases at or after it, so none ends sooner.
    const leaseEnd = Date.now() + this.#leaseMs;
    const claimed = await this.#store.claim({ limit: this.#batchSize, leaseMs: this.#leaseMs });
    for (const record of claimed) {
      if (signal.aborted || Date.now() >= leaseEnd) {
        // Stopping, or the lease ran out while earlier records were replayed (another replayer
        // may hold the record now, and would replay it too): hand it back untouched. The store
        // refuses this if another replayer took it meanwhile.
        await this.#release(record, { status: "pending_retry", nextRetryAt: Date.now() });
        continue;
      }
      await this.#retry(record, signal, leaseEnd);
    }
    await this.#checkDepth();
  }

  async #retry(record: RetryableDeadLetter, signal: AbortSignal, leaseEnd: number): Promise<void> {
    const damaged = envelopeProblem(record);
    if (damaged !== undefined) {
      await this.#giveUp(
        record,
        `damaged: ${damaged}`,
        new DamagedDeadLetterError(record.id, damaged),
      );
      return;
    }
    const poison = !this.#retryReasons.has(record.reason);
    if (poison || record.replays >= this.#maxReplays) {
      await this.#giveUp(
        record,
        poison ? `reason ${record.reason} is not retried` : `${record.replays} replays failed`,
      );
      return;
    }
    try {
      await this.#handBack(
        record as RetryableDeadLetter & { readonly envelope: Envelope },
        signal,
        leaseEnd,
      );
    } catch (error) {
      if (signal.aborted) {
        // Cut short by stop(): due again at once, like the rest of the batch.
        this.logger.info(
          { err: error, deadLetter: record.id },
          `replaying dead letter ${record.id} was cut short by stop(); it is due again`,
        );
        await this.#release(record, { status: "pending_retry", nextRetryAt: Date.now() });
        return;
      }
      this.#replayErrors++;
      const inARow = (this.#failuresInARow.get(record.id) ?? 0) + 1;
      this.#failuresInARow.delete(record.id); // re-inserted last: the map drops the oldest first
      this.#failuresInARow.set(record.id, inARow);
      if (this.#failuresInARow.size > MAX_TRACKED_FAILURES)
        this.#failuresInARow.delete(this.#failuresInARow.keys().next().value!);
      const delay = backoffDelay(record.replays + inARow, this.#replayErrorBackoff);
      this.logger.warn(
        { err: error, deadLetter: record.id },
        `replaying dead letter ${record.id} failed; next try in ${delay} ms`,
      );
      await this.#release(record, { status: "pending_retry", nextRetryAt: Date.now() + delay });
      return;
    }
    // Handed back: a replay, whether or not the settle below still holds the claim (the copy may
    // already have failed again and been dead-lettered anew, which counts this replay itself).
    this.#failuresInARow.delete(record.id);
    this.#replayed++;
    await this.#release(record, { status: "replayed" });
  }

  /**
   * The target's replay of `record`, waited for until its lease ends at the latest (then it
   * rejects with {@link ReplayTimeoutError}). The target's signal aborts on stop and at that end.
   */
  async #handBack(
    record: RetryableDeadLetter & { readonly envelope: Envelope },
    signal: AbortSignal,
    leaseEnd: number,
  ): Promise<void> {
    const controller = new AbortController();
    const onStop = () => controller.abort(signal.reason);
    signal.addEventListener("abort", onStop, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const leaseOver = new Promise<never>((_resolve, reject) => {
      // Capped at setTimeout's longest delay, which would otherwise fire at once.
      const ms = Math.min(Math.max(0, leaseEnd - Date.now()), 2_147_483_647);
      timer = setTimeout(() => {
        const error = new ReplayTimeoutError(record.id, this.#leaseMs);
        controller.abort(error);
        reject(error);
      }, ms);
    });
    try {
      await Promise.race([
        // A target that throws instead of rejecting is a failed replay as well.
        new Promise<void>((resolve) =>
          resolve(this.#target.replay(record, { signal: controller.signal })),
        ),
        leaseOver,
      ]);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onStop);
    }
  }

  /** Settle `record` as permanently failed, log why, and emit DLQ_PERMANENTLY_FAILED. */
  async #giveUp(record: RetryableDeadLetter, why: string, error?: Error): Promise<void> {
    this.#failuresInARow.delete(record.id);
    if (!(await this.#release(record, { status: "permanently_failed" }))) return;
    this.#givenUp++;
    this.logger.warn(
      {
        ...(error ? { err: error } : {}),
        deadLetter: record.id,
        eventId: record.eventId,
        subscriber: record.subscriber,
        reason: record.reason,
        replays: record.replays,
      },
      `dead letter ${record.id} (${record.eventType} for ${record.subscriber}) given up: ${why}`,
    );
    // Caused by the dead-lettered event: the alert joins its causation chain and its trace (not
    // for a damaged record, whose envelope cannot be trusted).
    await this.#alert(
      "DLQ_PERMANENTLY_FAILED",
      {
        dead_letter_id: record.id,
        event_id: record.eventId,
        event_type: record.eventType,
        subscriber: record.subscriber,
        replays: record.replays,
        error: error ? why : `${record.reason}: ${record.error.message}`,
      },
      error ? undefined : record.envelope,
    );
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
  override health(): HealthCheckResult {
    const base = super.health();
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

/** Every dead-letter reason (a record, so that a reason added to the type must be added here). */
const REASONS: Readonly<Record<DeadLetterReason, true>> = {
  max_attempts: true,
  unrecoverable: true,
  invalid_payload: true,
  timeout: true,
};

/** Records whose failed replays in a row the daemon remembers at most. */
const MAX_TRACKED_FAILURES = 10_000;

/**
 * Why `record`'s envelope cannot be handed back (not stored or unreadable, or not the envelope of
 * this record: a row written by another program or edited by hand), or `undefined` when it can.
 */
function envelopeProblem(record: RetryableDeadLetter): string | undefined {
  const envelope: unknown = record.envelope;
  if (typeof envelope !== "object" || envelope === null || Array.isArray(envelope)) {
    const damaged = (record as { readonly damaged?: unknown }).damaged;
    return typeof damaged === "string" ? damaged : "no envelope object is stored";
  }
  const { id, type } = envelope as { readonly id?: unknown; readonly type?: unknown };
  if (id !== record.eventId || type !== record.eventType)
    return (
      `its stored envelope (id ${JSON.stringify(id) ?? "undefined"}, type ${JSON.stringify(type) ?? "undefined"}) ` +
      `is not that of event ${record.eventId} of type ${record.eventType}`
    );
  return undefined;
}
