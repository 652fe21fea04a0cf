import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import type { Envelope } from "@switchyard/event-schema";
import {
  type DeadLetterBackoff,
  type DeadLetterReason,
  type DeadLetterRecord,
  type DeadLetterRelease,
  type DeadLetterSink,
  InspectorQueryError,
  LeaseLostError,
  REPLAY_SKIP_REASONS,
  abortReason,
  type Logger,
  deadLetterBackoffProblem,
  deadLetterRetryDelay,
  defaultDeadLetterBackoff,
  serializeError,
  silentLogger,
  timeInputMs,
  timerDelay,
} from "@switchyard/transport";
import {
  DeadLetterNotFoundError,
  DeadLetterStoreBusyError,
  DeadLetterStoreFileError,
  ReplayConflictError,
  UnboundedPurgeError,
} from "./dead-letter-errors";
import { QueueOptionsError, integerOption } from "./errors";
import { migrateDeadLetters } from "./schema/dead-letters";

/**
 * Where a dead letter is delivered again: to the subscriber that failed it, only. Must reject with
 * `UnknownSubscriptionError` when that subscriber does not exist (any more). `@switchyard/dlq`'s
 * `replayTo({ router, transport })` builds one.
 */
export interface ReplayTarget {
  /**
   * Deliver `record.envelope` again. `options.signal` (given by the store) aborts when the replay
   * is aborted (its own `signal`) or when the record's claim was lost (`LeaseLostError`: another
   * replayer has it now): a target that honours it gives up (rejects), and the record is put back
   * as it was. One that ignores it is waited for.
   */
  replay(
    record: DeadLetter & { readonly envelope: Envelope },
    options?: { readonly signal?: AbortSignal },
  ): Promise<void>;
}

/** Where a dead letter is in its life. */
export type DeadLetterStatus =
  "pending_retry" | "retrying" | "replayed" | "permanently_failed" | "purged";

/** One stored dead letter, as `list` and `inspect` return it. */
export interface DeadLetter {
  readonly id: number;
  readonly eventId: string;
  readonly eventType: string;
  readonly subscriber: string;
  /** `"router"` for in-process handlers, else the transport name. */
  readonly origin: string;
  readonly reason: DeadLetterReason;
  /** The original envelope, id, trace context and payload intact; `undefined` once purged. */
  readonly envelope: Envelope | undefined;
  readonly error: {
    readonly name: string;
    readonly message: string;
    readonly code?: string;
    readonly stack?: string;
  };
  /** Delivery attempts across every failure of this event for this subscriber. */
  readonly attempts: number;
  /** Times it was replayed. */
  readonly replays: number;
  readonly firstFailedAt: string;
  readonly lastFailedAt: string;
  readonly status: DeadLetterStatus;
  /** When the retry daemon may replay it next (Unix ms). */
  readonly nextRetryAt: number | undefined;
  readonly replayedAt: string | undefined;
  /**
   * Why the stored row cannot be read as written (its `envelope` column is not JSON: written by
   * another program or edited by hand); `envelope` is then `undefined` and it cannot be replayed.
   */
  readonly damaged?: string;
}

/** Filter of {@link SqliteDeadLetterStore.list}. */
export interface DeadLetterQuery {
  readonly type?: string;
  readonly subscriber?: string;
  readonly status?: DeadLetterStatus | readonly DeadLetterStatus[];
  readonly reason?: DeadLetterReason;
  /** Only records that last failed at or after this time. */
  readonly since?: Date | number;
  /** Only records from this origin (`"router"`, or a transport name such as `"sqlite"`). */
  readonly origin?: string;
  /** @defaultValue 100 */
  readonly limit?: number;
}

/** Criteria of {@link SqliteDeadLetterStore.purge}; at least one, or `all: true`. */
export interface PurgeOptions {
  /**
   * Only this one record (the runbook's "delete a specific poison event"); an unknown id throws
   * `DeadLetterNotFoundError`. Like every purge, it leaves a record being replayed right now alone.
   */
  readonly id?: number;
  /** Records that last failed before this (a Date, or an age in ms). */
  readonly olderThan?: Date | number;
  readonly type?: string;
  readonly subscriber?: string;
  readonly status?: DeadLetterStatus | readonly DeadLetterStatus[];
  /** Purge everything matching no criterion. @defaultValue false */
  readonly all?: boolean;
  /**
   * Delete rows outright instead of keeping a `purged` tombstone (id, type, subscriber, times,
   * error message) without the envelope and stack. @defaultValue false
   */
  readonly hard?: boolean;
}

/** Depth and age of the dead-letter queue. */
export interface DeadLetterStats {
  /** Records not replayed and not purged: what still needs attention. */
  readonly depth: number;
  readonly byStatus: Readonly<Record<DeadLetterStatus, number>>;
  /** Depth by event type. */
  readonly byType: Readonly<Record<string, number>>;
  /** Depth by subscriber. */
  readonly bySubscriber: Readonly<Record<string, number>>;
  /** Age of the oldest record still in the depth, in ms. */
  readonly oldestAgeMs: number | undefined;
}

/** Options of {@link SqliteDeadLetterStore}. */
export interface DeadLetterStoreOptions {
  /** The database file; the queue's file by default. @defaultValue "data/coordination/coordination.db" */
  readonly path?: string;
  /** Reuse an open better-sqlite3 connection instead of opening `path`. */
  readonly database?: Database.Database;
  /** Longest error message stored; longer ones are cut and marked. @defaultValue 4096 */
  readonly maxErrorChars?: number;
  /** Longest stack stored. @defaultValue 16_384 */
  readonly maxStackChars?: number;
  /**
   * When a failed record becomes due for replay again: `initialMs × 2^replays` after its latest
   * failure, capped at `maxMs` (`deadLetterRetryDelay`, the rule every dead-letter store applies).
   * @defaultValue { initialMs: 1000, maxMs: 3_600_000 }
   */
  readonly retryBackoff?: DeadLetterBackoff;
  /**
   * How long the operator methods (`list`, `purge`, `claimDue`, `settle`, …, all synchronous) wait
   * for another process's write lock. The transports' dead-letter path ({@link
   * SqliteDeadLetterStore.deadLetter}) and {@link SqliteDeadLetterStore.replay} never wait inside
   * SQLite: they retry asynchronously, yielding to the event loop, for this long plus 30 s.
   * @defaultValue 5000
   */
  readonly busyTimeoutMs?: number;
  /**
   * Opt-in scheduled purge: every `intervalMs`, purge records older than `olderThanMs` with the
   * given statuses (logged with counts). Off unless given; dead letters are never removed silently.
   * Like the dead-letter path, it never blocks the event loop on another process's lock (it
   * yields and retries). `olderThanMs` must be a number ≥ 0 and `intervalMs` ≥ 1 (one longer
   * than a timer takes, about 24.8 days, waits that long); else `QueueOptionsError`.
   */
  readonly retention?: {
    readonly olderThanMs: number;
    readonly intervalMs?: number;
    readonly statuses?: readonly DeadLetterStatus[];
    readonly hard?: boolean;
  };
  readonly logger?: Logger;
  /** Clock, for tests. @defaultValue Date.now */
  readonly now?: () => number;
}

