import { timerDelay } from "@switchyard/transport";

/** A timer {@link longTimeout} armed; `clear()` cancels it. */
export interface LongTimer {
  clear(): void;
}

/**
 * Call `fire` once `ms` have passed, however long that is. Node's `setTimeout` takes at most
 * 2^31 − 1 ms (about 24.8 days): a longer delay fires after 1 ms, with a `TimeoutOverflowWarning`.
 * This arms timers no longer than `timerDelay` allows (the transports' rule) and re-arms until the
 * time has come, so `--for 30d` follows for 30 days and `--watch 30d` redraws every 30 days.
 */
export function longTimeout(fire: () => void, ms: number): LongTimer {
  const until = Date.now() + ms;
  let timer: NodeJS.Timeout;
  const arm = (): void => {
    const left = until - Date.now();
    if (left <= 0) fire();
    else timer = setTimeout(arm, timerDelay(left));
  };
  timer = setTimeout(arm, timerDelay(ms));
  return { clear: () => clearTimeout(timer) };
}

/**
 * Wait `ms` (any length, see {@link longTimeout}); resolves early, without an error, when `signal`
 * aborts (at once when it is aborted already).
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      timer.clear();
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = longTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Resolve when the command should stop serving: Ctrl-C (SIGINT), SIGTERM, or `signal` aborting —
 * at once when it is aborted already (an embedding program that stopped before the server
 * started). Its listeners are removed when it resolves, so a program running several commands
 * keeps none of them, and Ctrl-C keeps its default meaning once the command is done.
 */
export function untilStopped(signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const stop = (): void => {
      process.removeListener("SIGINT", stop);
      process.removeListener("SIGTERM", stop);
      signal?.removeEventListener("abort", stop);
      resolve();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    signal?.addEventListener("abort", stop, { once: true });
  });
}
