import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";

/** Event-loop delay over the last window or two, in ms. */
export interface LagReading {
  /** Longest delay seen. A handler that blocks the loop for 300 ms shows up here as ~300. */
  readonly maxMs: number;
  readonly meanMs: number;
  readonly p99Ms: number;
}

/**
 * Watches event-loop delay with `perf_hooks.monitorEventLoopDelay`. Readings cover the current
 * window and the one before, so a spike stays visible for at least one full window after it
 * happened. The histogram's timer does not keep the process alive.
 */
export class LagMonitor {
  #histogram: IntervalHistogram | undefined;
  #rotation: NodeJS.Timeout | undefined;
  #previous: LagReading = { maxMs: 0, meanMs: 0, p99Ms: 0 };

  constructor(
    private readonly windowMs: number,
    private readonly resolutionMs = 10,
  ) {}

  start(): void {
    if (this.#histogram) return;
    this.#histogram = monitorEventLoopDelay({ resolution: this.resolutionMs });
    this.#histogram.enable();
    this.#previous = { maxMs: 0, meanMs: 0, p99Ms: 0 };
    this.#rotation = setInterval(() => {
      this.#previous = this.#current();
      this.#histogram?.reset();
    }, this.windowMs);
    this.#rotation.unref();
  }

  stop(): void {
    clearInterval(this.#rotation);
    this.#rotation = undefined;
    this.#histogram?.disable();
    this.#histogram = undefined;
  }

  reading(): LagReading {
    const current = this.#current();
    const previous = this.#previous;
    return {
      maxMs: Math.max(current.maxMs, previous.maxMs),
      meanMs: Math.max(current.meanMs, previous.meanMs),
      p99Ms: Math.max(current.p99Ms, previous.p99Ms),
    };
  }

  #current(): LagReading {
    const h = this.#histogram;
    // The histogram reports the delay beyond its own resolution, in ns; an empty one reports NaN.
    if (!h || h.count === 0) return { maxMs: 0, meanMs: 0, p99Ms: 0 };
    const ms = (ns: number) =>
      Number.isFinite(ns) ? Math.max(0, Math.round((ns / 1e6 - this.resolutionMs) * 10) / 10) : 0;
    return { maxMs: ms(h.max), meanMs: ms(h.mean), p99Ms: ms(h.percentile(99)) };
  }
}
