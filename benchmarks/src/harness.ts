import { Bench } from "tinybench";
import type { Chart } from "./svg";

/** One measured workload. */
export interface Figure {
  readonly group: string;
  readonly name: string;
  /** The median: operations (events, messages) per second unless `unit` says otherwise. */
  readonly value: number;
  /** `ops/s` (default), `ms` or `% CPU`. */
  readonly unit?: "ops/s" | "ms" | "% CPU";
  /** Relative margin of error in % (tinybench), when there is one. */
  readonly rme?: number;
  /** Lowest and highest of the repeated runs, when the figure is a median of runs. */
  readonly range?: readonly [number, number];
  /** tinybench samples (summed over rounds), or repeated runs. */
  readonly samples: number;
  /** Rounds or runs the median is taken over. */
  readonly runs?: number;
  /**
   * Each round's value, in round order (tinybench rows): two rows' values of one round were
   * measured in the same stretch of time, so {@link pairedRatio} of them cancels drift between
   * rounds.
   */
  readonly perRun?: readonly number[];
  readonly note?: string;
  /**
   * Every setting the row ran with (concurrency or outstanding, batch, poll, durability, message
   * size, processes): a ratio is only taken between rows whose settings match, or says why not.
   */
  readonly settings?: string;
}

/** A scaling run: one table (and one chart panel) of a figure against a size. */
export interface Scaling {
  readonly title: string;
  /** The settings every point of the run shares. */
  readonly settings: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly string[])[];
  readonly chart?: Chart;
  /** Where the curve bends, why (or that it is flat). */
  readonly reading?: string;
}

/** A target checked against the figures of one run. */
export interface Target {
  readonly group: string;
  readonly description: string;
  /** `undefined`: not measured (see `detail`). */
  readonly met: boolean | undefined;
  readonly detail: string;
}

/** A ratio between two figures of one run, printed with both sides named. */
export interface Ratio {
  readonly group: string;
  readonly description: string;
  readonly value: number;
}

/** What one benchmark group hands back to `run.ts`. */
export interface GroupResult {
  readonly figures: Figure[];
  readonly targets: Target[];
  readonly ratios?: Ratio[];
  /** How the libraries were configured, for RESULTS.md. */
  readonly settings?: string[];
  /** Workloads not measured in this run, each with its reason. */
  readonly notMeasured?: string[];
  readonly scaling?: Scaling[];
}

export interface RunOptions {
  readonly quick: boolean;
}

/**
 * A share as a percentage for a goal of `goal`: whole, but to a tenth (rounded down) within half a
 * point of the goal, so 0.897 against 0.9 reads "89.7 %", never a "90 %" marked not met.
 */
export function percentNear(share: number, goal: number): string {
  return Math.abs(share - goal) < 0.005
    ? `${(Math.floor(share * 1000) / 10).toFixed(1)} %`
    : `${(share * 100).toFixed(0)} %`;
}

/**
 * Measure tasks that each process `batch` operations; reports operations per second from the
 * mean task time: the operations done over the time they took, so a pause that hits one task in
 * ten (an inline WAL checkpoint, a GC) counts as it does for a user. (The median task time
 * leaves such pauses out: plainjob's single add() read 1.8× its sustained rate that way.) Full mode runs the whole set `rounds` times, rotating the order of the tasks,
 * and reports the median round (with the range of the rounds): on a shared machine the load
 * changes from second to second, and tasks measured one after another would otherwise meet
 * different loads. Warm-up is included; quick mode only checks that every task still runs.
 */
export async function measure(
  group: string,
  tasks: Record<string, () => Promise<void>>,
  batch: number,
  { quick }: RunOptions,
  timing: { readonly timeMs?: number; readonly warmupMs?: number; readonly rounds?: number } = {},
): Promise<Figure[]> {
  const names = Object.keys(tasks);
  const rounds = quick ? 1 : (timing.rounds ?? 3);
  const perRound = new Map<string, { ops: number[]; rme: number; samples: number }>(
    names.map((name) => [name, { ops: [], rme: 0, samples: 0 }]),
  );
  for (let round = 0; round < rounds; round++) {
    const bench = new Bench({
      time: quick ? 50 : (timing.timeMs ?? 500),
      iterations: quick ? 2 : 10,
      warmupTime: quick ? 10 : (timing.warmupMs ?? 100),
      warmupIterations: quick ? 1 : 5,
    });
    const shift = round % names.length;
    for (const name of [...names.slice(shift), ...names.slice(0, shift)])
      bench.add(name, tasks[name]!);
    await bench.run();
    for (const task of bench.tasks) {
      const result = task.result;
      if (!result || result.state !== "completed") {
        throw new Error(
          `benchmark ${group} / ${task.name} failed: ${String(result && "error" in result ? result.error : result?.state)}`,
        );
      }
      const entry = perRound.get(task.name)!;
      entry.ops.push((batch / result.latency.mean) * 1000);
      entry.rme = result.latency.rme;
      entry.samples += result.latency.samplesCount;
    }
  }
  return names.map((name) => {
    const { ops, rme, samples } = perRound.get(name)!;
    return {
      group,
      name,
      value: median(ops),
      ...(ops.length > 1 ? { range: [Math.min(...ops), Math.max(...ops)] as const } : { rme }),
      samples,
      runs: ops.length,
      perRun: ops,
    };
  });
}

export const find = (figures: readonly Figure[], name: string): Figure => {
  const f = figures.find((x) => x.name === name);
  if (!f) throw new Error(`no figure named ${name}`);
  return f;
};

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * The median of per-run ratios `a[i] / b[i]`: two rows measured back to back in each run, so
 * drift in the machine's load between runs cancels out of each ratio (on a shared machine it
 * moved two identical raw NATS rows up to 29 % apart between runs).
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  return median(Array.from({ length: n }, (_, i) => a[i]! / b[i]!));
}

/** Nearest-rank percentile (`p` in 0..1) of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

/** A figure from repeated runs of one bounded measurement: the median and the range. */
export function fromRuns(
  group: string,
  name: string,
  runs: readonly number[],
  extra: { unit?: Figure["unit"]; note?: string; settings?: string } = {},
): Figure {
  return {
    group,
    name,
    value: median(runs),
    range: [Math.min(...runs), Math.max(...runs)],
    samples: runs.length,
    runs: runs.length,
    ...extra,
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Attach the settings string to each figure (by name; a figure not named keeps none). */
export const withSettings = (
  figures: readonly Figure[],
  settings: Readonly<Record<string, string>>,
): Figure[] => figures.map((f) => (settings[f.name] ? { ...f, settings: settings[f.name] } : f));

/** Events per second, rounded for tables: `12.3 k`. */
export const fmtRate = (n: number): string =>
  !Number.isFinite(n)
    ? "—"
    : n >= 1e6
      ? `${(n / 1e6).toFixed(2)} M`
      : n >= 1e3
        ? `${(n / 1e3).toFixed(1)} k`
        : n.toFixed(0);
