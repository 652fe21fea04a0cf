import type {
  AnyCatalog,
  Envelope,
  EventInput,
  EventOf,
  EventType,
} from "@switchyard/event-schema";
import { typeContract } from "@switchyard/event-schema";
import {
  type HandlerContext,
  type HealthCheckResult,
  type Logger,
  type Router,
  type SubscribeOptions,
  type Subscription,
  abortReason,
  childLogger,
  getRouter,
  hasRouter,
  healthFrom,
  traceIdOf,
} from "@switchyard/router";
import { DedupCache, type DedupCheckOptions } from "./dedup";
import {
  DaemonCrashedError,
  DaemonOptionsError,
  DaemonStartError,
  EmitFailedError,
  cutErrorText,
  describeError,
  messageOf,
} from "./errors";
import {
  type DaemonContracts,
  type DaemonStatus,
  MAX_TIMER_MS,
  untilAborted,
} from "@switchyard/transport";
import { LagMonitor } from "./lag";
import { type DaemonErrorRecord, type DaemonStats, OutcomeWindow, StatsCounters } from "./stats";

export type { DaemonStatus };

/**
 * A handler of one event type of the catalog `C`: gets the typed envelope and the router's
 * delivery context. Its return value is ignored (a promise is awaited).
 */
export type EventHandler<T extends EventType<C>, C extends AnyCatalog> = (
  event: EventOf<T, C>,
  ctx: HandlerContext<C>,
) => unknown;

/**
 * What `subscriptions()` returns: event type → handler, typed from the catalog `C`. Inside a
 * daemon, build it with `this.on({ … })`, which types each handler's parameters from its key and
 * makes a misspelt event type a compile error, with no type to write.
 *
 * @example
 * ```ts
 * protected override subscriptions() {
 *   return this.on({ ORDER_PLACED: (event) => this.ship(event.data.order_id) });
 * }
 * ```
 */
export type Subscriptions<C extends AnyCatalog> = {
  readonly [T in EventType<C>]?: EventHandler<T, C>;
};

/** A callable, disposable listener registration: call it (or dispose it) to remove the listener. */
export type ListenerRegistration = (() => void) & Disposable;

/** Options of {@link HandlerBase}. Every field but `name` has a default. */
export interface HandlerBaseOptions<C extends AnyCatalog, Config = undefined> {
  /**
   * Unique daemon name, `snake_case` by convention (`"quality_monitor"`). Names the subscriptions
   * (`${name}:${type}`), the log bindings, the heartbeats and the default `source`.
   */
  readonly name: string;
  /**
   * The router to subscribe and emit through; its catalog is the daemon's.
   * @defaultValue the router given to `HandlerBase.for(router)`; else the process-wide
   * `getRouter()` (under `HandlerBase.for(catalog)`, created over that catalog if it does not
   * exist yet)
   */
  readonly router?: Router<C>;
  /** Time between the starts of two cycles, in ms; at most 2^31 - 1 (~24.8 days). @defaultValue 60_000 */
  readonly cycleIntervalMs?: number;
  /** Run the first cycle right after `start()` rather than one interval later. @defaultValue true */
  readonly runCycleOnStart?: boolean;
  /** The daemon's own configuration, kept as `daemon.config`. @defaultValue undefined */
  readonly config?: Config;
  /** Where the daemon logs (pino-compatible), bound to `{ daemon: name }`. @defaultValue the router's logger */
  readonly logger?: Logger;
  /** Envelope `source` of emitted events (a non-empty string). @defaultValue the daemon's name */
  readonly source?: string;
  /**
   * Event types this daemon emits, announced (with its subscriptions) in its heartbeats before it
   * first emits them. Types it emits that are not listed are announced once emitted. A type the
   * router's catalog lacks is a {@link DaemonOptionsError}.
   * @defaultValue none declared
   */
  readonly publishes?: readonly EventType<C>[];
  /** The daemon's package, announced with its contracts, e.g. `"@acme/trainer@1.4.0"`. @defaultValue none */
  readonly package?: string;
  /** Options applied to every subscription (concurrency, timeoutMs, queueSize …). @defaultValue the router's */
  readonly subscribeOptions?: Omit<SubscribeOptions, "name" | "signal">;
  /** How long `isDuplicateEvent` remembers an event's content, in ms. @defaultValue 300_000 (5 minutes) */
  readonly dedupTtlMs?: number;
  /** Most content hashes remembered; the oldest is evicted first. @defaultValue 10_000 */
  readonly dedupMaxEntries?: number;
  /** Length of the `recentErrors()` log; the oldest entry is dropped first. @defaultValue 50 */
  readonly maxRecentErrors?: number;
  /**
   * How long `stop()` waits for the running cycle and in-flight handlers, and then for `onStop()`,
   * in ms; at most 2^31 - 1. @defaultValue 10_000
   */
  readonly stopTimeoutMs?: number;
  /**
   * Failing cycles in a row after which the daemon stops itself as `crashed` and tells its crash
   * listeners (a `DaemonManager` then restarts it). `Infinity` never crashes. @defaultValue 5
   */
  readonly maxConsecutiveCycleFailures?: number;
  /** Event-loop delay above which health is `degraded`, in ms. @defaultValue 500 */
  readonly lagThresholdMs?: number;
  /**
   * A lag spike stays visible in health for one to two windows of this length, in ms; at most
   * 2^31 - 1. @defaultValue 10_000
   */
  readonly lagWindowMs?: number;
  /**
   * Health is `degraded` when more than this share of the last 100 deliveries and cycles failed.
   * @defaultValue 0.1
   */
  readonly maxErrorRate?: number;
  /** The clock (ms since the epoch) used for dedup expiry and `lastActivity`. @defaultValue Date.now */
  readonly now?: () => number;
}