/** A `dead_letters` row as SQLite returns it. */
export interface DeadLetterRow {
  id: number;
  event_id: string;
  event_type: string;
  subscriber: string;
  origin: string;
  reason: DeadLetterReason;
  envelope: string | null;
  error_name: string;
  error_message: string;
  error_code: string | null;
  error_stack: string | null;
  attempts: number;
  replays: number;
  first_failed_at: string;
  last_failed_at: string;
  status: DeadLetterStatus;
  next_retry_at: number | null;
  lease_token: string | null;
  lease_until: number | null;
  replayed_at: string | null;
  created_at: number;
}

/** What {@link SqliteDeadLetterStore.replay} did. */
export interface ReplayReport {
  readonly dryRun: boolean;
  /** Records the selection matched. */
  readonly matched: number;
  /** Ids handed back to their subscriber. */
  readonly replayed: number[];
  /**
   * Ids not replayed, with why: claimed by another replayer, purged, damaged, the claim lost
   * before its turn (its lease expired and another replayer took it), or the replay aborted
   * (`signal`) before its turn, its claim released.
   */
  readonly skipped: { readonly id: number; readonly reason: string }[];
  /**
   * Ids whose replay failed (e.g. the subscriber no longer exists), with the error; a record
   * whose claim was lost while the target replayed it (`LeaseLostError`) is listed here too.
   */
  readonly failed: { readonly id: number; readonly error: string }[];
  /** With `dryRun`: the ids that would be replayed. */
  readonly wouldReplay: number[];
}

/** A dead letter claimed for replay: only the lease holder may settle it. */
export interface ClaimedDeadLetter extends DeadLetter {
  readonly leaseToken: string;
}

const STATUSES: readonly DeadLetterStatus[] = [
  "pending_retry",
  "retrying",
  "replayed",
  "permanently_failed",
  "purged",
];
const DEPTH_STATUSES = ["pending_retry", "retrying", "permanently_failed"] as const;
/** SQL: the stored record is held by a replayer (claimed for a replay, not settled yet). */
const HELD = "(dead_letters.status = 'retrying' AND dead_letters.lease_token IS NOT NULL)";

/** The SQL function, on the store's connection, that applies `deadLetterRetryDelay`. */
const RETRY_DELAY_FUNCTION = "switchyard_dead_letter_retry_delay";

/**
 * The dead-letter store: every delivery that failed for good, kept with its full envelope, the
 * subscriber that failed it, the error and the attempt count, in a `dead_letters` table (the queue's
 * database file by default). It is the `DeadLetterSink` of the router and of the transports, and
 * the operator API behind `switchyard dlq …`.
 *
 * @example
 * ```ts
 * // not runnable (see the README for a complete example)
 * const store = new SqliteDeadLetterStore({ path: "data/coordination/coordination.db" });
 * const router = createRouter({ catalog, transport, deadLetter: store });
 * ```
 */
export class SqliteDeadLetterStore implements DeadLetterSink, Disposable {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #ownsDb: boolean;
  readonly #options: DeadLetterStoreOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #busyTimeoutMs: number;
  #retentionTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #retaining = false;
  readonly #upsert: Database.Statement;

