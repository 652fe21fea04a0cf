// `pnpm bench` (full numbers, writes RESULTS.md) or `pnpm bench --quick` (CI: checks every
// benchmark still runs, writes nothing).
import { writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import type { Figure, Target } from "./harness";
import { benchRouter } from "./router";

const quick = process.argv.includes("--quick");
const started = Date.now();
const figures: Figure[] = [];
const targets: Target[] = [];

for (const [name, run] of [["router", benchRouter]] as const) {
  console.log(`▶ ${name}${quick ? " (quick)" : ""}`);
  const result = await run({ quick });
  figures.push(...result.figures);
  targets.push(...result.targets);
}

const fmt = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0);
const lines: string[] = [];
lines.push("# Benchmark results", "");
lines.push(
  `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB · Node ${process.version} · ` +
    `${new Date().toISOString().slice(0, 10)} · \`pnpm bench\` (${((Date.now() - started) / 1000).toFixed(0)} s)`,
  "",
);
for (const group of [...new Set(figures.map((f) => f.group))]) {
  lines.push(
    `## ${group}`,
    "",
    "| workload | ops/s | ± | samples |",
    "| --- | ---: | ---: | ---: |",
  );
  for (const f of figures.filter((x) => x.group === group)) {
    lines.push(`| ${f.name} | ${fmt(f.opsPerSec)} | ${f.rme.toFixed(1)} % | ${f.samples} |`);
  }
  lines.push("");
}
lines.push("## Targets", "", "| target | result | |", "| --- | --- | --- |");
for (const t of targets)
  lines.push(`| ${t.description} | ${t.detail} | ${t.met ? "met" : "**not met**"} |`);
lines.push("");
const report = lines.join("\n");
console.log(report);
if (!quick) writeFileSync(new URL("../RESULTS.md", import.meta.url), report);
console.log(
  quick ? "quick mode: every benchmark ran; RESULTS.md untouched" : "wrote benchmarks/RESULTS.md",
);
