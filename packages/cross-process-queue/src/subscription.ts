import type { Envelope } from "@switchyard/event-schema";
import {
  type BackoffOptions,
  type DeadLetterReason,
  type DeadLetterSink,
  type Delivery,
  type Logger,
  LeaseLostError,
  TransportClosedError,
  type TransportSubscribeOptions,
  type TransportSubscription,
  deadLetterRecord,
  decideOutcome,
  drainWithin,
  logDelivery,
  retryDelay,
  runAttempt,
  serializeError,
  timerDelay,
} from "@switchyard/transport";
import type { ClaimedDelivery, ExchangeRequest, Outcome, QueueStore } from "./claim";
import { SPIN_ATTEMPTS, busyDelayMs } from "./database";
import { isBusy } from "./errors";

/** What a subscription needs from its transport. */
export interface SubscriptionHost {
  readonly store: QueueStore;
  /** Transport name, the `origin` of dead letters. */
  readonly name: string;
  readonly logger: Logger;
  readonly drainTimeoutMs: number;
  readonly claimBatchSize: number;
  /** About how much handler work (ms) a subscription may hold claimed ahead; 0: none. */
  readonly prefetchMs: number;
  /** The transport's dead-letter sink, for subscriptions that name none. */
  readonly deadLetter: DeadLetterSink | undefined;
  /** Whether the connection is still open. */
  readonly open: boolean;
  /** Called once when the subscription has closed and saved its outcomes. */
  forget(subscription: SqliteSubscription): Promise<void>;
  /** Counts statements run, for diagnostics. */
  readonly counters: { claims: number; dueChecks: number };
}

const DEFAULT_LEASE_MS = 30_000;
const DEFAULT_MAX_ATTEMPTS = 5;

/**
 * One delivery handed to the handler and not settled yet. It is the handler's `Delivery` too;
 * its `AbortController` is created only when the handler reads `signal`.
 */
class ActiveDelivery implements Delivery {
  readonly claim: ClaimedDelivery;
  readonly subscriber: string;
  leaseUntil: number;
  /** The lease expired or was handed back: the outcome is discarded. */
  lost = false;
  /** Lost because the lease ran out while the handler ran (seen by the watchdog). */
  expired = false;
  #controller: AbortController | undefined;
  #lostReason: Error | undefined;
  readonly #extend: (active: ActiveDelivery, ms?: number) => Promise<void>;

  constructor(
    claim: ClaimedDelivery,
    subscriber: string,
    extend: (active: ActiveDelivery, ms?: number) => Promise<void>,
  ) {
    this.claim = claim;
    this.subscriber = subscriber;
    this.leaseUntil = claim.leaseUntil;
    this.#extend = extend;
  }

  get envelope(): Envelope {
    return this.claim.envelope;
  }

  get attempt(): number {
    return this.claim.attempt;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#lostReason) this.#controller.abort(this.#lostReason);
    }
    return this.#controller.signal;
  }

  extendLease(ms?: number): Promise<void> {
    return this.#extend(this, ms);
  }

  /** Mark the lease lost and abort the handler's signal. */
  lose(reason: Error): void {
    if (this.lost) return;
    this.lost = true;
    this.#lostReason = reason;
    this.#controller?.abort(reason);
  }
}

/**
 * One subscription of one process: claims due deliveries of its subscriber in batches, runs the
 * handler with bounded concurrency and saves outcomes (ack, retry with backoff, dead letter) in
 * batches, each batch together with the next claim in one immediate transaction.
 */
export class SqliteSubscription implements TransportSubscription {
  readonly subscriber: string;
  readonly types: readonly string[];
  readonly ephemeral: boolean;
  readonly #host: SubscriptionHost;
  readonly #handler: (delivery: Delivery) => Promise<void>;
  readonly #typeSet: ReadonlySet<string>;
  readonly #typesJson: string;
  readonly #concurrency: number;
  readonly #leaseMs: number;
  readonly #maxAttempts: number;
  readonly #backoff: BackoffOptions | undefined;
  readonly #sink: DeadLetterSink | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () => void this.close();
  readonly #active = new Set<ActiveDelivery>();
  /** Claimed deliveries waiting for a free handler (prefetched), in claim (`seq`) order. */
  #waiting: ClaimedDelivery[] = [];
  /** Moving average of how long a handler takes (ms); undefined until one finished. */
  #handlerMs: number | undefined;
  #outcomes: Outcome[] = [];
  /** A claim may find work: set by wake-ups, cleared by a claim that came back short. */
  #wanted = true;
  #tickQueued = false;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Whether {@link #retryTimer} waits out another connection's write lock (not a failure's 1 s). */
  #retryBusy = false;
  #busyStreak = 0;
  #dueTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #stopped = false;
  #closing: Promise<void> | undefined;
  #idle: (() => void)[] = [];