  constructor(options: DeadLetterStoreOptions = {}) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    // Checked before the file is opened: NaN or Infinity here never gave a locked write up.
    this.#busyTimeoutMs = integerOption("busyTimeoutMs", options.busyTimeoutMs, 5000, 0);
    integerOption("maxErrorChars", options.maxErrorChars, 0, 0);
    integerOption("maxStackChars", options.maxStackChars, 0, 0);
    const problem = deadLetterBackoffProblem(options.retryBackoff);
    if (problem) throw new QueueOptionsError(problem.option, problem.value, problem.expected);
    // Before the file is opened too: a throw after it left the connection open.
    if (options.retention) {
      const { olderThanMs, intervalMs = 3_600_000 } = options.retention;
      if (typeof olderThanMs !== "number" || !(Number.isFinite(olderThanMs) && olderThanMs >= 0))
        throw new QueueOptionsError(
          "retention.olderThanMs",
          olderThanMs,
          "a number of milliseconds ≥ 0",
        );
      // 0, a negative number or NaN would purge every millisecond; a huge one is clamped.
      if (typeof intervalMs !== "number" || !(intervalMs >= 1))
        throw new QueueOptionsError(
          "retention.intervalMs",
          intervalMs,
          "a number of milliseconds ≥ 1",
        );
    }
    if (options.database) {
      this.#db = options.database;
      this.#ownsDb = false;
      this.path = options.database.name;
      migrateDeadLetters(this.#db, this.path);
    } else {
      this.path = resolve(options.path ?? "data/coordination/coordination.db");
      this.#ownsDb = true;
      this.#db = openStoreDatabase(this.path, this.#busyTimeoutMs);
    }
    // The replay backoff is the contract's rule (`deadLetterRetryDelay`), called from the upsert,
    // which alone knows the stored record's replays.
    this.#db.function(
      RETRY_DELAY_FUNCTION,
      { deterministic: true },
      (replays: unknown, initialMs: unknown, maxMs: unknown) =>
        deadLetterRetryDelay(Number(replays), {
          initialMs: Number(initialMs),
          maxMs: Number(maxMs),
        }),
    );
    this.#upsert = this.#db.prepare(`
      INSERT INTO dead_letters (event_id, event_type, subscriber, origin, reason, envelope, error_name, error_message,
        error_code, error_stack, attempts, replays, first_failed_at, last_failed_at, status, next_retry_at,
        created_at, updated_at)
      VALUES (@event_id, @event_type, @subscriber, @origin, @reason, @envelope, @error_name, @error_message,
        @error_code, @error_stack, @attempts, 0, @failed_at, @failed_at, 'pending_retry',
        @now + ${RETRY_DELAY_FUNCTION}(0, @initial_ms, @max_ms), @now, @now)
      ON CONFLICT (event_id, subscriber) DO UPDATE SET
        event_type = excluded.event_type, origin = excluded.origin, reason = excluded.reason,
        envelope = excluded.envelope, error_name = excluded.error_name, error_message = excluded.error_message,
        error_code = excluded.error_code, error_stack = excluded.error_stack,
        attempts = dead_letters.attempts + excluded.attempts, last_failed_at = excluded.last_failed_at,
        status = 'pending_retry',
        -- A failure while a replayer holds the record (retrying, under a lease) is the handed-back
        -- copy failing again before the replayer settled it: the replay happened, so it counts
        -- here (the replayer's settle then finds its lease gone), dated when it was claimed.
        replays = dead_letters.replays + ${HELD},
        replayed_at = CASE WHEN ${HELD}
          THEN strftime('%Y-%m-%dT%H:%M:%fZ', dead_letters.updated_at / 1000.0, 'unixepoch')
          ELSE dead_letters.replayed_at END,
        next_retry_at = @now + ${RETRY_DELAY_FUNCTION}(dead_letters.replays + ${HELD}, @initial_ms, @max_ms),
        lease_token = NULL, lease_until = NULL, updated_at = excluded.updated_at
    `);
    if (options.retention) {
      this.#retentionTimer = setInterval(
        () => void this.#retain(options.retention!),
        timerDelay(options.retention.intervalMs ?? 3_600_000),
      );
      this.#retentionTimer.unref();
    }
  }

  /**
   * One scheduled retention purge. Like the dead-letter path, it never blocks the event loop on
   * another process's lock (it yields and retries); a purge still waiting is not started twice.
   */
  async #retain(retention: NonNullable<DeadLetterStoreOptions["retention"]>): Promise<void> {
    if (this.#retaining || this.#closed) return;
    this.#retaining = true;
    const { olderThanMs, statuses, hard } = retention;
    let purged: number;
    try {
      const run = this.#purgeRun({
        olderThan: olderThanMs,
        ...(statuses ? { status: statuses } : { all: true }),
        ...(hard ? { hard } : {}),
      });
      purged = (await this.#write(run)).purged;
    } catch (error) {
      if (!this.#closed)
        this.#logger.warn({ err: error }, "dead-letter retention failed; trying again next time");
      return;
    } finally {
      this.#retaining = false;
    }
    if (purged > 0)
      this.#logger.info({ purged, olderThanMs }, `dead-letter retention purged ${purged} records`);
  }

  /**
   * Store a failed delivery (the `DeadLetterSink` contract). The same event failing again for the
   * same subscriber updates its record (attempts add up) and makes it due for retry again.
   * Uncontended, the record is stored before this returns. It never blocks the event loop on
   * another process's lock: it yields and retries, and after `busyTimeoutMs` + 30 s rejects with
   * `DeadLetterStoreBusyError` (the transport keeps the delivery then).
   */
  async deadLetter(record: DeadLetterRecord): Promise<void> {
    const now = this.#now();
    const error = record.error ?? serializeError(undefined);
    const row = {
      event_id: record.envelope.id,
      event_type: record.envelope.type,
      subscriber: record.subscriber,
      origin: record.origin,
      reason: record.reason,
      envelope: JSON.stringify(record.envelope),
      error_name: error.name,
      error_message: this.#cap(error.message, this.#options.maxErrorChars ?? 4096),
      error_code: error.code ?? null,
      error_stack: error.stack
        ? this.#cap(error.stack, this.#options.maxStackChars ?? 16_384)
        : null,
      attempts: record.attempts,
      failed_at: record.failedAt,
      initial_ms: this.#options.retryBackoff?.initialMs ?? defaultDeadLetterBackoff.initialMs,
      max_ms: this.#options.retryBackoff?.maxMs ?? defaultDeadLetterBackoff.maxMs,
      now,
    };
    await this.#write(() => this.#upsert.run(row));
  }

  /** Records matching a filter, newest failure first. A row that cannot be read comes back `damaged`. */
  list(query: DeadLetterQuery = {}): DeadLetter[] {
    const { where, params } = this.#where(query);
    const rows = this.#sync(
      () =>
        this.#db
          .prepare(
            `SELECT * FROM dead_letters ${where} ORDER BY last_failed_at DESC, id DESC LIMIT @limit`,
          )
          .all({ ...params, limit: queryLimit(query) }) as DeadLetterRow[],
    );
    return rows.map(toDeadLetter);
  }

  /** One record with its full envelope and stack; throws `DeadLetterNotFoundError` for an unknown id. */
  inspect(id: number): DeadLetter {
    const row = this.#sync(
      () =>
        this.#db.prepare("SELECT * FROM dead_letters WHERE id = ?").get(id) as
          DeadLetterRow | undefined,
    );
    if (!row) throw new DeadLetterNotFoundError(id);
    return toDeadLetter(row);
  }

  /** Depth by status, type and subscriber, and the oldest record's age. */
  stats(): DeadLetterStats {
    return this.#sync(() => this.#stats());
  }

  #stats(): DeadLetterStats {
    const byStatus = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<
      DeadLetterStatus,
      number
    >;
    for (const r of this.#db
      .prepare("SELECT status, COUNT(*) AS n FROM dead_letters GROUP BY status")
      .all() as {
      status: DeadLetterStatus;
      n: number;
    }[]) {
      byStatus[r.status] = r.n;
    }
    const depthFilter = `status IN (${DEPTH_STATUSES.map((s) => `'${s}'`).join(", ")})`;
    const group = (column: "event_type" | "subscriber") =>
      Object.fromEntries(
        (
          this.#db
            .prepare(
              `SELECT ${column} AS k, COUNT(*) AS n FROM dead_letters WHERE ${depthFilter} GROUP BY ${column} ORDER BY n DESC`,
            )
            .all() as {
            k: string;
            n: number;
          }[]
        ).map((r) => [r.k, r.n]),
      );
    const oldest = this.#db
      .prepare(`SELECT MIN(created_at) AS t FROM dead_letters WHERE ${depthFilter}`)
      .get() as {
      t: number | null;
    };
    return {
      depth: DEPTH_STATUSES.reduce((sum, s) => sum + byStatus[s], 0),
      byStatus,
      byType: group("event_type"),
      bySubscriber: group("subscriber"),
      oldestAgeMs: oldest.t === null ? undefined : this.#now() - oldest.t,
    };
  }

  /**
   * Purge records matching the criteria: by default they become `purged` tombstones (envelope and
   * stack dropped); with `hard`, rows are deleted. Returns how many, by former status. A record
   * being replayed right now (`retrying` under a live lease) is never purged.
   */
  purge(options: PurgeOptions): {
    purged: number;
    byStatus: Partial<Record<DeadLetterStatus, number>>;
  } {
    return this.#sync(this.#purgeRun(options));
  }

  /** The checks of {@link SqliteDeadLetterStore.purge}, then its immediate transaction to run. */
  #purgeRun(options: PurgeOptions): () => {
    purged: number;
    byStatus: Partial<Record<DeadLetterStatus, number>>;
  } {
    const hasCriterion =
      options.id !== undefined ||
      options.olderThan !== undefined ||
      options.type !== undefined ||
      options.subscriber !== undefined ||
      options.status !== undefined;
    if (!hasCriterion && !options.all)
      throw new UnboundedPurgeError(
        "purge() without olderThan, type, status or subscriber would purge every dead letter; pass { all: true } if that is what you want.",
      );
    if (options.id !== undefined) this.inspect(options.id);
    const before = options.olderThan === undefined ? undefined : this.#before(options.olderThan);
    const query: DeadLetterQuery = {
      ...(options.type !== undefined ? { type: options.type } : {}),
      ...(options.subscriber !== undefined ? { subscriber: options.subscriber } : {}),
      ...(options.status !== undefined ? { status: options.status } : {}),
    };
    const { where, params } = this.#where(query, before);
    if (options.id !== undefined) params.id = options.id;
    // A soft purge never touches what is already purged, nor what is being replayed right now.
    const guard =
      `${where ? `${where} AND` : "WHERE"} status NOT IN ('purged', 'retrying')` +
      (options.id !== undefined ? " AND id = @id" : "");
    const run = this.#db.transaction(() => {
      const counts = this.#db
        .prepare(`SELECT status, COUNT(*) AS n FROM dead_letters ${guard} GROUP BY status`)
        .all(params) as {
        status: DeadLetterStatus;
        n: number;
      }[];
      if (options.hard) this.#db.prepare(`DELETE FROM dead_letters ${guard}`).run(params);
      else {
        this.#db
          .prepare(
            `UPDATE dead_letters SET status = 'purged', envelope = NULL, error_stack = NULL, next_retry_at = NULL, updated_at = @now ${guard}`,
          )
          .run({ ...params, now: this.#now() });
      }
      return counts;
    });
    return () => {
      const counts = run.immediate();
      return {
        purged: counts.reduce((sum, c) => sum + c.n, 0),
        byStatus: Object.fromEntries(counts.map((c) => [c.status, c.n])),
      };
    };
  }

  /**
   * Claim due records for replay with a lease: `pending_retry` ones whose retry time has come, and
   * `retrying` ones whose lease expired (a replayer died). One atomic statement: two replayers in
   * two processes never claim the same record. With `ids`, those records if they are replayable
   * now: not purged, not damaged, not under someone's live lease, and not already replayed.
   * `leaseMs` (default 60 000) and `limit` (default 50) must be integers ≥ 1, else
   * `QueueOptionsError`.
   */
  claimDue(
    options: { limit?: number; leaseMs?: number; ids?: readonly number[] } = {},
  ): ClaimedDeadLetter[] {
    return this.#sync(() => this.#claimDue(options));
  }

  /**
   * {@link SqliteDeadLetterStore.claimDue} for daemons: never blocks the event loop on another
   * process's lock (yields and retries instead). The retry daemon uses it.
   */
  claim(
    options: { limit?: number; leaseMs?: number; ids?: readonly number[] } = {},
  ): Promise<ClaimedDeadLetter[]> {
    return this.#write(() => this.#claimDue(options));
  }

  /**
   * {@link SqliteDeadLetterStore.settle} for daemons: never blocks the event loop on another
   * process's lock. Rejects with `LeaseLostError` as `settle` throws it.
   */
  async release(claimed: ClaimedDeadLetter, outcome: DeadLetterRelease): Promise<void> {
    const result = await this.#write(() => this.#settle(claimed, outcome));
    if (result.changes === 0)
      throw new LeaseLostError(`dlq:${claimed.subscriber}`, claimed.eventId);
  }

  #claimDue(options: {
    limit?: number;
    leaseMs?: number;
    ids?: readonly number[];
  }): ClaimedDeadLetter[] {
    // A lease that is not a number would be stored as NULL: never expiring, the record would stay
    // `retrying` (claimed by nobody, skipped by purges) for good if its replayer died.
    const leaseMs = positiveOption("leaseMs", options.leaseMs, 60_000);
    const limit = positiveOption("limit", options.limit, 50);
    const now = this.#now();
    const token = randomUUID();
    const leaseUntil = now + leaseMs;
    const claim = this.#db.transaction(() =>
      options.ids !== undefined
        ? (this.#db
            .prepare(
              `UPDATE dead_letters SET status = 'retrying', lease_token = @token, lease_until = @leaseUntil, updated_at = @now
               WHERE id IN (SELECT value FROM json_each(@ids)) AND ${REPLAYABLE}
                 AND status IN ('pending_retry', 'permanently_failed', 'retrying')
               RETURNING *`,
            )
            .all({ token, leaseUntil, now, ids: JSON.stringify(options.ids) }) as DeadLetterRow[])
        : (this.#db
            .prepare(
              `UPDATE dead_letters SET status = 'retrying', lease_token = @token, lease_until = @leaseUntil, updated_at = @now
               WHERE id IN (
                 SELECT id FROM dead_letters
                 WHERE ((status = 'pending_retry' AND next_retry_at <= @now) OR (status = 'retrying' AND lease_until < @now))
                   AND ${REPLAYABLE}
                 ORDER BY next_retry_at, id LIMIT @limit)
               RETURNING *`,
            )
            .all({ token, leaseUntil, now, limit }) as DeadLetterRow[]),
    );
    return claim.immediate().map((row) => ({
      ...toDeadLetter(row),
      leaseToken: token,
    }));
  }

  /**
   * Settle a claimed record: `replayed` (handed back to its subscriber), `permanently_failed`
   * (given up), or `pending_retry` again at `nextRetryAt`. Throws `LeaseLostError` if the lease
   * expired and someone else claimed it.
   */
  settle(claimed: ClaimedDeadLetter, outcome: DeadLetterRelease): void {
    const result = this.#sync(() => this.#settle(claimed, outcome));
    if (result.changes === 0)
      throw new LeaseLostError(`dlq:${claimed.subscriber}`, claimed.eventId);
  }

  #settle(
    claimed: { id: number; leaseToken: string },
    outcome: DeadLetterRelease,
  ): Database.RunResult {
    const now = this.#now();
    return this.#db
      .prepare(
        `UPDATE dead_letters SET
           status = @status,
           replays = replays + @replayed,
           replayed_at = CASE WHEN @replayed = 1 THEN @nowIso ELSE replayed_at END,
           next_retry_at = @nextRetryAt,
           error_message = COALESCE(@error, error_message),
           lease_token = NULL, lease_until = NULL, updated_at = @now
         WHERE id = @id AND lease_token = @token`,
      )
      .run({
        id: claimed.id,
        token: claimed.leaseToken,
        status: outcome.status,
        replayed: outcome.status === "replayed" ? 1 : 0,
        nowIso: new Date(now).toISOString(),
        nextRetryAt: outcome.status === "pending_retry" ? outcome.nextRetryAt : null,
        error:
          "error" in outcome && outcome.error !== undefined
            ? this.#cap(outcome.error, this.#options.maxErrorChars ?? 4096)
            : null,
        now,
      });
  }

  /**
   * Deliver dead letters again to the subscriber that failed them. `selection` is one record id,
   * or one record as `list`/`inspect` returned it (a missing id, a record replayed by someone else
   * since it was read, or a subscriber that no longer exists, throws), or a filter (default
   * statuses: `pending_retry` and `permanently_failed`; per-record problems are reported, not thrown).
   *
   * Exclusive per record, whoever calls it (another process, the CLI, the retry daemon): the
   * records are selected and claimed in one `BEGIN IMMEDIATE` (status `retrying`, a lease token
   * of this call), so of two replays at the same instant each record goes to exactly one; a
   * record replayed meanwhile no longer matches (`replayed`), one under another's lease is
   * reported skipped. A single id is claimed only if it was not replayed since this call looked
   * at it. A replayer that dies leaves its claim to expire after `leaseMs`; then the record can
   * be claimed again. With `dryRun`, nothing changes and the report says what the real run would
   * do: `wouldReplay`, and in `skipped` each record it would skip, with why.
   *
   * The claims stay alive however long the target takes: while `to.replay` runs, the lease
   * (`leaseMs`, an integer ≥ 1, default 60 000) of every record this call still holds is renewed
   * every `leaseMs / 3` (never blocking the event loop on another process's lock), and between
   * records once half of it has passed. Only a process stalled longer than the lease (frozen,
   * its event loop blocked) can lose a claim; a renewal then finds it gone: the record in progress
   * is reported as lost (`LeaseLostError`: in `failed`, or thrown for a single record), one not
   * yet replayed is not handed to the target (in `skipped`).
   *
   * `signal` is checked before the claim and before each record. Aborted before anything was
   * claimed (or while waiting for another process's lock to claim), the call rejects with the
   * signal's reason. Aborted later, the target is told through the signal it is given (it also
   * aborts when the record's claim is lost): one that gives up then leaves the record as it was
   * (in `failed`), one that ignores it is waited for and the record settled; no further record is
   * replayed, and the claims of those not replayed yet are
   * released at once, back to the status they had (claimable by any replayer right away, not
   * `retrying` until their lease runs out); the call resolves with the report, each of them in
   * `skipped` ("the replay was aborted"). A single record (`selection` an id or a record) rejects
   * with the signal's reason instead, its claim released.
   */
  async replay(
    selection: number | DeadLetter | DeadLetterQuery,
    options: {
      to: ReplayTarget;
      dryRun?: boolean;
      leaseMs?: number;
      /** Stops the replay between records (see above). */
      signal?: AbortSignal;
    },
  ): Promise<ReplayReport> {
    const record = typeof selection === "object" && isDeadLetter(selection) ? selection : undefined;
    const id = typeof selection === "number" ? selection : record?.id;
    const single = id !== undefined;
    if (options.dryRun) {
      // The real run's selection and its rule (`unreplayable`), without claiming anything: what
      // it would replay, and what it would skip and why. A missing id throws, as there.
      const seen = record ?? (id !== undefined ? this.inspect(id) : undefined);
      const now = this.#now();
      const rows = this.#sync(() => this.#replayRows(id ?? (selection as DeadLetterQuery), now));
      const skipped: { id: number; reason: string }[] = [];
      const wouldReplay: number[] = [];
      for (const row of rows) {
        const why = unreplayable(row, now, seen);
        if (why === undefined) wouldReplay.push(row.id);
        else skipped.push({ id: row.id, reason: why });
      }
      return { dryRun: true, matched: rows.length, replayed: [], skipped, failed: [], wouldReplay };
    }
    const leaseMs = positiveOption("leaseMs", options.leaseMs, 60_000);
    const { signal } = options;
    if (signal?.aborted) throw abortReason(signal);
    const token = randomUUID();
    // The record as the caller saw it (or as it is now): claimed only if nobody replayed it since.
    const seen = record ?? (id !== undefined ? this.inspect(id) : undefined);
    const { claimed, skipped } = await this.#write(
      () => this.#claimForReplay(id ?? (selection as DeadLetterQuery), seen, token, leaseMs),
      signal,
    );
    const report: ReplayReport = {
      dryRun: false,
      matched: claimed.length + skipped.length,
      replayed: [],
      skipped,
      failed: [],
      wouldReplay: [],
    };
    if (id !== undefined && skipped.length > 0)
      throw new ReplayConflictError(id, skipped[0]!.reason);
    const claims: Claims = {
      token,
      leaseMs,
      held: new Set(claimed.map((c) => c.record.id)),
      renewedAt: this.#now(),
    };
    // Records from `next` on were not handed to the target: released if this call stops early.
    let next = 0;
    try {
      while (next < claimed.length) {
        const { record, previous } = claimed[next]!;
        if (signal?.aborted) {
          if (single) throw abortReason(signal);
          break;
        }
        // Between records: renew once half the lease has passed (and learn which claims are ours).
        if (this.#now() - claims.renewedAt > leaseMs / 2) await this.#renew(claims);
        next++;
        if (!claims.held.has(record.id)) {
          // Its lease ran out (this process stalled) and another replayer took it: not ours to run.
          if (single) throw new LeaseLostError(`dlq:${record.subscriber}`, record.eventId);
          report.skipped.push({
            id: record.id,
            reason: `claim lost before its turn: its lease of ${leaseMs} ms expired (this process stalled) and another replayer took it`,
          });
          continue;
        }
        let outcome: DeadLetterRelease;
        let failure: unknown;
        const lostClaim = new AbortController();
        const keepAlive = this.#keepClaims(claims, record, lostClaim);
        try {
          await options.to.replay(record as ClaimedDeadLetter & { envelope: Envelope }, {
            signal: signal ? AbortSignal.any([signal, lostClaim.signal]) : lostClaim.signal,
          });
          outcome = { status: "replayed" };
        } catch (error) {
          failure = error;
          // Put it back as it was: the replay did not happen.
          outcome =
            previous === "permanently_failed"
              ? { status: "permanently_failed" }
              : { status: "pending_retry", nextRetryAt: record.nextRetryAt ?? this.#now() };
        } finally {
          await keepAlive.stop();
        }
        const settled = await this.#write(() => this.#settle(record, outcome));
        if ((settled.changes === 0 || keepAlive.lost()) && failure === undefined)
          failure = new LeaseLostError(`dlq:${record.subscriber}`, record.eventId);
        if (failure === undefined) report.replayed.push(record.id);
        else {
          if (single) throw failure as Error;
          report.failed.push({ id: record.id, error: serializeError(failure).message });
        }
      }
    } finally {
      // Aborted (or stopped by an error): hand the claims not used back at once.
      const rest = claimed.slice(next).filter((c) => claims.held.has(c.record.id));
      if (rest.length > 0) await this.#unclaim(token, rest);
    }
    if (next < claimed.length)
      for (const { record } of claimed.slice(next))
        report.skipped.push({
          id: record.id,
          reason: REPLAY_SKIP_REASONS.aborted,
        });
    return report;
  }

  /**
   * Renew the lease of every record `claims.token` still holds, through the non-blocking write
   * path; `claims.held` becomes the ids it still holds (a claim whose lease ran out and that
   * another replayer took, or that a new failure of the same event reset, is gone).
   */
  async #renew(claims: Claims): Promise<void> {
    const now = this.#now();
    const rows = await this.#write(
      () =>
        this.#db
          .prepare(
            `UPDATE dead_letters SET lease_until = @until
             WHERE lease_token = @token AND status = 'retrying' RETURNING id`,
          )
          .all({ until: now + claims.leaseMs, token: claims.token }) as { id: number }[],
    );
    claims.renewedAt = now;
    claims.held = new Set(rows.map((r) => r.id));
  }

  /**
   * While the target replays record `id`: renew the claims every `leaseMs / 3` on an unref'd timer
   * (one renewal at a time). `stop()` clears the timer and waits for a renewal under way; `lost()`
   * says whether a renewal found the claim on `id` gone, and `onLost` is aborted then (with a
   * `LeaseLostError`: the target is told to give up).
   */
  #keepClaims(
    claims: Claims,
    record: Pick<DeadLetter, "id" | "subscriber" | "eventId">,
    onLost: AbortController,
  ): { stop(): Promise<void>; lost(): boolean } {
    const { id } = record;
    let lost = false;
    let renewing: Promise<void> | undefined;
    const timer = setInterval(
      () => {
        if (renewing) return;
        renewing = this.#renew(claims)
          .then(
            () => {
              if (lost || claims.held.has(id)) return;
              lost = true;
              onLost.abort(new LeaseLostError(`dlq:${record.subscriber}`, record.eventId));
              this.#logger.warn(
                { deadLetterId: id },
                `dead letter ${id}: its claim was lost while its replay ran (the lease expired and another replayer took it); it is reported as LeaseLostError`,
              );
            },
            (error: unknown) => {
              if (!this.#closed)
                this.#logger.warn(
                  { err: error, deadLetterId: id },
                  "renewing a dead-letter replay's lease failed; trying again",
                );
            },
          )
          .finally(() => {
            renewing = undefined;
          });
      },
      timerDelay(Math.max(1, claims.leaseMs / 3)),
    );
    timer.unref();
    return {
      stop: async () => {
        clearInterval(timer);
        await renewing;
      },
      lost: () => lost,
    };
  }

  /**
   * Give claims of `token` that were not replayed back to the status they had before the claim.
   * Best effort: if it fails, the claims expire after their lease as a dead replayer's would.
   */
  async #unclaim(
    token: string,
    rest: readonly { record: ClaimedDeadLetter; previous: DeadLetterStatus }[],
  ): Promise<void> {
    const release = this.#db.transaction(() => {
      const now = this.#now();
      const statement = this.#db.prepare(
        `UPDATE dead_letters SET status = @status, lease_token = NULL, lease_until = NULL,
           next_retry_at = CASE WHEN @status = 'pending_retry' THEN COALESCE(next_retry_at, @now)
             ELSE next_retry_at END,
           updated_at = @now
         WHERE id = @id AND lease_token = @token AND status = 'retrying'`,
      );
      for (const { record, previous } of rest)
        statement.run({ id: record.id, status: previous, token, now });
    });
    try {
      await this.#write(() => release.immediate());
    } catch (error) {
      if (!this.#closed)
        this.#logger.warn(
          { err: error, ids: rest.map((r) => r.record.id) },
          "releasing the claims of dead letters not replayed failed; they are claimable again once their lease expires",
        );
    }
  }

  #replayQuery(query: DeadLetterQuery): DeadLetterQuery {
    return { status: ["pending_retry", "permanently_failed"], ...query };
  }

  /**
   * The rows a replay of `selection` looks at: the one id, or the filter's matches (default
   * statuses) plus records whose replayer's claim may have expired. Each is then claimed or
   * skipped by `unreplayable`.
   */
  #replayRows(selection: number | DeadLetterQuery, now: number): DeadLetterRow[] {
    if (typeof selection === "number") {
      return this.#db
        .prepare("SELECT * FROM dead_letters WHERE id = @id")
        .all({ id: selection }) as DeadLetterRow[];
    }
    const query = this.#replayQuery(selection);
    const { where, params } = this.#where(query);
    // Records being replayed match too: under a live lease they are reported skipped; once
    // their replayer died (lease expired) they count as what they were before.
    const expired = `(status = 'retrying' ${
      query.type !== undefined ? "AND event_type = @type " : ""
    }${query.subscriber !== undefined ? "AND subscriber = @subscriber " : ""}${
      query.origin !== undefined ? "AND origin = @origin " : ""
    })`;
    return this.#db
      .prepare(
        `SELECT * FROM dead_letters WHERE (${where ? where.slice("WHERE ".length) : "1"}) OR ${expired}
           ORDER BY id LIMIT @limit`,
      )
      .all({ ...params, now, limit: queryLimit(query) }) as DeadLetterRow[];
  }

  /** Select and claim in one immediate transaction (see {@link SqliteDeadLetterStore.replay}). */
  #claimForReplay(
    selection: number | DeadLetterQuery,
    seen: DeadLetter | undefined,
    token: string,
    leaseMs: number,
  ): {
    claimed: { record: ClaimedDeadLetter; previous: DeadLetterStatus }[];
    skipped: { id: number; reason: string }[];
  } {
    const now = this.#now();
    const run = this.#db.transaction(() => {
      const rows = this.#replayRows(selection, now);
      const claimed: { record: ClaimedDeadLetter; previous: DeadLetterStatus }[] = [];
      const skipped: { id: number; reason: string }[] = [];
      const take = this.#db.prepare(
        `UPDATE dead_letters SET status = 'retrying', lease_token = @token, lease_until = @until, updated_at = @now
         WHERE id = @id RETURNING *`,
      );
      for (const row of rows) {
        const why = unreplayable(row, now, seen);
        if (why !== undefined) {
          skipped.push({ id: row.id, reason: why });
          continue;
        }
        const taken = take.get({ id: row.id, token, until: now + leaseMs, now }) as DeadLetterRow;
        claimed.push({
          record: { ...toDeadLetter(taken), leaseToken: token },
          previous: row.status === "retrying" ? "pending_retry" : row.status,
        });
      }
      return { claimed, skipped };
    });
    return run.immediate();
  }

  /** Close the connection (if the store opened it) and stop retention. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#retentionTimer);
    if (this.#ownsDb) this.#db.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Run `fn` (reads, or one immediate transaction) for the synchronous operator methods: waits up
   * to `busyTimeoutMs` for another process's lock, as a plain connection would.
   */
  #sync<T>(fn: () => T): T {
    if (!this.#ownsDb) return this.#translate(fn);
    this.#db.pragma(`busy_timeout = ${this.#busyTimeoutMs}`);
    try {
      return this.#translate(fn);
    } finally {
      this.#db.pragma("busy_timeout = 0");
    }
  }

  /**
   * Run `fn` (one write, or one immediate transaction) without ever blocking the event loop on a
   * lock: with `busy_timeout = 0` it fails at once when the lock is taken, and is tried again after
   * yielding (`setImmediate`, then short growing sleeps), up to `busyTimeoutMs` + 30 s. An
   * aborted `signal` ends the wait with its reason (nothing written).
   */
  async #write<T>(fn: () => T, signal?: AbortSignal): Promise<T> {
    const start = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return this.#noWait(fn);
      } catch (error) {
        if (!isBusy(error)) throw error;
        if (signal?.aborted) throw abortReason(signal);
        const waited = Date.now() - start;
        if (waited >= this.#busyTimeoutMs + RETRY_FOR_MS)
          throw new DeadLetterStoreBusyError(this.path, waited, { cause: error });
        await pause(attempt);
      }
    }
  }

  #noWait<T>(fn: () => T): T {
    // Our own connection runs with busy_timeout 0 already; a shared one is switched around the call.
    if (this.#ownsDb) return this.#translate(fn);
    const previous = this.#db.pragma("busy_timeout", { simple: true }) as number;
    if (previous === 0) return this.#translate(fn);
    this.#db.pragma("busy_timeout = 0");
    try {
      return this.#translate(fn);
    } finally {
      this.#db.pragma(`busy_timeout = ${previous}`);
    }
  }

  #translate<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw fileError(this.path, error) ?? error;
    }
  }

  #cap(text: string, max: number): string {
    return text.length <= max
      ? text
      : `${text.slice(0, max)}…[truncated ${text.length - max} chars]`;
  }

  /** `olderThan` (a Date, or an age in ms ≥ 0) as the time records must have failed before. */
  #before(olderThan: Date | number): Date {
    if (typeof olderThan === "number" && !(olderThan >= 0 && Number.isFinite(olderThan)))
      throw new InspectorQueryError(
        "olderThan",
        `must be a Date or an age in ms ≥ 0; got ${String(olderThan)}.`,
      );
    const at = typeof olderThan === "number" ? this.#now() - olderThan : olderThan;
    return new Date(timeInputMs(at, "olderThan"));
  }

  #where(
    query: DeadLetterQuery,
    before?: Date,
  ): { where: string; params: Record<string, unknown> } {
    const clauses: string[] = [];
    const params: Record<string, unknown> = {};
    if (query.type !== undefined) {
      clauses.push("event_type = @type");
      params.type = query.type;
    }
    if (query.subscriber !== undefined) {
      clauses.push("subscriber = @subscriber");
      params.subscriber = query.subscriber;
    }
    if (query.origin !== undefined) {
      clauses.push("origin = @origin");
      params.origin = query.origin;
    }
    if (query.reason !== undefined) {
      clauses.push("reason = @reason");
      params.reason = query.reason;
    }
    if (query.status !== undefined) {
      clauses.push("status IN (SELECT value FROM json_each(@statuses))");
      params.statuses = JSON.stringify(
        typeof query.status === "string" ? [query.status] : query.status,
      );
    }
    if (query.since !== undefined) {
      clauses.push("last_failed_at >= @since");
      // The contract's reading of a time: a typed error naming `since`, not a bare RangeError.
      params.since = new Date(timeInputMs(query.since, "since")).toISOString();
    }
    if (before !== undefined) {
      clauses.push("last_failed_at < @before");
      params.before = before.toISOString();
    }
    return { where: clauses.length ? `WHERE ${clauses.join(" AND ")}` : "", params };
  }
}

