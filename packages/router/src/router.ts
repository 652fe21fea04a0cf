import {
  type AnyCatalog,
  type Envelope,
  type EventInput,
  type EventOf,
  type EventType,
  createEnvelope,
  uuidv7,
} from "@switchyard/event-schema";
import {
  type BackoffOptions,
  abortReason,
  backoffProblem,
  drainWithin,
  timerDelay,
} from "@switchyard/transport";
import type { HandlerContext } from "./context";
import { NoRouterError, RouterClosedError } from "./errors";
import { UnknownSubscriptionError, UnsupportedOperationError } from "@switchyard/transport";
import { type HealthCheckResult, healthFrom } from "@switchyard/transport";
import { type Logger, childLogger, silentLogger } from "@switchyard/transport";
import { AuditLog, audit } from "./middleware/audit";
import { deadLetter } from "./middleware/dead-letter";
import { type RetryOptions, retry } from "./middleware/retry";
import {
  type OpenTelemetryApi,
  type OpenTelemetryOptions,
  type Telemetry,
  activeTraceContext,
  bodySize,
  openTelemetry,
  spanContextOf,
  telemetryOf,
  traceparentOf,
  tracestateOf,
} from "./middleware/open-telemetry";
import { checkTimeoutMs, timeout } from "./middleware/timeout";
import type { HandlerFn, Middleware } from "./middleware/types";
import { validation } from "./middleware/validation";
import { type MatchedType, type Pattern, resolvePatterns } from "./pattern";
import {
  type Counters,
  LocalSubscription,
  type Overflow,
  type SubscribeOptions,
  type SubscriptionHost,
  type SubscriptionStats,
  TRANSPORT_SKIPPED_STAGES,
  emptyCounters,
} from "./subscription";
import { childTraceparent, newTraceparent, traceIdOf } from "./trace";
import { freshClock } from "./clock";
import type { DeadLetterSink, Transport, TransportSubscription } from "@switchyard/transport";

/** Defaults applied to every subscription unless it sets its own. */
export interface SubscriptionDefaults {
  /** @defaultValue 1 */
  readonly concurrency?: number;
  /** @defaultValue 30_000 */
  readonly timeoutMs?: number;
  /** @defaultValue 1024 */
  readonly queueSize?: number;
  /** @defaultValue "wait" */
  readonly overflow?: Overflow;
  /** @defaultValue 5 */
  readonly maxAttempts?: number;
  /** @defaultValue 30_000 */
  readonly leaseMs?: number;
  readonly backoff?: BackoffOptions;
}

/** Options of {@link createRouter}. */
export interface RouterOptions<C extends AnyCatalog> {
  /** The event catalog: every published and subscribed type must be in it. */
  readonly catalog: C;
  /** Where the router logs (pino-compatible). @defaultValue silent */
  readonly logger?: Logger;
  /** Envelope `source` when a publish names none. @defaultValue "switchyard" */
  readonly source?: string;
  /**
   * Durable path to other processes. Event types marked `durable` in the catalog are published to
   * it and received from it; the others stay in process. @defaultValue none (everything in process)
   */
  readonly transport?: Transport;
  /** Close the transport on shutdown. @defaultValue true */
  readonly closeTransport?: boolean;
  /** Validate payloads against the catalog on publish. @defaultValue true */
  readonly validate?: boolean;
  /** Middleware for every subscription, composed in stage order with each subscription's own. */
  readonly middleware?: readonly Middleware[];
  /** In-process retry policy for every subscription; `false` for none. @defaultValue false */
  readonly retry?: RetryOptions | false;
  /**
   * Dead-letter sink: in-process deliveries that fail for good go here (via the `deadLetter`
   * middleware), and it is passed to the transport for durable ones. @defaultValue none
   */
  readonly deadLetter?: DeadLetterSink;
  /** Keep a bounded audit log of delivery outcomes (`router.auditLog`). @defaultValue false */
  readonly audit?: boolean | { readonly capacity?: number };
  /**
   * OpenTelemetry (`@opentelemetry/api`, an optional peer): a consumer span per delivery, parented
   * to the event's `traceparent`, and the active span's `traceparent` stamped on events published
   * without one. @defaultValue off
   */
  readonly openTelemetry?: OpenTelemetryOptions;
  /** Log handlers slower than this, in ms ("handler … took …"). @defaultValue 1000 */
  readonly slowHandlerMs?: number;
  readonly subscriptionDefaults?: SubscriptionDefaults;
}

const NO_OPTIONS: PublishOptions = Object.freeze({});
const NOTHING_SKIPPED: ReadonlySet<string> = new Set();

/** Options of {@link Router.close}. */
export interface CloseOptions {
  /**
   * How long local queues may drain before what still runs is aborted and what is queued dropped.
   * Clamped like every drain deadline (`drainWithin`): `0` or less aborts at once; above
   * `MAX_TIMER_MS` (about 24.8 days), or NaN, waits that long.
   * @defaultValue 10000
   */
  readonly timeoutMs?: number;
}

/** Options of {@link Router.publish}. */
export interface PublishOptions {
  /** Envelope `source`. @defaultValue the router's `source` */
  readonly source?: string;
  /** Envelope id, the idempotency key on durable paths. @defaultValue a new UUIDv7 */
  readonly id?: string;
  /** @defaultValue the payload's `config_key` */
  readonly subject?: string;
  readonly traceparent?: string;
  /** W3C `tracestate`. @defaultValue the causing event's, with its trace */
  readonly tracestate?: string;
  readonly correlationid?: string;
  readonly causationid?: string;
  /**
   * The event whose handling caused this one: fills `causationid`, `correlationid` and a child
   * `traceparent` unless given explicitly.
   */
  readonly causedBy?: Envelope;
  /** Aborts waiting for queue room (backpressure) or for the transport. */
  readonly signal?: AbortSignal;
}

/**
 * One item of {@link Router.publishBatch}. Its options have no `signal`: a batch is published as
 * one (its durable part in one atomic transport call), so the batch's own `{ signal }` is the one
 * that aborts it.
 */
export type PublishItem<C extends AnyCatalog> = {
  [T in EventType<C>]: {
    readonly type: T;
    readonly data: EventInput<T, C>;
    readonly options?: Omit<PublishOptions, "signal">;
  };
}[EventType<C>];

/** The envelope union a pattern delivers. */
export type EventFor<C extends AnyCatalog, P> = {
  [T in MatchedType<C, P>]: EventOf<T, C>;
}[MatchedType<C, P>];

