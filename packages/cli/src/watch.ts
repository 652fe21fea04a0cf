import { formatDuration, parseDuration } from "./duration";
import { sleep as longSleep } from "./timers";

/** How often `--watch` without a value redraws. */
export const DEFAULT_WATCH_INTERVAL_MS = 2000;

/**
 * The interval of a `--watch [interval]` option as commander leaves it: `undefined` (no
 * `--watch`: run once), `true` (`--watch` alone: {@link DEFAULT_WATCH_INTERVAL_MS}) or the text
 * given (`--watch 5s`; a bare number is seconds, like `watch -n 5`).
 *
 * @throws CliError `USAGE` naming `--watch` when the text is not a duration.
 */
export function watchIntervalOf(value: string | boolean | undefined): number | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return DEFAULT_WATCH_INTERVAL_MS;
  return parseDuration(value, "--watch");
}

/** The help line of a `--watch [interval]` option. */
export const WATCH_OPTION_HELP = `redraw every interval until Ctrl-C, like watch(1) (default: ${formatDuration(DEFAULT_WATCH_INTERVAL_MS)}; e.g. 10s)`;

/** What a render function gets on each run. */
export interface WatchFrame {
  /** Collects this run's output; it is shown when the run ends, so a redraw does not flicker. */
  readonly write: (text: string) => void;
  /** Aborted when watching stops (Ctrl-C, the caller's signal). */
  readonly signal: AbortSignal;
  /** 1 for the first run. */
  readonly run: number;
}

/** Options of {@link watch}. */
export interface WatchOptions {
  /** Where frames go. @defaultValue `process.stdout.write` */
  readonly write?: (text: string) => void;
  /**
   * Redraw in place (clear the screen, then draw) instead of appending frames under a separator.
   * @defaultValue `process.stdout.isTTY`
   */
  readonly tty?: boolean;
  /** Time from the end of one run to the start of the next. @defaultValue 2000 */
  readonly intervalMs?: number;
  /** Stops watching (the CLI runtime's signal). Ctrl-C stops it too, see {@link WatchOptions.sigint}. */
  readonly signal?: AbortSignal;
  /** Stop on SIGINT (the listener is removed when watching ends). @defaultValue true */
  readonly sigint?: boolean;
  /** The title of each frame, e.g. the command line. @defaultValue none */
  readonly title?: string;
  /**
   * Frame each run (clear and title on a TTY, a separator elsewhere). `false` writes each run's
   * output as it is, one after another: for `--json`, a stream of one document per run.
   * @defaultValue true
   */
  readonly framed?: boolean;
  /** Stop after this many runs (tests, `--count`); at least 1. @defaultValue Infinity */
  readonly maxRuns?: number;
  /** The clock for the frame title. @defaultValue `() => new Date()` */
  readonly now?: () => Date;
  /** Waits between runs; rejects or resolves early when `signal` aborts. @defaultValue `sleep` of `./timers` (any length) */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<unknown>;
}

/** Clear the screen and the scrollback, cursor home: what `watch(1)` and `clear` do. */
export const CLEAR_SCREEN = "\u001b[H\u001b[2J\u001b[3J";

/**
 * Run `render` again and again, `intervalMs` after each run ends, until the signal aborts,
 * Ctrl-C is pressed or `maxRuns` runs are done; resolve to the last run's result (a command's
 * exit code). On a TTY each run replaces the screen under a title line ("Every 2s: …  <time>");
 * elsewhere (a pipe, a log file) runs are appended, each under a `--- <time>` separator, so the
 * history stays readable. A run's output is buffered and written at once, so a slow query does not
 * leave a half-drawn screen. A render that throws ends the watch with that error (a usage error
 * should not repeat every two seconds).
 *
 * @example
 * ```ts
 * // not runnable
 * const code = await watch(
 *   async ({ write }) => renderHealth(new Output(json, write, runtime.stderr)),
 *   { intervalMs: watchIntervalOf(opts.watch), signal: runtime.signal, title: "switchyard health" },
 * );
 * ```
 */
export async function watch<T>(
  render: (frame: WatchFrame) => T | Promise<T>,
  options: WatchOptions = {},
): Promise<T> {
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const tty = options.tty ?? process.stdout.isTTY === true;
  const intervalMs = options.intervalMs ?? DEFAULT_WATCH_INTERVAL_MS;
  const maxRuns = Math.max(1, options.maxRuns ?? Infinity);
  const framed = options.framed ?? true;
  const now = options.now ?? (() => new Date());
  // Any interval: `--watch 30d` waits 30 days, not the 1 ms an overflowing setTimeout would.
  const sleep = options.sleep ?? longSleep;
  if (!(intervalMs > 0)) throw new RangeError(`intervalMs must be more than 0, got ${intervalMs}`);

  const frameHead = (run: number) => {
    const at = now()
      .toISOString()
      .replace(/\.\d{3}Z$/, "Z");
    if (tty)
      return (
        `${CLEAR_SCREEN}Every ${formatDuration(intervalMs)}: ${options.title ?? ""}`.trimEnd() +
        `  ${at}\n\n`
      );
    return `${run > 1 ? "\n" : ""}--- ${at}${options.title ? `  ${options.title}` : ""}\n`;
  };

  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) stop.abort();
  const sigint = options.sigint ?? true;
  if (sigint) process.once("SIGINT", onAbort);
  try {
    let result!: T;
    // The first run always happens (and is shown), so there is always a result to return.
    for (let run = 1; run <= maxRuns; run++) {
      const chunks: string[] = [];
      const value = await render({
        write: (text) => void chunks.push(text),
        signal: stop.signal,
        run,
      });
      // Stopped during a later run: its output may be partial; the last whole frame stays.
      if (run > 1 && stop.signal.aborted) break;
      result = value;
      write(framed ? frameHead(run) + chunks.join("") : chunks.join(""));
      if (run === maxRuns || stop.signal.aborted) break;
      await sleep(intervalMs, stop.signal).catch(() => undefined);
      if (stop.signal.aborted) break;
    }
    return result;
  } finally {
    if (sigint) process.removeListener("SIGINT", onAbort);
    options.signal?.removeEventListener("abort", onAbort);
  }
}
