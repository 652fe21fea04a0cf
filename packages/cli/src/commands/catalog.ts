import type { Command } from "commander";
import {
  type EventDefinition,
  describeAlertRule,
  pipelineCatalog,
  pipelineStages,
} from "@switchyard/event-schema";
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
  /** Position in the pipeline (1-based), for pipeline stages. */
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
  command.action(
    action<CommonOptions>(runtime, ({ out }) => {
      const stages: readonly string[] = pipelineStages;
      const types: CatalogEntry[] = pipelineCatalog.types.map((type) => {
        const def = pipelineCatalog.definitions[type] as EventDefinition;
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
      out.data({ types });
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
      return ExitCode.ok;
    }),
  );
}
