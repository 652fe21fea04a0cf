import type {
  AnyCatalog,
  Envelope,
  EventInput,
  EventOf,
  EventType,
} from "@switchyard/event-schema";
import { type Logger, childLogger } from "@switchyard/transport";
import { traceIdOf } from "./trace";

/** Options of a publish made from inside a handler (causation is filled in for you). */
export interface ContextPublishOptions {
  readonly id?: string;
  readonly subject?: string;
  readonly source?: string;
}

/**
 * What a handler receives beside the envelope. `signal` is aborted when the attempt times out,
 * when the lease is lost, and on shutdown: pass it to everything that waits.
 */
export interface HandlerContext<C extends AnyCatalog = AnyCatalog> {
  /** Aborted on timeout, lease loss and shutdown. */
  readonly signal: AbortSignal;
  /** 1 for the first attempt; grows with in-process retries and transport redeliveries. */
  readonly attempt: number;
  /** The subscription's name. */
  readonly subscription: string;
  /** `"local"` for in-process publishes, `"transport"` for deliveries from another process. */
  readonly origin: "local" | "transport";
  /**
   * A logger bound to this delivery: subscription, event id and type, attempt, and the trace id,
   * so every line a handler logs can be found from its trace.
   */
  readonly logger: Logger;
  /** The W3C trace id of the event being handled (32 hex digits), if it carries a valid `traceparent`. */
  readonly traceId: string | undefined;
  /**
   * Extend the delivery's lease (transport deliveries); a no-op for local ones. Call it from long
   * handlers before the lease runs out.
   */
  extendLease(ms?: number): Promise<void>;
  /**
   * Say that this delivery was a duplicate the handler skipped (its own content-based check, e.g.
   * `HandlerBase.isDuplicateEvent`): it then counts as `deduplicated` in the subscription's stats
   * and the `switchyard.deliveries.deduplicated` metric, like one the `dedup` middleware skipped,
   * and is still acked. Call it before returning; calling it twice counts once.
   */
  markDeduplicated(): void;
  /**
   * Publish an event caused by this one: `causationid`, `correlationid` and a child `traceparent`
   * are carried over from the event being handled.
   */
  publish<T extends EventType<C>>(
    type: T,
    data: EventInput<T, C>,
    options?: ContextPublishOptions,
  ): Promise<EventOf<T, C>>;
}

/** Internal hooks a delivery context needs from its router. */
export interface ContextHost {
  readonly logger: Logger;
  publishCausedBy(
    type: string,
    data: unknown,
    cause: Envelope,
    options?: ContextPublishOptions,
  ): Promise<Envelope>;
}

/** Outcome a middleware can set instead of throwing. */
export type DeliveryOutcome = "ok" | "deduplicated" | "dead_lettered";

/** When a delivery started and when it times out (performance.now() values). */
export interface DeliveryTiming {
  /** performance.now() at start. */
  startedAt: number;
  /** performance.now() past which the attempt times out (runtime-native timeout). */
  deadline: number;
}

/**
 * The concrete context. The AbortController and the child logger are created only when a
 * handler reads them: most handlers never do, and one per event would dominate the hot path.
 */
/** What every delivery of one subscription and origin shares, made once per subscription. */
export interface DeliveryScope {
  readonly subscription: string;
  readonly origin: "local" | "transport";
  readonly host: ContextHost;
  /** The parent signal of local deliveries: aborted on shutdown. */
  readonly shutdownSignal: AbortSignal;
  /** Aborted when the subscription is unsubscribed (its backlog discarded): no new attempt starts. */
  readonly unsubscribed: AbortSignal;
  /** Counts a delivery the handler reported as a duplicate (`markDeduplicated`). */
  readonly deduplicated: () => void;
}

/** What a transport delivery brings: its own parent signal (lease loss, shutdown) and its lease. */
export interface DeliverySource {
  readonly signal: AbortSignal;
  extendLease(ms?: number): Promise<void>;
}

/** An attempt's lazily made parts: most deliveries never need any. */
interface AttemptState {
  controller?: AbortController;
  abortedWith?: unknown;
  logger?: Logger;
  parentListener?: () => void;
  interrupt?: (error: unknown) => void;
  onRetry?: (delayMs: number) => void;
}

export class DeliveryContext implements HandlerContext {
  // Fields are declared and assigned in the constructor, not initialised as class fields: a
  // context is made per delivery, and field initialisers (defined, not assigned) cost more.
  declare attempt: number;
  declare outcome: DeliveryOutcome;
  /** The runtime recorded an outcome (success, failure or timeout). */
  declare settled: boolean;
  /** Timed out: the worker that awaits it was replaced and must not touch the subscription. */
  declare abandoned: boolean;
  declare readonly event: Envelope;
  /**
   * Start and deadline, kept by the subscription runtime: a local delivery's worker slot (reused,
   * so no number is boxed per delivery), a record of its own for a transport delivery.
   */
  declare timing: DeliveryTiming;
  declare private readonly scope: DeliveryScope;
  /** A transport delivery's signal and lease; none for a local one. */
  declare private readonly source: DeliverySource | undefined;
  /** What a delivery rarely needs, made on first use (one field, initialised on every one). */
  declare private lazy: AttemptState | undefined;

