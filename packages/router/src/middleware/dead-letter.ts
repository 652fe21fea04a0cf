import { type DeadLetterSink, deadLetterRecord } from "@switchyard/transport";
import type { DeliveryContext } from "../context";
import { traceIdOf } from "../trace";
import { checkTimeoutMs } from "./timeout";
import { type Middleware, defineBuiltInMiddleware } from "./types";

/** Options of {@link deadLetter}. */
export interface DeadLetterOptions {
  /** Where failed deliveries go (e.g. `@switchyard/dlq`'s store). */
  readonly sink: DeadLetterSink;
  /**
   * Longest the sink may take to store one record, in ms, from `0` (no bound) to `MAX_TIMER_MS`.
   * A sink that does not answer in time counts as failed: the delivery fails with
   * its own error and frees its worker, instead of holding the subscription forever.
   * @defaultValue 30_000
   */
  readonly timeoutMs?: number;
}

/**
 * Hand in-process deliveries that failed for good (after the retry middleware gave up, or at once
 * for `UnrecoverableError`) to a dead-letter sink, with reason, attempts and the last error. The
 * failure is then counted as dead-lettered rather than thrown. If the sink itself fails — throws,
 * rejects, or does not answer within `timeoutMs` — the original error is thrown so
 * the failure is still counted and logged.
 */
export function deadLetter(options: DeadLetterOptions): Middleware {
  const { sink } = options;
  if (typeof sink?.deadLetter !== "function")
    throw new TypeError(
      "deadLetter: sink must be a DeadLetterSink, an object with a deadLetter(record) method",
    );
  const timeoutMs = checkTimeoutMs("deadLetter: timeoutMs", options.timeoutMs ?? 30_000);
  return defineBuiltInMiddleware("dead-letter", function deadLetter(next, scope) {
    return async (event, context) => {
      const ctx = context as DeliveryContext;
      try {
        await next(event, ctx);
      } catch (error) {
        let timer: NodeJS.Timeout | undefined;
        try {
          const record = deadLetterRecord({
            envelope: event,
            subscriber: scope.subscription,
            attempts: ctx.attempt,
            error,
            origin: "router",
          });
          let stored = Promise.resolve(sink.deadLetter(record));
          if (timeoutMs > 0)
            stored = Promise.race([
              stored,
              new Promise<never>((_, reject) => {
                timer = setTimeout(
                  () =>
                    reject(new Error(`the dead-letter sink did not answer within ${timeoutMs} ms`)),
                  timeoutMs,
                );
                timer.unref();
              }),
            ]);
          await stored;
        } catch (sinkError) {
          scope.logger.error(
            {
              err: sinkError,
              eventType: event.type,
              eventId: event.id,
              subscription: scope.subscription,
              traceId: traceIdOf(event.traceparent),
            },
            `dead-letter sink failed for ${event.type}; the delivery is reported as failed`,
          );
          throw error;
        } finally {
          clearTimeout(timer);
        }
        ctx.outcome = "dead_lettered";
        scope.counters.deadLettered();
      }
    };
  });
}
