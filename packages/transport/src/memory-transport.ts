import { assertEnvelope, type Envelope } from "@switchyard/event-schema";
import {
  LeaseLostError,
  type SerializedError,
  TransportClosedError,
  UnknownSubscriptionError,
  serializeError,
} from "./errors";
import type { DaemonHeartbeat } from "./heartbeat";
import type { DeliveryStep } from "./inspector";
import { type Logger, silentLogger } from "./logger";
import { drainWithin, timerDelay } from "./timers";
import { abortReason } from "./backoff";
import { TransportOptionsError, subscribeOptionsProblem } from "./subscribe-options";
import { deadLetterRecord, decideOutcome, logDelivery, retryDelay, runAttempt } from "./outcome";
import type {
  DeadLetterReason,
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
  /** The error of the last failed attempt. */
  lastError: SerializedError | undefined;
  /** Last change (claim, failure, hand-back), ms since the epoch. */
  updatedAt: number;
}

/** @internal How a delivery that left the queue ended, kept for the inspector. */
export interface SettledDelivery {
  readonly state: "acked" | "dead";
  readonly attempts: number;
  readonly lastError?: SerializedError;
  readonly deadReason?: DeadLetterReason;
  readonly at: number;
}

/** @internal */
export interface SubscriberState {
  readonly name: string;
  types: Set<string>;
  readonly deliveries: PendingDelivery[];
  readonly workers: Set<Worker>;
  deadLettered: number;
  ephemeral: boolean;
  /** When it was first registered (ms since the epoch). */
  readonly createdAt: number;
  /** When a worker last claimed or settled one of its deliveries. */
  lastSeen: number | undefined;
  /** Deliveries that were acked or dead-lettered, by event id (the latest outcome). */
  readonly settled: Map<string, SettledDelivery>;
  /** Each delivery's timeline, by event id: the last {@link MEMORY_HISTORY_LIMIT} steps. */
  readonly history: Map<string, MemoryHistory>;
}

/** @internal A delivery's timeline as the memory store keeps it. */
export interface MemoryHistory {
  readonly steps: DeliveryStep[];
  /** Older steps were dropped to stay within {@link MEMORY_HISTORY_LIMIT}. */
  truncated: boolean;
}

/** Steps the memory transport keeps per delivery (older ones are dropped, `historyTruncated`). */
export const MEMORY_HISTORY_LIMIT = 50;

/** Append a step to the timeline of `eventId` for the subscriber of `state`, within the bound. */
function recordStep(
  state: SubscriberState,
  eventId: string,
  step: Omit<DeliveryStep, "at"> & { readonly at?: number },
): void {
  let history = state.history.get(eventId);
  if (!history) state.history.set(eventId, (history = { steps: [], truncated: false }));
  const { at, ...rest } = step;
  history.steps.push({ at: new Date(at ?? Date.now()).toISOString(), ...rest });
  if (history.steps.length > MEMORY_HISTORY_LIMIT) {
    history.steps.splice(0, history.steps.length - MEMORY_HISTORY_LIMIT);
    history.truncated = true;
  }
}

/** @internal An event as the store keeps it. */
export interface StoredMemoryEvent {
  readonly seq: number;
  readonly envelope: Envelope;
  /** When it was published (ms since the epoch). */
  readonly storedAt: number;
}

/** @internal A dead letter in the store, with its life as the inspector reports it. */
export interface MemoryDeadLetter {
  readonly id: string;
  record: DeadLetterRecord;
  status: "pending_retry" | "replayed" | "purged";
  /** Attempts across every failure of this event for this subscriber. */
  attempts: number;
  replays: number;
  readonly firstFailedAt: string;
  replayedAt: string | undefined;
}

let fence = 0;

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
    lastError: undefined,
    updatedAt: now,
  };
}

function subscriberState(
  name: string,
  types: Iterable<string>,
  ephemeral: boolean,
): SubscriberState {
  return {
    name,
    types: new Set(types),
    deliveries: [],
    workers: new Set(),
    deadLettered: 0,
    ephemeral,
    createdAt: Date.now(),
    lastSeen: undefined,
    settled: new Map(),
    history: new Map(),
  };
}