  constructor(
    scope: DeliveryScope,
    event: Envelope,
    attempt: number,
    timing: DeliveryTiming,
    source?: DeliverySource,
  ) {
    this.scope = scope;
    this.event = event;
    this.attempt = attempt;
    this.timing = timing;
    this.source = source;
    this.outcome = "ok";
    this.settled = false;
    this.abandoned = false;
    this.lazy = undefined;
  }

  /** Aborted on shutdown or lease loss; the per-attempt signal follows it. */
  private get parentSignal(): AbortSignal {
    return this.source === undefined ? this.scope.shutdownSignal : this.source.signal;
  }

  /** Rejects the awaited delivery early (transport deliveries on timeout). */
  get interrupt(): ((error: unknown) => void) | undefined {
    return this.lazy?.interrupt;
  }

  set interrupt(reject: ((error: unknown) => void) | undefined) {
    (this.lazy ??= {}).interrupt = reject;
  }

  /**
   * Told of each in-process retry, with its backoff delay, before the retry middleware sleeps:
   * the OpenTelemetry middleware records it as a `retry` settle on the delivery's `process` span
   * and counts it. Kept across attempts.
   */
  get onRetry(): ((delayMs: number) => void) | undefined {
    return this.lazy?.onRetry;
  }

  set onRetry(listener: ((delayMs: number) => void) | undefined) {
    (this.lazy ??= {}).onRetry = listener;
  }

  get subscription(): string {
    return this.scope.subscription;
  }

  get origin(): "local" | "transport" {
    return this.scope.origin;
  }

  get signal(): AbortSignal {
    const state = (this.lazy ??= {});
    if (state.controller) return state.controller.signal;
    const controller = (state.controller = new AbortController());
    if (state.abortedWith !== undefined) controller.abort(state.abortedWith);
    else if (this.parentSignal.aborted) controller.abort(this.parentSignal.reason);
    else {
      const parent = this.parentSignal;
      state.parentListener = () => controller.abort(parent.reason);
      parent.addEventListener("abort", state.parentListener, { once: true });
    }
    return controller.signal;
  }

  get logger(): Logger {
    return ((this.lazy ??= {}).logger ??= childLogger(this.scope.host.logger, {
      subscription: this.subscription,
      eventId: this.event.id,
      eventType: this.event.type,
      attempt: this.attempt,
      traceId: this.traceId,
    }));
  }

  get traceId(): string | undefined {
    return traceIdOf(this.event.traceparent);
  }

  /** Whether this attempt was aborted (timeout) or its parent was (shutdown, lease loss). */
  get aborted(): boolean {
    return this.lazy?.abortedWith !== undefined || this.parentSignal.aborted;
  }

  get shutdownSignal(): AbortSignal {
    return this.parentSignal;
  }

  /** Aborted when the subscription was unsubscribed: a retry must not start another attempt. */
  get unsubscribedSignal(): AbortSignal {
    return this.scope.unsubscribed;
  }

  extendLease(ms?: number): Promise<void> {
    return this.source ? this.source.extendLease(ms) : Promise.resolve();
  }

  markDeduplicated(): void {
    if (this.outcome === "deduplicated") return;
    this.outcome = "deduplicated";
    this.scope.deduplicated();
  }

  publish(type: string, data: unknown, options?: ContextPublishOptions): Promise<never> {
    return this.scope.host.publishCausedBy(type, data, this.event, options) as Promise<never>;
  }

  /** Abort this attempt (timeout). */
  abort(reason: unknown): void {
    const state = (this.lazy ??= {});
    state.abortedWith = reason;
    state.controller?.abort(reason);
  }

  /** Start the next attempt with a fresh signal. */
  nextAttempt(): void {
    this.release();
    this.attempt++;
    // What outlives an attempt: the early reject and the retry listener.
    const state = this.lazy;
    this.lazy =
      state === undefined || (state.interrupt === undefined && state.onRetry === undefined)
        ? undefined
        : { interrupt: state.interrupt, onRetry: state.onRetry };
  }

  /** Drop the listener on the parent signal (end of delivery). */
  release(): void {
    const state = this.lazy;
    if (state !== undefined && state.parentListener) {
      this.parentSignal.removeEventListener("abort", state.parentListener);
      state.parentListener = undefined;
    }
  }
}
