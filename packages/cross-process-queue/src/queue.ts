import type Database from "better-sqlite3";
import type { Envelope } from "@switchyard/event-schema";
import {
  type DeadLetterSink,
  type HealthCheckResult,
  type Logger,
  type PublishResult,
  type SubscriberStats,
  type Transport,
  type TransportStats,
  type TransportSubscribeOptions,
  type TransportSubscription,
  UnknownSubscriptionError,
  abortReason,
  childLogger,
  healthFrom,
  silentLogger,
  subscribeOptionsProblem,
} from "@switchyard/transport";
import { type CheckpointHandle, type CheckpointStats, startCheckpointer } from "./checkpoint";
import { type PublishCounts, QueueStore } from "./claim";
import { DEFAULT_BUSY_TIMEOUT_MS, DEFAULT_PATH, Writer, openDatabase } from "./database";
import { QueueOptionsError, TransportClosedError, isBusy } from "./errors";
import { subscriberStats } from "./introspect";
import { Poller, type PollerCounters } from "./poller";
import { type PruneResult, prune } from "./retention";
import { SqliteSubscription, type SubscriptionHost } from "./subscription";
import { timerDelay } from "./timers";

/** Options of {@link sqliteTransport}. Every field is optional. */
export interface SqliteTransportOptions {
  /** The queue file; its directories are created. @defaultValue `"data/coordination/coordination.db"` */
  readonly path?: string;
  /** Dead-letter sink for subscriptions that name none. @defaultValue none: the delivery row is marked `dead` and kept */
  readonly deadLetter?: DeadLetterSink;
  /** pino-compatible logger. @defaultValue silent */
  readonly logger?: Logger;
  /** How long `close()` waits for in-flight handlers before aborting them and handing their deliveries back. @defaultValue 10_000 */
  readonly drainTimeoutMs?: number;
  /** SQLite `busy_timeout`: how long a write waits for another process's lock (then retried internally). @defaultValue 5_000 */
  readonly busyTimeoutMs?: number;
  /** Largest accepted event, in bytes of JSON (payload plus extension attributes). @defaultValue 1_048_576 (1 MiB) */
  readonly maxPayloadBytes?: number;
  /** Most deliveries one claim takes (bounded by the subscription's free concurrency). @defaultValue 64 */
  readonly claimBatchSize?: number;
  /**
   * Prefetch: besides the deliveries its handlers run, a subscription may hold claimed deliveries
   * that wait their turn, about this many milliseconds of handler work (measured as it runs; at
   * most `claimBatchSize` in all, and never more than a quarter of `leaseMs`). They are claimed in
   * the transaction that saves the last outcomes and start in order the moment a handler is free,
   * so fast handlers at `concurrency: 1` settle dozens of deliveries per transaction. A waiting
   * delivery is leased to this process (shown in flight): one whose lease has run half its course
   * before its turn is handed back and claimed again with a fresh lease, and `close()` hands every
   * waiting one back at once. 0 turns prefetching off (one claim per free handler). @defaultValue 50
   */
  readonly prefetchMs?: number;
  /** Fallback poll interval right after activity. @defaultValue 25 */
  readonly minPollMs?: number;
  /** Fallback poll interval when idle (doubling up from `minPollMs`). @defaultValue 1_000 */
  readonly maxPollMs?: number;
  /** Wake on commits of other processes through `fs.watch` on the `-wal` file. @defaultValue true */
  readonly watch?: boolean;
  /** Keep acked deliveries and events this long. @defaultValue 86_400_000 (24 h) */
  readonly retentionMs?: number;
  /** Run {@link SqliteTransport.prune} this often (0 = only when called). @defaultValue 60_000 */
  readonly pruneIntervalMs?: number;
  /** An ephemeral subscriber not seen for this long is removed with its deliveries. @defaultValue 60_000 */
  readonly ephemeralTimeoutMs?: number;
  /**
   * Keep acked deliveries as rows with status `acked` (until retention prunes them) for auditing.
   * By default they are deleted when acked: the subscriber's cursor already records delivery,
   * and a small `deliveries` table keeps claims fast. @defaultValue false
   */
  readonly keepAcked?: boolean;
  /**
   * Who copies the WAL into the database file (a checkpoint, which fsyncs).
   * - `"background"`: a worker thread with its own connection, one per file and process, shared by
   *   its transports. Publishes, claims and acks never checkpoint, so no commit waits for an fsync.
   *   If the thread cannot start, it falls back to `"inline"` and logs a warning.
   * - `"inline"`: SQLite's auto-checkpoint, inside the commit that leaves 4000 pages (~16 MB) or
   *   more in the WAL; that commit's caller waits for the fsyncs (milliseconds).
   *
   * @defaultValue "background"
   */
  readonly checkpoint?: "background" | "inline";
  /** How often the background checkpointer looks for commits to copy. @defaultValue 100 */
  readonly checkpointIntervalMs?: number;
  /**
   * WAL size, in pages, at which the background checkpointer stops waiting for a pause between
   * writers to start the WAL over, and restarts it itself: once a passive pass copied everything
   * and nothing was committed since, it takes the write lock, only when it is free at that
   * instant, for microseconds (nothing left to copy or fsync). Past twice this size it waits up
   * to 10 ms for the lock. Bounds the WAL under steady load. @defaultValue 4000
   */
  readonly maxWalPages?: number;
}

