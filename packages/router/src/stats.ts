/** Duration percentiles of one handler, in ms, over its most recent deliveries. */
export interface DurationStats {
  /** Deliveries measured in total. */
  readonly count: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/** Keeps the last `size` durations; percentiles are computed when asked, never per event. */
export class DurationWindow {
  #samples: Float64Array;
  #next = 0;
  #count = 0;

  constructor(size = 1024) {
    this.#samples = new Float64Array(size);
  }

  record(ms: number): void {
    this.#samples[this.#next] = ms;
    if (++this.#next === this.#samples.length) this.#next = 0;
    this.#count++;
  }

  summary(): DurationStats {
    const n = Math.min(this.#count, this.#samples.length);
    if (n === 0) return { count: 0, p50: 0, p95: 0, p99: 0, max: 0 };
    const sorted = this.#samples.slice(0, n).sort();
    const at = (q: number) => round(sorted[Math.min(n - 1, Math.floor(q * n))]!);
    return {
      count: this.#count,
      p50: at(0.5),
      p95: at(0.95),
      p99: at(0.99),
      max: round(sorted[n - 1]!),
    };
  }
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;
