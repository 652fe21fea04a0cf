// docs/observability.md's metric table and docs/grafana-dashboard.json stay true to the exporter:
// every metric it emits is documented, every documented one exists, and every dashboard query
// names real metrics and parses as PromQL (checked by promtool).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createMetrics } from "./metrics";
import { describe, expect, it } from "vitest";

const docs = join(import.meta.dirname, "..", "..", "..", "docs");

async function emitted(): Promise<string[]> {
  const metrics = createMetrics({
    transport: "none",
    capabilities: {
      deliveries: false,
      heartbeats: false,
      deadLetters: false,
      replay: false,
      purge: false,
      clearPending: false,
      backup: false,
      audit: false,
    },
  } as never);
  const json = await metrics.registry.getMetricsAsJSON();
  return json.map((m) => m.name).sort();
}

interface Dashboard {
  panels: { title: string; targets: { expr: string }[] }[];
}

describe("the observability docs", () => {
  it("document exactly the metrics the exporter emits", async () => {
    const text = readFileSync(join(docs, "observability.md"), "utf8");
    const documented = [...text.matchAll(/^\| `(switchyard_[a-z_]+)`/gm)].map((m) => m[1]).sort();
    expect(documented).toEqual(await emitted());
  });

  it("the Grafana dashboard queries only metrics that exist", async () => {
    const names = new Set(await emitted());
    const dashboard = JSON.parse(
      readFileSync(join(docs, "grafana-dashboard.json"), "utf8"),
    ) as Dashboard;
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(5);
    for (const expr of exprs)
      for (const [name] of expr.matchAll(/switchyard_[a-z_]+/g))
        expect(names, expr).toContain(name);
  });

  const promtool = spawnSync("promtool", ["--version"]).status === 0;
  it.skipIf(!promtool && process.env.CI !== "true")(
    "every dashboard query parses as PromQL (promtool check rules)",
    () => {
      const dashboard = JSON.parse(
        readFileSync(join(docs, "grafana-dashboard.json"), "utf8"),
      ) as Dashboard;
      const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
      const rules = exprs
        .map(
          (expr, i) =>
            `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(expr)}`,
        )
        .join("\n");
      const dir = mkdtempSync(join(tmpdir(), "rules-"));
      try {
        const file = join(dir, "rules.yml");
        writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
        const check = spawnSync("promtool", ["check", "rules", file], { encoding: "utf8" });
        expect(check.status, check.stdout + check.stderr).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
