import type { AnyCatalog, Envelope } from "@switchyard/event-schema";
import type { DeliveryContext, HandlerContext } from "../context";
import {
  type BackoffOptions,
  HandlerTimeoutError,
  type Logger,
  isThenable,
} from "@switchyard/transport";
import { DeadlineQueue, type Due } from "./deadlines";

/** A handler as middleware see it: any envelope, a context, maybe a promise. */
export type HandlerFn = (event: Envelope, ctx: HandlerContext) => void | Promise<void>;

/**
 * Where a middleware sits in the chain. The router composes middleware in this order,
 * outermost first, whatever order they were passed in (ties keep their given order):
 *
 * 1. `audit` — records the final outcome of each delivery
 * 2. `dead-letter` — catches what failed for good and hands it to the sink
 * 3. `validation` — consume-side payload check (bad payload → unrecoverable)
 * 4. `dedup` — skips events already handled
 * 5. `limit` — concurrency / rate limits
 * 6. `custom` — your own middleware, once per delivery
 * 7. `retry` — re-runs everything below it with backoff
 * 8. `timeout` — bounds one attempt and aborts its signal
 *
 * Deliveries from a transport skip `retry` and `dead-letter`: the transport owns retries there
 * (one retry owner per path).
 */
export type MiddlewareStage =
  "audit" | "dead-letter" | "validation" | "dedup" | "limit" | "custom" | "retry" | "timeout";

/** The stages in chain order, outermost first. */
export const middlewareStages: readonly MiddlewareStage[] = [
  "audit",
  "dead-letter",
  "validation",
  "dedup",
  "limit",
  "custom",
  "retry",
  "timeout",
];

/** What a middleware learns about the subscription it wraps, once, at composition time. */
export interface MiddlewareScope {
  /** The subscription's name. */
  readonly subscription: string;
  /** Where deliveries through this chain come from. */
  readonly origin: "local" | "transport";
  readonly catalog: AnyCatalog;
  readonly logger: Logger;
  /** Transport deliveries: attempts before the transport dead-letters. */
  readonly maxAttempts: number;
  /** Transport deliveries: the backoff the transport applies (`undefined`: the contract's default). */
  readonly backoff: BackoffOptions | undefined;
  /** Counters the router reports in `stats()`. */
  readonly counters: MiddlewareCounters;
}

/** Counters middleware increment. */
export interface MiddlewareCounters {
  retried(): void;
  deduplicated(): void;
  timedOut(): void;
  deadLettered(): void;
}

/**
 * A middleware: a *named* function wrapping the next handler, tagged with its stage. Build one
 * with {@link defineMiddleware}; the factories (`timeout`, `retry`, …) return these.
 *
 * Its handler calls `next` at most once per delivery (once per attempt below `retry`): a second
 * call is refused — it rejects with an `Error` naming the middleware and its stage, is logged, and
 * the rest of the chain and the handler do not run again. Only a `retry`-stage middleware may call
 * `next` again for the same delivery (that is what retrying is).
 */
export interface Middleware {
  (next: HandlerFn, scope: MiddlewareScope): HandlerFn;
  readonly stage: MiddlewareStage;
}

/**
 * Tag a named wrap function with its stage.
 *
 * @example
 * ```ts
 * const logEvery = defineMiddleware("custom", function logEvery(next, scope) {
 *   return (event, ctx) => { scope.logger.info({ id: event.id }, "handling"); return next(event, ctx); };
 * });
 * ```
 */
export function defineMiddleware(
  stage: MiddlewareStage,
  wrap: (next: HandlerFn, scope: MiddlewareScope) => HandlerFn,
): Middleware {
  return Object.assign(wrap, { stage });
}

/** Middleware made by this package's factories: they call `next` once, so go unguarded. */
const builtIn = new WeakSet<Middleware>();