/**
 * The base class {@link HandlerBase.for} returns: a `HandlerBase` whose catalog is fixed, so a
 * subclass extends it with no type arguments. Its optional type argument is the daemon's `Config`
 * (`extends HandlerBase.for(catalog)<MyConfig>`).
 */
export type HandlerBaseFor<C extends AnyCatalog> = (abstract new <Config = undefined>(
  options: HandlerBaseOptions<C, Config>,
) => HandlerBase<C, Config>) &
  Pick<typeof HandlerBase, "getInstance" | "resetInstance" | "hasInstance">;

/** Options of {@link HandlerBase.emit}. */
export interface EmitOptions {
  /**
   * The event being handled when this one is emitted: carries `causationid`, `correlationid` and
   * a child `traceparent` over. While its delivery is being handled, a failure of this emit
   * fails that delivery (see {@link HandlerBase.emit}).
   */
  readonly causedBy?: Envelope;
  /** Envelope id, the idempotency key on durable paths. @defaultValue a new UUIDv7 */
  readonly id?: string;
  /** @defaultValue the payload's `config_key` */
  readonly subject?: string;
  /** Aborts waiting for queue room or for the transport (the emit then counts as failed). */
  readonly signal?: AbortSignal;
}

interface Run {
  readonly controller: AbortController;
  readonly subscriptions: Subscription[];
  readonly deliveries: Set<Promise<void>>;
  timer: NodeJS.Timeout | undefined;
  cycle: Promise<void> | undefined;
  onStartDone: boolean;
}

const instances = new WeakMap<object, unknown>();
/** With the `u` flag a surrogate range matches only unpaired halves: ill-formed Unicode. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
/** The classes {@link HandlerBase.for} made, by catalog or router: one class per binding. */
const boundClasses = new WeakMap<object, unknown>();

/** A delivery in flight, as the emits caused by its event (awaited or not) see it. */
interface DeliveryScope {
  /** Still handling: an emit after the delivery settled no longer belongs to it. */
  open: boolean;
  /** Emits started during the delivery and not settled yet. */
  readonly emits: Set<Promise<unknown>>;
  /** The first emit of the delivery that failed. */
  failure: { readonly type: string; readonly error: unknown } | undefined;
  /** The delivery's trace id, for the log lines of its emits. */
  readonly traceId: string | undefined;
}

/**
 * The base class of a daemon: a named, long-running component that handles events from a
 * {@link Router} and runs a periodic cycle.
 *
 * - **Cycles**: `runCycle(signal)` runs every `cycleIntervalMs` (start to start), never two at once.
 *   A cycle that throws is counted and logged and the next one still runs; after
 *   `maxConsecutiveCycleFailures` in a row the daemon stops itself as `crashed`.
 * - **Subscriptions**: `subscriptions()` maps catalog event types to handlers; each becomes a router
 *   subscription named `${name}:${type}` (a stable transport subscriber for durable types). A
 *   handler gets the typed envelope and the delivery context. When it throws, the error is counted,
 *   logged and kept in `recentErrors()`, then rethrown so the router's retry and dead-letter policy
 *   and the transport's redelivery still apply; other deliveries keep flowing.
 * - **Tools**: `isDuplicateEvent` (content-hash dedup with TTL), `emit` (publish that never
 *   throws), `stats`, `recentErrors()`, `health()` (override it), `clearDedup()`.
 * - **Lifecycle**: `start()` / `stop()` are idempotent (a second call returns the same promise);
 *   `await using daemon = …` stops it at scope end. `stop()` aborts the cycle's signal, removes the
 *   subscriptions and waits (up to `stopTimeoutMs`) for the running cycle and in-flight handlers.
 *
 * - **Typing**: the catalog `C` types every handler and emit. Extend `HandlerBase.for(router)` (or
 *   `HandlerBase.for(catalog)`) rather than `HandlerBase` itself: the catalog is then taken from
 *   the value, and a subclass needs no type arguments.
 *
 * @example
 * ```ts
 * const router = createRouter({ catalog: pipelineCatalog });
 * class Promoter extends HandlerBase.for(router) {
 *   constructor() {
 *     super({ name: "promoter", cycleIntervalMs: 60_000 });
 *   }
 *   protected override subscriptions() {
 *     return this.on({
 *       EVALUATION_COMPLETED: async (event) => {
 *         if (this.isDuplicateEvent(event, { keyFields: ["config_key", "model_path"] })) return;
 *         if (event.data.elo > 1600) await this.emit("MODEL_PROMOTED", { ...event.data }, { causedBy: event });
 *       },
 *     });
 *   }
 * }
 * await using promoter = Promoter.getInstance();
 * await promoter.start();
 * ```
 */
export abstract class HandlerBase<
  C extends AnyCatalog,
  Config = undefined,
