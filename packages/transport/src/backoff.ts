import { MAX_TIMER_MS, timerDelay } from "./timers";

/**
 * Exponential backoff with jitter, shared by the router's retry middleware and every transport
 * so in-process and durable retries space out the same way.
 */
export interface BackoffOptions {
  /** Delay before the first retry. @defaultValue 100 */
  readonly initialMs?: number;
  /** Upper bound of any delay. @defaultValue 30_000 */
  readonly maxMs?: number;
  /** Growth factor per attempt. @defaultValue 2 */
  readonly multiplier?: number;
  /** Random spread as a fraction of the delay (0.2 = ±20 %). @defaultValue 0.2 */
  readonly jitter?: number;
}

/** The defaults of {@link BackoffOptions}. */
export const defaultBackoff: Required<BackoffOptions> = Object.freeze({
  initialMs: 100,
  maxMs: 30_000,
  multiplier: 2,
  jitter: 0.2,
});

/**
 * The delay before retry number `attempt` (1 = the first retry):
 * `min(maxMs, initialMs * multiplier^(attempt-1))`, spread by ±jitter.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  // A field given as `undefined` keeps its default (spread as such, it would make the delay NaN).
  const initialMs = options.initialMs ?? defaultBackoff.initialMs;
  const maxMs = options.maxMs ?? defaultBackoff.maxMs;
  const multiplier = options.multiplier ?? defaultBackoff.multiplier;
  const jitter = options.jitter ?? defaultBackoff.jitter;
  const base = Math.min(maxMs, initialMs * multiplier ** Math.max(0, attempt - 1));
  const spread = base * jitter * (random() * 2 - 1);
  return Math.max(0, Math.min(maxMs, Math.round(base + spread)));
}

/**
 * Why `options` is not a usable {@link BackoffOptions}, naming the field, or `undefined` when it
 * is: delays are milliseconds from 0 to 2^31 - 1 (the longest a timer waits), `multiplier` a
 * number > 0, `jitter` a number from 0 to 1. A field left out or `undefined` keeps its default.
 * The one check of every component taking a backoff; each throws its own typed error with it.
 *
 * @example
 * ```ts
 * import { backoffProblem } from "@switchyard/transport";
 * backoffProblem({ jitter: 2 }); // { field: "jitter", value: 2, expected: "a number from 0 to 1" }
 * ```
 */
export function backoffProblem(
  options: BackoffOptions,
):
  | { readonly field: keyof BackoffOptions; readonly value: number; readonly expected: string }
  | undefined {
  const ms = (v: number) => Number.isFinite(v) && v >= 0 && v <= MAX_TIMER_MS;
  const rules = [
    ["initialMs", ms, `a number of ms from 0 to ${MAX_TIMER_MS} (the longest a timer waits)`],
    ["maxMs", ms, `a number of ms from 0 to ${MAX_TIMER_MS} (the longest a timer waits)`],
    ["multiplier", (v: number) => Number.isFinite(v) && v > 0, "a number > 0"],
    ["jitter", (v: number) => v >= 0 && v <= 1, "a number from 0 to 1"],
  ] as const;
  for (const [field, ok, expected] of rules) {
    const value = options[field];
    if (value !== undefined && !(typeof value === "number" && ok(value)))
      return { field, value, expected };
  }
  return undefined;
}

/**
 * Resolve after `ms` (clamped by {@link timerDelay}: a NaN or longer-than-24.8-days wait is the
 * longest a timer takes, not 1 ms), or reject with the signal's reason as soon as it aborts.
 */
export function sleep(
  ms: number,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, timerDelay(ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The reason an aborted signal carries, as an Error. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error
    ? reason
    : new DOMException("The operation was aborted", "AbortError");
}

/**
 * Whether a value returned by user code (a handler, a hook) is a promise or any other thenable to
 * wait for: an object or function whose `then` is a function. Reads `then` once and lets what its
 * getter throws (a hostile object, a revoked proxy) propagate: call it where that counts as the
 * user code failing, as `await` would reject.
 */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/**
 * `promise`, or a rejection with the signal's reason as soon as `signal` aborts (at once when it
 * is aborted already); without a signal, `promise` itself. For waits on something that may not
 * honour a signal (a driver call, a user's hook): the caller stops waiting, and a later rejection
 * of `promise` is handled, not reported as unhandled.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * When a dead letter becomes due for replay (by a replayer such as `@switchyard/dlq`'s retry
 * daemon): `initialMs × 2^replays` after it failed, capped at `maxMs`. A record that keeps failing
 * after replays waits longer each time. Every dead-letter store applies this rule.
 */
export interface DeadLetterBackoff {
  /** The wait before the first replay. @defaultValue 1000 */
  readonly initialMs?: number;
  /** The longest wait. @defaultValue 3_600_000 (1 hour) */
  readonly maxMs?: number;
}

/** The defaults of {@link DeadLetterBackoff}. */
export const defaultDeadLetterBackoff: Required<DeadLetterBackoff> = Object.freeze({
  initialMs: 1000,
  maxMs: 3_600_000,
});

/**
 * What is wrong with a {@link DeadLetterBackoff}, for a store to throw as its own typed options
 * error; `undefined` when each given value is a number of milliseconds ≥ 0.
 */
export function deadLetterBackoffProblem(
  backoff: DeadLetterBackoff | undefined,
): { readonly option: string; readonly value: unknown; readonly expected: string } | undefined {
  for (const key of ["initialMs", "maxMs"] as const) {
    const ms = backoff?.[key];
    if (ms !== undefined && !(Number.isFinite(ms) && ms >= 0))
      return { option: `retryBackoff.${key}`, value: ms, expected: "a number of milliseconds ≥ 0" };
  }
  return undefined;
}

/**
 * How long after its latest failure a dead letter replayed `replays` times so far waits for its
 * next replay: `min(maxMs, initialMs × 2^replays)` (no jitter: a replayer claims due records in
 * order, it does not race other clients).
 *
 * @example
 * ```ts
 * import { deadLetterRetryDelay } from "@switchyard/transport";
 * deadLetterRetryDelay(0); // 1000
 * deadLetterRetryDelay(3, { initialMs: 500, maxMs: 3_000 }); // 3000
 * ```
 */
export function deadLetterRetryDelay(replays: number, backoff: DeadLetterBackoff = {}): number {
  const initialMs = backoff.initialMs ?? defaultDeadLetterBackoff.initialMs;
  const maxMs = backoff.maxMs ?? defaultDeadLetterBackoff.maxMs;
  // A count that is not a number (a hand-edited row) counts as none.
  const doublings = Number.isFinite(replays) ? Math.min(Math.max(0, Math.floor(replays)), 30) : 0;
  return Math.min(maxMs, initialMs * 2 ** doublings);
}
