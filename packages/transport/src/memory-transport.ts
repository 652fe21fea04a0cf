import type { Envelope } from "@switchyard/event-schema";
import { LeaseLostError, TransportClosedError, UnknownSubscriptionError } from "./errors";
import { type Logger, silentLogger } from "./logger";
import { deadLetterRecord, decideOutcome, retryDelay, runAttempt } from "./outcome";
import type {
  DeadLetterRecord,
  DeadLetterSink,
  Delivery,
  PublishResult,
  SubscriberStats,
  Transport,
  TransportStats,
  TransportSubscribeOptions,
  TransportSubscription,
} from "./transport";

/** Options of {@link memoryTransport}. */
export interface MemoryTransportOptions {
  /** Dead-letter sink for subscriptions that name none. @defaultValue kept in `transport.deadLetters` */
  readonly deadLetter?: DeadLetterSink;
  readonly logger?: Logger;
  /** How long `close()` waits for in-flight handlers before aborting them. @defaultValue 10_000 */
  readonly drainTimeoutMs?: number;
}

interface PendingDelivery {
  readonly seq: number;
  readonly envelope: Envelope;
  /** Attempts started so far (a hand-back gives one back). */
  attempts: number;
  /** Requeued while leased: if the running attempt fails, it is due again with fresh attempts. */
  requeued: boolean;
  availableAt: number;
  /** Fencing token of the current lease; 0 when not leased. */
  token: number;
  leaseUntil: number;
  controller: AbortController | undefined;
  enqueuedAt: number;
}

interface SubscriberState {
  readonly name: string;
  types: Set<string>;
  readonly deliveries: PendingDelivery[];
  readonly workers: Set<Worker>;
  deadLettered: number;
  ephemeral: boolean;
}

let fence = 0;

/** The longest delay Node's timers take; a longer one fires after 1 ms (`TimeoutOverflowWarning`). */
const MAX_TIMER_MS = 2_147_483_647;

/** `ms` clamped to what `setTimeout` takes, so a far-away time never turns into a 1 ms loop. */
function timerDelay(ms: number): number {
  if (Number.isNaN(ms) || ms >= MAX_TIMER_MS) return MAX_TIMER_MS;
  return ms > 0 ? Math.ceil(ms) : 0;
}

/** A delivery waiting to be claimed; the envelope is copied, as a store would. */
function pendingDelivery(seq: number, envelope: Envelope, now: number): PendingDelivery {
  return {
    seq,
    envelope: structuredClone(envelope),
    attempts: 0,
    requeued: false,
    availableAt: now,
    token: 0,
    leaseUntil: 0,
    controller: undefined,
    enqueuedAt: now,
  };
}

/**
 * The state behind one or more {@link MemoryTransport} handles: the event log, subscribers and
 * their deliveries. Share one store between handles to model several processes on one database.
 */
export class MemoryStore {
  /** Dead letters written when no sink was given. */
  readonly deadLetters: DeadLetterRecord[] = [];
  /** @internal */ readonly ids = new Set<string>();
  /** @internal */ readonly subscribers = new Map<string, SubscriberState>();
  /** @internal */ seq = 0;
  #leaseTimer: NodeJS.Timeout | undefined;

  /** @internal */
  armLeaseTimer(): void {
    if (this.#leaseTimer) return;
    this.#leaseTimer = setInterval(() => this.#expireLeases(), 25);
    this.#leaseTimer.unref();
  }

  #expireLeases(): void {
    const now = Date.now();
    for (const state of this.subscribers.values()) {
      let expired = false;
      for (const d of state.deliveries) {
        if (d.token !== 0 && d.leaseUntil <= now) {
          d.token = 0;
          d.controller?.abort(new LeaseLostError(state.name, d.envelope.id));
          d.controller = undefined;
          d.availableAt = now;
          expired = true;
        }
      }
      if (expired) for (const w of state.workers) w.pump();
    }
  }
}

/**
 * The transport contract in memory: fan-out per subscriber, competing consumers, leases with
 * fencing tokens, retries with backoff, dead letters. Nothing survives the process: use it for
 * tests and as the reference the durable transports are checked against. Handles created over one
 * shared {@link MemoryStore} behave like processes sharing one database.
 */
export class MemoryTransport implements Transport {
  readonly name = "memory";
  readonly store: MemoryStore;
  readonly #options: MemoryTransportOptions;
  readonly #logger: Logger;
  readonly #workers = new Set<Worker>();
  #closing: Promise<void> | undefined;