function isDeadLetter(value: DeadLetter | DeadLetterQuery): value is DeadLetter {
  return typeof (value as DeadLetter).id === "number" && "eventId" in value;
}

/** A record that can be handed back: its envelope is there and readable, nobody else holds it. */
const REPLAYABLE = `envelope IS NOT NULL AND json_valid(envelope) AND (status != 'retrying' OR lease_until < @now)`;

/** Why `row` cannot be claimed for replay now, or `undefined` when it can. */
function unreplayable(
  row: DeadLetterRow,
  now: number,
  seen: DeadLetter | undefined,
): string | undefined {
  if (row.envelope === null) return "purged: the envelope is gone";
  if (row.status === "retrying" && (row.lease_until ?? 0) >= now)
    return "being replayed by someone else";
  if (row.status === "purged") return "purged: the envelope is gone";
  if (seen !== undefined && (row.replays !== seen.replays || row.status !== seen.status))
    return `replayed by someone else meanwhile (now ${row.status}, ${row.replays} replays)`;
  const damaged = toDeadLetter(row).damaged;
  if (damaged !== undefined) return `damaged: ${damaged}`;
  return undefined;
}

const RETRY_FOR_MS = 30_000;

/** The claims of one {@link SqliteDeadLetterStore.replay} call, as its last renewal saw them. */
interface Claims {
  readonly token: string;
  readonly leaseMs: number;
  /** Ids the token still held at the last renewal (or the claim). */
  held: Set<number>;
  /** When (the store's clock) the leases were last set. */
  renewedAt: number;
}

