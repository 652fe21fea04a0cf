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
  const { initialMs, maxMs, multiplier, jitter } = { ...defaultBackoff, ...options };
  const base = Math.min(maxMs, initialMs * multiplier ** Math.max(0, attempt - 1));
  const spread = base * jitter * (random() * 2 - 1);
  return Math.max(0, Math.min(maxMs, Math.round(base + spread)));
}

/**
 * Resolve after `ms`, or reject with the signal's reason as soon as it aborts.
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
    }, ms);
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