> implements AsyncDisposable {
  /** The daemon's unique name. */
  readonly name: string;
  /** The router it subscribes and emits through. */
  readonly router: Router<C>;
  /** The configuration passed to the constructor. */
  readonly config: Config;
  /** Time between cycle starts, in ms. */
  readonly cycleIntervalMs: number;
  /** Envelope `source` of emitted events. */
  readonly source: string;
  /** The daemon's logger, bound to `{ daemon: name }`. */
  protected readonly logger: Logger;

  readonly #options: {
    readonly runCycleOnStart: boolean;
    readonly subscribeOptions: Omit<SubscribeOptions, "name" | "signal">;
    readonly maxRecentErrors: number;
    readonly stopTimeoutMs: number;
    readonly maxConsecutiveCycleFailures: number;
    readonly lagThresholdMs: number;
    readonly maxErrorRate: number;
    readonly publishes: readonly string[];
    readonly package: string | undefined;
  };
  readonly #now: () => number;
  readonly #dedup: DedupCache;
  readonly #lag: LagMonitor;
  readonly #counters = new StatsCounters();
  /** Types emitted so far: announced as published even when not declared in `publishes`. */
  readonly #emittedTypes = new Set<string>();
  readonly #outcomes = new OutcomeWindow();
  readonly #errors: DaemonErrorRecord[] = [];
  /** Envelopes `isDuplicateEvent` recognised during their delivery (not counted as processed). */
  readonly #duplicates = new WeakSet<object>();
  /** Dedup checks recorded per envelope, forgotten again when its delivery fails. */
  readonly #recorded = new WeakMap<object, DedupCheckOptions[]>();
  readonly #crashListeners = new Set<(error: Error) => void>();
  /**
   * Deliveries in flight by the envelope their handler got, so an emit `causedBy` one of them
   * belongs to it. (Not AsyncLocalStorage: on Node 20 it slows every promise in the process.)
   */
  readonly #handling = new WeakMap<object, DeliveryScope>();

  #status: DaemonStatus = "stopped";
  #startedAt: number | null = null;
  #run: Run | undefined;
  /** Every lifecycle transition chains on this, so start and stop never interleave. */
  #lifecycle: Promise<void> = Promise.resolve();
  #startPromise: Promise<void> | undefined;
  #pendingStart: AbortController | undefined;
  #stopPromise: Promise<void> | undefined;
  #lastCycleError: string | undefined;
  /** The cycle running now, of any run: one that `stop()` stopped waiting for may outlive its run. */
  #cycling: Promise<void> | undefined;

  constructor(options: HandlerBaseOptions<C, Config>) {
    const owner = "HandlerBase";
    // Name and source end up in every envelope's `source`: an empty or ill-formed one would make
    // every emit fail (counted and logged) instead of the constructor saying so.
    const text = (v: unknown) =>
      typeof v === "string" && v.trim() !== "" && !LONE_SURROGATE.test(v);
    if (!text(options?.name)) {
      throw new DaemonOptionsError(
        owner,
        "name",
        "a non-empty string (well-formed Unicode)",
        options?.name,
      );
    }
    this.name = options.name;
    const o = {
      cycleIntervalMs: 60_000,
      runCycleOnStart: true,
      dedupTtlMs: 300_000,
      dedupMaxEntries: 10_000,
      maxRecentErrors: 50,
      stopTimeoutMs: 10_000,
      maxConsecutiveCycleFailures: 5,
      lagThresholdMs: 500,
      lagWindowMs: 10_000,
      maxErrorRate: 0.1,
      ...definedOnly(options),
    };
    const check = (option: string, ok: boolean, expected: string, value: unknown) => {
      if (!ok) throw new DaemonOptionsError(`HandlerBase(${this.name})`, option, expected, value);
    };
    const positive = (v: number) => typeof v === "number" && v > 0 && Number.isFinite(v);
    const positiveInt = (v: number) => Number.isInteger(v) && v > 0;
    // What a timer waits: Node fires a timer longer than MAX_TIMER_MS after 1 ms instead.
    const timer = (option: string, v: number) => {
      check(option, positive(v), "a positive number of ms", v);
      check(
        option,
        v <= MAX_TIMER_MS,
        `at most ${MAX_TIMER_MS} ms (about 24.8 days, the longest a timer waits)`,
        v,
      );
    };
    if (options.source !== undefined) {
      check(
        "source",
        text(options.source),
        "a non-empty string (well-formed Unicode)",
        options.source,
      );
    }
    if (options.now !== undefined) {
      check(
        "now",
        typeof options.now === "function",
        "a function returning ms since the epoch",
        options.now,
      );
    }
    timer("cycleIntervalMs", o.cycleIntervalMs);
    check("dedupTtlMs", positive(o.dedupTtlMs), "a positive number of ms", o.dedupTtlMs);
    check("dedupMaxEntries", positiveInt(o.dedupMaxEntries), "an integer ≥ 1", o.dedupMaxEntries);
    check("maxRecentErrors", positiveInt(o.maxRecentErrors), "an integer ≥ 1", o.maxRecentErrors);
    timer("stopTimeoutMs", o.stopTimeoutMs);
    check(
      "maxConsecutiveCycleFailures",
      positiveInt(o.maxConsecutiveCycleFailures) || o.maxConsecutiveCycleFailures === Infinity,
      "an integer ≥ 1 or Infinity",
      o.maxConsecutiveCycleFailures,
    );
    check(
      "lagThresholdMs",
      positive(o.lagThresholdMs),
      "a positive number of ms",
      o.lagThresholdMs,
    );
    timer("lagWindowMs", o.lagWindowMs);
    check(
      "maxErrorRate",
      o.maxErrorRate >= 0 && o.maxErrorRate <= 1,
      "a number from 0 to 1",
      o.maxErrorRate,
    );

    // A subclass of HandlerBase<C> itself (not of HandlerBase.for) vouches for C with its type argument.
    this.router = options.router ?? (getRouter() as unknown as Router<C>);
    this.config = options.config as Config;
    this.cycleIntervalMs = o.cycleIntervalMs;
    this.source = options.source ?? this.name;
    this.logger = childLogger(options.logger ?? this.router.logger, { daemon: this.name });
    if (options.publishes !== undefined) {
      const publishes: unknown = options.publishes;
      const catalog = this.router.catalog;
      const unknownType = Array.isArray(publishes)
        ? (publishes as unknown[]).find((type) => typeof type !== "string" || !catalog.has(type))
        : publishes;
      // A misspelt type was dropped from the announced contracts without a word.
      check(
        "publishes",
        Array.isArray(publishes) && unknownType === undefined,
        "an array of event types of the router's catalog",
        unknownType,
      );
    }
    this.#now = options.now ?? Date.now;
    this.#dedup = new DedupCache({
      ttlMs: o.dedupTtlMs,
      maxEntries: o.dedupMaxEntries,
      now: this.#now,
    });
    this.#lag = new LagMonitor(o.lagWindowMs);
    this.#options = {
      runCycleOnStart: o.runCycleOnStart,
      subscribeOptions: options.subscribeOptions ?? {},
      maxRecentErrors: o.maxRecentErrors,
      stopTimeoutMs: o.stopTimeoutMs,
      maxConsecutiveCycleFailures: o.maxConsecutiveCycleFailures,
      lagThresholdMs: o.lagThresholdMs,
      maxErrorRate: o.maxErrorRate,
      publishes: options.publishes ?? [],
      package: options.package,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Binding a catalog

  /**
   * The base class for daemons of one catalog, taken from a value: a subclass extends it with no
   * type arguments, and its handlers and emits are typed from that catalog.
   *
   * - `HandlerBase.for(router)`: the catalog is the router's, and that router is the daemon's
   *   default `router` option.
   * - `HandlerBase.for(catalog)`: daemons get their router from the `router` option; without one
   *   they use the process-wide `getRouter()`, created over `catalog` if it does not exist yet.
   *   A process-wide router whose catalog lacks one of the catalog's types is refused
   *   ({@link DaemonOptionsError}, option `router`).
   *
   * The same argument returns the same class. `instanceof HandlerBase` holds for every daemon.
   *
   * @example
   * ```ts
   * const router = createRouter({ catalog: shopCatalog });
   * class Shipper extends HandlerBase.for(router) {
   *   constructor() {
   *     super({ name: "shipper" });
   *   }
   *   protected override subscriptions() {
   *     return this.on({
   *       ORDER_PLACED: (event) => this.emit("ORDER_SHIPPED", { order_id: event.data.order_id }, { causedBy: event }),
   *     });
   *   }
   * }
   * ```
   */
  static for<C extends AnyCatalog>(catalogOrRouter: C | Router<C>): HandlerBaseFor<C> {
    const known = boundClasses.get(catalogOrRouter);
    if (known) return known as HandlerBaseFor<C>;
    const boundRouter = isRouter(catalogOrRouter) ? catalogOrRouter : undefined;
    const catalog = boundRouter ? boundRouter.catalog : (catalogOrRouter as C);
    if (!isCatalog(catalog)) {
      throw new DaemonOptionsError(
        "HandlerBase.for",
        "catalogOrRouter",
        "a catalog (defineCatalog) or a router (createRouter)",
        catalogOrRouter,
      );
    }
    abstract class HandlerBaseForCatalog extends HandlerBase<C, unknown> {
      constructor(options: HandlerBaseOptions<C, unknown>) {
        super({
          ...options,
          router: options?.router ?? boundRouter ?? processRouterFor(catalog, options?.name),
        });
      }
    }
    boundClasses.set(catalogOrRouter, HandlerBaseForCatalog);
    return HandlerBaseForCatalog as unknown as HandlerBaseFor<C>;
  }

  // ---------------------------------------------------------------------------------------------
  // Singletons

  /**
   * The shared instance of this subclass, created on first use with no constructor arguments.
   * Each subclass has its own; construct directly (with an injected router and logger) in tests.
   *
   * @example
   * ```ts
   * const monitor = QualityMonitor.getInstance(); // the same object on every call
   * await QualityMonitor.resetInstance();         // stops it and forgets it
   * ```
   */
  static getInstance<T>(this: new () => T): T {
    let instance = instances.get(this) as T | undefined;
    if (instance === undefined) {
      instance = new this();
      instances.set(this, instance);
    }
    return instance;
  }

  /** Stop and forget this subclass's shared instance (tests, recovery); the next `getInstance()` creates a new one. */
  static resetInstance(this: abstract new (...args: never[]) => unknown): Promise<void> {
    const instance = instances.get(this);
    instances.delete(this);
    return instance instanceof HandlerBase ? instance.stop() : Promise.resolve();
  }

  /** Whether this subclass's shared instance exists. */
  static hasInstance(this: abstract new (...args: never[]) => unknown): boolean {
    return instances.has(this);
  }

  // ---------------------------------------------------------------------------------------------
  // What subclasses override

  /**
   * The periodic work, called every `cycleIntervalMs` (never overlapping). `signal` is aborted when
   * the daemon stops: pass it to everything that waits. Throwing counts as a failed cycle. When a
   * subclass does not override it, no cycle timer runs.
   */
  protected runCycle(_signal: AbortSignal): void | Promise<void> {}

  /**
   * The events this daemon handles: event type → handler. Handlers are called with `this` bound to
   * the daemon, the typed envelope and the delivery context. Return `this.on({ … })`: the
   * handlers' parameters are then typed from their keys, and a wrong event type does not compile.
   */
  protected subscriptions(): Subscriptions<C> {
    return {};
  }

  /**
   * Type a subscriptions map against the daemon's catalog and return it unchanged: each handler's
   * `event` and `ctx` are inferred from its key, an event type not in the catalog is a compile
   * error. Meant as the return value of `subscriptions()`.
   *
   * @example
   * ```ts
   * protected override subscriptions() {
   *   return this.on({
   *     ORDER_PLACED: async (event, ctx) => {
   *       ctx.logger.info({ amount: event.data.amount }, "order placed");
   *     },
   *   });
   * }
   * ```
   */
  protected on(subscriptions: Subscriptions<C>): Subscriptions<C> {
    return subscriptions;
  }

  /** Called by `start()` before subscribing; throwing makes `start()` reject. `signal` aborts on stop. */
  protected onStart(_signal: AbortSignal): void | Promise<void> {}

  /**
   * Called by `stop()` after the cycle and in-flight handlers finished (only if `onStart` succeeded).
   * `stop()` waits for it up to `stopTimeoutMs`, then goes on without it (with a warning).
   */
  protected onStop(): void | Promise<void> {}

  // ---------------------------------------------------------------------------------------------
  // Lifecycle

  /** Where the daemon is in its life. */
  get status(): DaemonStatus {
    return this.#status;
  }

  /** When the current run started (ms since the epoch); `null` when not running. */
  get startedAt(): number | null {
    return this.#startedAt;
  }

  /**
   * Run `onStart()`, subscribe every handler of `subscriptions()` (waiting until transport
   * subscriptions are ready), then start the cycle timer. Idempotent: while started, every call
   * returns the same promise. Rejects with {@link DaemonStartError} after rolling back; the daemon
   * is then `crashed` and `start()` may be called again.
   */
  start(): Promise<void> {
    if (this.#startPromise) return this.#startPromise;
    this.#stopPromise = undefined;
    const controller = new AbortController();
    this.#pendingStart = controller;
    const started = this.#lifecycle.then(() => this.#start(controller));
    this.#lifecycle = started.catch(() => {});
    this.#startPromise = started;
    started.catch(() => {
      if (this.#startPromise === started) this.#startPromise = undefined;
    });
    return started;
  }

  /**
   * Abort the cycle's signal, remove the subscriptions (no new deliveries), wait up to
   * `stopTimeoutMs` for the running cycle and in-flight handlers, then run `onStop()` (also waited
   * for up to `stopTimeoutMs`). A start still in `onStart()` is given up at once. Idempotent:
   * every call until the next `start()` returns the same promise. Never rejects.
   */
  stop(): Promise<void> {
    if (this.#stopPromise) return this.#stopPromise;
    this.#startPromise = undefined;
    // A start still waiting (for onStart or its transport subscriptions) gives up at once.
    this.#pendingStart?.abort();
    this.#pendingStart = undefined;
    const stopped = this.#lifecycle.then(() => this.#stop("stopped"));
    this.#lifecycle = stopped;
    this.#stopPromise = stopped;
    return stopped;
  }

  /** `stop()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /**
   * Be told when the daemon crashes (gives up after `maxConsecutiveCycleFailures` failing
   * cycles). The listener runs after the daemon stopped itself, with a {@link DaemonCrashedError}.
   * Returns a registration: call or dispose it to remove the listener.
   */
  onCrash(listener: (error: Error) => void): ListenerRegistration {
    this.#crashListeners.add(listener);
    const remove = () => void this.#crashListeners.delete(listener);
    return Object.assign(remove, { [Symbol.dispose]: remove });
  }

  async #start(controller: AbortController): Promise<void> {
    if (this.#run) return;
    const run: Run = {
      controller,
      subscriptions: [],
      deliveries: new Set(),
      timer: undefined,
      cycle: undefined,
      onStartDone: false,
    };
    this.#run = run;
    this.#status = "starting";
    const signal = run.controller.signal;
    try {
      if (signal.aborted) throw abortReason(signal);
      // stop() gives up on the start at once, even when onStart does not look at its signal.
      await untilAborted(Promise.resolve(this.onStart(signal)), signal);
      run.onStartDone = true;
      if (signal.aborted) throw abortReason(signal);
      const map = this.subscriptions() as Record<string, unknown>;
      for (const [type, handler] of Object.entries(map)) {
        if (handler === undefined) continue;
        if (typeof handler !== "function") {
          throw new TypeError(
            `subscriptions()["${type}"] of daemon "${this.name}" is not a function`,
          );
        }
        const name = `${this.name}:${type}`;
        const subscription = this.router.subscribe(
          type as never,
          this.#wrap(run, name, handler as (...args: unknown[]) => unknown),
          {
            ...this.#options.subscribeOptions,
            name,
          },
        );
        run.subscriptions.push(subscription);
      }
      await untilAborted(Promise.all(run.subscriptions.map((s) => s.ready)), signal);
    } catch (error) {
      const stoppedMeanwhile = signal.aborted;
      if (this.#pendingStart === controller) this.#pendingStart = undefined;
      await this.#teardown(run);
      this.#status = stoppedMeanwhile ? "stopped" : "crashed";
      const failure = new DaemonStartError(this.name, error);
      this.#recordError("start", error);
      this.logger.error({ err: error, daemon: this.name }, failure.message);
      throw failure;
    }
    if (this.#pendingStart === controller) this.#pendingStart = undefined;
    this.#startedAt = this.#now();
    this.#status = "running";
    this.#lag.start();
    this.logger.info(
      { daemon: this.name, subscriptions: run.subscriptions.map((s) => s.name) },
      `daemon ${this.name} started`,
    );
    if (this.#hasCycle())
      this.#schedule(run, this.#options.runCycleOnStart ? 0 : this.cycleIntervalMs);
  }

  async #stop(final: "stopped" | "crashed"): Promise<void> {
    const run = this.#run;
    if (!run) {
      if (this.#status !== "crashed") this.#status = "stopped";
      return;
    }
    this.#status = "stopping";
    await this.#teardown(run);
    this.#status = final;
    this.logger.info({ daemon: this.name }, `daemon ${this.name} ${final}`);
  }

  /** Stop the cycle and subscriptions of `run`, wait for what is in flight, run `onStop`. */
  async #teardown(run: Run): Promise<void> {
    run.controller.abort();
    clearTimeout(run.timer);
    run.timer = undefined;
    // Stop taking new events, but handle what is already queued for this daemon (graceful stop).
    const closing = run.subscriptions.map((subscription) => subscription.close({ drain: true }));
    const pending = [...closing, ...run.deliveries, ...(run.cycle ? [run.cycle] : [])];
    if (pending.length > 0) {
      const ms = this.#options.stopTimeoutMs;
      const finished = await withTimeout(Promise.allSettled(pending), ms);
      if (!finished) {
        this.logger.warn(
          {
            daemon: this.name,
            stopTimeoutMs: ms,
            inFlight: run.deliveries.size,
            cycleRunning: run.cycle !== undefined,
          },
          `daemon ${this.name}: the cycle or handlers were still running ${ms} ms after stop(); not waiting any longer`,
        );
      }
    }
    if (run.onStartDone) {
      const ms = this.#options.stopTimeoutMs;
      try {
        // Bounded like the cycle and handlers: an onStop() that hangs must not hang stop().
        if (!(await withTimeout((async () => this.onStop())(), ms))) {
          this.logger.warn(
            { daemon: this.name, stopTimeoutMs: ms },
            `daemon ${this.name}: onStop() was still running ${ms} ms after it was called; not waiting any longer`,
          );
        }
      } catch (error) {
        this.#recordError("stop", error);
        this.logger.error(
          { err: error, daemon: this.name },
          `daemon ${this.name}: onStop() failed`,
        );
      }
    }
    this.#lag.stop();
    this.#startedAt = null;
    if (this.#run === run) this.#run = undefined;
  }

  #crash(run: Run, error: DaemonCrashedError): void {
    if (this.#run !== run || this.#stopPromise) return;
    this.#startPromise = undefined;
    this.logger.error({ err: error, daemon: this.name }, error.message);
    const stopped = this.#lifecycle.then(() => this.#stop("crashed"));
    this.#lifecycle = stopped;
    this.#stopPromise = stopped;
    void stopped.then(() => {
      for (const listener of [...this.#crashListeners]) {
        try {
          listener(error);
        } catch (listenerError) {
          this.logger.error(
            { err: listenerError, daemon: this.name },
            `daemon ${this.name}: a crash listener threw`,
          );
        }
      }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Cycles

  #hasCycle(): boolean {
    return this.runCycle !== HandlerBase.prototype.runCycle;
  }

  #schedule(run: Run, delayMs: number): void {
    if (run.controller.signal.aborted) return;
    run.timer = setTimeout(() => {
      run.timer = undefined;
      // A cycle of an earlier run, which stop() gave up waiting for, still runs: never two at once.
      const earlier = this.#cycling;
      if (earlier) return void earlier.then(() => this.#schedule(run, 0));
      const started = performance.now();
      const cycle = this.#cycle(run);
      const settled = cycle.then(() => {});
      run.cycle = settled;
      this.#cycling = settled;
      void cycle.then((crash) => {
        run.cycle = undefined;
        if (this.#cycling === settled) this.#cycling = undefined;
        if (crash) return this.#crash(run, crash);
        this.#schedule(run, Math.max(0, this.cycleIntervalMs - (performance.now() - started)));
      });
    }, delayMs);
  }

  async #cycle(run: Run): Promise<DaemonCrashedError | undefined> {
    const c = this.#counters;
    const signal = run.controller.signal;
    try {
      await this.runCycle(signal);
      c.successCount++;
      c.consecutiveCycleFailures = 0;
      this.#lastCycleError = undefined;
      this.#outcomes.record(false);
    } catch (error) {
      if (signal.aborted) {
        // Stopping aborted the cycle's signal; giving up on that is not a failure.
        this.logger.debug(
          { err: error, daemon: this.name },
          `daemon ${this.name}: cycle ended by stop()`,
        );
        return undefined;
      }
      c.errorsCount++;
      c.cycleFailures++;
      c.consecutiveCycleFailures++;
      this.#lastCycleError = cutErrorText(messageOf(error));
      this.#outcomes.record(true);
      this.#recordError("cycle", error);
      this.logger.error(
        { err: error, daemon: this.name, consecutiveFailures: c.consecutiveCycleFailures },
        `daemon ${this.name}: cycle failed (${c.consecutiveCycleFailures} in a row)`,
      );
      if (c.consecutiveCycleFailures >= this.#options.maxConsecutiveCycleFailures) {
        return new DaemonCrashedError(this.name, c.consecutiveCycleFailures, error);
      }
    } finally {
      c.cyclesRun++;
      c.lastActivity = this.#now();
    }
    return undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Deliveries

  #wrap(run: Run, name: string, handler: (...args: unknown[]) => unknown) {
    // Keyed by the subscription name, so that name shows up in stack traces.
    return {
      [name]: (event: Envelope, ctx: HandlerContext<C>): Promise<void> =>
        this.#deliver(run, handler, event, ctx),
    }[name]!;
  }

  async #deliver(
    run: Run,
    handler: (...args: unknown[]) => unknown,
    event: Envelope,
    ctx: HandlerContext<C>,
  ): Promise<void> {
    let settle!: () => void;
    const tracked = new Promise<void>((resolve) => (settle = resolve));
    run.deliveries.add(tracked);
    const c = this.#counters;
    const scope: DeliveryScope = {
      open: true,
      emits: new Set(),
      failure: undefined,
      traceId: ctx.traceId,
    };
    this.#handling.set(event, scope);
    try {
      await handler.call(this, event, ctx);
      // Emits the handler started without awaiting them still belong to this delivery.
      while (scope.emits.size > 0 && scope.failure === undefined) await Promise.all(scope.emits);
      if (scope.failure) {
        throw new EmitFailedError(this.name, scope.failure.type, event, scope.failure.error);
      }
      if (!this.#duplicates.has(event)) {
        c.eventsProcessed++;
        c.successCount++;
        this.#outcomes.record(false);
      } else {
        // Skipped by isDuplicateEvent: the router counts it as deduplicated (stats, metric).
        ctx.markDeduplicated();
      }
    } catch (error) {
      c.eventsProcessed++;
      c.errorsCount++;
      this.#outcomes.record(true);
      this.#forgetDedup(event);
      this.#recordError("handler", error, event);
      this.logger.error(
        {
          err: error,
          daemon: this.name,
          eventType: event.type,
          eventId: event.id,
          attempt: ctx.attempt,
          traceId: ctx.traceId,
        },
        `daemon ${this.name}: handler for ${event.type} failed`,
      );
      throw error;
    } finally {
      scope.open = false;
      if (this.#handling.get(event) === scope) this.#handling.delete(event);
      c.lastActivity = this.#now();
      run.deliveries.delete(tracked);
      settle();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Dedup

  /**
   * True when an event with the same content (type + payload, or only `keyFields` of the payload)
   * was seen within the dedup TTL; otherwise remembers it and returns false. Call it first in a
   * handler and return early on true: the delivery then counts in `eventsDeduplicated`, not as
   * processed. If the handler later throws, the event is forgotten again, so its retry or
   * redelivery is not mistaken for a duplicate.
   *
   * @example
   * ```ts
   * if (this.isDuplicateEvent(event, { keyFields: ["config_key", "model_path"] })) return;
   * ```
   */
  protected isDuplicateEvent(event: unknown, options: DedupCheckOptions = {}): boolean {
    const duplicate = this.#dedup.isDuplicate(event, options);
    if (typeof event === "object" && event !== null) {
      if (duplicate) this.#duplicates.add(event);
      else {
        const checks = this.#recorded.get(event);
        if (checks) checks.push(options);
        else this.#recorded.set(event, [options]);
      }
    }
    if (duplicate) this.#counters.eventsDeduplicated++;
    return duplicate;
  }

  /**
   * Forget every remembered event: the next sighting of anything counts as new. The runbook's
   * "reset deduplication" recovery step. Returns how many content hashes were dropped.
   */
  clearDedup(): number {
    const size = this.#dedup.size;
    this.#dedup.clear();
    return size;
  }

  #forgetDedup(event: Envelope): void {
    const checks = this.#recorded.get(event);
    if (!checks) return;
    this.#recorded.delete(event);
    for (const options of checks) this.#dedup.forget(event, options);
  }

  // ---------------------------------------------------------------------------------------------
  // Emission

  /**
   * Publish an event with this daemon as `source`. Never throws: a failure (invalid payload,
   * router closed, transport down) is counted in `stats.emitFailures`, logged and kept in
   * `recentErrors()`, and the promise resolves to `undefined`. Resolves to the envelope on success.
   *
   * Emitted `causedBy` an event one of the daemon's handlers is handling (awaited or not, until
   * that delivery settles), a failed emit also fails that delivery, with an
   * {@link EmitFailedError} whose `cause` is the emit's error: the upstream event is retried and
   * then dead-lettered rather than acknowledged with its downstream event lost. Pass
   * `{ causedBy: event }` from handlers (it also carries causation and the trace). In
   * `runCycle`, `onStart` and elsewhere a failed emit only counts and logs: it never crashes the
   * daemon.
   *
   * @example
   * ```ts
   * const sent = await this.emit("QUALITY_ALERT", { config_key, quality_score: 0.3, timestamp: Date.now() / 1000 }, { causedBy: event });
   * if (!sent) return; // already counted and logged
   * ```
   */
  protected async emit<T extends EventType<C>>(
    type: T,
    data: EventInput<T, C>,
    options: EmitOptions = {},
  ): Promise<EventOf<T, C> | undefined> {
    // `null` from a JavaScript caller: reading it would reject, and emit never rejects.
    const opts: EmitOptions = options ?? {};
    const causedBy: unknown = opts.causedBy;
    const handling =
      typeof causedBy === "object" && causedBy !== null ? this.#handling.get(causedBy) : undefined;
    const scope = handling?.open ? handling : undefined;
    if (!scope) return this.#emit(type, data, opts, undefined);
    const emitting = this.#emit(type, data, opts, scope);
    scope.emits.add(emitting);
    void emitting.finally(() => scope.emits.delete(emitting));
    return emitting;
  }

  async #emit<T extends EventType<C>>(
    type: T,
    data: EventInput<T, C>,
    options: EmitOptions,
    scope: DeliveryScope | undefined,
  ): Promise<EventOf<T, C> | undefined> {
    const c = this.#counters;
    try {
      const envelope = await this.router.publish(type, data, { ...options, source: this.source });
      this.#emittedTypes.add(type);
      c.eventsEmitted++;
      c.consecutiveEmitFailures = 0;
      return envelope;
    } catch (error) {
      c.emitFailures++;
      c.consecutiveEmitFailures++;
      this.#recordError("emit", error, { type });
      this.logger.warn(
        {
          err: error,
          daemon: this.name,
          eventType: type,
          // The trace of the delivery (or event) it was emitted for, so the line is found from it.
          traceId: scope?.traceId ?? traceIdOf(options.causedBy?.traceparent),
        },
        `daemon ${this.name}: emitting ${type} failed` +
          (scope?.open ? "; the delivery being handled fails with it" : ""),
      );
      if (scope?.open) scope.failure ??= { type, error };
      return undefined;
    } finally {
      c.lastActivity = this.#now();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Observability

  /**
   * What this daemon publishes (its declared `publishes` and every type it emitted) and consumes
   * (the keys of `subscriptions()`), each with its schema version and hash: the contracts a
   * `DaemonManager` announces in the daemon's heartbeats.
   */
  contracts(): DaemonContracts {
    const catalog = this.router.catalog;
    const known = (type: string) => catalog.types.includes(type);
    const subscribed = Object.entries(this.subscriptions() as Record<string, unknown>)
      .filter(([type, handler]) => handler !== undefined && known(type))
      .map(([type]) => typeContract(catalog, type));
    const published = [...new Set([...this.#options.publishes, ...this.#emittedTypes])]
      .filter(known)
      .sort()
      .map((type) => typeContract(catalog, type));
    return {
      publishes: published,
      subscribes: subscribed,
      ...(this.#options.package ? { package: this.#options.package } : {}),
    };
  }

  /** A JSON-safe snapshot of the daemon's counters. */
  get stats(): DaemonStats {
    return this.#counters.snapshot();
  }

  /** The last failures (handlers, cycles, emits, start/stop), oldest first; at most `maxRecentErrors`. */
  recentErrors(): DaemonErrorRecord[] {
    return [...this.#errors];
  }

  /**
   * The daemon's health, for a `DaemonManager` and the CLI. The default verdict:
   * `unhealthy` when not running; `degraded` when the event loop was blocked beyond
   * `lagThresholdMs`, when more than `maxErrorRate` of the last 100 deliveries and cycles failed,
   * when the last cycle failed, or when the last emit failed; `healthy` otherwise. `details`
   * carries the stats and the lag. Override it to add the daemon's own checks; `super.health()`
   * gives the default to build on.
   *
   * @example
   * ```ts
   * override health(): HealthCheckResult {
   *   const base = super.health();
   *   if (this.#backlog > 100) return { ...base, healthy: false, status: "degraded", message: `backlog ${this.#backlog}` };
   *   return base;
   * }
   * ```
   */
  health(): HealthCheckResult {
    const stats = this.stats;
    const lag = this.#lag.reading();
    const problems: { severity: "degraded" | "unhealthy"; message: string }[] = [];
    if (this.#status !== "running") {
      problems.push({
        severity: this.#status === "starting" ? "degraded" : "unhealthy",
        message: `daemon is ${this.#status}`,
      });
    }
    if (lag.maxMs > this.#options.lagThresholdMs) {
      problems.push({
        severity: "degraded",
        message:
          `event loop blocked for up to ${Math.round(lag.maxMs)} ms (threshold ${this.#options.lagThresholdMs} ms): ` +
          `a handler or cycle runs synchronous work`,
      });
    }
    const { rate, samples } = this.#outcomes.failureRate();
    if (samples > 0 && rate > this.#options.maxErrorRate) {
      problems.push({
        severity: "degraded",
        message: `${Math.round(rate * 100)}% of the last ${samples} deliveries and cycles failed`,
      });
    }
    if (stats.consecutiveCycleFailures > 0) {
      problems.push({
        severity: "degraded",
        message: `the last ${stats.consecutiveCycleFailures} cycle(s) failed: ${this.#lastCycleError ?? "unknown error"}`,
      });
    }
    if (stats.consecutiveEmitFailures > 0) {
      problems.push({
        severity: "degraded",
        message: `the last ${stats.consecutiveEmitFailures} emit(s) failed`,
      });
    }
    return healthFrom(
      problems,
      `${this.name}: ${stats.eventsProcessed} events processed, ${stats.cyclesRun} cycles`,
      {
        daemon: this.name,
        status: this.#status,
        ...stats,
        eventLoopLagMaxMs: lag.maxMs,
        eventLoopLagP99Ms: lag.p99Ms,
        recentFailureRate: rate,
      },
    );
  }

  /**
   * The daemon's health.
   * @deprecated Use {@link HandlerBase.health} (and override that one): the same result under the
   * one-word name the router, the manager and the transports use. This alias returns `health()`.
   */
  healthCheck(): HealthCheckResult {
    return this.health();
  }

  #recordError(
    kind: DaemonErrorRecord["kind"],
    error: unknown,
    event?: { type: string; id?: string },
  ): void {
    const e = describeError(error);
    this.#errors.push({
      at: new Date(this.#now()).toISOString(),
      kind,
      name: cutErrorText(e.name),
      message: cutErrorText(e.message),
      ...(e.code !== undefined ? { code: cutErrorText(e.code) } : {}),
      ...(event ? { eventType: event.type } : {}),
      ...(event?.id !== undefined ? { eventId: event.id } : {}),
    });
    if (this.#errors.length > this.#options.maxRecentErrors) this.#errors.shift();
  }
}

function isRouter<C extends AnyCatalog>(value: C | Router<C>): value is Router<C> {
  const candidate = value as { catalog?: unknown; subscribe?: unknown } | null;
  return typeof candidate?.subscribe === "function" && isCatalog(candidate.catalog);
}

function isCatalog(value: unknown): value is AnyCatalog {
  const candidate = value as { has?: unknown; types?: unknown } | null;
  return typeof candidate?.has === "function" && Array.isArray(candidate.types);
}

/**
 * The process-wide router for a daemon of `catalog`: created over it if none exists yet, else the
 * existing one, provided its catalog has every event type of `catalog`.
 */
function processRouterFor<C extends AnyCatalog>(catalog: C, daemon: unknown): Router<C> {
  if (!hasRouter()) return getRouter({ catalog });
  const router = getRouter();
  const missing = catalog.types.filter((type) => !router.catalog.has(type));
  if (missing.length > 0) {
    throw new DaemonOptionsError(
      `HandlerBase(${String(daemon)})`,
      "router",
      `a router whose catalog has the daemon's event types (the process-wide router's lacks ${missing.join(", ")}); ` +
        "pass the router explicitly, or create the process-wide router over this catalog",
      "the process-wide router",
    );
  }
  return router as unknown as Router<C>;
}

/**
 * The fields of `options` whose value is not `undefined`, so they do not override defaults.
 * @internal shared with the daemon manager, not exported by the package
 */
export function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

/** Whether `promise` settled within `ms`. */
async function withTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
