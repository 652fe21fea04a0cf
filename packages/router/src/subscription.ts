import type { AnyCatalog, Envelope } from "@switchyard/event-schema";
import type { BackoffOptions } from "@switchyard/transport";
import {
  type ContextHost,
  DeliveryContext,
  type DeliveryScope,
  type DeliveryTiming,
} from "./context";
import { QueueFullError, RouterClosedError } from "./errors";
import {
  HandlerTimeoutError,
  abortReason,
  isUnrecoverable,
  serializeError,
} from "@switchyard/transport";
import { Fifo } from "./fifo";
import { type Logger, isThenable, silentLogger } from "@switchyard/transport";
import { traceIdOf } from "./trace";
import {
  type HandlerFn,
  type Middleware,
  type MiddlewareScope,
  type MiddlewareStage,
  composeMiddleware,
} from "./middleware/types";
import { DurationWindow, type DurationStats } from "./stats";
import { clock, expireClock, freshClock } from "./clock";
import type { Delivery, TransportSubscription } from "@switchyard/transport";

/** What a full subscription queue does with the next event. */
export type Overflow = "wait" | "drop-newest" | "drop-oldest" | "error";

/** Options of `router.subscribe`. Defaults come from the router's `subscriptionDefaults`. */
export interface SubscribeOptions {
  /**
   * Stable name: shown in stats, logs and the audit log, and used as the transport subscriber for
   * durable types (processes sharing a name share the work). Required when the subscription
   * receives durable types through a transport. @defaultValue the handler's function name
   */
  readonly name?: string;
  /** Deliveries handled at once; 1 keeps publish order. @defaultValue 1 */
  readonly concurrency?: number;
  /**
   * Longest one attempt may run, from `0` (disables) to `MAX_TIMER_MS` (about 24.8 days, the
   * longest a timer waits); anything else throws `RangeError`. @defaultValue 30_000
   */
  readonly timeoutMs?: number;
  /** Events buffered for this subscription before `overflow` applies. @defaultValue 1024 */
  readonly queueSize?: number;
  /**
   * When the queue is full: `"wait"` makes `publish` wait for room (backpressure), `"drop-newest"`
   * / `"drop-oldest"` drop and count, `"error"` rejects the publish with `QueueFullError`.
   * @defaultValue "wait"
   */
  readonly overflow?: Overflow;
  /** Middleware for this subscription only, composed with the router's in stage order. */
  readonly middleware?: readonly Middleware[];
  /** Transport deliveries: attempts before dead-lettering. @defaultValue 5 */
  readonly maxAttempts?: number;
  /** Transport deliveries: lease length from claim. @defaultValue 30_000 */
  readonly leaseMs?: number;
  /** Transport deliveries: delay between attempts. @defaultValue the transport's default */
  readonly backoff?: BackoffOptions;
  /** Only events published after subscribing, and no durable state left behind. @defaultValue false */
  readonly ephemeral?: boolean;
  /**
   * Aborting unsubscribes. Already aborted: the options are still checked, but nothing is
   * subscribed (no transport subscription either) and the returned subscription is closed.
   */
  readonly signal?: AbortSignal;
}

/** Per-subscription numbers, from `router.stats()`. */
export interface SubscriptionStats {
  readonly name: string;
  readonly types: readonly string[];
  /** Types received through the transport (durable), a subset of `types`. */
  readonly durableTypes: readonly string[];
  readonly concurrency: number;
  readonly queueSize: number;
  readonly queueDepth: number;
  readonly inFlight: number;
  /** Deliveries whose handler succeeded. */
  readonly delivered: number;
  /**
   * Deliveries that failed for good (after retries), dead-lettered ones included. For durable
   * types: failures of the last attempt (`maxAttempts`) or unrecoverable ones, which the
   * transport dead-letters.
   */
  readonly failed: number;
  /** Failed attempts followed by another: in-process retries, and transport redeliveries after a failure. */
  readonly retried: number;
  readonly deduplicated: number;
  /** Deliveries handed to a dead-letter sink: by the `deadLetter` middleware, or by the transport. */
  readonly deadLettered: number;
  readonly timedOut: number;
  /** Events discarded by overflow or by unsubscribing with a backlog. */
  readonly dropped: number;
  readonly durationMs: DurationStats;
  readonly lastError?: { readonly message: string; readonly at: string };
  /** State of the transport subscription for durable types. */
  readonly transport: "none" | "starting" | "active" | "failed" | "closed";
}

