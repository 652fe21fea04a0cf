import type { AnyCatalog, Envelope } from "@switchyard/event-schema";
import type { BackoffOptions } from "./backoff";
import { type ContextHost, DeliveryContext } from "./context";
import { QueueFullError, RouterClosedError, serializeError } from "./errors";
import { Fifo } from "./fifo";
import type { Logger } from "./logger";
import {
  type HandlerFn,
  type Middleware,
  type MiddlewareScope,
  composeMiddleware,
} from "./middleware/types";
import { DurationWindow, type DurationStats } from "./stats";
import type { Delivery, TransportSubscription } from "./transport";

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
  /** Longest one attempt may run; `0` disables. @defaultValue 30_000 */
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
  /** Aborting unsubscribes. */
  readonly signal?: AbortSignal;
}

/** Per-subscription numbers, from `router.getStats()`. */
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
  /** Deliveries that failed for good (after retries), dead-lettered ones included. */
  readonly failed: number;
  readonly retried: number;
  readonly deduplicated: number;
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
}

const RECENT = 100;

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
  /** Last outcomes, true = failure: drives the health verdict. */
  #recent = new Uint8Array(RECENT);
  #recentIndex = 0;
  #local: HandlerFn;
  #remote: HandlerFn;

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
    const counters = {
      retried: () => void this.counters.retried++,
      deduplicated: () => void this.counters.deduplicated++,
      timedOut: () => void this.counters.timedOut++,
      deadLettered: () => void this.counters.deadLettered++,
    };
    const scope = (origin: MiddlewareScope["origin"]): MiddlewareScope => ({
      subscription: this.name,
      origin,
      catalog: host.catalog,
      logger: host.logger,
      counters,
    });
    this.#local = composeMiddleware(handler, middleware.local, scope("local"));
    this.#remote = composeMiddleware(
      handler,
      middleware.transport,
      scope("transport"),
      new Set(["retry", "dead-letter"]),
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

  /** Accept a locally published event: undefined when queued, a promise when waiting for room. */
  offer(event: Envelope): Promise<void> | undefined {
    if (!this.#active) return undefined;
    if (this.#queue.length < this.queueSize) {
      this.#queue.push(event);
      if (this.#running < this.concurrency) this.#startWorker();
      return undefined;
    }
    switch (this.overflow) {
      case "wait":
        return new Promise<void>((resolve) => this.#room.push(resolve)).then(() =>
          this.offer(event),
        );
      case "drop-newest":
        this.counters.dropped++;
        return undefined;
      case "drop-oldest":
        this.#queue.shift();
        this.counters.dropped++;
        this.#queue.push(event);
        return undefined;
      case "error":
        return Promise.reject(new QueueFullError(this.name, this.queueSize));
    }
  }

  /** Handle a delivery from the transport; throws on failure so the transport retries or dead-letters. */
  async deliver(delivery: Delivery): Promise<void> {
    if (!this.#active) throw new RouterClosedError(`subscription "${this.name}"`);
    await this.#run(delivery.envelope, "transport", delivery.signal, delivery.attempt, (ms) =>
      delivery.extendLease(ms),
    );
  }

  #startWorker(): void {
    this.#running++;
    void this.#work();
  }

  async #work(): Promise<void> {
    try {
      for (let event = this.#queue.shift(); event !== undefined; event = this.#queue.shift()) {
        this.#room.shift()?.();
        try {
          await this.#run(event, "local", this.host.shutdownSignal, 1, undefined);
        } catch {
          // Counted and logged in #run; local failures never stop the worker.
        }
        if (!this.#active && this.host.shutdownSignal.aborted) break;
      }
    } finally {
      this.#running--;
      if (this.#running === 0 && this.#queue.length === 0) this.#wakeIdle();
    }
  }

  async #run(
    event: Envelope,
    origin: "local" | "transport",
    parentSignal: AbortSignal,
    attempt: number,
    lease: ((ms?: number) => Promise<void>) | undefined,
  ): Promise<void> {
    const ctx = new DeliveryContext(
      this.name,
      origin,
      event,
      this.host,
      parentSignal,
      attempt,
      lease,
    );
    const start = performance.now();
    this.#inFlight++;
    let failure: unknown;
    let failed = false;
    try {
      await (origin === "local" ? this.#local : this.#remote)(event, ctx);
    } catch (error) {
      failed = true;
      failure = error;
    } finally {
      this.#inFlight--;
      ctx.release();
    }
    const ms = performance.now() - start;
    this.#durations.record(ms);
    if (ms >= this.host.slowHandlerMs) {
      this.logger.warn(
        {
          subscription: this.name,
          eventType: event.type,
          eventId: event.id,
          durationMs: Math.round(ms),
        },
        `handler ${this.name} took ${Math.round(ms)} ms for ${event.type}`,
      );
    }
    const deadLettered = ctx.outcome === "dead_lettered";
    this.#recent[this.#recentIndex] = failed || deadLettered ? 1 : 0;
    this.#recentIndex = (this.#recentIndex + 1) % RECENT;
    if (!failed) {
      if (deadLettered) this.counters.failed++;
      else if (ctx.outcome === "ok") this.counters.delivered++;
      return;
    }
    if (origin === "transport") {
      // The transport decides (retry or dead letter); count only what is final here.
      this.logger.warn(
        {
          err: failure,
          subscription: this.name,
          eventType: event.type,
          eventId: event.id,
          attempt: ctx.attempt,
        },
        `handler ${this.name} failed on ${event.type} (attempt ${ctx.attempt}); the transport will retry or dead-letter it`,
      );
      this.lastError = { message: serializeError(failure).message, at: new Date().toISOString() };
      throw failure;
    }
    this.counters.failed++;
    this.lastError = { message: serializeError(failure).message, at: new Date().toISOString() };
    this.logger.error(
      {
        err: failure,
        subscription: this.name,
        eventType: event.type,
        eventId: event.id,
        attempt: ctx.attempt,
      },
      `handler ${this.name} failed on ${event.type}`,
    );
  }

  /** Share of failures among the last deliveries (0..1), and how many were looked at. */
  recentFailureRate(): { rate: number; samples: number } {
    const total = this.#durations.summary().count;
    const samples = Math.min(total, RECENT);
    if (samples === 0) return { rate: 0, samples: 0 };
    let failures = 0;
    for (let i = 0; i < samples; i++) failures += this.#recent[i]!;
    return { rate: failures / samples, samples };
  }

  /** Resolves when nothing is queued or running (local deliveries). */
  idle(): Promise<void> {
    if (this.#running === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #wakeIdle(): void {
    for (const wake of this.#idle.splice(0)) wake();
  }

  /** Stop accepting; with `discard`, drop the backlog (counted) and release waiting publishers. */
  deactivate(discard: boolean): void {
    this.#active = false;
    if (discard) this.counters.dropped += this.#queue.clear().length;
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
