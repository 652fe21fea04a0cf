import type { AnyCatalog, Envelope } from "@switchyard/event-schema";
import type { HandlerContext } from "../context";
import type { BackoffOptions, Logger } from "@switchyard/transport";

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

/** Compose middleware around a handler in stage order (stable for equal stages). */
export function composeMiddleware(
  handler: HandlerFn,
  middleware: readonly Middleware[],
  scope: MiddlewareScope,
  skip: ReadonlySet<MiddlewareStage> = new Set(),
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
    const m = ordered[i]!.m;
    next = m(next, scope);
    if (typeof next !== "function")
      throw new TypeError(
        `middleware ${describe(m)} (stage ${m.stage}) returned ${next === null ? "null" : typeof next} instead of a handler function (event, ctx) => …`,
      );
  }
  return next;
}

function describe(m: unknown): string {
  if (typeof m === "function") return m.name ? JSON.stringify(m.name) : "an anonymous function";
  return m === null ? "null" : typeof m;
}