/** Mutable counters of one subscription. */
export interface Counters {
  delivered: number;
  failed: number;
  retried: number;
  deduplicated: number;
  deadLettered: number;
  timedOut: number;
  dropped: number;
}

export const emptyCounters = (): Counters => ({
  delivered: 0,
  failed: 0,
  retried: 0,
  deduplicated: 0,
  deadLettered: 0,
  timedOut: 0,
  dropped: 0,
});

/** What a subscription needs from its router. */
export interface SubscriptionHost extends ContextHost {
  readonly catalog: AnyCatalog;
  readonly slowHandlerMs: number;
  /** Aborted when the router's drain deadline passes. */
  readonly shutdownSignal: AbortSignal;
}

interface Settings {
  readonly name: string;
  readonly types: readonly string[];
  readonly durableTypes: readonly string[];
  readonly concurrency: number;
  readonly queueSize: number;
  readonly overflow: Overflow;
  /**
   * Runtime-native timeout per delivery, by origin (0 = none: either no timeout, or the `timeout`
   * middleware sits in that origin's chain because middleware there must see the timeout).
   */
  readonly timeoutMs: { readonly local: number; readonly transport: number };
  /**
   * The subscription's `timeoutMs`: also bounds each stretch of a middleware's own time, for
   * middleware not made by this package (the rule is stated on `composeMiddleware`).
   */
  readonly middlewareTimeoutMs: number;
  /** Transport deliveries: attempts after which the transport dead-letters a failure. */
  readonly maxAttempts: number;
  /** Transport deliveries: the backoff passed to the transport. */
  readonly backoff?: BackoffOptions | undefined;
}

/** Stages a transport delivery's chain skips: the transport owns retries and dead letters. */
export const TRANSPORT_SKIPPED_STAGES: ReadonlySet<MiddlewareStage> = new Set([
  "retry",
  "dead-letter",
]);

/** Outcomes kept in the recent window (health): success, a failed attempt, a final failure. */
const OK = 0;
const FAILED_ATTEMPT = 1;
const FAILED_FOR_GOOD = 2;

const RECENT = 100;

/** A local worker: the delivery it awaits and its two settlement callbacks, made once. */
interface WorkerSlot extends DeliveryTiming {
  ctx: DeliveryContext | undefined;
  readonly ok: () => void;
  readonly fail: (error: unknown) => void;
}

/** One subscription's runtime: its bounded queue, its workers, its chains and its numbers. */
export class LocalSubscription {
  readonly name: string;
  readonly types: readonly string[];
  readonly durableTypes: readonly string[];
  readonly concurrency: number;
  readonly queueSize: number;
  readonly overflow: Overflow;
  readonly counters: Counters = emptyCounters();
  transportState: SubscriptionStats["transport"] = "none";
  transportSubscription: Promise<TransportSubscription> | undefined;
  lastError: { message: string; at: string } | undefined;