type Defaults = Required<Omit<SqliteTransportOptions, "deadLetter" | "logger">>;

/** The defaults of {@link SqliteTransportOptions}. */
export const defaultSqliteTransportOptions: Readonly<Defaults> = Object.freeze({
  path: DEFAULT_PATH,
  drainTimeoutMs: 10_000,
  busyTimeoutMs: DEFAULT_BUSY_TIMEOUT_MS,
  maxPayloadBytes: 1_048_576,
  claimBatchSize: 64,
  prefetchMs: 50,
  minPollMs: 25,
  maxPollMs: 1_000,
  watch: true,
  retentionMs: 86_400_000,
  pruneIntervalMs: 60_000,
  ephemeralTimeoutMs: 60_000,
  keepAcked: false,
  checkpoint: "background",
  checkpointIntervalMs: 100,
  maxWalPages: 4000,
});

type Resolved = Defaults & {
  readonly deadLetter: DeadLetterSink | undefined;
  readonly logger: Logger;
};

/** {@link SqliteTransport.stats}: the router's backlog numbers plus what the poller did. */
export interface SqliteTransportStats extends TransportStats {
  /**
   * Per subscriber, as the `Transport` contract's `SubscriberStats` words it: `pending` is every
   * delivery waiting to be claimed, retries and expired leases included (the inspector splits
   * those out as `retrying`), `lag = pending + inFlight`.
   */
  readonly subscribers: readonly SubscriberStats[];
  /** Statements run to find work; with nothing to do they stay near one per `maxPollMs`. */
  readonly poller: Readonly<PollerCounters> & {
    readonly claims: number;
    readonly dueChecks: number;
    readonly watching: boolean;
  };
  /** What the checkpointer of this file did in this process (`mode: "inline"`: SQLite's own, no counts). */
  readonly checkpoints: CheckpointStats;
}

/**
 * The router's {@link Transport} on one SQLite file, for several processes on one host.
 *
 * - **at-least-once, fan-out**: each subscriber name has its own delivery row per event,
 *   created when that subscriber claims the event (a publish writes one `events` row whatever
 *   the number of subscribers; each registered subscriber's cursor keeps the events it has not
 *   taken yet); subscriptions sharing a name compete for those rows.
 * - **leases with fencing**: a claim leases up to `claimBatchSize` due deliveries in one
 *   statement under a new fencing token; ack, retry and dead-letter apply only while the token
 *   still matches, so a worker whose lease expired cannot decide the outcome any more.
 * - **retries** with exponential backoff and jitter; `UnrecoverableError` or `maxAttempts`
 *   failures go to the dead-letter sink (written before the delivery is marked), or, without a
 *   sink, stay in `deliveries` with status `dead`.
 * - **wake-ups** through `fs.watch` on the WAL plus a backing-off `PRAGMA data_version` poll.
 * - **checkpoints** in a worker thread (see {@link SqliteTransportOptions.checkpoint}), so no
 *   publish or ack waits for the WAL to be copied and fsynced.
 *
 * @example
 * ```ts
 * // not runnable
 * await using transport = sqliteTransport({ path: "data/coordination/coordination.db" });
 * await transport.subscribe({ subscriber: "evaluator", types: ["TRAINING_COMPLETED"], handler: async (d) => evaluate(d.envelope) });
 * ```
 */
