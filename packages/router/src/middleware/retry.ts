import {
  type BackoffOptions,
  backoffDelay,
  backoffProblem,
  isUnrecoverable,
  sleep,
} from "@switchyard/transport";
import type { DeliveryContext } from "../context";
import { traceIdOf } from "../trace";
import { type Middleware, defineBuiltInMiddleware } from "./types";

/** Options of {@link retry}. */
export interface RetryOptions {
  /** Total attempts, the first one included. @defaultValue 3 */
  readonly attempts?: number;
  /** Delay between attempts. @defaultValue {@link defaultBackoff} */
  readonly backoff?: BackoffOptions;
  /**
   * Decide per error whether another attempt can help. `UnrecoverableError` and
   * `EventValidationError` are never retried, whatever this returns. If it throws, the delivery
   * is not retried and fails with the handler's error (what it threw is logged). @defaultValue always true
   */
  readonly shouldRetry?: (error: unknown, attempt: number) => boolean;
}

/**
 * Re-run a failed in-process delivery with exponential backoff and jitter. The in-process retry
 * owner: deliveries from a transport skip it (the transport retries those). Each retry is counted
 * in the router's stats and, with OpenTelemetry, recorded as a `retry` settle (with its delay) on
 * the delivery's `process` span and in `switchyard.deliveries.retried`. Unsubscribing (or the
 * router's shutdown deadline) during a backoff ends it: no new attempt starts, and the delivery
 * fails with the handler's last error.
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
  const { backoff } = options;
  if (backoff !== undefined) {
    if (typeof backoff !== "object" || backoff === null)
      throw new RangeError(
        `retry: backoff must be an object of BackoffOptions, got ${String(backoff)}`,
      );
    // A NaN or too long delay would fire after 1 ms (Node's rule): retries would hammer.
    const problem = backoffProblem(backoff);
    if (problem)
      throw new RangeError(
        `retry: backoff.${problem.field} must be ${problem.expected}, got ${String(problem.value)}`,
      );
  }
  if (options.shouldRetry !== undefined && typeof options.shouldRetry !== "function")
    throw new TypeError(
      `retry: shouldRetry must be a function (error, attempt) => boolean, got ${typeof options.shouldRetry}`,
    );
  const shouldRetry = options.shouldRetry ?? (() => true);
  return defineBuiltInMiddleware("retry", function retry(next, scope) {
    if (attempts === 1) return next;
    /** `shouldRetry`; one that throws means no retry: the handler's error is the one reported. */
    const retryable = (error: unknown, attempt: number): boolean => {
      try {
        return shouldRetry(error, attempt);
      } catch (predicateError) {
        scope.logger.error(
          { err: predicateError, subscription: scope.subscription, attempt },
          `retry: shouldRetry threw in ${scope.subscription}; not retrying, the handler's error is reported`,
        );
        return false;
      }
    };
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
            ctx.unsubscribedSignal.aborted ||
            !retryable(error, ctx.attempt)
          ) {
            throw error;
          }
          const delayMs = backoffDelay(ctx.attempt, backoff);
          scope.counters.retried();
          ctx.onRetry?.(delayMs);
          scope.logger.debug(
            {
              subscription: scope.subscription,
              eventType: event.type,
              eventId: event.id,
              attempt: ctx.attempt,
              delayMs,
              traceId: traceIdOf(event.traceparent),
              err: error,
            },
            `retrying ${event.type} in ${scope.subscription} after ${delayMs} ms`,
          );
          // Unsubscribed (or shut down) while waiting: no new attempt; the delivery fails with the
          // handler's error (counted failed, dead-lettered if configured), not with the abort.
          await sleep(delayMs, {
            signal: AbortSignal.any([ctx.shutdownSignal, ctx.unsubscribedSignal]),
          }).catch(() => {
            throw error;
          });
          ctx.nextAttempt();
        }
      }
    };
  });
}
