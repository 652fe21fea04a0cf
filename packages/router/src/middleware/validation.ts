import { UnrecoverableError } from "@switchyard/transport";
import { type Middleware, defineBuiltInMiddleware } from "./types";

/**
 * Consume-side validation: check each delivered payload against the catalog before the handler
 * sees it. A bad payload fails with an `UnrecoverableError` (cause: the `EventValidationError`),
 * so it is never retried and is dead-lettered as `invalid_payload`. The router installs this for
 * every delivery that arrives from a transport (another process may run another catalog version).
 */
export function validation(): Middleware {
  return defineBuiltInMiddleware("validation", function validation(next, scope) {
    return (event, ctx) => {
      const result = scope.catalog.safeParse(event.type, event.data);
      if (!result.success) {
        throw new UnrecoverableError(
          `Rejected ${event.type} ${event.id}: ${result.error.message}`,
          {
            cause: result.error,
          },
        );
      }
      return next(result.data === event.data ? event : { ...event, data: result.data }, ctx);
    };
  });
}