/**
 * A typed handler for the events a pattern matches. What it returns is ignored, on every path:
 * a promise (or any thenable) is awaited and its value ignored; anything else (the count
 * `(e) => seen.push(e)` returns, an object, `null`) counts as returning.
 */
export type Handler<C extends AnyCatalog, P> = (
  event: EventFor<C, P>,
  ctx: HandlerContext<C>,
) => unknown;

/**
 * Returned by `subscribe`: call it (or let `using` dispose it) to unsubscribe. Unsubscribing stops
 * new deliveries at once, discards the subscription's backlog, lets in-flight handlers finish and
 * closes its transport subscription. A delivery waiting in a `retry` backoff starts no new attempt:
 * it fails with its last error (counted `failed`, dead-lettered if so configured). Calling it again
 * does nothing.
 */
export interface Subscription extends Disposable {
  (): void;
  /**
   * Unsubscribe and wait until it is done. With `drain: true`, events already queued for this
   * subscription are still handled first (a graceful stop); without, they are discarded like `()`.
   * Resolves once in-flight handlers finished and the transport subscription closed — so a
   * handler must not await its own subscription's `close()`: it would wait for itself until its
   * timeout ends it. From inside a handler, call the subscription (`sub()`) and return.
   */
  close(options?: { drain?: boolean }): Promise<void>;
  /** The subscription's name. */
  readonly name: string;
  /** The catalog types this subscription receives. */
  readonly types: readonly string[];
  /** Resolves when the transport subscription (if any) is active; rejects if it failed to start. */
  readonly ready: Promise<void>;
}

/**
 * What {@link Router.events} returns: the events as an async iterator, and when it starts seeing
 * them. For durable types on a transport, the subscription becomes active asynchronously (NATS
 * creates a consumer): an event published before `ready` resolved may be missed.
 */
export interface EventStream<E> extends AsyncIterableIterator<E> {
  /**
   * Resolves once every event published from now on is seen (the transport subscription is
   * active; at once for in-process types). Rejects, and the iteration ends with the same error,
   * if the transport subscription failed to start.
   */
  readonly ready: Promise<void>;
}

/**
 * What {@link Router.waitFor} returns: the event, and when waiting took effect. Await `ready`
 * before publishing what you wait for — on a transport, the subscription starts asynchronously.
 */
export interface WaitForPromise<E> extends Promise<E> {
  /**
   * Resolves once an event published from now on is seen (the transport subscription is active;
   * at once for in-process types). Rejects, and so does the wait, if it failed to start.
   */
  readonly ready: Promise<void>;
}

/** Router-wide numbers: totals plus one entry per live subscription. */
export interface RouterStats {
  readonly subscriptionCount: number;
  /** Events accepted by `publish` (local and durable). */
  readonly published: number;
  /** Of those, events handed to the transport. */
  readonly publishedDurable: number;
  readonly delivered: number;
  readonly failed: number;
  readonly retried: number;
  readonly deduplicated: number;
  readonly deadLettered: number;
  readonly timedOut: number;
  readonly dropped: number;
  readonly inFlight: number;
  readonly queued: number;
  readonly subscriptions: readonly SubscriptionStats[];
}

/** A subscription as listed by {@link Router.listSubscriptions}. */
export interface SubscriptionInfo {
  readonly name: string;
  readonly types: readonly string[];
  readonly durableTypes: readonly string[];
  readonly concurrency: number;
  readonly queueDepth: number;
  readonly inFlight: number;
  readonly transport: SubscriptionStats["transport"];
}

const DEFAULTS = {
  concurrency: 1,
  timeoutMs: 30_000,
  queueSize: 1024,
  overflow: "wait" as Overflow,
  maxAttempts: 5,
  leaseMs: 30_000,
};

/**
 * The in-process event bus over the catalog `C`. Create one with {@link createRouter}, which
 * infers `C` from its `catalog`; see the package README for the delivery contract.
 * `await using router = createRouter(…)` shuts it down at scope end.
 */
export class Router<C extends AnyCatalog> implements AsyncDisposable {
  readonly catalog: C;
  /** The audit log, when the router was created with `audit`. */
  readonly auditLog: AuditLog | undefined;
  readonly transport: Transport | undefined;

