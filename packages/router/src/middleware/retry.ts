import { type BackoffOptions, backoffDelay, isUnrecoverable, sleep } from "@switchyard/transport";
import type { DeliveryContext } from "../context";
import { type Middleware, defineMiddleware } from "./types";

/** Options of {@link retry}. */
export interface RetryOptions {
  /** Total attempts, the first one included. @defaultValue 3 */
  readonly attempts?: number;
  /** Delay between attempts. @defaultValue {@link defaultBackoff} */
  readonly backoff?: BackoffOptions;
  /**
   * Decide per error whether another attempt can help. `UnrecoverableError` and
   * `EventValidationError` are never retried, whatever this returns. @defaultValue always true
   */
  readonly shouldRetry?: (error: unknown, attempt: number) => boolean;
}

/**
 * Re-run a failed in-process delivery with exponential backoff and jitter. The in-process retry
 * owner: deliveries from a transport skip it (the transport retries those).
 *
 * @example
 * ```ts
 * router.subscribe("TRAINING_COMPLETED", handler, { middleware: [retry({ attempts: 5, backoff: { initialMs: 50 } })] });
 * ```
 */
export function retry(options: RetryOptions = {}): Middleware {
  const attempts = options.attempts ?? 3;
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new RangeError(`retry: attempts must be an integer ≥ 1, got ${attempts}`);
  }
  const shouldRetry = options.shouldRetry ?? (() => true);
  return defineMiddleware("retry", function retry(next, scope) {
    if (attempts === 1) return next;
    return async (event, context) => {
      const ctx = context as DeliveryContext;
      for (;;) {
        try {
          await next(event, ctx);
          return;
        } catch (error) {
          if (
            isUnrecoverable(error) ||
            ctx.attempt >= attempts ||
            ctx.shutdownSignal.aborted ||
            !shouldRetry(error, ctx.attempt)
          ) {
            throw error;
          }
          scope.counters.retried();
          scope.logger.debug(
            {
              subscription: scope.subscription,
              eventId: event.id,
              attempt: ctx.attempt,
              err: error,
            },
            `retrying ${event.type} in ${scope.subscription}`,
          );
          await sleep(backoffDelay(ctx.attempt, options.backoff), {
            signal: ctx.shutdownSignal,
          }).catch(() => {
            throw error; // shut down while waiting: report the handler's error, not the abort
          });
          ctx.nextAttempt();
        }
      }
    };
  });
}
