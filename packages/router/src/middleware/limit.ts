import { sleep, timerDelay } from "@switchyard/transport";
import type { DeliveryContext } from "../context";
import { type Middleware, defineBuiltInMiddleware } from "./types";

/** Options of {@link concurrencyLimit}. */
export interface ConcurrencyLimitOptions {
  /** Most deliveries running at once across every subscription sharing this middleware. */
  readonly max: number;
}

/**
 * Cap how many deliveries run at once across all subscriptions this one instance is installed in
 * (a shared semaphore). Waiting deliveries keep their order.
 */
export function concurrencyLimit(options: ConcurrencyLimitOptions): Middleware {
  const { max } = options;
  if (!Number.isInteger(max) || max < 1)
    throw new RangeError(`concurrencyLimit: max must be an integer ≥ 1, got ${max}`);
  let running = 0;
  const waiting: (() => void)[] = [];
  const release = () => {
    const wake = waiting.shift();
    if (wake) wake();
    else running--;
  };
  return defineBuiltInMiddleware("limit", function concurrencyLimit(next) {
    return async (event, ctx) => {
      if (running < max) running++;
      else await new Promise<void>((resolve) => waiting.push(resolve));
      try {
        await next(event, ctx);
      } finally {
        release();
      }
    };
  });
}

/** Options of {@link rateLimit}. */
export interface RateLimitOptions {
  /** Deliveries started per second, on average. */
  readonly perSecond: number;
  /**
   * Deliveries that may start at once after a quiet period: a number ≥ 1 (with less, no delivery
   * could ever start). @defaultValue perSecond, at least 1
   */
  readonly burst?: number;
}

/**
 * Start at most `perSecond` deliveries per second (token bucket) across every subscription sharing
 * this instance. Waiting honours shutdown.
 */
export function rateLimit(options: RateLimitOptions): Middleware {
  const { perSecond } = options;
  if (!(typeof perSecond === "number" && perSecond > 0))
    throw new RangeError(`rateLimit: perSecond must be > 0, got ${perSecond}`);
  const burst = options.burst ?? Math.max(1, perSecond);
  if (!(typeof burst === "number" && burst >= 1))
    throw new RangeError(`rateLimit: burst must be a number ≥ 1, got ${String(burst)}`);
  let tokens = burst;
  let last = performance.now();
  let queue: Promise<void> = Promise.resolve();
  const take = async (signal: AbortSignal) => {
    for (;;) {
      const now = performance.now();
      tokens = Math.min(burst, tokens + ((now - last) / 1000) * perSecond);
      last = now;
      if (tokens >= 1) {
        tokens -= 1;
        return;
      }
      // Clamped: past the longest timer (a tiny perSecond) Node would fire after 1 ms, a busy loop.
      await sleep(timerDelay(((1 - tokens) / perSecond) * 1000), { signal });
    }
  };
  return defineBuiltInMiddleware("limit", function rateLimit(next) {
    return async (event, ctx) => {
      // Serialise token takers so waiting deliveries start in arrival order.
      const turn = queue.then(() => take((ctx as DeliveryContext).shutdownSignal));
      queue = turn.catch(() => {});
      await turn;
      await next(event, ctx);
    };
  });
}
