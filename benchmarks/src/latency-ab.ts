// `pnpm -F @switchyard/benchmarks latency-ab`: the latency rows of `pnpm bench` alone, with the
// variants alternating run by run so they share the machine's weather — for before/after figures
// of a change to the wake-up path (build, run, change, build, run) or of a transport option.
//   RUNS=6 VARIANTS='switchyard,raw,switchyard:{"prefetchMs":0}' pnpm -F @switchyard/benchmarks latency-ab
// A variant is a library (`switchyard`, `raw`, `plainjob`, `liteque`), for switchyard optionally
// followed by `:` and its `sqliteTransport()` options as JSON. Writes nothing.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Lib } from "./sqlite-libs";
import { latencyOnce } from "./sqlite";

const runs = Number(process.env.RUNS ?? 4);
const variants = (process.env.VARIANTS ?? "switchyard,raw").split(/,(?![^{]*})/);
const dir = mkdtempSync(join(tmpdir(), "latency-ab-"));
const at = (xs: readonly number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
const results = new Map<string, { p50: number[]; p99: number[]; late: number[]; cpu: number[] }>();
try {
  let n = 0;
  for (let r = 0; r < runs; r++) {
    for (const variant of variants) {
      const colon = variant.indexOf(":");
      const lib = (colon < 0 ? variant : variant.slice(0, colon)) as Lib;
      const transport =
        colon < 0 ? undefined : (JSON.parse(variant.slice(colon + 1)) as Record<string, unknown>);
      const pollMs = lib === "plainjob" || lib === "liteque" ? 10 : 0;
      const run = await latencyOnce(join(dir, `l${n++}.db`), lib, pollMs, false, {
        ...(transport ? { transport } : {}),
      });
      const s = results.get(variant) ?? { p50: [], p99: [], late: [], cpu: [] };
      results.set(variant, s);
      s.p50.push(at(run.latencies, 0.5));
      s.p99.push(at(run.latencies, 0.99));
      s.late.push(run.latencies.filter((ms) => ms > 2).length);
      s.cpu.push(run.cpu);
      console.log(
        `${variant} run ${r + 1}: p50 ${s.p50.at(-1)!.toFixed(3)} ms, p99 ${s.p99.at(-1)!.toFixed(3)} ms, ` +
          `${s.late.at(-1)} of ${run.latencies.length} over 2 ms, idle CPU ${run.cpu.toFixed(2)} %`,
      );
    }
  }
  console.log("\nmedians of the runs:");
  for (const [variant, s] of results)
    console.log(
      `${variant}: p50 ${at(s.p50, 0.5).toFixed(3)} ms, p99 ${at(s.p99, 0.5).toFixed(3)} ms ` +
        `(runs ${s.p99.map((v) => v.toFixed(2)).join(", ")}), over 2 ms ${s.late.join(", ")}, idle CPU ${at(s.cpu, 0.5).toFixed(2)} %`,
    );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