export class SqliteTransport implements Transport, AsyncDisposable {
  readonly name = "sqlite";
  /** Absolute path of the queue file. */
  readonly path: string;
  readonly #options: Resolved;
  readonly #logger: Logger;
  readonly #db: Database.Database;
  readonly #store: QueueStore;
  readonly #poller: Poller;
  readonly #checkpoints: CheckpointHandle | undefined;
  readonly #subscriptions = new Set<SqliteSubscription>();
  readonly #host: SubscriptionHost;
  readonly #counters = { claims: 0, dueChecks: 0 };
  readonly #pruneAbort = new AbortController();
  #pruneTimer: NodeJS.Timeout | undefined;
  #touchTimer: NodeJS.Timeout | undefined;
  #pruning: Promise<PruneResult> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: SqliteTransportOptions = {}) {
    const resolved: Resolved = {
      ...defaultSqliteTransportOptions,
      ...definedOnly(options),
      deadLetter: options.deadLetter,
      logger: options.logger ?? silentLogger,
    };
    validate(resolved);
    this.#options = resolved;
    const background = resolved.checkpoint === "background";
    this.#db = openDatabase(resolved.path, {
      busyTimeoutMs: resolved.busyTimeoutMs,
      ...(background ? { walAutocheckpoint: 0 } : {}),
    });
    this.path = this.#db.name;
    this.#logger = childLogger(resolved.logger, { transport: "sqlite", file: this.path });
    this.#store = new QueueStore(
      this.#db,
      new Writer(this.#db, this.path, resolved.busyTimeoutMs),
      {
        maxPayloadBytes: resolved.maxPayloadBytes,
        keepAcked: resolved.keepAcked,
      },
    );
    this.#poller = new Poller(
      this.#db,
      this.path,
      {
        minIntervalMs: resolved.minPollMs,
        maxIntervalMs: resolved.maxPollMs,
        watch: resolved.watch,
      },
      (types) => {
        // No types: another connection committed (seen by the poller's own check, never inside
        // a caller's publish) — claim at once instead of a turn of the event loop later.
        if (types) {
          for (const s of this.#subscriptions) if (s.handlesAny(types)) s.wake();
        } else for (const s of this.#subscriptions) s.wake(true);
      },
      this.#logger,
    );
    const db = this.#db;
    this.#host = {
      store: this.#store,
      name: this.name,
      logger: this.#logger,
      drainTimeoutMs: resolved.drainTimeoutMs,
      claimBatchSize: resolved.claimBatchSize,
      prefetchMs: resolved.prefetchMs,
      deadLetter: resolved.deadLetter,
      counters: this.#counters,
      get open() {
        return db.open;
      },
      forget: (s) => this.#forget(s),
    };
    if (resolved.pruneIntervalMs > 0) {
      this.#pruneTimer = setInterval(
        () => void this.#scheduledPrune(),
        timerDelay(resolved.pruneIntervalMs),
      );
      this.#pruneTimer.unref();
    }
    this.#store.writer.stopWaiting();
    this.#store.writer.watchFile((error) => {
      this.#logger.error({ err: error }, "the queue file is gone; this transport stops working");
      // Each subscription tries to claim, fails on the missing file and logs it.
      for (const s of this.#subscriptions) s.wake();
    });
    // Last: nothing after it can fail and leave the worker thread running.
    this.#checkpoints = background
      ? startCheckpointer(
          this.#db,
          this.path,
          { intervalMs: resolved.checkpointIntervalMs, maxWalPages: resolved.maxWalPages },
          this.#logger,
        )
      : undefined;
  }

  /**
   * Store envelopes in one immediate transaction, idempotent by `id` (a stored id is a
   * duplicate, not an error), and create a delivery for every subscriber registered for each
   * type. Resolves once committed. Rejects with `EventValidationError` for a non-envelope,
   * `PayloadTooLargeError` over `maxPayloadBytes` (nothing of the batch is stored), and
   * `TransportClosedError` after `close()`.
   */
  async publish(
    envelopes: readonly Envelope[],
    options?: { signal?: AbortSignal },
  ): Promise<PublishResult> {
    this.#assertOpen();
    const signal = options?.signal;
    if (signal?.aborted) throw abortReason(signal);
    if (envelopes.length === 0) return NOTHING_PUBLISHED;
    const store = this.#store;
    let result: PublishCounts;
    // Refuses a file deleted or replaced since open (one stat a second at most).
    store.writer.assertFile();
    try {
      // Once synchronously, without a closure: uncontended, a publish is this call and nothing else.
      result = store.publish(envelopes);
    } catch (error) {
      if (!isBusy(error)) throw store.writer.translate(error);
      result = await store.writer.run(() => store.publish(envelopes), signal);
    }
    if (result.published > 0) Poller.wakeLocal(this.path, envelopes);
    return result;
  }

  /**
   * Register `subscriber` for `types` (persisted: a durable subscriber receives every matching
   * event published from now on, across restarts) and start claiming. Resolves once registered.
   */
  async subscribe(options: TransportSubscribeOptions): Promise<TransportSubscription> {
    this.#assertOpen();
    validateSubscription(options);
    const { signal } = options;
    if (signal?.aborted) throw abortReason(signal);
    await this.#store.writer.run(
      () => this.#store.register(options.subscriber, options.types, options.ephemeral ?? false),
      signal,
    );
    this.#assertOpen();
    if (signal?.aborted) {
      // Aborted while the registration waited for the lock: its `abort` event has fired already,
      // so a subscription started now would never be closed by it.
      await this.#unregisterEphemeral(options.subscriber, options.ephemeral ?? false);
      throw abortReason(signal);
    }
    const subscription = new SqliteSubscription(this.#host, options);
    this.#subscriptions.add(subscription);
    this.#poller.start();
    this.#armTouch();
    subscription.wake();
    return subscription;
  }

  /**
   * Register `subscriber` for `types` without consuming (persisted, as `subscribe` does): every
   * matching event published from now on waits for it, across restarts, until a subscription of
   * that name starts. Idempotent. The router's `declareSubscriber` calls it.
   */
  async register(subscriber: string, types: readonly string[]): Promise<void> {
    this.#assertOpen();
    await this.#store.writer.run(() => this.#store.register(subscriber, types, false));
  }

  /** Whether any subscriber is registered for `type` (an event of it published now is kept). */
  async hasSubscribers(type: string): Promise<boolean> {
    this.#assertOpen();
    return this.#store.writer.read(
      () =>
        this.#db.prepare(`SELECT 1 FROM subscriber_types WHERE type = ? LIMIT 1`).get(type) !==
        undefined,
    );
  }

  /**
   * Deliver an envelope again to one registered subscriber only (dead-letter replay), keeping its
   * id. Rejects with `UnknownSubscriptionError` when `subscriber` is not registered for its type.
   * A delivery of it leased right now is left to its running attempt: that run counts as the
   * requeued one if it succeeds; if it fails, it is retried with fresh attempts, not dead-lettered.
   */
  async requeue(subscriber: string, envelope: Envelope): Promise<void> {
    this.#assertOpen();
    const result = await this.#store.writer.run(() => this.#store.requeue(subscriber, envelope));
    if (result === "in-flight") {
      this.#logger.debug(
        { subscriber, eventId: envelope.id },
        `requeue of ${envelope.id}: a delivery of it is running; it is left to that attempt`,
      );
      return;
    }
    if (result === "unregistered") {
      const names = this.#store.writer.read(
        () =>
          this.#store.db
            .prepare(`SELECT name FROM subscribers ORDER BY name`)
            .pluck()
            .all() as string[],
      );
      throw new UnknownSubscriptionError(subscriber, envelope.type, names);
    }
    Poller.wakeLocal(this.path, [envelope]);
  }

  /** Backlog per registered subscriber (pending, in flight, lag, dead, oldest pending age) and poller counters. */
  async stats(): Promise<SqliteTransportStats> {
    this.#assertOpen();
    return {
      transport: this.name,
      subscribers: this.#store.writer.read(() =>
        subscriberStats(this.#db).map(({ retrying, ...s }) => ({
          ...s,
          pending: s.pending + retrying,
        })),
      ),
      poller: { ...this.#poller.counters, ...this.#counters, watching: this.#poller.watching },
      checkpoints: this.#checkpoints?.stats() ?? INLINE_CHECKPOINTS,
    };
  }

  /** Healthy while open; degraded when commits of other processes are only noticed by polling. */
  async health(): Promise<HealthCheckResult> {
    if (this.#closing) {
      return healthFrom([{ severity: "unhealthy", message: "transport closed" }], "", {
        path: this.path,
      });
    }
    const gone = this.#store.writer.fileProblem();
    if (gone) {
      return healthFrom([{ severity: "unhealthy", message: gone.message }], "", {
        path: this.path,
        code: (gone as { code?: string }).code,
      });
    }
    const stats = await this.stats();
    const problems: { severity: "degraded" | "unhealthy"; message: string }[] = [];
    if (this.#options.watch && this.#poller.running && !this.#poller.watching) {
      problems.push({
        severity: "degraded",
        message: `cannot watch ${this.path}-wal; relying on polling`,
      });
    }
    return healthFrom(problems, "SQLite transport open", {
      path: this.path,
      subscriptions: this.#subscriptions.size,
      pending: stats.subscribers.reduce((n, s) => n + s.pending, 0),
      inFlight: stats.subscribers.reduce((n, s) => n + s.inFlight, 0),
    });
  }

  /**
   * Remove acked deliveries and events older than `retentionMs` that no subscriber still needs,
   * and abandoned ephemeral subscribers. Runs every `pruneIntervalMs` on its own; call it to
   * prune now. Concurrent calls share one run.
   */
  prune(options: { now?: number } = {}): Promise<PruneResult> {
    this.#assertOpen();
    this.#pruning ??= prune(this.#db, this.#store.writer, {
      retentionMs: this.#options.retentionMs,
      ephemeralTimeoutMs: this.#options.ephemeralTimeoutMs,
      signal: this.#pruneAbort.signal,
      ...options,
    }).finally(() => {
      this.#pruning = undefined;
    });
    return this.#pruning;
  }

  /**
   * Stop claiming, wait for in-flight handlers (aborting them after `drainTimeoutMs` and handing
   * their deliveries back), save outstanding outcomes, stop watchers and timers and close the
   * file. Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#pruneTimer);
      clearInterval(this.#touchTimer);
      this.#pruneAbort.abort();
      await Promise.all([...this.#subscriptions].map((s) => s.close()));
      await this.#pruning?.catch(() => {});
      this.#poller.stop();
      // The worker's connection first: the last connection to close checkpoints and removes the WAL.
      await this.#checkpoints?.release();
      this.#db.close();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #assertOpen(): void {
    if (this.#closing || !this.#db.open)
      throw new TransportClosedError(`SQLite transport on ${this.path}`);
  }

  async #forget(subscription: SqliteSubscription): Promise<void> {
    this.#subscriptions.delete(subscription);
    if (this.#subscriptions.size === 0) {
      this.#poller.stop();
      clearInterval(this.#touchTimer);
      this.#touchTimer = undefined;
    }
    await this.#unregisterEphemeral(subscription.subscriber, subscription.ephemeral);
    // Work this subscription left (handed back, or its lease ended) may go to a sibling.
    for (const s of this.#subscriptions) s.wake();
  }

  /** Remove an ephemeral subscriber's state, unless another subscription of this process uses the name. */
  async #unregisterEphemeral(subscriber: string, ephemeral: boolean): Promise<void> {
    const sameName = [...this.#subscriptions].some((s) => s.subscriber === subscriber);
    if (!ephemeral || sameName || !this.#db.open) return;
    try {
      await this.#store.writer.run(() => this.#store.removeEphemeral(subscriber));
    } catch (error) {
      this.#logger.warn(
        { err: error, subscriber },
        "removing an ephemeral subscriber failed; prune removes it later",
      );
    }
  }

  #armTouch(): void {
    if (this.#touchTimer) return;
    const every = Math.max(
      1_000,
      Math.min(30_000, Math.floor(this.#options.ephemeralTimeoutMs / 3)),
    );
    this.#touchTimer = setInterval(() => {
      const names = new Set([...this.#subscriptions].map((s) => s.subscriber));
      if (names.size === 0 || !this.#db.open) return;
      try {
        this.#store.writer.attempt(() => this.#store.touch(names));
      } catch (error) {
        if (!isBusy(error))
          this.#logger.warn({ err: error }, "recording subscriber liveness failed");
      }
    }, every);
    this.#touchTimer.unref();
  }

  async #scheduledPrune(): Promise<void> {
    if (this.#closing || this.#pruning) return;
    try {
      const removed = await this.prune();
      if (removed.deliveries + removed.events + removed.subscribers > 0)
        this.#logger.debug({ removed }, "pruned the queue");
    } catch (error) {
      this.#logger.warn(
        { err: error },
        "pruning the queue failed; trying again at the next interval",
      );
    }
  }
}

/**
 * Open (creating it if needed) a SQLite queue file as a router {@link Transport}.
 *
 * @example
 * ```ts
 * // not runnable
 * const router = createRouter({ catalog: pipelineCatalog, transport: sqliteTransport({ path: "data/coordination/coordination.db" }) });
 * ```
 */
export function sqliteTransport(options: SqliteTransportOptions = {}): SqliteTransport {
  return new SqliteTransport(options);
}

const NOTHING_PUBLISHED: PublishResult = Object.freeze({ published: 0, duplicates: 0 });

const INLINE_CHECKPOINTS: CheckpointStats = Object.freeze({
  mode: "inline",
  passive: 0,
  restarts: 0,
  busy: 0,
  errors: 0,
  walPages: 0,
  maxWalPagesSeen: 0,
});

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

function validate(o: Resolved): void {
  if (typeof o.path !== "string" || o.path.length === 0)
    throw new QueueOptionsError("path", o.path, "a file path");
  const int = (name: keyof Resolved, min: number) => {
    const v = o[name];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      throw new QueueOptionsError(name, v, `an integer ≥ ${min}`);
    }
  };
  int("drainTimeoutMs", 0);
  int("busyTimeoutMs", 0);
  int("maxPayloadBytes", 1);
  int("claimBatchSize", 1);
  int("prefetchMs", 0);
  int("minPollMs", 1);
  int("maxPollMs", 1);
  int("retentionMs", 0);
  int("pruneIntervalMs", 0);
  int("ephemeralTimeoutMs", 1_000);
  int("checkpointIntervalMs", 1);
  int("maxWalPages", 1);
  if (o.checkpoint !== "background" && o.checkpoint !== "inline")
    throw new QueueOptionsError("checkpoint", o.checkpoint, '"background" or "inline"');
  if (o.maxPollMs < o.minPollMs)
    throw new QueueOptionsError("maxPollMs", o.maxPollMs, `at least minPollMs (${o.minPollMs})`);
}

function validateSubscription(o: TransportSubscribeOptions): void {
  // The contract's rule, thrown as this transport's own options error.
  const problem = subscribeOptionsProblem(o);
  if (problem) throw new QueueOptionsError(problem.option, problem.value, problem.expected);
}