/**
 * The state behind one or more {@link MemoryTransport} handles: the event log, subscribers and
 * their deliveries. Share one store between handles to model several processes on one database.
 */
export class MemoryStore {
  /** Dead letters written when no sink was given. */
  readonly deadLetters: DeadLetterRecord[] = [];
  /** @internal Every event published, in publish order. */ readonly events: StoredMemoryEvent[] =
    [];
  /** @internal */ readonly eventsById = new Map<string, StoredMemoryEvent>();
  /** @internal */ readonly subscribers = new Map<string, SubscriberState>();
  /** @internal Dead letters with their status, by id. */
  readonly deadLetterEntries = new Map<string, MemoryDeadLetter>();
  /** @internal The latest heartbeat of every daemon, by name. */
  readonly heartbeats = new Map<string, DaemonHeartbeat>();
  /** @internal */ seq = 0;
  #deadLetterIds = 0;
  #leaseTimer: NodeJS.Timeout | undefined;

  /**
   * @internal Keep a dead letter: one record per event and subscriber, as a durable store keeps
   * it (a later failure of the same event for the same subscriber updates it).
   */
  addDeadLetter(record: DeadLetterRecord): void {
    this.deadLetters.push(record);
    for (const entry of this.deadLetterEntries.values()) {
      if (
        entry.status !== "purged" &&
        entry.record.envelope.id === record.envelope.id &&
        entry.record.subscriber === record.subscriber
      ) {
        entry.record = record;
        entry.status = "pending_retry";
        entry.attempts += record.attempts;
        return;
      }
    }
    const id = String(++this.#deadLetterIds);
    this.deadLetterEntries.set(id, {
      id,
      record,
      status: "pending_retry",
      attempts: record.attempts,
      replays: 0,
      firstFailedAt: record.failedAt,
      replayedAt: undefined,
    });
  }

  /**
   * @internal Deliver `envelope` again to `subscriber` only, keeping its id (see
   * {@link Transport.requeue}). `kind` is the step the delivery's timeline gets.
   */
  requeue(
    subscriber: string,
    envelope: Envelope,
    // `Transport.requeue` is the dead-letter replay path (the router's retry daemon, `admin.replay`).
    kind: "replayed" | "requeued" = "replayed",
  ): void {
    const state = this.subscribers.get(subscriber);
    if (!state || !state.types.has(envelope.type)) {
      throw new UnknownSubscriptionError(subscriber, envelope.type, [...this.subscribers.keys()]);
    }
    const now = Date.now();
    state.settled.delete(envelope.id);
    const open = state.deliveries.find((d) => d.envelope.id === envelope.id);
    if (open && open.token !== 0 && open.leaseUntil > now) {
      // Never take over a live lease: the running attempt's success stands for the requeue;
      // if it fails, it is due again with fresh attempts instead of a retry count or a dead letter.
      open.requeued = true;
      recordStep(state, envelope.id, {
        at: now,
        kind,
        detail: "while an attempt ran: that attempt stands for it, or runs again if it fails",
      });
      return;
    }
    recordStep(state, envelope.id, { at: now, kind });
    if (open) {
      // Waiting for a retry, or held by an expired lease: due again now, with fresh attempts.
      open.controller?.abort(new LeaseLostError(subscriber, open.envelope.id));
      open.controller = undefined;
      open.token = 0;
      open.attempts = 0;
      open.requeued = false;
      open.availableAt = now;
      open.updatedAt = now;
    } else {
      state.deliveries.push(pendingDelivery(++this.seq, envelope, now));
    }
    for (const w of state.workers) w.pump();
  }

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
          recordStep(state, d.envelope.id, { at: now, kind: "lease_expired", attempt: d.attempts });
          d.token = 0;
          d.controller?.abort(new LeaseLostError(state.name, d.envelope.id));
          d.controller = undefined;
          d.availableAt = now;
          d.updatedAt = now;
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

  /**
   * Store the batch at once (all or nothing). Rejects with `TransportClosedError` after `close()`,
   * and with the signal's reason when `signal` is aborted already, storing nothing.
   */
  async publish(
    envelopes: readonly Envelope[],
    options: { signal?: AbortSignal } = {},
  ): Promise<PublishResult> {
    if (this.#closing) throw new TransportClosedError("memory transport");
    if (options.signal?.aborted) throw abortReason(options.signal);
    // One call is one atomic batch: check every envelope before storing any.
    for (const envelope of envelopes) assertEnvelope(envelope);
    const store = this.store;
    let published = 0;
    let duplicates = 0;
    const now = Date.now();
    for (const envelope of envelopes) {
      if (store.eventsById.has(envelope.id)) {
        duplicates++;
        continue;
      }
      published++;
      const seq = ++store.seq;
      const stored: StoredMemoryEvent = { seq, envelope: structuredClone(envelope), storedAt: now };
      store.events.push(stored);
      store.eventsById.set(envelope.id, stored);
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
    const problem = subscribeOptionsProblem(options);
    if (problem) throw new TransportOptionsError("memory transport", problem);
    let state = this.store.subscribers.get(options.subscriber);
    if (!state) {
      state = subscriberState(options.subscriber, options.types, options.ephemeral ?? false);
      this.store.subscribers.set(options.subscriber, state);
    } else {
      for (const type of options.types) state.types.add(type);
    }
    const worker = new Worker(this, state, options, this.#logger);
    state.workers.add(worker);
    this.#workers.add(worker);
    this.store.armLeaseTimer();
    worker.start();
    return worker;
  }

  async requeue(subscriber: string, envelope: Envelope): Promise<void> {
    if (this.#closing) throw new TransportClosedError("memory transport");
    this.store.requeue(subscriber, envelope);
  }

  async register(subscriber: string, types: readonly string[]): Promise<void> {
    if (this.#closing) throw new TransportClosedError("memory transport");
    const state = this.store.subscribers.get(subscriber);
    if (state) {
      for (const type of types) state.types.add(type);
      state.ephemeral = false;
      return;
    }
    this.store.subscribers.set(subscriber, subscriberState(subscriber, types, false));
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
    else this.store.addDeadLetter(record);
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
  /** When {@link Worker.#retryTimer} fires (ms since the epoch). */
  #retryAt = Infinity;
  readonly #onAbort = () => void this.close();
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
  }

  /**
   * Start claiming, once registered with the subscriber and the transport. A signal aborted
   * already closes it at once (as aborting it later would): its handler never runs.
   */
  start(): void {
    const signal = this.options.signal;
    if (signal?.aborted) {
      void this.close();
      return;
    }
    signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.pump();
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
    // One timer, for the earliest retry: a retry due sooner than the armed one re-arms it.
    if (nextRetry < this.#retryAt) {
      clearTimeout(this.#retryTimer);
      this.#retryAt = nextRetry;
      this.#retryTimer = setTimeout(
        () => {
          this.#retryTimer = undefined;
          this.#retryAt = Infinity;
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
    d.updatedAt = now;
    this.state.lastSeen = now;
    this.#held.set(d, token);
    this.#running++;
    recordStep(this.state, d.envelope.id, { at: now, kind: "claimed", attempt: d.attempts });
    const delivery: Delivery = {
      envelope: d.envelope,
      attempt: d.attempts,
      subscriber: this.subscriber,
      signal: controller.signal,
      extendLease: async (ms = this.#leaseMs) => {
        if (d.token !== token) {
          recordStep(this.state, d.envelope.id, {
            kind: "fenced",
            attempt: delivery.attempt,
            detail: "a lease extension from an attempt that had lost its lease",
          });
          throw new LeaseLostError(this.subscriber, d.envelope.id);
        }
        d.leaseUntil = Date.now() + ms;
      },
    };
    void this.#handle(d, token, delivery);
  }

  async #handle(d: PendingDelivery, token: number, delivery: Delivery): Promise<void> {
    const log = {
      transport: this.transport.name,
      subscriber: this.subscriber,
      envelope: d.envelope,
      attempt: d.attempts,
    };
    logDelivery(this.logger, "claimed", log);
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
        recordStep(this.state, d.envelope.id, {
          kind: "fenced",
          attempt: delivery.attempt,
          detail: `the ${result.failed ? "failure" : "success"} of an attempt that had lost its lease`,
        });
        this.logger.warn(
          { subscriber: this.subscriber, eventId: d.envelope.id },
          `discarding the outcome of ${d.envelope.id}: its lease expired and it was redelivered`,
        );
        return;
      }
      d.controller = undefined;
      if (result.failed) d.lastError = serializeError(result.error);
      if (result.failed && d.requeued) {
        // Requeued while this attempt ran: run it again, with fresh attempts.
        d.requeued = false;
        d.token = 0;
        d.attempts = 0;
        d.availableAt = Date.now();
        d.updatedAt = d.availableAt;
        recordStep(this.state, d.envelope.id, {
          at: d.updatedAt,
          kind: "retry_scheduled",
          attempt: delivery.attempt,
          ...(d.lastError ? { error: d.lastError } : {}),
          delayMs: 0,
          detail: "requeued while this attempt ran: runs again with fresh attempts",
        });
        return;
      }
      const outcome = decideOutcome(
        result,
        d.attempts,
        { maxAttempts: this.#maxAttempts, backoff: this.options.backoff },
        d.envelope.id,
      );
      logDelivery(this.logger, "settled", {
        ...log,
        outcome: outcome.kind,
        ...(outcome.kind === "retry" ? { delayMs: outcome.delayMs } : {}),
      });
      switch (outcome.kind) {
        case "ack":
          recordStep(this.state, d.envelope.id, { kind: "acked", attempt: d.attempts });
          return this.#settle(d, { state: "acked" });
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
          recordStep(this.state, d.envelope.id, {
            kind: "dead_lettered",
            attempt: d.attempts,
            error: serializeError(outcome.error),
            reason: outcome.reason,
          });
          return this.#settle(d, { state: "dead", deadReason: outcome.reason });
        case "retry":
          d.token = 0;
          d.updatedAt = Date.now();
          d.availableAt = d.updatedAt + outcome.delayMs;
          recordStep(this.state, d.envelope.id, {
            at: d.updatedAt,
            kind: "retry_scheduled",
            attempt: d.attempts,
            ...(d.lastError ? { error: d.lastError } : {}),
            delayMs: outcome.delayMs,
          });
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
        d.updatedAt = Date.now();
        const delayMs = retryDelay(d.attempts, this.options);
        d.availableAt = d.updatedAt + delayMs;
        recordStep(this.state, d.envelope.id, {
          at: d.updatedAt,
          kind: "retry_scheduled",
          attempt: d.attempts,
          ...(d.lastError ? { error: d.lastError } : {}),
          delayMs,
          detail: "the dead-letter sink failed; kept and retried",
        });
      }
    } finally {
      this.state.lastSeen = Date.now();
      this.#held.delete(d);
      this.#running--;
      if (this.#running === 0) for (const wake of this.#idle.splice(0)) wake();
      for (const w of this.state.workers) w.pump();
    }
  }

  /** Take a delivery out of the queue, keeping how it ended for the inspector. */
  #settle(
    d: PendingDelivery,
    end: { state: "acked" | "dead"; deadReason?: DeadLetterReason },
  ): void {
    const i = this.state.deliveries.indexOf(d);
    if (i >= 0) this.state.deliveries.splice(i, 1);
    this.state.settled.set(d.envelope.id, {
      ...end,
      attempts: d.attempts,
      ...(d.lastError ? { lastError: d.lastError } : {}),
      at: Date.now(),
    });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.options.signal?.removeEventListener("abort", this.#onAbort);
      clearTimeout(this.#retryTimer);
      if (this.#running > 0) {
        await drainWithin(
          new Promise<void>((resolve) => this.#idle.push(resolve)),
          this.transport.drainTimeoutMs,
        );
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
          d.updatedAt = d.availableAt;
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