  constructor(host: SubscriptionHost, options: TransportSubscribeOptions) {
    this.#host = host;
    this.subscriber = options.subscriber;
    this.types = [...new Set(options.types)];
    this.ephemeral = options.ephemeral ?? false;
    this.#handler = options.handler;
    this.#typeSet = new Set(this.types);
    this.#typesJson = JSON.stringify(this.types);
    this.#concurrency = options.concurrency ?? 1;
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.#maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    this.#backoff = options.backoff;
    this.#sink = options.deadLetter;
    this.#signal = options.signal;
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Deliveries handed to the handler and not settled yet. */
  get inFlight(): number {
    return this.#active.size;
  }

  /** Whether this subscription receives any of `types`. */
  handlesAny(types: ReadonlySet<string>): boolean {
    for (const type of types) if (this.#typeSet.has(type)) return true;
    return false;
  }

  /**
   * Something may be claimable: try soon — or, with `now`, at once (for a commit of another
   * connection seen by the poller's own check, outside any caller's code: a claim one turn of the
   * event loop later cost the cross-process latency ~0.05 ms at the median). A wake-up while
   * waiting out another connection's write lock tries at once too: it comes from a commit (most
   * often the holder's), after which the lock is most likely free — waiting on for the backoff's
   * timer made a lock released after 0.3 ms cost a claim 1 ms or more.
   */
  wake(now = false): void {
    if (this.#stopped) return;
    this.#wanted = true;
    if (this.#retryTimer && this.#retryBusy) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    if (now && !this.#tickQueued && !this.#retryTimer) this.#tick();
    else this.#schedule();
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #schedule(): void {
    if (this.#tickQueued || this.#retryTimer) return;
    this.#tickQueued = true;
    // setImmediate, not a microtask: outcomes of handlers finishing in the same turn share a transaction.
    setImmediate(() => {
      this.#tickQueued = false;
      this.#tick();
    });
  }

  #request(outcomes: readonly Outcome[], limit: number): ExchangeRequest {
    return {
      subscriber: this.subscriber,
      outcomes,
      limit,
      types: this.#typeSet,
      typesJson: this.#typesJson,
      leaseMs: this.#leaseMs,
    };
  }

  /**
   * How many claimed deliveries may wait for a handler: about `prefetchMs` of handler work at the
   * measured pace, within a quarter of the lease (so a waiting delivery starts with most of its
   * lease left) and `claimBatchSize`. None before a first handler finished.
   */
  #prefetch(): number {
    const ms = this.#handlerMs;
    if (ms === undefined || this.#host.prefetchMs === 0) return 0;
    const window = Math.min(this.#host.prefetchMs, this.#leaseMs / 4);
    return ms > 0
      ? Math.min(this.#host.claimBatchSize, Math.floor(window / ms))
      : this.#host.claimBatchSize;
  }

  #tick(): void {
    if (!this.#host.open) return;
    const capacity = this.#stopped
      ? 0
      : this.#concurrency + this.#prefetch() - this.#active.size - this.#waiting.length;
    const limit = this.#wanted && capacity > 0 ? Math.min(capacity, this.#host.claimBatchSize) : 0;
    if (limit === 0 && this.#outcomes.length === 0) return;
    const outcomes = this.#outcomes;
    this.#outcomes = [];
    const { store } = this.#host;
    let result;
    try {
      if (limit > 0) this.#host.counters.claims++;
      result = store.writer.attempt(() => store.exchange(this.#request(outcomes, limit)));
      this.#busyStreak = 0;
    } catch (error) {
      this.#outcomes = outcomes.concat(this.#outcomes);
      // Another process holds the write lock: yield and try again (never block, never surface it).
      const busy = isBusy(error);
      if (!busy) {
        this.#host.logger.error(
          { err: error, subscriber: this.subscriber },
          "claiming deliveries failed; retrying in 1 s",
        );
      }
      const attempt = this.#busyStreak++;
      if (busy && attempt < SPIN_ATTEMPTS) {
        this.#schedule();
      } else {
        const delay = busy ? busyDelayMs(attempt) : 1_000;
        this.#retryBusy = busy;
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#schedule();
        }, timerDelay(delay));
      }
      return;
    }
    for (const o of result.lost) {
      this.#discarded(o.seq, undefined, "its lease was taken over before the outcome was saved");
    }
    for (const claim of result.claimed) this.#dispatch(claim);
    if (limit === 0 && outcomes.some((o) => o.kind === "retry" || o.kind === "release")) {
      // Not looking for work, yet a delivery became due later (or now): the due timer may be
      // armed for a later time (an in-flight lease's end), so read the next due time again.
      this.#armDue();
    }
    if (limit > 0 && result.claimed.length < limit) {
      if (result.more) {
        // Only part of the new events was looked at: keep going.
        this.#schedule();
      } else {
        this.#wanted = false;
        this.#armDue(result.nextDue);
      }
    }
  }

  /**
   * Wake up when the next open delivery becomes due (a retry's backoff or someone's lease ends):
   * at `known` when the claim's transaction read it (`null`: nothing open), else read now.
   */
  #armDue(known?: number | null): void {
    clearTimeout(this.#dueTimer);
    this.#dueTimer = undefined;
    let due: number | undefined;
    try {
      this.#host.counters.dueChecks++;
      due =
        known === undefined
          ? this.#host.store.nextDue(this.subscriber, this.#typesJson)
          : (known ?? undefined);
    } catch (error) {
      if (!isBusy(error)) {
        this.#host.logger.error(
          { err: error, subscriber: this.subscriber },
          "reading the next due delivery failed",
        );
      }
      due = Date.now() + 1_000;
    }
    if (due === undefined) return;
    this.#dueTimer = setTimeout(
      () => {
        this.#dueTimer = undefined;
        this.wake();
      },
      // Clamped: a far-future time (written by another program) would overflow and fire at once.
      timerDelay(due - Date.now() + 1),
    );
    this.#dueTimer.unref();
  }

  #dispatch(claim: ClaimedDelivery): void {
    if (this.#active.size >= this.#concurrency || this.#waiting.length > 0) {
      this.#waiting.push(claim);
      return;
    }
    this.#start(claim);
  }

  /**
   * Start waiting deliveries while handlers are free, in order. One whose lease ran half its
   * course while it waited (handlers slowed down) is not started: every waiting delivery is
   * handed back, and the next claim — in the transaction that saves the hand-back — takes them
   * again in the same order under a fresh lease.
   */
  #startWaiting(): void {
    const now = Date.now();
    while (!this.#stopped && this.#active.size < this.#concurrency && this.#waiting.length > 0) {
      const next = this.#waiting[0]!;
      if (next.leaseUntil - now < this.#leaseMs / 2) {
        this.#handBackWaiting();
        this.#wanted = true;
        return;
      }
      this.#waiting.shift();
      this.#start(next);
    }
  }

  /** Hand every waiting delivery back (not an attempt): claimable at once once saved. */
  #handBackWaiting(): void {
    for (const c of this.#waiting) {
      this.#outcomes.push({ kind: "release", seq: c.seq, token: c.token, attempt: c.attempt });
    }
    this.#waiting = [];
  }

  #start(claim: ClaimedDelivery): void {
    const active = new ActiveDelivery(claim, this.subscriber, this.#extend);
    this.#active.add(active);
    this.#armWatchdog();
    void this.#run(active);
  }

  async #run(active: ActiveDelivery): Promise<void> {
    const { claim } = active;
    if (claim.undecodable) {
      // Nothing to hand to the handler: the dead-letter path, with the raw row and the reason.
      this.#host.logger.warn(
        {
          err: claim.undecodable,
          subscriber: this.subscriber,
          eventId: claim.envelope.id,
          seq: claim.seq,
        },
        `stored event #${claim.seq} cannot be decoded; dead-lettering it`,
      );
    }
    const log = {
      transport: this.#host.name,
      subscriber: this.subscriber,
      envelope: claim.envelope,
      attempt: claim.attempt,
    };
    logDelivery(this.#host.logger, "claimed", log);
    const started = performance.now();
    const result = await runAttempt(
      {
        subscriber: this.subscriber,
        envelope: claim.envelope,
        attempt: claim.attempt,
        maxAttempts: this.#maxAttempts,
        undecodable: claim.undecodable,
      },
      () => this.#handler(active),
    );
    try {
      if (active.lost) {
        this.#discarded(
          claim.seq,
          claim.envelope,
          "its lease expired or was handed back while the handler ran",
        );
        if (active.expired && !this.#stopped) {
          this.#outcomes.push({
            kind: "fenced",
            seq: claim.seq,
            token: claim.token,
            attempt: claim.attempt,
            detail: `the ${result.failed ? "failure" : "success"} of an attempt whose lease (token ${claim.token}) had run out: discarded`,
          });
        }
        return;
      }
      const outcome = decideOutcome(
        result,
        claim.attempt,
        { maxAttempts: this.#maxAttempts, backoff: this.#backoff },
        claim.envelope.id,
      );
      logDelivery(this.#host.logger, "settled", {
        ...log,
        outcome: outcome.kind,
        ...(outcome.kind === "retry" ? { delayMs: outcome.delayMs } : {}),
      });
      switch (outcome.kind) {
        case "ack":
          // The attempt goes with every ack: a fenced-off one is recorded with it.
          this.#outcomes.push(
            claim.journaled
              ? {
                  kind: "ack",
                  seq: claim.seq,
                  token: claim.token,
                  attempt: claim.attempt,
                  journaled: true,
                }
              : { kind: "ack", seq: claim.seq, token: claim.token, attempt: claim.attempt },
          );
          return;
        case "dead_letter":
          await this.#deadLetter(active, outcome.error, outcome.reason);
          return;
        case "retry":
          this.#outcomes.push({
            kind: "retry",
            seq: claim.seq,
            token: claim.token,
            attempt: claim.attempt,
            availableAt: Date.now() + outcome.delayMs,
            delayMs: outcome.delayMs,
            error: errorJson(outcome.error),
          });
          return;
      }
    } catch (error) {
      this.#host.logger.error(
        { err: error, subscriber: this.subscriber, eventId: claim.envelope.id },
        "settling a delivery failed; it is redelivered after its lease",
      );
    } finally {
      const ms = performance.now() - started;
      this.#handlerMs = this.#handlerMs === undefined ? ms : this.#handlerMs * 0.8 + ms * 0.2;
      this.#active.delete(active);
      this.#startWaiting();
      if (this.#active.size === 0) {
        clearInterval(this.#watchdog);
        this.#watchdog = undefined;
        for (const wake of this.#idle.splice(0)) wake();
      }
      this.#schedule();
    }
  }

  /**
   * Dead-letter a delivery that failed for good. With a sink: hold the lease while the sink
   * writes (this also fences a stale worker), and mark the row dead only once the sink accepted
   * it; if the sink fails the delivery is kept and retried. Without a sink the row itself is
   * marked `dead` and kept: nothing is dropped.
   */
  async #deadLetter(
    active: ActiveDelivery,
    failure: unknown,
    reason: DeadLetterReason,
  ): Promise<void> {
    const { claim } = active;
    const sink = this.#sink ?? this.#host.deadLetter;
    const error = errorJson(failure);
    if (!sink) {
      this.#outcomes.push({
        kind: "dead",
        seq: claim.seq,
        token: claim.token,
        attempt: claim.attempt,
        error,
        reason,
        handedOff: false,
      });
      return;
    }
    const { store } = this.#host;
    const until = Date.now() + this.#leaseMs;
    const lease = await store.writer.run(() =>
      store.extendLease(this.subscriber, claim.seq, claim.token, until, Date.now(), claim.attempt),
    );
    if (lease === "lost") {
      this.#discarded(
        claim.seq,
        claim.envelope,
        "its lease was taken over before it could be dead-lettered",
      );
      return;
    }
    active.leaseUntil = until;
    if (lease === "requeued") {
      // Replayed while this attempt ran: run it again (with fresh attempts), not a dead letter.
      this.#outcomes.push({
        kind: "retry",
        seq: claim.seq,
        token: claim.token,
        attempt: claim.attempt,
        availableAt: Date.now(),
        delayMs: 0,
        error,
        detail: "replayed while this attempt ran: runs again with fresh attempts",
      });
      return;
    }
    const record = deadLetterRecord({
      envelope: claim.envelope,
      subscriber: this.subscriber,
      reason,
      attempts: claim.attempt,
      error: failure,
      origin: this.#host.name,
    });
    try {
      await sink.deadLetter(record);
    } catch (sinkError) {
      this.#host.logger.error(
        { err: sinkError, subscriber: this.subscriber, eventId: claim.envelope.id },
        "dead-letter sink failed; the delivery is kept and retried",
      );
      const delayMs = retryDelay(claim.attempt, { backoff: this.#backoff });
      this.#outcomes.push({
        kind: "retry",
        seq: claim.seq,
        token: claim.token,
        attempt: claim.attempt,
        availableAt: Date.now() + delayMs,
        delayMs,
        error,
        detail: "the dead-letter sink failed: kept and retried",
      });
      return;
    }
    this.#outcomes.push({
      kind: "dead",
      seq: claim.seq,
      token: claim.token,
      attempt: claim.attempt,
      error,
      reason,
      handedOff: true,
    });
  }

  readonly #extend = async (active: ActiveDelivery, ms: number = this.#leaseMs): Promise<void> => {
    const { claim } = active;
    if (!(ms > 0 && Number.isFinite(ms))) {
      throw new RangeError(
        `extendLease(${ms}): pass a positive number of milliseconds, e.g. 30_000.`,
      );
    }
    if (active.lost || !this.#host.open)
      throw new LeaseLostError(this.subscriber, claim.envelope.id);
    const { store } = this.#host;
    const until = Date.now() + ms;
    const lease = await store.writer.run(() =>
      store.extendLease(this.subscriber, claim.seq, claim.token, until, Date.now(), claim.attempt),
    );
    if (lease === "lost") {
      const error = new LeaseLostError(this.subscriber, claim.envelope.id);
      this.#lose(active, error);
      throw error;
    }
    active.leaseUntil = until;
  };

  #armWatchdog(): void {
    if (this.#watchdog) return;
    const period = Math.min(1_000, Math.max(5, Math.floor(this.#leaseMs / 4)));
    this.#watchdog = setInterval(() => {
      const now = Date.now();
      for (const a of this.#active) {
        if (!a.lost && a.leaseUntil <= now) {
          a.expired = true;
          this.#lose(a, new LeaseLostError(this.subscriber, a.claim.envelope.id));
        }
      }
    }, period);
    this.#watchdog.unref();
  }

  /** The lease is gone: abort the handler's signal; its outcome will be discarded. */
  #lose(active: ActiveDelivery, reason: Error): void {
    if (active.lost) return;
    active.lose(reason);
    // The expired delivery is claimable again, by this process too if it has room.
    this.wake();
  }

  #discarded(seq: number, envelope: Envelope | undefined, why: string): void {
    const eventId = envelope?.id ?? `#${seq}`;
    this.#host.logger.warn(
      { err: new LeaseLostError(this.subscriber, eventId), subscriber: this.subscriber, eventId },
      `discarding the outcome of ${eventId}: ${why}`,
    );
  }

  async #shutdown(): Promise<void> {
    this.#stopped = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    clearTimeout(this.#dueTimer);
    this.#dueTimer = undefined;
    if (this.#waiting.length > 0) {
      // Prefetched deliveries no handler started: hand them back now, not after the drain, so
      // another worker can take them at once.
      this.#handBackWaiting();
      await this.#save();
    }
    if (this.#active.size > 0) {
      await drainWithin(
        new Promise<void>((resolve) => this.#idle.push(resolve)),
        this.#host.drainTimeoutMs,
      );
      // Whatever still runs loses its lease: abort it and hand the delivery back at once.
      for (const a of this.#active) {
        if (a.lost) continue;
        a.lose(new TransportClosedError("SQLite transport subscription"));
        this.#outcomes.push({
          kind: "release",
          seq: a.claim.seq,
          token: a.claim.token,
          attempt: a.claim.attempt,
        });
      }
    }
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    await this.#save();
    await this.#host.forget(this);
  }

  /** Save the outcomes decided so far (closing: no claim). */
  async #save(): Promise<void> {
    if (this.#host.open && this.#outcomes.length > 0) {
      const outcomes = this.#outcomes;
      this.#outcomes = [];
      const { store } = this.#host;
      try {
        const { lost } = await store.writer.run(() => store.exchange(this.#request(outcomes, 0)));
        for (const o of lost) {
          this.#discarded(
            o.seq,
            undefined,
            "its lease was taken over before the outcome was saved",
          );
        }
      } catch (error) {
        this.#host.logger.error(
          { err: error, subscriber: this.subscriber },
          "saving outcomes on close failed; those deliveries are redelivered after their lease",
        );
      }
    }
  }
}

const MAX_ERROR_CHARS = 8_192;

function errorJson(error: unknown): string {
  const serialized = serializeError(error);
  const json = JSON.stringify(serialized);
  if (json.length <= MAX_ERROR_CHARS) return json;
  const { stack: _stack, ...short } = serialized;
  return JSON.stringify({ ...short, message: short.message.slice(0, MAX_ERROR_CHARS) });
}