  #queue = new Fifo<Envelope>();
  #room: (() => void)[] = [];
  #idle: (() => void)[] = [];
  #running = 0;
  #inFlight = 0;
  #active = true;
  #durations = new DurationWindow();
  /** Aborted when the subscription discards its backlog (unsubscribed): ends retry backoffs. */
  readonly #unsubscribed = new AbortController();
  /** Last outcomes (OK, FAILED_ATTEMPT, FAILED_FOR_GOOD): drive the health verdict. */
  #recent = new Uint8Array(RECENT);
  #recentIndex = 0;
  #local: HandlerFn;
  #remote: HandlerFn;
  readonly #localScope: DeliveryScope;
  readonly #transportScope: DeliveryScope;
  readonly #timeoutMs: { readonly local: number; readonly transport: number };
  /** Whether lifecycle debug lines are wanted (any logger but the silent default). */
  readonly #debug: boolean;
  readonly #maxAttempts: number;
  /** Idle worker slots, reused so a delivery allocates no closures; one kept aside (`#spare`). */
  #slots: WorkerSlot[] = [];
  #spare: WorkerSlot | undefined;
  /**
   * Every slot not abandoned by a timeout (at most `concurrency`): a local delivery in flight is the
   * `ctx` of one of them, so the timeout timer finds local deadlines here, with no list per delivery.
   */
  #workers: WorkerSlot[] = [];
  /** Transport deliveries with a deadline, in start order: `[#deadlineHead, #deadlineTail)`. */
  #deadlines: (DeliveryContext | undefined)[] = [];
  #deadlineHead = 0;
  #deadlineTail = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    settings: Settings,
    private readonly host: SubscriptionHost,
    handler: HandlerFn,
    middleware: { local: readonly Middleware[]; transport: readonly Middleware[] },
    private readonly logger: Logger,
  ) {
    this.name = settings.name;
    this.types = settings.types;
    this.durableTypes = settings.durableTypes;
    this.concurrency = settings.concurrency;
    this.queueSize = settings.queueSize;
    this.overflow = settings.overflow;
    this.#timeoutMs = settings.timeoutMs;
    this.#maxAttempts = settings.maxAttempts;
    this.#debug = host.logger !== silentLogger;
    const shutdownSignal = host.shutdownSignal;
    const deduplicated = () => void this.counters.deduplicated++;
    this.#localScope = {
      subscription: this.name,
      origin: "local",
      host,
      shutdownSignal,
      unsubscribed: this.#unsubscribed.signal,
      deduplicated,
    };
    this.#transportScope = {
      subscription: this.name,
      origin: "transport",
      host,
      shutdownSignal,
      unsubscribed: this.#unsubscribed.signal,
      deduplicated,
    };
    const counters = {
      retried: () => void this.counters.retried++,
      deduplicated,
      timedOut: () => void this.counters.timedOut++,
      deadLettered: () => void this.counters.deadLettered++,
    };
    const scope = (origin: MiddlewareScope["origin"]): MiddlewareScope => ({
      subscription: this.name,
      origin,
      catalog: host.catalog,
      logger: host.logger,
      maxAttempts: settings.maxAttempts,
      backoff: settings.backoff,
      counters,
    });
    this.#local = composeMiddleware(
      handler,
      middleware.local,
      scope("local"),
      undefined,
      settings.middlewareTimeoutMs,
    );
    this.#remote = composeMiddleware(
      handler,
      middleware.transport,
      scope("transport"),
      TRANSPORT_SKIPPED_STAGES,
      settings.middlewareTimeoutMs,
    );
  }

  get active(): boolean {
    return this.#active;
  }

  get queueDepth(): number {
    return this.#queue.length;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Accept a locally published event: undefined when queued, a promise when waiting for room.
   * `now` is a clock read the caller may share among the subscriptions it offers one event to;
   * aborting `signal` gives up waiting for room (the promise rejects, the event is not queued).
   *
   * A publish offers to every matching subscription, and one subscription dropping the event
   * (`drop-newest`, or closed) does not fail it: the drop is counted. With `only` (a redelivery to
   * this subscription alone) a drop is the whole outcome, so it rejects instead: `QueueFullError`
   * under `drop-newest` (still counted `dropped`), `RouterClosedError` when the subscription
   * closed (also while waiting for room).
   */
  offer(
    event: Envelope,
    now?: number,
    signal?: AbortSignal,
    only = false,
  ): Promise<void> | undefined {
    if (!this.#active)
      return only
        ? Promise.reject(new RouterClosedError(`subscription "${this.name}"`))
        : undefined;
    if (this.#running < this.concurrency && this.#queue.length === 0) {
      // An idle worker: deliver at once, without a trip through the queue.
      this.#running++;
      this.#run(this.#takeSlot(), now ?? freshClock(), event);
      return undefined;
    }
    if (this.#queue.length < this.queueSize) {
      this.#queue.push(event);
      if (this.#running < this.concurrency) this.#startWorker(now);
      return undefined;
    }
    switch (this.overflow) {
      case "wait":
        return this.#waitForRoom(event, signal, only);
      case "drop-newest":
        this.counters.dropped++;
        return only ? Promise.reject(new QueueFullError(this.name, this.queueSize)) : undefined;
      case "drop-oldest":
        this.#queue.shift();
        this.counters.dropped++;
        this.#queue.push(event);
        return undefined;
      case "error":
        return Promise.reject(new QueueFullError(this.name, this.queueSize));
    }
  }

  /** Wait for queue room (backpressure), then offer `event` again; aborting `signal` gives up. */
  #waitForRoom(event: Envelope, signal: AbortSignal | undefined, only: boolean): Promise<void> {
    if (signal === undefined)
      return new Promise<void>((resolve) => this.#room.push(resolve)).then(() =>
        this.offer(event, undefined, undefined, only),
      );
    if (signal.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const at = this.#room.indexOf(wake);
        if (at !== -1) this.#room.splice(at, 1);
        reject(abortReason(signal));
      };
      const wake = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#room.push(wake);
    }).then(() => this.offer(event, undefined, signal, only));
  }

  /** Handle a delivery from the transport; throws on failure so the transport retries or dead-letters. */
  async deliver(delivery: Delivery): Promise<void> {
    if (!this.#active) throw new RouterClosedError(`subscription "${this.name}"`);
    const { envelope } = delivery;
    const ctx = new DeliveryContext(
      this.#transportScope,
      envelope,
      delivery.attempt,
      { startedAt: 0.5, deadline: 0.5 },
      delivery,
    );
    this.#begin(ctx, performance.now());
    let failed = false;
    let failure: unknown;
    try {
      const result: unknown = this.#remote(envelope, ctx);
      // Whatever else the handler returned is ignored, as on the local path.
      if (isThenable(result)) {
        if (this.#timeoutMs.transport > 0) {
          // Transport deliveries must settle on timeout so the transport can retry: race the handler.
          await new Promise<void>((resolve, reject) => {
            ctx.interrupt = reject;
            result.then(() => resolve(), reject);
          });
        } else {
          await result;
        }
      }
    } catch (error) {
      failed = true;
      failure = error;
    }
    if (!ctx.settled) this.#complete(ctx, failed, failure);
    if (failed) throw failure;
  }

  #startWorker(now: number = freshClock()): void {
    this.#running++;
    this.#run(this.#takeSlot(), now, this.#next());
  }

  /** The next queued event, waking one publisher waiting for room. */
  #next(): Envelope | undefined {
    const event = this.#queue.shift();
    if (event !== undefined && this.#room.length > 0) this.#room.shift()!();
    return event;
  }

  #takeSlot(): WorkerSlot {
    const spare = this.#spare;
    if (spare === undefined) return this.#slots.pop() ?? this.#newSlot();
    this.#spare = undefined;
    return spare;
  }

  #releaseSlot(slot: WorkerSlot): void {
    if (this.#spare === undefined) this.#spare = slot;
    else this.#slots.push(slot);
  }

  #newSlot(): WorkerSlot {
    const slot: WorkerSlot = {
      ctx: undefined,
      startedAt: 0.5, // doubles from the start: performance.now() values are stored in place
      deadline: 0.5,
      ok: () => this.#settled(slot, false, undefined),
      fail: (error: unknown) => this.#settled(slot, true, error),
    };
    this.#workers.push(slot);
    return slot;
  }

  /**
   * One worker: takes events off the queue until it is empty or a handler returns a promise, then
   * continues from that promise's settlement. Workers are slots reused for the subscription's
   * life (no async function, generator or closure per event), and a handler that returns
   * synchronously costs no microtask. The end of one delivery is the start of the next, read from
   * the clock shared by one microtask checkpoint (see clock.ts).
   */
  #run(slot: WorkerSlot, now: number, first: Envelope | undefined): void {
    const timeoutMs = this.#timeoutMs.local;
    for (let event = first; event !== undefined; event = this.#next()) {
      const ctx = new DeliveryContext(this.#localScope, event, 1, slot);
      // The local half of #begin: found through its worker slot when the timer fires (#workers).
      this.#inFlight++;
      slot.startedAt = now;
      if (timeoutMs > 0) {
        slot.deadline = now + timeoutMs;
        if (this.#timer === undefined) this.#armAt(slot.deadline);
      }
      let result: unknown;
      let pending: boolean;
      try {
        result = this.#local(event, ctx);
        // Whatever else the handler returned is ignored; a `then` getter that throws fails the
        // delivery, as `await` would.
        pending = isThenable(result);
      } catch (error) {
        expireClock();
        now = clock();
        this.#complete(ctx, true, error, now);
        if (!this.#active && this.host.shutdownSignal.aborted) break;
        continue;
      }
      expireClock();
      if (pending) {
        slot.ctx = ctx;
        try {
          // A promise is subscribed to as it is; any other thenable is adopted by one first, so
          // the slot settles once even if its `then` calls back twice, calls both callbacks, or
          // throws after calling one (the slot may be running the next delivery by then).
          Promise.resolve(result).then(slot.ok, slot.fail);
          return;
        } catch (error) {
          // A thenable whose `then` throws fails the delivery, as `await` would.
          slot.ctx = undefined;
          now = clock();
          this.#complete(ctx, true, error, now);
          if (!this.#active && this.host.shutdownSignal.aborted) break;
          continue;
        }
      }
      now = clock();
      this.#complete(ctx, false, undefined, now);
      if (!this.#active && this.host.shutdownSignal.aborted) break;
    }
    this.#exit(slot);
  }

  #settled(slot: WorkerSlot, failed: boolean, failure: unknown): void {
    const ctx = slot.ctx!;
    slot.ctx = undefined;
    // Timed out: the slot was already released and a replacement worker started.
    if (ctx.abandoned) {
      this.#workers.push(slot);
      this.#releaseSlot(slot);
      return;
    }
    const now = clock();
    if (failed || ctx.outcome !== "ok") this.#complete(ctx, failed, failure, now);
    else this.#succeeded(ctx, now - slot.startedAt);
    if (this.#queue.length === 0 || (!this.#active && this.host.shutdownSignal.aborted))
      this.#exit(slot);
    // The next delivery starts now, not at a read other jobs may have made long before this one.
    else this.#run(slot, freshClock(), this.#next());
  }

  #exit(slot: WorkerSlot): void {
    this.#releaseSlot(slot);
    this.#running--;
    if (this.#running === 0 && this.#queue.length === 0) this.#wakeIdle();
  }

  /** Start a transport delivery (local ones start in #run). */
  #begin(ctx: DeliveryContext, now: number): void {
    this.#inFlight++;
    const timing = ctx.timing;
    timing.startedAt = now;
    const timeoutMs = this.#timeoutMs.transport;
    if (timeoutMs > 0) {
      timing.deadline = now + timeoutMs;
      // Settled ones leave first: a context kept here would outlive its delivery (a young-generation
      // object promoted by the garbage collector, the slowest thing a delivery could do).
      this.#compactDeadlines();
      this.#deadlines[this.#deadlineTail++] = ctx;
      if (!this.#timer) this.#armTimeout();
    }
  }

  /**
   * `#complete` for the common outcome, a local delivery that succeeded (outcome "ok"): the same
   * numbers and log lines, without the branches for everything else.
   */
  #succeeded(ctx: DeliveryContext, ms: number): void {
    ctx.settled = true;
    ctx.release();
    this.#inFlight--;
    this.#durations.record(ms);
    if (ms >= this.host.slowHandlerMs) this.#warnSlow(ctx.event, ms);
    if (this.#debug) this.#logHandled(ctx, false, ms);
    this.#recent[this.#recentIndex] = OK;
    if (++this.#recentIndex === RECENT) this.#recentIndex = 0;
    this.counters.delivered++;
  }

  #warnSlow(event: Envelope, ms: number): void {
    this.logger.warn(
      {
        subscription: this.name,
        eventType: event.type,
        eventId: event.id,
        durationMs: Math.round(ms),
        traceId: traceIdOf(event.traceparent),
      },
      `handler ${this.name} took ${Math.round(ms)} ms for ${event.type}`,
    );
  }

  /** The lifecycle debug line of a settled attempt. */
  #logHandled(ctx: DeliveryContext, failed: boolean, ms: number): void {
    const event = ctx.event;
    this.logger.debug(
      {
        subscription: this.name,
        eventType: event.type,
        eventId: event.id,
        attempt: ctx.attempt,
        origin: ctx.origin,
        outcome: failed ? "failed" : ctx.outcome,
        durationMs: Math.round(ms * 1000) / 1000,
        traceId: traceIdOf(event.traceparent),
      },
      `handled ${event.type} ${event.id}: ${failed ? "failed" : ctx.outcome}`,
    );
  }

  /** Record the outcome of a delivery exactly once. */
  #complete(
    ctx: DeliveryContext,
    failed: boolean,
    failure: unknown,
    now: number = performance.now(),
  ): void {
    ctx.settled = true;
    ctx.release();
    this.#inFlight--;
    const event = ctx.event;
    const ms = now - ctx.timing.startedAt;
    this.#durations.record(ms);
    if (ms >= this.host.slowHandlerMs) this.#warnSlow(event, ms);
    if (this.#debug) this.#logHandled(ctx, failed, ms);
    if (!failed) {
      const deadLettered = ctx.outcome === "dead_lettered";
      this.#record(deadLettered ? FAILED_FOR_GOOD : OK);
      if (deadLettered) this.counters.failed++;
      else if (ctx.outcome === "ok") this.counters.delivered++;
      return;
    }
    this.lastError = { message: serializeError(failure).message, at: new Date().toISOString() };
    if (ctx.origin === "transport") {
      // The transport owns the outcome, by the contract every transport states: a failure is
      // retried after a backoff unless it is unrecoverable or the attempt was the last, and then
      // it is dead-lettered. Counted here the same way, so stats and health see the durable path.
      // A delivery whose lease was lost (or whose transport closed) has no outcome to count.
      if (ctx.shutdownSignal.aborted) {
        this.#record(FAILED_ATTEMPT);
        return;
      }
      const final = isUnrecoverable(failure) || ctx.attempt >= this.#maxAttempts;
      this.#record(final ? FAILED_FOR_GOOD : FAILED_ATTEMPT);
      const fields = {
        err: failure,
        subscription: this.name,
        eventType: event.type,
        eventId: event.id,
        attempt: ctx.attempt,
        traceId: traceIdOf(event.traceparent),
      };
      if (final) {
        this.counters.failed++;
        this.counters.deadLettered++;
        this.logger.error(
          fields,
          `handler ${this.name} failed on ${event.type} (attempt ${ctx.attempt} of ${this.#maxAttempts}); the transport dead-letters it`,
        );
      } else {
        this.counters.retried++;
        this.logger.warn(
          fields,
          `handler ${this.name} failed on ${event.type} (attempt ${ctx.attempt} of ${this.#maxAttempts}); the transport will retry it`,
        );
      }
      return;
    }
    this.#record(FAILED_FOR_GOOD);
    this.counters.failed++;
    this.logger.error(
      {
        err: failure,
        subscription: this.name,
        eventType: event.type,
        eventId: event.id,
        attempt: ctx.attempt,
        traceId: traceIdOf(event.traceparent),
      },
      `handler ${this.name} failed on ${event.type}`,
    );
  }

  // Runtime-native per-delivery timeout. Deadlines of one subscription come in start order, so a
  // FIFO and one timer armed for the oldest replace a timer (and a wrapper promise) per event.
  #compactDeadlines(): void {
    const list = this.#deadlines;
    let head = this.#deadlineHead;
    const tail = this.#deadlineTail;
    while (head < tail && list[head]!.settled) list[head++] = undefined;
    if (head === tail) {
      this.#deadlineHead = this.#deadlineTail = 0;
    } else if (head > 1024 && head * 2 > tail) {
      list.copyWithin(0, head, tail);
      list.fill(undefined, tail - head, tail);
      this.#deadlineHead = 0;
      this.#deadlineTail = tail - head;
    } else {
      this.#deadlineHead = head;
    }
  }

  /** Arm the timer for the earliest deadline in flight, if any and none is armed. */
  #armTimeout(): void {
    this.#compactDeadlines();
    if (this.#timer) return;
    let next =
      this.#deadlineHead < this.#deadlineTail
        ? this.#deadlines[this.#deadlineHead]!.timing.deadline
        : Number.POSITIVE_INFINITY;
    for (const slot of this.#workers) {
      if (slot.ctx !== undefined && !slot.ctx.settled && slot.deadline < next) next = slot.deadline;
    }
    if (next !== Number.POSITIVE_INFINITY) this.#armAt(next);
  }

  #armAt(deadline: number): void {
    this.#timer = setTimeout(this.#onTimer, Math.max(0, deadline - performance.now()));
    this.#timer.unref();
  }

  #onTimer = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    // Transport deliveries, in start order.
    while (this.#deadlineHead < this.#deadlineTail) {
      const ctx = this.#deadlines[this.#deadlineHead]!;
      if (!ctx.settled && ctx.timing.deadline > now) break;
      this.#deadlines[this.#deadlineHead++] = undefined;
      if (ctx.settled) continue;
      const error = new HandlerTimeoutError(this.name, this.#timeoutMs.transport);
      this.counters.timedOut++;
      ctx.abort(error);
      this.#complete(ctx, true, error, now);
      ctx.interrupt?.(error);
    }
    // Local deliveries: the contexts their worker slots await.
    const expired = this.#workers.filter(
      (slot) => slot.ctx !== undefined && !slot.ctx.settled && slot.deadline <= now,
    );
    for (const slot of expired) {
      const ctx = slot.ctx!;
      const error = new HandlerTimeoutError(this.name, this.#timeoutMs.local);
      this.counters.timedOut++;
      ctx.abort(error);
      this.#complete(ctx, true, error, now);
      // The slot stays with the abandoned handler until it settles (then it rejoins #workers); a
      // replacement worker takes the queue.
      ctx.abandoned = true;
      this.#workers.splice(this.#workers.indexOf(slot), 1);
      this.#running--;
      if (this.#queue.length > 0 && this.#active) this.#startWorker();
      else if (this.#running === 0 && this.#queue.length === 0) this.#wakeIdle();
    }
    this.#armTimeout();
  };

  #record(outcome: number): void {
    this.#recent[this.#recentIndex] = outcome;
    if (++this.#recentIndex === RECENT) this.#recentIndex = 0;
  }

  /**
   * Among the last deliveries (transport attempts count one each): the share that failed (0..1),
   * how many failed for good (dead-lettered, or failed with no retry left), and how many were
   * looked at.
   */
  recentFailureRate(): { rate: number; failedForGood: number; samples: number } {
    const total = this.#durations.summary().count;
    const samples = Math.min(total, RECENT);
    if (samples === 0) return { rate: 0, failedForGood: 0, samples: 0 };
    let failures = 0;
    let failedForGood = 0;
    for (let i = 0; i < samples; i++) {
      const outcome = this.#recent[i]!;
      if (outcome !== OK) failures++;
      if (outcome === FAILED_FOR_GOOD) failedForGood++;
    }
    return { rate: failures / samples, failedForGood, samples };
  }

  /** Resolves when nothing is queued or running (local deliveries). */
  idle(): Promise<void> {
    if (this.#running === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #wakeIdle(): void {
    if (this.#idle.length === 0) return;
    for (const wake of this.#idle.splice(0)) wake();
  }

  /**
   * Stop accepting; with `discard`, drop the backlog (counted) and end retry backoffs (the
   * delivery waiting in one fails with its last error: no new attempt starts). Publishers waiting
   * for room are released either way, and their events dropped (counted): an inactive
   * subscription takes none.
   */
  deactivate(discard: boolean): void {
    this.#active = false;
    if (discard) {
      this.counters.dropped += this.#queue.clear().length;
      if (!this.#unsubscribed.signal.aborted)
        this.#unsubscribed.abort(new RouterClosedError(`subscription "${this.name}"`));
    }
    this.counters.dropped += this.#room.length;
    for (const wake of this.#room.splice(0)) wake();
    if (this.#running === 0) this.#wakeIdle();
  }

  stats(): SubscriptionStats {
    return {
      name: this.name,
      types: this.types,
      durableTypes: this.durableTypes,
      concurrency: this.concurrency,
      queueSize: this.queueSize,
      queueDepth: this.#queue.length,
      inFlight: this.#inFlight,
      ...this.counters,
      durationMs: this.#durations.summary(),
      ...(this.lastError ? { lastError: this.lastError } : {}),
      transport: this.transportState,
    };
  }
}