/** A lease (ms) or a count given to a method: an integer ≥ 1, else `QueueOptionsError`. */
const positiveOption = (option: string, value: number | undefined, fallback: number): number =>
  integerOption(option, value, fallback, 1);

/**
 * A query's `limit` (default 100): an integer ≥ 1, else `QueueOptionsError`. SQLite reads a
 * negative LIMIT as none (a replay of `limit: -1` took every match) and refuses a fraction, NaN or
 * Infinity with a bare "datatype mismatch".
 */
const queryLimit = (query: DeadLetterQuery): number => positiveOption("limit", query.limit, 100);

/** `setImmediate` for the first attempts, then short growing sleeps (up to ~75 ms). */
function pause(attempt: number): Promise<void> {
  if (attempt < 16) return new Promise((resolve) => setImmediate(resolve));
  const ms = Math.min(50, 2 ** (attempt - 16)) * (0.5 + Math.random());
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}

function isBusy(error: unknown): boolean {
  const code = codeOf(error);
  return code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED");
}

/** SQLite's file-level failures as a {@link DeadLetterStoreFileError}; `undefined` for anything else. */
function fileError(path: string, error: unknown): DeadLetterStoreFileError | undefined {
  const code = codeOf(error);
  if (code.startsWith("SQLITE_CORRUPT") || code.startsWith("SQLITE_NOTADB"))
    return new DeadLetterStoreFileError(path, "corrupt", { cause: error });
  if (code.startsWith("SQLITE_READONLY"))
    return new DeadLetterStoreFileError(path, "readonly", { cause: error });
  if (code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_PERM"))
    return new DeadLetterStoreFileError(path, "unopenable", { cause: error });
  return undefined;
}

/**
 * Open the store's own connection: WAL, `synchronous = NORMAL`, the dead-letter table migrated
 * (waiting up to `busyTimeoutMs` for the lock, once at open), then `busy_timeout = 0` for good.
 */
function openStoreDatabase(path: string, busyTimeoutMs: number): Database.Database {
  let db: Database.Database;
  try {
    mkdirSync(dirname(path), { recursive: true });
    db = new Database(path);
  } catch (error) {
    throw (
      fileError(path, error) ?? new DeadLetterStoreFileError(path, "unopenable", { cause: error })
    );
  }
  try {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    if (db.pragma("journal_mode", { simple: true }) !== "wal") db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    migrateDeadLetters(db, path);
    db.pragma("busy_timeout = 0");
    return db;
  } catch (error) {
    db.close();
    if (isBusy(error)) throw new DeadLetterStoreBusyError(path, busyTimeoutMs, { cause: error });
    throw fileError(path, error) ?? error;
  }
}

/**
 * @internal The `envelope` column of a `dead_letters` row read: the envelope, or why it cannot be
 * read (`damaged`); neither when it is `NULL` (purged).
 */
export function readEnvelope(text: string | null): {
  envelope: Envelope | undefined;
  damaged: string | undefined;
} {
  if (text === null) return { envelope: undefined, damaged: undefined };
  try {
    const envelope = JSON.parse(text) as Envelope;
    if (typeof envelope !== "object" || envelope === null || Array.isArray(envelope))
      return { envelope: undefined, damaged: "dead_letters.envelope is not a JSON object" };
    return { envelope, damaged: undefined };
  } catch (error) {
    // SyntaxError for text that is not JSON; RangeError when V8 gives up on deep nesting.
    return {
      envelope: undefined,
      damaged: `dead_letters.envelope is not JSON (${(error as Error).message})`,
    };
  }
}

/** A `dead_letters` row as a {@link DeadLetter}; a damaged envelope is reported, never thrown. */
export function toDeadLetter(row: DeadLetterRow): DeadLetter {
  const { envelope, damaged } = readEnvelope(row.envelope);
  return {
    id: row.id,
    eventId: row.event_id,
    eventType: row.event_type,
    subscriber: row.subscriber,
    origin: row.origin,
    reason: row.reason,
    envelope,
    error: {
      name: row.error_name,
      message: row.error_message,
      ...(row.error_code !== null ? { code: row.error_code } : {}),
      ...(row.error_stack !== null ? { stack: row.error_stack } : {}),
    },
    attempts: row.attempts,
    replays: row.replays,
    firstFailedAt: row.first_failed_at,
    lastFailedAt: row.last_failed_at,
    status: row.status,
    nextRetryAt: row.next_retry_at ?? undefined,
    replayedAt: row.replayed_at ?? undefined,
    ...(damaged !== undefined ? { damaged } : {}),
  };
}