/** {@link defineMiddleware} for this package's own factories (not exported from the package). */
export function defineBuiltInMiddleware(
  stage: MiddlewareStage,
  wrap: (next: HandlerFn, scope: MiddlewareScope) => HandlerFn,
): Middleware {
  const m = defineMiddleware(stage, wrap);
  builtIn.add(m);
  return m;
}

const RETRY_RANK = middlewareStages.indexOf("retry");

/**
 * Compose middleware around a handler in stage order (stable for equal stages). Each middleware
 * not made by this package (other than a `retry` stage) gets a `next` that runs once per delivery
 * (per attempt below `retry`); with no such middleware, the chain is exactly what they returned.
 *
 * The deadline rule for middleware not made by this package (other than a `retry` stage, whose
 * waits are its backoff), when `timeoutMs` is above 0 (the subscription's `timeoutMs`): each
 * stretch of its *own* time — from being called until it calls `next` or settles, and from `next`
 * settling until it settles — may last `timeoutMs`. Time inside `next` is not its own: the
 * `timeout` stage bounds each attempt there, and retries and their backoff run there. Past it, the
 * delivery fails with `HandlerTimeoutError` (counted `timedOut`, `ctx.signal` aborted) as a
 * handler timing out does: the middleware outside it see the failure, the worker slot is freed,
 * and a `next` the middleware calls later is refused (the handler does not run). This package's
 * own middleware are not wrapped: they bound their own waits.
 */
export function composeMiddleware(
  handler: HandlerFn,
  middleware: readonly Middleware[],
  scope: MiddlewareScope,
  skip: ReadonlySet<MiddlewareStage> = new Set(),
  timeoutMs = 0,
): HandlerFn {
  const ordered = middleware
    .map((m, index) => {
      // A plain function (or anything else) has no stage: it would land outside every stage.
      const rank = typeof m === "function" ? middlewareStages.indexOf(m.stage) : -1;
      if (rank === -1)
        throw new TypeError(
          `middleware[${index}] (${describe(m)}) is not a middleware: make it with defineMiddleware(stage, wrap), stage one of ${middlewareStages.join(", ")}`,
        );
      return { m, index, rank };
    })
    .filter(({ m }) => !skip.has(m.stage))
    .sort((a, b) => a.rank - b.rank || a.index - b.index);
  let next = handler;
  for (let i = ordered.length - 1; i >= 0; i--) {
    const { m, rank } = ordered[i]!;
    const trusted = builtIn.has(m) || m.stage === "retry";
    const given = trusted ? next : once(next, m, rank > RETRY_RANK, scope);
    next = trusted || timeoutMs === 0 ? wrap(m, given, scope) : bounded(m, given, timeoutMs, scope);
  }
  return next;
}

/** `m` around `next`, refusing a wrap that returns no handler. */
function wrap(m: Middleware, next: HandlerFn, scope: MiddlewareScope): HandlerFn {
  const handler = m(next, scope);
  if (typeof handler !== "function")
    throw new TypeError(
      `middleware ${describe(m)} (stage ${m.stage}) returned ${handler === null ? "null" : typeof handler} instead of a handler function (event, ctx) => …`,
    );
  return handler;
}

/** One call of a bounded middleware's handler (see {@link composeMiddleware}). */
interface Run {
  readonly ctx: HandlerContext;
  /** The stretch of its own time running now: none while inside `next`, or before it returned. */
  stretch: Stretch | undefined;
  /** Calls of `next` not settled yet. */
  inNext: number;
  /** Returned a promise: from then on, time outside `next` is its own. */
  pending: boolean;
  /** Settled, or timed out. */
  over: boolean;
  timedOut: HandlerTimeoutError | undefined;
  reject: ((error: unknown) => void) | undefined;
}

interface Stretch extends Due {
  readonly run: Run;
}

/**
 * `m` around `next`, its own time bounded by `timeoutMs` per stretch (the rule is stated on
 * {@link composeMiddleware}). One timer per middleware serves every delivery (`DeadlineQueue`).
 */
