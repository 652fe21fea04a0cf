// `pnpm bench` (full numbers, writes RESULTS.md and scaling.svg) or `pnpm bench --quick` (CI:
// checks every benchmark still runs, writes nothing). `--only <group>` runs one group and writes
// nothing. `--write` writes RESULTS.md and scaling.svg even then, under a banner saying the figures
// are not for comparison (quick mode, or a loaded machine).
import { writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { benchDashboard } from "./dashboard";
import type { Figure, GroupResult, RunOptions } from "./harness";
import { benchNats } from "./nats";
import { describeProbe, machineProbe } from "./probe";
import { benchRouter } from "./router";
import { benchSqlite } from "./sqlite";
import { lineCharts } from "./svg";

const quick = process.argv.includes("--quick");
const onlyAt = process.argv.indexOf("--only");
const only = onlyAt > 0 ? process.argv[onlyAt + 1] : undefined;
const started = Date.now();
const load = (): string => loadavg()[0]!.toFixed(1);
const loadAtStart = load();
const probeAtStart = machineProbe();
/** Above this 1-minute load average the machine is too busy for figures worth comparing. */
const QUIET_LOAD = 3;
/**
 * Runnable processes a group itself adds to the load average at most: the load of everyone else is
 * the load minus these. router: the benchmark process; sqlite: it and up to 4 worker processes;
 * dashboard: it and the browser; nats: it, the NATS server at NATS_URL and the 3 servers of the R3
 * cluster it starts. The 1-minute load average lags (it decays over about a minute), so the
 * heaviest group, nats, runs last: its load would otherwise be read after the next group as
 * someone else's.
 */
const OWN_PROCESSES: Record<string, number> = { router: 1, sqlite: 5, dashboard: 2, nats: 5 };
const loadPerGroup: string[] = [];
const othersLoad: number[] = [];
const results: GroupResult[] = [];

const groups: [string, (o: RunOptions) => Promise<GroupResult>][] = [
  ["router", benchRouter],
  ["sqlite", benchSqlite],
  ["dashboard", benchDashboard],
  ["nats", benchNats],
];
for (const [name, run] of groups) {
  if (only && name !== only) continue;
  const t0 = Date.now();
  console.log(`▶ ${name}${quick ? " (quick)" : ""}`);
  results.push(await run({ quick }));
  const seconds = ((Date.now() - t0) / 1000).toFixed(0);
  loadPerGroup.push(`${name} ${seconds} s (load ${load()} after)`);
  othersLoad.push(Number(load()) - (OWN_PROCESSES[name] ?? 1));
  console.log(`  ${name}: ${seconds} s`);
}

const probeAtEnd = machineProbe();
const figures = results.flatMap((r) => r.figures);
const fmtOps = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0);
const fmt = (f: Figure, n: number) =>
  f.unit === "ms" ? n.toFixed(3) : f.unit === "% CPU" ? n.toFixed(2) : fmtOps(n);
const spread = (f: Figure) =>
  f.range
    ? `${fmt(f, f.range[0])} – ${fmt(f, f.range[1])}`
    : f.rme !== undefined
      ? `± ${f.rme.toFixed(1)} %`
      : "";

const runs = (f: Figure) =>
  f.runs !== undefined && f.runs !== f.samples ? `${f.runs} (${f.samples})` : `${f.samples}`;
