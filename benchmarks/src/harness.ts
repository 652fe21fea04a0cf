import { Bench } from "tinybench";

/** One measured workload. */
export interface Figure {
  readonly group: string;
  readonly name: string;
  /** Operations (events, messages) per second. */
  readonly opsPerSec: number;
  /** Relative margin of error in %. */
  readonly rme: number;
  readonly samples: number;
  readonly note?: string;
}

/** A target checked against the figures of one run. */
export interface Target {
  readonly group: string;
  readonly description: string;
  readonly met: boolean;
  readonly detail: string;
}

export interface RunOptions {
  readonly quick: boolean;
}

/**
 * Measure tasks that each process `batch` operations; reports operations per second. Warm-up is
 * included; quick mode only checks that every task still runs.
 */
export async function measure(
  group: string,
  tasks: Record<string, () => Promise<void>>,
  batch: number,
  { quick }: RunOptions,
): Promise<Figure[]> {
  const bench = new Bench({
    time: quick ? 50 : 1500,
    iterations: quick ? 2 : 10,
    warmupTime: quick ? 10 : 300,
    warmupIterations: quick ? 1 : 5,
  });
  for (const [name, fn] of Object.entries(tasks)) bench.add(name, fn);
  await bench.run();
  return bench.tasks.map((task) => {
    const result = task.result;
    if (!result || result.state !== "completed") {
      throw new Error(
        `benchmark ${group} / ${task.name} failed: ${String(result && "error" in result ? result.error : result?.state)}`,
      );
    }
    const meanMs = result.latency.mean;
    return {
      group,
      name: task.name,
      opsPerSec: (batch / meanMs) * 1000,
      rme: result.latency.rme,
      samples: result.latency.samplesCount,
    };
  });
}

export const find = (figures: readonly Figure[], name: string): Figure => {
  const f = figures.find((x) => x.name === name);
  if (!f) throw new Error(`no figure named ${name}`);
  return f;
};