function bounded(
  m: Middleware,
  next: HandlerFn,
  timeoutMs: number,
  scope: MiddlewareScope,
): HandlerFn {
  const runs = new WeakMap<object, Run>();
  const deadlines = new DeadlineQueue<Stretch>(({ run }) => {
    if (run.over) return;
    run.over = true;
    run.stretch = undefined;
    const error = new HandlerTimeoutError(scope.subscription, timeoutMs);
    run.timedOut = error;
    scope.counters.timedOut();
    (run.ctx as DeliveryContext).abort(error);
    run.reject?.(error);
  });
  const own = (run: Run) => {
    const stretch: Stretch = { deadline: performance.now() + timeoutMs, settled: false, run };
    run.stretch = stretch;
    deadlines.add(stretch);
  };
  const stop = (run: Run) => {
    if (run.stretch === undefined) return;
    run.stretch.settled = true;
    run.stretch = undefined;
  };
  const back = (run: Run) => {
    if (--run.inNext === 0 && run.pending && !run.over) own(run);
  };
  const handler = wrap(
    m,
    (event, ctx) => {
      const run = runs.get(ctx);
      if (run === undefined) return next(event, ctx); // a context of its own making
      if (run.timedOut !== undefined) {
        // The delivery already failed with the timeout: its handler must not run after that.
        const refused = Promise.reject(run.timedOut);
        refused.catch(() => {});
        return refused;
      }
      run.inNext++;
      stop(run);
      let result: void | Promise<void>;
      try {
        result = next(event, ctx);
      } catch (error) {
        back(run);
        throw error;
      }
      if (isThenable(result)) {
        const done = () => back(run);
        void Promise.resolve(result).then(done, done);
      } else back(run);
      return result;
    },
    scope,
  );
  return (event, ctx) => {
    const run: Run = {
      ctx,
      stretch: undefined,
      inNext: 0,
      pending: false,
      over: false,
      timedOut: undefined,
      reject: undefined,
    };
    runs.set(ctx, run);
    const result = handler(event, ctx);
    if (!isThenable(result)) {
      run.over = true;
      return result;
    }
    run.pending = true;
    return new Promise<void>((resolve, reject) => {
      run.reject = reject;
      if (run.inNext === 0) own(run);
      Promise.resolve(result).then(
        () => {
          if (run.over) return;
          run.over = true;
          stop(run);
          resolve();
        },
        (error: unknown) => {
          if (run.over) return;
          run.over = true;
          stop(run);
          reject(error);
        },
      );
    });
  };
}

/**
 * `next` as a middleware sees it: a second call for the same delivery (or the same attempt, for a
 * stage below `retry`, which re-runs it) is refused instead of running the handler again.
 */
function once(
  next: HandlerFn,
  m: Middleware,
  perAttempt: boolean,
  scope: MiddlewareScope,
): HandlerFn {
  const called = new WeakMap<object, number>();
  return (event, ctx) => {
    const attempt = perAttempt ? ctx.attempt : 0;
    if (called.get(ctx) !== attempt) {
      called.set(ctx, attempt);
      return next(event, ctx);
    }
    const error = new Error(
      `middleware ${describe(m)} (stage ${m.stage}) called next() a second time for ${event.type} ${event.id} in ${scope.subscription}: next runs the handler once per delivery${perAttempt ? " attempt" : ""}; the handler was not run again`,
    );
    scope.logger.error(
      {
        subscription: scope.subscription,
        eventType: event.type,
        eventId: event.id,
        stage: m.stage,
      },
      error.message,
    );
    const refused = Promise.reject(error);
    refused.catch(() => {}); // a middleware ignoring it must not crash the process: it is logged
    return refused;
  };
}

function describe(m: unknown): string {
  if (typeof m === "function") return m.name ? JSON.stringify(m.name) : "an anonymous function";
  return m === null ? "null" : typeof m;
}
