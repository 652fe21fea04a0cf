import type { DeliveryContext } from "../context";
import { HandlerTimeoutError, MAX_TIMER_MS } from "@switchyard/transport";
import { DeadlineQueue } from "./deadlines";
import { type HandlerFn, type Middleware, defineBuiltInMiddleware } from "./types";

/** Options of {@link timeout}. */
export interface TimeoutOptions {
  /** Longest one attempt may run, in ms. `0` disables the timeout. */
  readonly ms: number;
}

interface Pending {
  readonly deadline: number;
  readonly ctx: DeliveryContext;
  reject: ((error: unknown) => void) | undefined;
  settled: boolean;
}

/**
 * The one rule for a handler timeout, here and in `subscribe({ timeoutMs })`: a number of ms from
 * 0 (no timeout) to {@link MAX_TIMER_MS}. Node fires a longer timer (or a NaN one) after 1 ms, so
 * the deadline timer would wake every millisecond for the whole delivery. Returns `ms`.
 */
export function checkTimeoutMs(where: string, ms: number): number {
  if (!(typeof ms === "number" && ms >= 0 && ms <= MAX_TIMER_MS))
    throw new RangeError(
      `${where} must be a number of ms from 0 (no timeout) to ${MAX_TIMER_MS} (the longest a timer waits), got ${String(ms)}`,
    );
  return ms;
}

/**
 * Bound each attempt: past `ms` the attempt's `ctx.signal` is aborted with a
 * {@link HandlerTimeoutError} and the attempt fails with it (a retry, if configured, follows).
 * A synchronous handler cannot be interrupted; one that blocks the event loop shows up in health.
 *
 * One timer serves a whole subscription: deadlines of one subscription come in start order, so a
 * FIFO of pending attempts and a single timer armed for the oldest replace a timer per event.
 */
export function timeout(options: TimeoutOptions): Middleware {
  const ms = checkTimeoutMs("timeout: ms", options.ms);
  return defineBuiltInMiddleware("timeout", function timeout(next, scope): HandlerFn {
    if (ms === 0) return next;
    const deadlines = new DeadlineQueue<Pending>((pending) => {
      const error = new HandlerTimeoutError(scope.subscription, ms);
      scope.counters.timedOut();
      pending.ctx.abort(error);
      pending.reject?.(error);
    });

    return (event, ctx) => {
      const result = next(event, ctx);
      if (!result || typeof result.then !== "function") return result;
      const pending: Pending = {
        deadline: performance.now() + ms,
        ctx: ctx as DeliveryContext,
        reject: undefined,
        settled: false,
      };
      deadlines.add(pending);
      return new Promise<void>((resolve, reject) => {
        pending.reject = reject;
        result.then(
          () => {
            if (pending.settled) return;
            pending.settled = true;
            resolve();
          },
          (error: unknown) => {
            if (pending.settled) return;
            pending.settled = true;
            reject(error);
          },
        );
      });
    };
  });
}