const lines: string[] = [];
lines.push("# Benchmark results", "");
// The machine's load without this run's own processes: at the start, and after each group less
// what the group itself runs.
const loaded = Math.max(Number(loadAtStart), ...othersLoad);
if (quick || loaded > QUIET_LOAD) {
  const why = [
    ...(loaded > QUIET_LOAD ? [`figures from a loaded machine (load ${loaded.toFixed(1)})`] : []),
    ...(quick ? ["quick mode (`pnpm bench:quick`: short runs, small backlogs, one run each)"] : []),
  ];
  lines.push(
    `> **${why.join("; ")}, not for comparison.** The layout, the settings and the goals are what ` +
      "this file shows; rerun `pnpm bench` on a quiet machine (load < 3) for figures.",
    "",
  );
}
lines.push(
  `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB · Node ${process.version} · ` +
    `${new Date().toISOString().slice(0, 10)} · \`pnpm bench${quick ? " --quick" : ""}\` (${((Date.now() - started) / 1000).toFixed(0)} s)`,
  "",
  `Machine probe (\`src/probe.ts\`: raw better-sqlite3 one-row commits, WAL + \`synchronous = NORMAL\`, in the temp dir the benchmarks use; 10⁸ iterations of an integer loop): ` +
    `${describeProbe(probeAtStart)} at the start, ${describeProbe(probeAtEnd)} at the end. Runs on days with other probe readings are not comparable figure by figure.`,
  "",
  `Load average (1 min): ${loadAtStart} at the start; ${loadPerGroup.join(", ")}. ` +
    "A shared 2-core machine where other test suites run at the same time: numbers are noisy. " +
    (quick
      ? "Quick mode: one tinybench round and one run per figure (its mean sample time), small backlogs and counts; " +
        "± is tinybench's relative margin of error."
      : "Every figure is a median: tinybench figures are the median of their rounds (the runs column; tasks in rotated order), each " +
        "round's value from its mean sample time (work over the time it took, pauses included); the other " +
        "figures are the median of repeated runs. A ratio that says so (the router's, the OpenTelemetry rows', the NATS group's) is the median of per-round or per-run ratios of two rows measured in the same round or run; the others are ratios of the medians. Spread: " +
        "lowest – highest round or run (± is tinybench's relative margin of error where there is one round)."),
  "",
);
lines.push(
  "Like for like: each row's *settings* column states what it ran with (concurrency or outstanding, batch, poll, " +
    "durability, message size, processes); a ratio is taken between rows at the same settings, and a ratio across " +
    "different settings says so in its description. The goals are issue 19's.",
  "",
);
lines.push("## Goals", "", "| goal | result | |", "| --- | --- | --- |");
for (const t of results.flatMap((r) => r.targets)) {
  const verdict = t.met === undefined ? "not measured" : t.met ? "met" : "**not met**";
  lines.push(`| ${t.description} | ${t.detail} | ${verdict} |`);
}
lines.push("");
for (const group of [...new Set(figures.map((f) => f.group))]) {
  lines.push(
    `## ${group}`,
    "",
    "| workload | median | unit | spread | runs (samples) | settings | note |",
    "| --- | ---: | --- | ---: | ---: | --- | --- |",
  );
  for (const f of figures.filter((x) => x.group === group)) {
    lines.push(
      `| ${f.name} | ${fmt(f, f.value)} | ${f.unit ?? "ops/s"} | ${spread(f)} | ${runs(f)} | ${f.settings ?? ""} | ${f.note ?? ""} |`,
    );
  }
  lines.push("");
}
const ratios = results.flatMap((r) => r.ratios ?? []);
if (ratios.length > 0) {
  lines.push("## Ratios", "", "| ratio | value |", "| --- | ---: |");
  for (const r of ratios) lines.push(`| ${r.description} | ${r.value.toFixed(2)}× |`);
  lines.push("");
}
const scaling = results.flatMap((r) => r.scaling ?? []);
if (scaling.length > 0) {
  lines.push("## Scaling: how cost grows with the work", "", "![scaling curves](scaling.svg)", "");
  for (const s of scaling) {
    lines.push(`### ${s.title}`, "", `Settings: ${s.settings}`, "");
    lines.push(`| ${s.columns.join(" | ")} |`, `| ${s.columns.map(() => "---").join(" | ")} |`);
    for (const row of s.rows) lines.push(`| ${row.join(" | ")} |`);
    lines.push("");
    if (s.reading) lines.push(s.reading, "");
  }
}
const notMeasured = results.flatMap((r) => r.notMeasured ?? []);
if (notMeasured.length > 0) {
  lines.push("## Not measured", "");
  for (const n of notMeasured) lines.push(`- ${n}`);
  lines.push("");
}
const settings = results.flatMap((r) => r.settings ?? []);
if (settings.length > 0) {
  lines.push("## Settings", "");
  for (const s of settings) lines.push(`- ${s}`);
  lines.push("");
}
const report = lines.join("\n");
console.log(report);
const write = process.argv.includes("--write") || (!quick && !only);
if (write) {
  writeFileSync(new URL("../RESULTS.md", import.meta.url), report);
  const charts = scaling.flatMap((s) => (s.chart ? [s.chart] : []));
  const caption =
    `pnpm bench${quick ? " --quick" : ""}, ${new Date().toISOString().slice(0, 10)}, load ${loaded.toFixed(1)}` +
    (quick || loaded > QUIET_LOAD ? " (not for comparison)" : "");
  if (charts.length > 0)
    writeFileSync(new URL("../scaling.svg", import.meta.url), lineCharts(charts, caption));
}
console.log(
  write
    ? "wrote benchmarks/RESULTS.md and benchmarks/scaling.svg"
    : `${quick ? "quick mode: every benchmark ran" : `only ${only}`}; RESULTS.md untouched`,
);
