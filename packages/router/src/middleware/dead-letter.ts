import { type DeadLetterSink, deadLetterRecord } from "@switchyard/transport";
import type { DeliveryContext } from "../context";
import { traceIdOf } from "../trace";
import { type Middleware, defineMiddleware } from "./types";

/** Options of {@link deadLetter}. */
export interface DeadLetterOptions {
  /** Where failed deliveries go (e.g. `@switchyard/dlq`'s store). */
  readonly sink: DeadLetterSink;
}

/**
 * Hand in-process deliveries that failed for good (after the retry middleware gave up, or at once
 * for `UnrecoverableError`) to a dead-letter sink, with reason, attempts and the last error. The
 * failure is then counted as dead-lettered rather than thrown. If the sink itself fails, the
 * original error is thrown so the failure is still counted and logged.
 */
export function deadLetter(options: DeadLetterOptions): Middleware {
  const { sink } = options;
  return defineMiddleware("dead-letter", function deadLetter(next, scope) {
    return async (event, context) => {
      const ctx = context as DeliveryContext;
      try {
        await next(event, ctx);
      } catch (error) {
        try {
          await sink.deadLetter(
            deadLetterRecord({
              envelope: event,
              subscriber: scope.subscription,
              attempts: ctx.attempt,
              error,
              origin: "router",
            }),
          );
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
        }
        ctx.outcome = "dead_lettered";
        scope.counters.deadLettered();
      }
    };
  });
}
