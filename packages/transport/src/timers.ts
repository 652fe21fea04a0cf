/**
 * The longest delay Node's timers take: 2^31 − 1 ms (about 24.8 days). A longer one — or NaN —
 * fires after 1 ms instead, with a `TimeoutOverflowWarning`: armed again and again from a far-future
 * time, it would spin.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * A delay safe to give `setTimeout`/`setInterval`: `ms` rounded up and clamped to
 * [0, {@link MAX_TIMER_MS}]. A timer clamped this way fires early and finds nothing to do, then
 * arms itself again: at most once every 24.8 days. NaN (a time that is not a number, e.g. a row
 * written by another program) is treated as "not in sight": the longest delay.
 *
 * @example
 * ```ts
 * setTimeout(wake, timerDelay(dueAt - Date.now()));
 * ```
 */
export function timerDelay(ms: number): number {
  if (Number.isNaN(ms) || ms >= MAX_TIMER_MS) return MAX_TIMER_MS;
  return ms > 0 ? Math.ceil(ms) : 0;
}

/**
 * Wait for `idle` — the promise a subscription resolves once its last running handler finished —
 * but no longer than `timeoutMs` (clamped by {@link timerDelay}, so a huge drain timeout waits
 * about 24.8 days instead of firing at once). The rule every transport's `close()` follows before
 * it aborts what still runs and hands those deliveries back. The deadline's timer is cleared
 * either way, so it never holds the process open.
 *
 * @returns `true` when `idle` settled first (nothing runs any more), `false` when the deadline
 * came first (the caller aborts what still runs).
 *
 * @example
 * ```ts
 * const drained = await drainWithin(
 *   new Promise<void>((resolve) => idleWaiters.push(resolve)),
 *   drainTimeoutMs,
 * );
 * if (!drained) for (const run of running) run.abort(new TransportClosedError("my transport"));
 * ```
 */
export async function drainWithin(idle: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      idle.then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timerDelay(timeoutMs));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
