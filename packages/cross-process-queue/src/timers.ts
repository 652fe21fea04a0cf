/**
 * The longest delay Node's timers take: 2^31 − 1 ms (about 24.8 days). A longer one — or NaN —
 * fires after 1 ms instead, with a `TimeoutOverflowWarning`: armed again and again from a far-future
 * time in the file, it would spin.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * A delay safe to give `setTimeout`/`setInterval`: `ms` rounded up and clamped to
 * [0, {@link MAX_TIMER_MS}]. A timer clamped this way fires early and finds nothing to do, then
 * arms itself again: at most once every 24.8 days. NaN (a time that is not a number, e.g. a row
 * written by another program) is treated as "not in sight": the longest delay.
 */
export function timerDelay(ms: number): number {
  if (Number.isNaN(ms) || ms >= MAX_TIMER_MS) return MAX_TIMER_MS;
  return ms > 0 ? Math.ceil(ms) : 0;
}