  readonly #logger: Logger;
  readonly #source: string;
  readonly #validate: boolean;
  readonly #defaults: Required<Omit<SubscriptionDefaults, "backoff">> & {
    backoff?: BackoffOptions;
  };
  readonly #middleware: readonly Middleware[];
  readonly #deadLetter: DeadLetterSink | undefined;
  readonly #closeTransport: boolean;
  readonly #shutdownController = new AbortController();
  readonly #host: SubscriptionHost;
  readonly #otel: OpenTelemetryApi | undefined;
  readonly #telemetry: Telemetry | undefined;

  #subscriptions = new Set<LocalSubscription>();
  /** Local dispatch index: event type → subscriptions receiving it in process. Copy-on-write. */
  #byType = new Map<string, readonly LocalSubscription[]>();
  #retired: Counters = emptyCounters();
  #published = 0;
  #publishedDurable = 0;
  #closing: Promise<void> | undefined;
  #transportClosers = new Set<Promise<unknown>>();
  /** Durable types checked for a registered subscriber: once found, or once warned, never again. */
  #subscriberChecked = new Set<string>();

  constructor(options: RouterOptions<C>) {
    this.catalog = options.catalog;
    this.#logger = options.logger ?? silentLogger;
    this.#source = options.source ?? "switchyard";
    this.#validate = options.validate ?? true;
    this.transport = options.transport;
    this.#closeTransport = options.closeTransport ?? true;
    this.#deadLetter = options.deadLetter;
    this.#defaults = { ...DEFAULTS, ...options.subscriptionDefaults };
    this.auditLog = options.audit
      ? new AuditLog(typeof options.audit === "object" ? options.audit : {})
      : undefined;
    this.#otel = options.openTelemetry?.api;
    this.#telemetry = options.openTelemetry ? telemetryOf(options.openTelemetry) : undefined;
    this.#middleware = [
      ...(this.#telemetry ? [openTelemetry(this.#telemetry)] : []),
      ...(this.auditLog ? [audit({ log: this.auditLog })] : []),
      ...(options.deadLetter ? [deadLetter({ sink: options.deadLetter })] : []),
      ...(options.retry ? [retry(options.retry)] : []),
      ...(options.middleware ?? []),
    ];
    this.#host = {
      catalog: this.catalog,
      logger: this.#logger,
      slowHandlerMs: options.slowHandlerMs ?? 1000,
      shutdownSignal: this.#shutdownController.signal,
      publishCausedBy: (type, data, cause, opts) =>
        this.#publish(type, data, { ...opts, causedBy: cause }),
    };
  }

  /** The logger the router writes to (silent unless one was given). */
  get logger(): Logger {
    return this.#logger;
  }

  /** Whether `close` (or its alias `shutdown`) was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Validate, wrap in an envelope and dispatch one event. Resolves with the envelope once every
   * local subscription has queued it (waiting for room under backpressure) and, for durable types
   * with a transport, once the transport stored it. Rejects with `EventValidationError` (nothing is
   * delivered) for an unknown type or a bad payload, and with `RouterClosedError` after shutdown.
   *
   * @example
   * ```ts
   * await router.publish("MODEL_PROMOTED", { config_key: "hex8_2p", model_path: "m.pt", elo: 1612 }, { source: "promoter" });
   * ```
   */
  publish<T extends EventType<C>>(
    type: T,
    data: EventInput<T, C>,
    options?: PublishOptions,
  ): Promise<EventOf<T, C>> {
    return this.#publish(type, data, options) as Promise<EventOf<T, C>>;
  }

  /**
   * Publish several events: all are validated first (one bad payload rejects the whole batch,
   * nothing delivered), durable ones go to the transport in one atomic call. `signal` aborts
   * waiting for queue room or for the transport; an item carrying a signal of its own is a
   * `TypeError` (it could not abort that one event alone).
   */
  async publishBatch(
    items: readonly PublishItem<C>[],
    options: { signal?: AbortSignal } = {},
  ): Promise<Envelope[]> {
    this.#assertOpen();
    for (const item of items)
      if ((item.options as Record<string, unknown> | undefined)?.signal !== undefined)
        // Ignoring it would leave the caller believing it could abort that one event.
        throw new TypeError(
          `publishBatch: an item's options have no signal (${item.type}); pass it to the batch: publishBatch(items, { signal }).`,
        );
    const t = this.#telemetry;
    if (t === undefined || t.dormant())
      return this.#sendBatch(
        items.map((i) => this.#envelope(i.type, i.data, i.options)),
        options,
      );
    // Semantic conventions for a batch: a `create` span per message gives each its own creation
    // context (carried in its traceparent); one `send` span links them all.
    const { api } = t;
    const envelopes = items.map((item) => {
      const o = item.options ?? NO_OPTIONS;
      const create = t.tracer.startSpan(
        `create ${item.type}`,
        {
          kind: api.SpanKind.PRODUCER,
          attributes: {
            "messaging.system": t.system,
            "messaging.destination.name": item.type,
            "messaging.operation.name": "create",
            "messaging.operation.type": "create",
          },
        },
        parentContext(api, o),
      );
      try {
        const envelope = this.#envelope(item.type, item.data, {
          ...o,
          traceparent: traceparentOf(create.spanContext()),
          tracestate:
            o.tracestate ??
            tracestateOf(create.spanContext()) ??
            (o.traceparent ? undefined : o.causedBy?.tracestate),
        });
        create.setAttribute("messaging.message.id", envelope.id);
        return { envelope, context: create.spanContext() };
      } catch (error) {
        create.recordException(error);
        create.setStatus({ code: api.SpanStatusCode.ERROR });
        throw error;
      } finally {
        create.end();
      }
    });
    const types = [...new Set(items.map((i) => i.type))];
    const attributes = {
      "messaging.system": t.system,
      "messaging.operation.name": "send",
      ...(types.length === 1 ? { "messaging.destination.name": types[0]! } : {}),
    };
    // CLIENT, not PRODUCER: the create spans are the messages' creation contexts (semantic
    // conventions, span kind: a send span whose context no message carries is a client call).
    const span = t.tracer.startSpan(`send ${types.length === 1 ? types[0] : "batch"}`, {
      kind: api.SpanKind.CLIENT,
      attributes: {
        ...attributes,
        "messaging.operation.type": "send",
        "messaging.batch.message_count": envelopes.length,
      },
      links: envelopes.map((e) => ({ context: e.context })),
    });
    const started = performance.now();
    let failure: unknown;
    try {
      return await this.#sendBatch(
        envelopes.map((e) => e.envelope),
        options,
      );
    } catch (error) {
      failure = error;
      span.recordException(error);
      span.setAttribute("error.type", errorName(error));
      span.setStatus({ code: api.SpanStatusCode.ERROR });
      throw error;
    } finally {
      const attrs =
        failure === undefined ? attributes : { ...attributes, "error.type": errorName(failure) };
      t.instruments?.sent.add(envelopes.length, attrs);
      t.instruments?.operationDuration.record((performance.now() - started) / 1000, attrs);
      span.end();
    }
  }

  async #sendBatch(envelopes: Envelope[], options: { signal?: AbortSignal }): Promise<Envelope[]> {
    const durable = envelopes.filter((e) => this.#isBridged(e.type));
    if (durable.length > 0) {
      await this.transport!.publish(durable, options);
      for (const e of durable) this.#checkSubscribed(e.type);
    }
    let waits: Promise<void>[] | undefined;
    for (const e of envelopes)
      if (!this.#isBridged(e.type)) waits = this.#dispatch(e, waits, options.signal);
    if (waits) await Promise.all(waits);
    this.#published += envelopes.length;
    this.#publishedDurable += durable.length;
    return envelopes;
  }

  /**
   * Handle events matching a pattern: an exact type, `"*"`, or a prefix such as `"TRAINING_*"`
   * (or a list of them). Each subscription has its own bounded queue and workers, so a slow or
   * failing handler never holds up another. Durable types arrive through the transport when the
   * router has one (at-least-once, shared by every process using the same `name`).
   *
   * @example
   * ```ts
   * using sub = router.subscribe("TRAINING_*", async (event, ctx) => {
   *   if (event.type === "TRAINING_COMPLETED") await ctx.publish("EVALUATION_COMPLETED", await evaluate(event.data, ctx.signal));
   * }, { name: "evaluator" });
   * ```
   */
  subscribe<const P extends Pattern<C>>(
    pattern: P | readonly P[],
    handler: Handler<C, P>,
    options: SubscribeOptions = {},
  ): Subscription {
    this.#assertOpen();
    const patterns: readonly string[] = typeof pattern === "string" ? [pattern] : pattern;
    const types = resolvePatterns(this.catalog, patterns);
    const durableTypes = this.transport ? types.filter((t) => this.catalog.isDurable(t)) : [];
    if (options.name !== undefined) subscriberName("subscribe: name", options.name);
    const name = options.name ?? (handler.name || `subscription-${uuidv7().slice(-12)}`);
    if (durableTypes.length > 0 && options.name === undefined && !options.ephemeral) {
      throw new TypeError(
        `subscribe(${patterns.join(", ")}): durable types (${durableTypes.join(", ")}) arrive through the ` +
          `${this.transport!.name} transport, which tracks delivery per subscriber name. Pass a stable { name }.`,
      );
    }
    const d = this.#defaults;
    const timeoutMs = checkTimeoutMs("subscribe: timeoutMs", options.timeoutMs ?? d.timeoutMs);
    // NaN would never dead-letter (every attempt would retry); a bad backoff could not be scheduled.
    const maxAttempts = positiveInt("maxAttempts", options.maxAttempts ?? d.maxAttempts);
    const backoff = checkedBackoff(options.backoff ?? d.backoff);
    const leaseMs = positiveInt("leaseMs", options.leaseMs ?? d.leaseMs);
    const middleware = [...this.#middleware, ...(options.middleware ?? [])];
    // When middleware wraps the handler, a timeout must reach it as the attempt's failure: retry
    // retries it, dead-letter hands it to the sink (reason `timeout`), audit records it. Then the
    // `timeout` middleware sits in the chain, innermost. With nothing to see it, the subscription
    // runtime times deliveries out natively (no wrapper promise per event). Decided per path: a
    // transport delivery's chain skips retry and dead-letter.
    const inChain = (skip: ReadonlySet<string>) =>
      timeoutMs > 0 && middleware.some((m) => !skip.has(m.stage));
    const localInChain = inChain(NOTHING_SKIPPED);
    const transportInChain = inChain(TRANSPORT_SKIPPED_STAGES);
    const timeoutStage = localInChain || transportInChain ? [timeout({ ms: timeoutMs })] : [];
    const sub = new LocalSubscription(
      {
        name,
        types,
        durableTypes,
        concurrency: positiveInt("concurrency", options.concurrency ?? d.concurrency),
        queueSize: positiveInt("queueSize", options.queueSize ?? d.queueSize),
        overflow: overflowPolicy(options.overflow ?? d.overflow),
        timeoutMs: {
          local: localInChain ? 0 : timeoutMs,
          transport: transportInChain ? 0 : timeoutMs,
        },
        middlewareTimeoutMs: timeoutMs,
        maxAttempts,
        backoff,
      },
      this.#host,
      handler as unknown as HandlerFn,
      {
        local: [...middleware, ...(localInChain ? timeoutStage : [])],
        transport: [validation(), ...middleware, ...(transportInChain ? timeoutStage : [])],
      },
      childLogger(this.#logger, { subscription: name }),
    );
    // A signal already aborted: the options are checked (above) and the handle is returned closed,
    // but nothing is subscribed — no delivery, and no transport subscription made only to close it.
    const abortedAlready = options.signal?.aborted === true;
    if (abortedAlready) sub.deactivate(true);
    else {
      this.#subscriptions.add(sub);
      this.#index(sub);
      this.#logger.debug(
        { subscription: name, types, durableTypes, transport: this.transport?.name },
        `subscribed ${name} to ${types.join(", ")}`,
      );
    }

    let ready: Promise<void> = Promise.resolve();
    if (durableTypes.length > 0 && !abortedAlready) {
      sub.transportState = "starting";
      sub.transportSubscription = this.transport!.subscribe({
        subscriber: name,
        types: durableTypes,
        handler: (delivery) => sub.deliver(delivery),
        concurrency: sub.concurrency,
        leaseMs,
        maxAttempts,
        ...(backoff ? { backoff } : {}),
        ...(this.#deadLetter ? { deadLetter: this.#deadLetter } : {}),
        ...(options.ephemeral ? { ephemeral: true } : {}),
      });
      ready = sub.transportSubscription.then(
        () => {
          if (sub.transportState === "starting") sub.transportState = "active";
        },
        (error: unknown) => {
          sub.transportState = "failed";
          sub.lastError = {
            message: String((error as Error)?.message ?? error),
            at: new Date().toISOString(),
          };
          this.#logger.error(
            { err: error, subscription: name },
            `transport subscription ${name} failed to start`,
          );
          throw error;
        },
      );
      ready.catch(() => {}); // reported through health and `ready`; never an unhandled rejection
    }

    let closed: Promise<void> | undefined;
    const close = (closeOptions: { drain?: boolean } = {}): Promise<void> => {
      closed ??= (async () => {
        options.signal?.removeEventListener("abort", unsubscribe);
        if (closeOptions.drain) {
          sub.deactivate(false); // no new events; the queued ones are still handled
          this.#unindex(sub);
          await sub.idle();
        }
        await this.#remove(sub, true);
        await sub.idle();
      })();
      return closed;
    };
    const unsubscribe = () => void close();
    if (abortedAlready) unsubscribe();
    else options.signal?.addEventListener("abort", unsubscribe, { once: true });
    const handle = Object.assign(unsubscribe, {
      [Symbol.dispose]: unsubscribe,
      close,
      types,
      ready,
    });
    // A function's own `name` is read-only but configurable: make it the subscription's name.
    return Object.defineProperty(handle, "name", { value: name, enumerable: true });
  }

  /**
   * Register a durable subscriber with the transport ahead of time, without handling anything
   * here: every event of the durable types `pattern` matches, published from now on, is kept for
   * the subscriber `name` until a subscription with that name starts (in this process or
   * another). A durable subscriber otherwise only receives events published after it first
   * subscribed. Call it at bootstrap, before anything publishes. Idempotent.
   *
   * Resolves at once when the router has no transport (in process nothing is kept for later).
   * Rejects with `TypeError` when the pattern matches no durable type, and with
   * `UnsupportedOperationError` when the transport cannot register subscribers.
   *
   * @example
   * ```ts
   * await router.declareSubscriber("evaluator", "TRAINING_COMPLETED"); // before the trainer starts
   * ```
   */
  async declareSubscriber<const P extends Pattern<C>>(
    name: string,
    pattern: P | readonly P[],
  ): Promise<void> {
    this.#assertOpen();
    subscriberName("declareSubscriber: name", name);
    const patterns: readonly string[] = typeof pattern === "string" ? [pattern] : pattern;
    const types = resolvePatterns(this.catalog, patterns);
    const transport = this.transport;
    if (!transport) return;
    const durableTypes = types.filter((t) => this.catalog.isDurable(t));
    if (durableTypes.length === 0) {
      throw new TypeError(
        `declareSubscriber(${JSON.stringify(name)}, ${patterns.join(", ")}): the pattern matches no ` +
          `durable type (${types.join(", ")}); only durable types are kept for later subscribers.`,
      );
    }
    if (!transport.register) {
      throw new UnsupportedOperationError(transport.name, "register subscribers ahead of time");
    }
    await transport.register(name, durableTypes);
  }

  /**
   * The matching events as an async iterator, buffered by a subscription queue (backpressure).
   * Aborting `signal` or leaving the loop unsubscribes and ends the iteration. Await its `ready`
   * before publishing events it must see: for durable types the transport subscription starts
   * asynchronously.
   *
   * @example
   * ```ts
   * const stream = router.events("MODEL_PROMOTED", { signal });
   * await stream.ready;
   * for await (const event of stream) console.log(event.data.elo);
   * ```
   */
  events<const P extends Pattern<C>>(
    pattern: P | readonly P[],
    options: { signal?: AbortSignal; name?: string; queueSize?: number } = {},
  ): EventStream<EventFor<C, P>> {
    type E = EventFor<C, P>;
    const buffered: { event: E; taken: () => void }[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    let failure: { error: unknown } | undefined;
    const end = () => {
      ended = true;
      unsubscribe();
      for (const item of buffered.splice(0)) item.taken();
      wake?.();
    };
    const unsubscribe = this.subscribe(
      pattern,
      (event: E) =>
        new Promise<void>((taken) => {
          if (ended) return taken();
          buffered.push({ event, taken });
          wake?.();
        }),
      {
        name: options.name ?? `events-${uuidv7().slice(-12)}`,
        ephemeral: true,
        timeoutMs: 0,
        ...(options.queueSize ? { queueSize: options.queueSize } : {}),
      },
    );
    unsubscribe.ready.catch((error: unknown) => {
      failure = { error };
      end();
    });
    options.signal?.addEventListener("abort", end, { once: true });
    if (options.signal?.aborted) end();
    const iterator: EventStream<E> = {
      ready: unsubscribe.ready,
      next: async () => {
        for (;;) {
          const item = buffered.shift();
          if (item) {
            item.taken();
            return { value: item.event, done: false };
          }
          if (ended) {
            // The subscription never started: say why, once, instead of ending silently.
            if (failure) {
              const { error } = failure;
              failure = undefined;
              throw error;
            }
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      },
      return: async () => {
        end();
        options.signal?.removeEventListener("abort", end);
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * The next event matching a pattern (and `predicate`; one that throws rejects the wait with
   * what it threw). Rejects with the signal's reason on abort,
   * with a `TimeoutError` after `timeoutMs` (clamped like every timer: `0` or less at once, above
   * `MAX_TIMER_MS` or NaN that long), or with the transport's error if the subscription
   * failed to start. The returned promise has a `ready` promise: await it before publishing what
   * you wait for, since for durable types the transport subscription starts asynchronously.
   *
   * @example
   * ```ts
   * const promoted = router.waitFor("MODEL_PROMOTED", { predicate: (e) => e.subject === "hex8_2p", timeoutMs: 60_000 });
   * await promoted.ready;
   * await router.publish("MODEL_PROMOTED", { config_key: "hex8_2p", model_path: "m.pt", elo: 1612 });
   * console.log((await promoted).data.elo);
   * ```
   */
  waitFor<const P extends Pattern<C>>(
    pattern: P | readonly P[],
    options: {
      predicate?: (event: EventFor<C, P>) => boolean;
      signal?: AbortSignal;
      timeoutMs?: number;
    } = {},
  ): WaitForPromise<EventFor<C, P>> {
    const signals = [
      options.signal,
      // Clamped like every timer here: past the longest timer Node would fire it after 1 ms.
      options.timeoutMs !== undefined
        ? AbortSignal.timeout(timerDelay(options.timeoutMs))
        : undefined,
    ];
    const signal = AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
    let ready: Promise<void> = Promise.resolve();
    const waiting = new Promise<EventFor<C, P>>((resolve, reject) => {
      if (signal.aborted) return reject(abortReason(signal));
      const stop = () => {
        unsubscribe();
        reject(abortReason(signal));
      };
      const unsubscribe = this.subscribe(
        pattern,
        (event: EventFor<C, P>) => {
          if (options.predicate) {
            let wanted: boolean;
            try {
              wanted = options.predicate(event);
            } catch (error) {
              // The caller's bug, surfaced where it waits, not a timeout much later.
              signal.removeEventListener("abort", stop);
              unsubscribe();
              reject(error);
              return;
            }
            if (!wanted) return;
          }
          signal.removeEventListener("abort", stop);
          unsubscribe();
          resolve(event);
        },
        { name: `waitFor-${uuidv7().slice(-12)}`, ephemeral: true, timeoutMs: 0 },
      );
      signal.addEventListener("abort", stop, { once: true });
      ready = unsubscribe.ready;
      ready.catch((error: unknown) => {
        signal.removeEventListener("abort", stop);
        unsubscribe();
        reject(error);
      });
    });
    return Object.assign(waiting, { ready });
  }

  /**
   * Deliver an envelope again to one named in-process subscription only (dead-letter replay), keeping
   * its id so idempotent consumers can recognise it. Rejects with `EventValidationError` when
   * `envelope` is not a valid envelope of the catalog, and with `UnknownSubscriptionError` when no
   * live subscription has that name or it does not receive that event type locally.
   *
   * Resolves once the subscription has taken the envelope (queued or started), under its
   * `overflow` policy: with `"wait"` after waiting for room. Unlike a publish, which reaches every
   * matching subscription and only counts a drop in one, a redelivery that is not taken rejects:
   * with `QueueFullError` when the queue is full and the policy is `"error"` or `"drop-newest"`
   * (the envelope is dropped and counted `dropped`, as a publish's would be), and with
   * `RouterClosedError` when the subscription closes before taking it. (`"drop-oldest"` takes it
   * and drops the oldest queued event instead.) Aborting `options.signal` gives up waiting for
   * room: the promise rejects with the signal's reason and the envelope is not queued later.
   */
  redeliver(
    subscription: string,
    envelope: Envelope,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<void> {
    try {
      this.#assertOpen();
      // Checked first: what is not an envelope gets the envelope's error, not a property read's.
      const envelopeChecked = this.catalog.parseEnvelope(envelope);
      const sub = [...this.#subscriptions].find((s) => s.name === subscription && s.active);
      const type = envelopeChecked.type;
      if (!sub || !sub.types.includes(type) || sub.durableTypes.includes(type)) {
        throw new UnknownSubscriptionError(
          subscription,
          type,
          this.listSubscriptions().map((s) => s.name),
        );
      }
      return sub.offer(envelopeChecked, undefined, options.signal, true) ?? Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Every live subscription with its types and current load. */
  listSubscriptions(): SubscriptionInfo[] {
    return [...this.#subscriptions].map((s) => ({
      name: s.name,
      types: s.types,
      durableTypes: s.durableTypes,
      concurrency: s.concurrency,
      queueDepth: s.queueDepth,
      inFlight: s.inFlight,
      transport: s.transportState,
    }));
  }

  /** Totals and per-subscription numbers, including handler duration percentiles. */
  stats(): RouterStats {
    const subscriptions = [...this.#subscriptions].map((s) => s.stats());
    const total = { ...this.#retired };
    let inFlight = 0;
    let queued = 0;
    for (const s of subscriptions) {
      for (const key of Object.keys(total) as (keyof Counters)[]) total[key] += s[key];
      inFlight += s.inFlight;
      queued += s.queueDepth;
    }
    return {
      subscriptionCount: subscriptions.length,
      published: this.#published,
      publishedDurable: this.#publishedDurable,
      ...total,
      inFlight,
      queued,
      subscriptions,
    };
  }

  /**
   * Healthy, degraded (a queue nearly full, more than half of a subscription's last deliveries
   * failed, or one of them failed for good — dead-lettered or dropped — among its last 100) or
   * unhealthy (shut down, a transport subscription failed), with the numbers behind it. Durable
   * deliveries count like in-process ones: each transport attempt is one delivery here.
   */
  health(): HealthCheckResult {
    const stats = this.stats();
    const problems: { severity: "degraded" | "unhealthy"; message: string }[] = [];
    if (this.closed) problems.push({ severity: "unhealthy", message: "router is shut down" });
    for (const sub of this.#subscriptions) {
      if (sub.transportState === "failed") {
        problems.push({
          severity: "unhealthy",
          message: `transport subscription ${sub.name} failed: ${sub.lastError?.message}`,
        });
      }
      if (sub.queueDepth >= sub.queueSize * 0.9) {
        problems.push({
          severity: "degraded",
          message: `${sub.name} queue ${sub.queueDepth}/${sub.queueSize}`,
        });
      }
      // Transport attempts count here like in-process deliveries: the durable path is not blind.
      const { rate, failedForGood, samples } = sub.recentFailureRate();
      if (samples >= 5 && rate > 0.5) {
        problems.push({
          severity: "degraded",
          message: `${sub.name} failed ${Math.round(rate * 100)}% of its last ${samples} deliveries`,
        });
      } else if (failedForGood > 0) {
        problems.push({
          severity: "degraded",
          message: `${sub.name}: ${failedForGood} of its last ${samples} deliveries failed for good (dead-lettered or dropped)`,
        });
      }
    }
    const { subscriptions: _subs, ...totals } = stats;
    return healthFrom(
      problems,
      `${stats.subscriptionCount} subscriptions, ${stats.published} published, ${stats.delivered} delivered`,
      { ...totals, transport: this.transport?.name ?? null },
    );
  }

  /**
   * Totals and per-subscription numbers.
   * @deprecated Use {@link Router.stats}; the same numbers under the one-word name.
   */
  getStats(): RouterStats {
    return this.stats();
  }

  /**
   * Healthy, degraded or unhealthy, with the numbers behind it.
   * @deprecated Use {@link Router.health}; the same result under the one-word name.
   */
  healthCheck(): HealthCheckResult {
    return this.health();
  }

  /** Resolves when every local subscription has nothing queued or running. */
  async drain(options: { signal?: AbortSignal } = {}): Promise<void> {
    const idle = Promise.all([...this.#subscriptions].map((s) => s.idle())).then(() => {});
    if (!options.signal) return idle;
    const signal = options.signal;
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(abortReason(signal));
      const onAbort = () => reject(abortReason(signal));
      signal.addEventListener("abort", onAbort, { once: true });
      void idle.then(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  /**
   * Stop accepting publishes and subscriptions, close transport subscriptions (they finish
   * in-flight deliveries), let local queues drain for up to `timeoutMs`, then abort what still runs
   * and drop what is still queued; finally close the transport (unless `closeTransport: false`).
   * Idempotent: every call returns the same promise (the first call's `timeoutMs` applies).
   *
   * @example
   * ```ts
   * process.once("SIGTERM", () => void router.close({ timeoutMs: 5_000 }));
   * ```
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.#closing ??= this.#shutdown(options.timeoutMs ?? 10_000);
    return this.#closing;
  }

  /**
   * Close the router.
   * @deprecated Use {@link Router.close}; the same behaviour under the one-word name.
   */
  shutdown(options: CloseOptions = {}): Promise<void> {
    return this.close(options);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(timeoutMs: number): Promise<void> {
    const subs = [...this.#subscriptions];
    for (const sub of subs) sub.deactivate(false);
    const closers = subs.map((sub) => this.#closeTransportSubscription(sub));
    // The transports' rule: a deadline past the longest timer (or NaN) waits that long, instead
    // of Node firing it after 1 ms and aborting handlers that were given all the time they need.
    const drained = await drainWithin(
      Promise.all([...subs.map((s) => s.idle()), ...closers, ...this.#transportClosers]),
      timeoutMs,
    );
    if (!drained) {
      this.#logger.warn(
        { timeoutMs },
        `router shutdown: in-flight handlers still running after ${timeoutMs} ms; aborting them`,
      );
      this.#shutdownController.abort(new RouterClosedError());
      for (const sub of subs) sub.deactivate(true);
    } else {
      this.#shutdownController.abort(new RouterClosedError());
    }
    for (const sub of subs) void this.#remove(sub, true);
    if (this.transport && this.#closeTransport) await this.transport.close();
  }

  #publish(type: string, data: unknown, options: PublishOptions = NO_OPTIONS): Promise<Envelope> {
    try {
      this.#assertOpen();
      const t = this.#telemetry;
      if (t !== undefined && !t.dormant()) return this.#publishTraced(t, type, data, options);
      return this.#send(this.#envelope(type, data, options), options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Hand one envelope to the transport (durable types) or the local subscriptions. */
  #send(envelope: Envelope, options: PublishOptions): Promise<Envelope> {
    const type = envelope.type;
    if (this.#logger !== silentLogger)
      this.#logger.debug(
        {
          eventType: type,
          eventId: envelope.id,
          durable: this.#isBridged(type),
          traceId: traceIdOf(envelope.traceparent),
        },
        `publishing ${type} ${envelope.id}`,
      );
    if (this.#isBridged(type)) {
      return this.transport!.publish(
        [envelope],
        options.signal ? { signal: options.signal } : {},
      ).then(() => {
        this.#published++;
        this.#publishedDurable++;
        this.#checkSubscribed(type);
        return envelope;
      });
    }
    this.#published++;
    const waits = this.#dispatch(envelope, undefined, options.signal);
    if (waits === undefined) return Promise.resolve(envelope);
    return Promise.all(waits).then(() => envelope);
  }

  /**
   * Publish inside a `send <TYPE>` producer span (messaging semantic conventions): a child of the
   * explicit `traceparent`, else of the causing event's, else of the active span; the envelope
   * carries the span's context, so consumers continue this trace.
   */
  #publishTraced(
    t: Telemetry,
    type: string,
    data: unknown,
    options: PublishOptions,
  ): Promise<Envelope> {
    const { api } = t;
    const parent = parentContext(api, options);
    const attributes = {
      "messaging.system": t.system,
      "messaging.operation.name": "send",
      "messaging.destination.name": type,
    };
    // Built key by key: object spreads here cost more than the rest of a no-op (API-only) publish.
    const startAttributes: Record<string, string> = {
      "messaging.system": t.system,
      "messaging.destination.name": type,
      "messaging.operation.name": "send",
      "messaging.operation.type": "send",
    };
    if (this.transport && this.#isBridged(type))
      startAttributes["switchyard.transport"] = this.transport.name;
    const span = t.tracer.startSpan(
      `send ${type}`,
      { kind: api.SpanKind.PRODUCER, attributes: startAttributes },
      parent,
    );
    const started = t.instruments ? performance.now() : 0;
    const finish = (error?: unknown) => {
      const attrs =
        error === undefined ? attributes : { ...attributes, "error.type": errorName(error) };
      t.instruments?.sent.add(1, attrs);
      t.instruments?.operationDuration.record((performance.now() - started) / 1000, attrs);
      if (error !== undefined) {
        span.recordException(error);
        span.setAttribute("error.type", errorName(error));
        span.setStatus({
          code: api.SpanStatusCode.ERROR,
          message: error instanceof Error ? error.message : errorName(error),
        });
      }
      span.end();
    };
    let envelope: Envelope;
    try {
      envelope = this.#envelope(type, data, {
        ...options,
        traceparent: traceparentOf(span.spanContext()),
        // The span's trace state is its parent's: the explicit one, the cause's or the active span's.
        tracestate:
          options.tracestate ??
          tracestateOf(span.spanContext()) ??
          (options.traceparent ? undefined : options.causedBy?.tracestate),
      });
    } catch (error) {
      finish(error);
      throw error;
    }
    if (span.isRecording()) {
      span.setAttribute("messaging.message.id", envelope.id);
      span.setAttribute("messaging.message.body.size", bodySize(envelope));
    }
    return this.#send(envelope, options).then(
      (sent) => {
        finish();
        return sent;
      },
      (error: unknown) => {
        finish(error);
        throw error;
      },
    );
  }

  #envelope(type: string, data: unknown, options: PublishOptions = NO_OPTIONS): Envelope {
    const payload = this.#validate
      ? this.catalog.parse(type, data)
      : (this.catalog.get(type), data);
    if (options === NO_OPTIONS) {
      // A publish without options (the common one): nothing to carry over from a cause.
      const active = this.#otel ? activeTraceContext(this.#otel) : undefined;
      return createEnvelope({
        type,
        data: payload,
        source: this.#source,
        dataversion: this.catalog.get(type).version,
        traceparent: active?.traceparent ?? newTraceparent(),
        tracestate: active?.tracestate,
      });
    }
    const cause = options.causedBy;
    const active =
      options.traceparent === undefined && !cause && this.#otel
        ? activeTraceContext(this.#otel)
        : undefined;
    return createEnvelope({
      type,
      data: payload,
      source: options.source ?? this.#source,
      id: options.id,
      subject: options.subject,
      dataversion: this.catalog.get(type).version,
      // Every envelope carries trace context, OpenTelemetry or not: the caller's, the causing
      // event's trace (a child span), the active span's, or a new trace.
      traceparent:
        options.traceparent ??
        (cause ? childTraceparent(cause.traceparent) : active?.traceparent) ??
        newTraceparent(),
      tracestate:
        options.tracestate ??
        (options.traceparent ? undefined : cause ? cause.tracestate : active?.tracestate),
      correlationid:
        options.correlationid ?? (cause ? (cause.correlationid ?? cause.id) : undefined),
      causationid: options.causationid ?? cause?.id,
    });
  }

  /**
   * Offer one event to its local subscriptions; returns `waits` plus any publish must await.
   * `signal` aborts waiting for queue room.
   */
  #dispatch(
    envelope: Envelope,
    waits: Promise<void>[] | undefined,
    signal: AbortSignal | undefined,
  ): Promise<void>[] | undefined {
    const subs = this.#byType.get(envelope.type);
    if (!subs) return waits;
    // One read shared by every subscription's start; fresh, since the publisher's own code ran for
    // an unknown time since the last (see clock.ts).
    const now = freshClock();
    for (const sub of subs) {
      const wait = sub.offer(envelope, now, signal);
      if (wait) (waits ??= []).push(wait);
    }
    return waits;
  }

  /**
   * Warn, once per type, when a durable type was published while no subscriber was registered for
   * it anywhere: the transport kept that event for nobody, and a subscriber registering later
   * will not receive it. Asks the transport (if it can tell) until a subscriber is found.
   */
  #checkSubscribed(type: string): void {
    if (this.#subscriberChecked.has(type)) return;
    const transport = this.transport;
    if (!transport?.hasSubscribers) return;
    this.#subscriberChecked.add(type); // one question in flight per type
    transport.hasSubscribers(type).then(
      (has) => {
        if (has) return;
        this.#logger.warn(
          { eventType: type, transport: transport.name },
          `${type} was published but no subscriber is registered for it on the ${transport.name} ` +
            `transport: the event is kept for nobody, and a subscriber registering later will not ` +
            `receive it. Declare subscribers before publishing (router.declareSubscriber) or start ` +
            `them first. (Logged once per type.)`,
        );
      },
      () => this.#subscriberChecked.delete(type), // could not tell: ask again next time
    );
  }

  #isBridged(type: string): boolean {
    return this.transport !== undefined && this.catalog.isDurable(type);
  }

  #assertOpen(): void {
    if (this.#closing) throw new RouterClosedError();
  }

  /**
   * Add `sub` to the type index. Only its own types' lists are touched (copied, never mutated: a
   * publish may be walking the old list), so subscribing stays cheap with thousands subscribed.
   */
  #index(sub: LocalSubscription): void {
    if (!sub.active) return;
    for (const type of sub.types) {
      if (sub.durableTypes.includes(type)) continue; // arrives through the transport
      const list = this.#byType.get(type);
      this.#byType.set(type, list ? [...list, sub] : [sub]);
    }
  }

  /** Take `sub` out of the type index (idempotent), keeping the others' order. */
  #unindex(sub: LocalSubscription): void {
    for (const type of sub.types) {
      const list = this.#byType.get(type);
      if (!list?.includes(sub)) continue;
      const rest = list.filter((s) => s !== sub);
      if (rest.length > 0) this.#byType.set(type, rest);
      else this.#byType.delete(type);
    }
  }

  #remove(sub: LocalSubscription, discard: boolean): Promise<void> {
    if (!this.#subscriptions.has(sub)) return Promise.resolve();
    sub.deactivate(discard);
    this.#subscriptions.delete(sub);
    this.#unindex(sub);
    // Fold its counters into the totals once its in-flight handlers are done counting.
    const fold = () => {
      for (const key of Object.keys(this.#retired) as (keyof Counters)[])
        this.#retired[key] += sub.counters[key];
    };
    if (sub.inFlight === 0) fold();
    else void sub.idle().then(fold);
    const closing = this.#closeTransportSubscription(sub);
    this.#transportClosers.add(closing);
    void closing.finally(() => this.#transportClosers.delete(closing));
    return closing;
  }

  #closeTransportSubscription(sub: LocalSubscription): Promise<void> {
    const pending = sub.transportSubscription;
    if (!pending) return Promise.resolve();
    sub.transportSubscription = undefined;
    return pending
      .then((ts: TransportSubscription) => ts.close())
      .then(
        () => {
          sub.transportState = "closed";
        },
        (error: unknown) => {
          this.#logger.warn(
            { err: error, subscription: sub.name },
            `closing transport subscription ${sub.name} failed`,
          );
        },
      );
  }
}

const OVERFLOWS: readonly Overflow[] = ["wait", "drop-newest", "drop-oldest", "error"];

/** An unknown policy would make a full queue lose events silently, without counting them. */
function overflowPolicy(value: Overflow): Overflow {
  if (!OVERFLOWS.includes(value))
    throw new RangeError(
      `subscribe: overflow must be one of ${OVERFLOWS.map((o) => JSON.stringify(o)).join(", ")}, got ${JSON.stringify(value)}`,
    );
  return value;
}

/** The contract's backoff rule (`backoffProblem`), as the `RangeError` of every subscribe option. */
function checkedBackoff(backoff: BackoffOptions | undefined): BackoffOptions | undefined {
  if (backoff === undefined) return undefined;
  if (typeof backoff !== "object" || backoff === null)
    throw new RangeError(
      `subscribe: backoff must be an object of BackoffOptions, got ${String(backoff)}`,
    );
  const problem = backoffProblem(backoff);
  if (problem)
    throw new RangeError(
      `subscribe: backoff.${problem.field} must be ${problem.expected}, got ${String(problem.value)}`,
    );
  return backoff;
}

/** A subscription's name is its identity (stats, logs, transport subscriber): a non-empty string. */
function subscriberName(where: string, value: unknown): void {
  if (typeof value !== "string" || value.length === 0)
    throw new TypeError(
      `${where} must be a non-empty string, got ${value === "" ? '""' : value === null ? "null" : typeof value}`,
    );
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`subscribe: ${name} must be an integer ≥ 1, got ${value}`);
  return value;
}

/**
 * Create a router over a catalog.
 *
 * @example
 * ```ts
 * await using router = createRouter({ catalog: pipelineCatalog, transport: sqliteTransport({ path }) });
 * ```
 */
export function createRouter<C extends AnyCatalog>(options: RouterOptions<C>): Router<C> {
  return new Router(options);
}

let defaultRouter: Router<AnyCatalog> | undefined;

/**
 * The process-wide router. The first call creates it from `options`; later calls, without
 * options, return it. Calling it without options before it exists throws {@link NoRouterError}
 * (there is no default catalog), and passing options once it exists is an error: configure it
 * before anything else uses it.
 *
 * @example
 * ```ts
 * getRouter({ catalog: shopCatalog, transport: sqliteTransport({ path }) }); // at startup
 * const router = getRouter(); // anywhere later: the same router
 * ```
 */
export function getRouter<C extends AnyCatalog>(options: RouterOptions<C>): Router<C>;
/** The process-wide router, once created; its catalog is not known here, so its types are loose. */
export function getRouter(): Router<AnyCatalog>;
export function getRouter(options?: RouterOptions<AnyCatalog>): Router<AnyCatalog> {
  if (defaultRouter && options) {
    throw new Error(
      "getRouter: the process-wide router already exists; pass options only on the first call, or resetRouter() first.",
    );
  }
  if (!defaultRouter && !options) throw new NoRouterError();
  defaultRouter ??= new Router<AnyCatalog>(options!);
  return defaultRouter;
}

/** Whether the process-wide router of {@link getRouter} exists (created and not reset). */
export function hasRouter(): boolean {
  return defaultRouter !== undefined;
}

/** Shut the process-wide router down and forget it (tests, recovery). The next `getRouter()` makes a fresh one. */
export async function resetRouter(options?: CloseOptions): Promise<void> {
  const router = defaultRouter;
  defaultRouter = undefined;
  await router?.close(options);
}

/** An error's class name, for `error.type`. */
function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

/**
 * The context a producer span starts in: an explicit `traceparent`; else, for a caused event, the
 * active span when it belongs to the cause's trace (a publish from inside the handler: the
 * `process` span), otherwise the cause's context; else the active context (a new trace if none).
 */
function parentContext(api: OpenTelemetryApi, options: PublishOptions): unknown {
  const active = api.context.active();
  const explicit = spanContextOf(options.traceparent, options.tracestate, api);
  if (explicit) return api.trace.setSpanContext(active as never, explicit);
  const cause = spanContextOf(options.causedBy?.traceparent, options.causedBy?.tracestate, api);
  if (!cause) return active;
  const current = api.trace.getSpanContext(active as never);
  if (current && api.trace.isSpanContextValid(current) && current.traceId === cause.traceId)
    return active;
  return api.trace.setSpanContext(active as never, cause);
}