  constructor(options: MemoryTransportOptions & { store?: MemoryStore } = {}) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    this.store = options.store ?? new MemoryStore();
  }

  /** Dead letters written when no sink was given (kept in the store). */
  get deadLetters(): DeadLetterRecord[] {
    return this.store.deadLetters;
  }

  async publish(envelopes: readonly Envelope[]): Promise<PublishResult> {
    if (this.#closing) throw new TransportClosedError("memory transport");
    const store = this.store;
    let published = 0;
    let duplicates = 0;
    const now = Date.now();
    for (const envelope of envelopes) {
      if (store.ids.has(envelope.id)) {
        duplicates++;
        continue;
      }
      store.ids.add(envelope.id);
      published++;
      const seq = ++store.seq;
      for (const state of store.subscribers.values()) {
        if (!state.types.has(envelope.type)) continue;
        state.deliveries.push(pendingDelivery(seq, envelope, now));
      }
    }
    for (const state of store.subscribers.values()) for (const w of state.workers) w.pump();
    return { published, duplicates };
  }

  async subscribe(options: TransportSubscribeOptions): Promise<TransportSubscription> {
    if (this.#closing) throw new TransportClosedError("memory transport");
    let state = this.store.subscribers.get(options.subscriber);
    if (!state) {
      state = {
        name: options.subscriber,
        types: new Set(options.types),
        deliveries: [],
        workers: new Set(),
        deadLettered: 0,
        ephemeral: options.ephemeral ?? false,
      };
      this.store.subscribers.set(options.subscriber, state);
    } else {
      for (const type of options.types) state.types.add(type);
    }
    const worker = new Worker(this, state, options, this.#logger);
    state.workers.add(worker);
    this.#workers.add(worker);
    this.store.armLeaseTimer();
    worker.pump();
    return worker;
  }

  async requeue(subscriber: string, envelope: Envelope): Promise<void> {
    if (this.#closing) throw new TransportClosedError("memory transport");
    const state = this.store.subscribers.get(subscriber);
    if (!state || !state.types.has(envelope.type)) {
      throw new UnknownSubscriptionError(subscriber, envelope.type, [
        ...this.store.subscribers.keys(),
      ]);
    }
    const now = Date.now();
    const open = state.deliveries.find((d) => d.envelope.id === envelope.id);
    if (open && open.token !== 0 && open.leaseUntil > now) {
      // Never take over a live lease: the running attempt's success stands for the requeue;
      // if it fails, it is due again with fresh attempts instead of a retry count or a dead letter.
      open.requeued = true;
      return;
    }
    if (open) {
      // Waiting for a retry, or held by an expired lease: due again now, with fresh attempts.
      open.controller?.abort(new LeaseLostError(subscriber, open.envelope.id));
      open.controller = undefined;
      open.token = 0;
      open.attempts = 0;
      open.requeued = false;
      open.availableAt = now;
    } else {
      state.deliveries.push(pendingDelivery(++this.store.seq, envelope, now));
    }
    for (const w of state.workers) w.pump();
  }

  async register(subscriber: string, types: readonly string[]): Promise<void> {
    if (this.#closing) throw new TransportClosedError("memory transport");
    const state = this.store.subscribers.get(subscriber);
    if (state) {
      for (const type of types) state.types.add(type);
      state.ephemeral = false;
      return;
    }
    this.store.subscribers.set(subscriber, {
      name: subscriber,
      types: new Set(types),
      deliveries: [],
      workers: new Set(),
      deadLettered: 0,
      ephemeral: false,
    });
  }

  async hasSubscribers(type: string): Promise<boolean> {
    for (const state of this.store.subscribers.values()) if (state.types.has(type)) return true;
    return false;
  }

  async stats(): Promise<TransportStats> {
    const now = Date.now();
    const subscribers: SubscriberStats[] = [...this.store.subscribers.values()].map((s) => {
      const inFlight = s.deliveries.filter((d) => d.token !== 0).length;
      const pending = s.deliveries.length - inFlight;
      const oldest = s.deliveries.find((d) => d.token === 0);
      return {
        subscriber: s.name,
        pending,
        inFlight,
        lag: s.deliveries.length,
        deadLettered: s.deadLettered,
        ...(oldest ? { oldestPendingMs: now - oldest.enqueuedAt } : {}),
      };
    });
    return { transport: this.name, subscribers };
  }

  /** Close this handle's subscriptions (draining them); the store and other handles live on. */
  close(): Promise<void> {
    this.#closing ??= Promise.all([...this.#workers].map((w) => w.close())).then(() => {});
    return this.#closing;
  }

  /** @internal */
  get drainTimeoutMs(): number {
    return this.#options.drainTimeoutMs ?? 10_000;
  }

  /** @internal */
  forget(state: SubscriberState, worker: Worker): void {
    state.workers.delete(worker);
    this.#workers.delete(worker);
    if (state.ephemeral && state.workers.size === 0) this.store.subscribers.delete(state.name);
  }

  /** @internal */
  async deadLetter(
    state: SubscriberState,
    record: DeadLetterRecord,
    sink: DeadLetterSink | undefined,
  ): Promise<void> {
    const target = sink ?? this.#options.deadLetter;
    if (target) await target.deadLetter(record);
    else this.store.deadLetters.push(record);
    state.deadLettered++;
  }
}

class Worker implements TransportSubscription {
  readonly subscriber: string;
  #running = 0;
  /** Deliveries this worker holds the lease of, with the token it holds them under. */
  readonly #held = new Map<PendingDelivery, number>();
  #closing: Promise<void> | undefined;
  #idle: (() => void)[] = [];
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #concurrency: number;
  readonly #leaseMs: number;
  readonly #maxAttempts: number;

  constructor(
    private readonly transport: MemoryTransport,
    private readonly state: SubscriberState,
    private readonly options: TransportSubscribeOptions,
    private readonly logger: Logger,
  ) {
    this.subscriber = options.subscriber;
    this.#concurrency = options.concurrency ?? 1;
    this.#leaseMs = options.leaseMs ?? 30_000;
    this.#maxAttempts = options.maxAttempts ?? 5;
    options.signal?.addEventListener("abort", () => void this.close(), { once: true });
  }

  pump(): void {
    if (this.#closing) return;
    const now = Date.now();
    let nextRetry = Infinity;
    for (const d of this.state.deliveries) {
      if (this.#running >= this.#concurrency) break;
      if (d.token !== 0 || !this.options.types.includes(d.envelope.type)) continue;
      if (d.availableAt > now) {
        nextRetry = Math.min(nextRetry, d.availableAt);
        continue;
      }
      this.#claim(d, now);
    }
    if (nextRetry !== Infinity && !this.#retryTimer) {
      this.#retryTimer = setTimeout(
        () => {
          this.#retryTimer = undefined;
          this.pump();
        },
        timerDelay(nextRetry - now),
      );
    }
  }

  #claim(d: PendingDelivery, now: number): void {
    const token = ++fence;
    d.token = token;
    d.attempts++;
    d.leaseUntil = now + this.#leaseMs;
    const controller = (d.controller = new AbortController());
    d.requeued = false;
    this.#held.set(d, token);
    this.#running++;
    const delivery: Delivery = {
      envelope: d.envelope,
      attempt: d.attempts,
      subscriber: this.subscriber,
      signal: controller.signal,
      extendLease: async (ms = this.#leaseMs) => {
        if (d.token !== token) throw new LeaseLostError(this.subscriber, d.envelope.id);
        d.leaseUntil = Date.now() + ms;
      },
    };
    void this.#handle(d, token, delivery);
  }

  async #handle(d: PendingDelivery, token: number, delivery: Delivery): Promise<void> {
    try {
      const result = await runAttempt(
        {
          subscriber: this.subscriber,
          envelope: d.envelope,
          attempt: d.attempts,
          maxAttempts: this.#maxAttempts,
        },
        () => this.options.handler(delivery),
      );
      if (d.token !== token) {
        this.logger.warn(
          { subscriber: this.subscriber, eventId: d.envelope.id },
          `discarding the outcome of ${d.envelope.id}: its lease expired and it was redelivered`,
        );
        return;
      }
      d.controller = undefined;
      if (result.failed && d.requeued) {
        // Requeued while this attempt ran: run it again, with fresh attempts.
        d.requeued = false;
        d.token = 0;
        d.attempts = 0;
        d.availableAt = Date.now();
        return;
      }
      const outcome = decideOutcome(result, d.attempts, {
        maxAttempts: this.#maxAttempts,
        backoff: this.options.backoff,
      });
      switch (outcome.kind) {
        case "ack":
          return this.#remove(d);
        case "dead_letter":
          await this.transport.deadLetter(
            this.state,
            deadLetterRecord({
              envelope: d.envelope,
              subscriber: this.subscriber,
              attempts: d.attempts,
              error: outcome.error,
              reason: outcome.reason,
              origin: this.transport.name,
            }),
            this.options.deadLetter,
          );
          return this.#remove(d);
        case "retry":
          d.token = 0;
          d.availableAt = Date.now() + outcome.delayMs;
          return;
      }
    } catch (error) {
      // The dead-letter sink failed: keep the delivery and try again later, never drop it.
      this.logger.error(
        { err: error, eventId: d.envelope.id },
        "dead-letter sink failed; delivery kept for retry",
      );
      if (d.token === token) {
        d.token = 0;
        d.availableAt = Date.now() + retryDelay(d.attempts, this.options);
      }
    } finally {
      this.#held.delete(d);
      this.#running--;
      if (this.#running === 0) for (const wake of this.#idle.splice(0)) wake();
      for (const w of this.state.workers) w.pump();
    }
  }

  #remove(d: PendingDelivery): void {
    const i = this.state.deliveries.indexOf(d);
    if (i >= 0) this.state.deliveries.splice(i, 1);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#retryTimer);
      if (this.#running > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => this.#idle.push(resolve)),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, timerDelay(this.transport.drainTimeoutMs));
          }),
        ]);
        clearTimeout(timer);
        // Whatever of this worker's still runs loses its lease: abort it and hand the delivery
        // back. A hand-back is not an attempt (the claim counted one: give it back); a lease
        // that expired (a crash) still counts.
        for (const [d, token] of this.#held) {
          if (d.token !== token) continue;
          d.controller?.abort(new TransportClosedError("memory transport subscription"));
          d.controller = undefined;
          d.token = 0;
          d.attempts = Math.max(0, d.attempts - 1);
          d.availableAt = Date.now();
        }
      }
      this.transport.forget(this.state, this);
      for (const w of this.state.workers) w.pump();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Create a {@link MemoryTransport} (over a new store unless `store` is given). */
export function memoryTransport(
  options: MemoryTransportOptions & { store?: MemoryStore } = {},
): MemoryTransport {
  return new MemoryTransport(options);
}
