import type { Command } from "commander";
import { type EventDefinition, describeAlertRule } from "@switchyard/event-schema";
import { withCatalogOption } from "../catalog-option";
import { type CommonOptions, type Runtime, action, examples } from "../context";
import { ExitCode } from "../output";

/** One event type as `switchyard catalog --json` prints it. */
export interface CatalogEntry {
  readonly type: string;
  readonly description: string;
  readonly version: number;
  /** Crosses processes through the transport. */
  readonly durable: boolean;
  readonly severity: string;
  /** The alert rule in words, when the type has one. */
  readonly alert?: string;
  /** Position in the catalog's first pipeline (1-based), for its stages. */
  readonly stage?: number;
}

export function registerCatalog(program: Command, runtime: Runtime): void {
  const command = program
    .command("catalog")
    .description(
      "Which event types exist, which cross processes (durable), which alert and which are pipeline stages.",
    )
    .option("--json", "machine-readable output (one JSON document)");
  examples(command, [
    ["switchyard catalog", "every event type"],
    [
      "switchyard catalog --json | jq '.types[] | select(.durable | not)'",
      "types that stay in-process",
    ],
  ]);
  withCatalogOption(command);
  command.action(
    action<CommonOptions>(runtime, ({ out, catalog }) => {
      const stages: readonly string[] = catalog.pipelines[0]?.stages ?? [];
      const types: CatalogEntry[] = catalog.types.map((type) => {
        const def = catalog.definitions[type] as EventDefinition;
        const stage = stages.indexOf(type);
        return {
          type,
          description: def.description,
          version: def.version,
          durable: def.durable,
          severity: def.severity,
          ...(def.alert ? { alert: describeAlertRule(def.alert) } : {}),
          ...(stage >= 0 ? { stage: stage + 1 } : {}),
        };
      });
      out.data({ types, pipelines: catalog.pipelines });
      out.table(
        ["type", "durable", "severity", "alert", "stage", "description"],
        types.map((t) => [
          t.type,
          t.durable ? "yes" : "no",
          t.severity,
          t.alert,
          t.stage,
          t.description,
        ]),
      );
      for (const p of catalog.pipelines) {
        out.line();
        out.line(`Pipeline ${p.name} (linked by ${p.key}): ${p.stages.join(" → ")}`);
      }
      return ExitCode.ok;
    }),
  );
}
