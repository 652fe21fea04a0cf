import type { Command } from "commander";
import {
  type PipelineVerification,
  type VerifyPipelineOptions as DashboardVerifyOptions,
  verifyPipeline as verifyOneKey,
} from "@switchyard/transport";
import type { AnyCatalog, PipelineDefinition } from "@switchyard/event-schema";
import { withCatalogOption } from "../catalog-option";
import { type CommonOptions, type Runtime, action, examples, withCommonOptions } from "../context";
import type { Inspector } from "@switchyard/transport";
import { openTarget } from "../drivers";
import { durationParser, formatDuration as durationText } from "../duration";
import { CliError, ExitCode, formatTime } from "../output";

/** Options of {@link verifyPipeline}. */
export interface VerifyPipelineOptions extends Omit<
  DashboardVerifyOptions,
  "stages" | "signal" | "maxEvents"
> {
  /**
   * The stages to check, in order: a catalog's pipeline (`catalog.pipeline("name").stages`).
   * Give either `stages` (with `key` when it is not `config_key`) or `catalog`.
   * @defaultValue the stages of `catalog`'s pipeline
   */
  readonly stages?: readonly string[];
  /**
   * The catalog whose pipeline is checked (its stages and key), when `stages` is not given; the
   * pipeline is `pipeline`, else the catalog's first.
   */
  readonly catalog?: AnyCatalog;
  /** Which of `catalog`'s pipelines. @defaultValue the catalog's first */
  readonly pipeline?: string;
}

/**
 * Did every pipeline stage fire for one config key within the last `hours`? Counts the stored
 * events of each stage whose envelope `subject` or payload key field is `configKey`, on any
 * transport: `source` is an open inspector, or a target (`sqlite:path`, a bare path,
 * `nats://…`) opened read-only and closed again. The stages are `options.stages`, else those of
 * `options.catalog`'s pipeline; there is no default catalog. The rule is the dashboard's
 * (`verifyPipeline` of `@switchyard/transport`), so its Pipeline page gives the same verdicts.
 *
 * @throws TypeError when neither `stages` nor `catalog` is given; `CliError`
 *   (`PIPELINE_NOT_FOUND`) when the catalog declares no such pipeline.
 *
 * @example
 * ```ts
 * // not runnable
 * import { pipelineCatalog } from "@switchyard/event-schema";
 * const result = await verifyPipeline("data/coordination/coordination.db", "hex8_2p", {
 *   catalog: pipelineCatalog,
 *   hours: 6,
 * });
 * if (!result.ok) console.log("stuck before", result.missing[0]);
 * ```
 */
export async function verifyPipeline(
  source: Inspector | string,
  configKey: string,
  options: VerifyPipelineOptions = {},
): Promise<PipelineVerification> {
  const hours = options.hours ?? 24;
  if (!(hours > 0) || !Number.isFinite(hours))
    throw new RangeError(`verifyPipeline: hours must be a positive number, got ${String(hours)}.`);
  if (options.stages === undefined && options.catalog === undefined)
    throw new TypeError(
      "verifyPipeline: say which stages to check: pass `catalog` (its pipeline is checked, or the one `pipeline` names) or `stages`.",
    );
  if (typeof source === "string") {
    const driver = await openTarget(source, { readOnly: true });
    try {
      return await verifyPipeline(driver.inspector(), configKey, options);
    } finally {
      await driver.close();
    }
  }
  const { catalog, pipeline: name, stages, ...rest } = options;
  if (stages !== undefined) return verifyOneKey(source, configKey, { ...rest, stages });
  const pipeline = pipelineOf(catalog!, name);
  return verifyOneKey(source, configKey, {
    ...rest,
    stages: pipeline.stages,
    key: rest.key ?? pipeline.key,
  });
}

/** The window `pipeline verify` looks back over when `--hours` is not given: 24 hours. */
const VERIFY_WINDOW_MS = 24 * 3_600_000;

interface VerifyOptions extends CommonOptions {
  /** `--hours`, parsed to milliseconds (a bare number is hours). */
  readonly hours?: number;
  readonly pipeline?: string;
}

/** The pipeline `pipeline verify` checks: the one `--pipeline` names, else the catalog's first. */
export function pipelineOf(catalog: AnyCatalog, name: string | undefined): PipelineDefinition {
  const pipeline = catalog.pipeline(name);
  if (pipeline) return pipeline;
  const declared = catalog.pipelines.map((p) => p.name);
  throw new CliError(
    "PIPELINE_NOT_FOUND",
    declared.length === 0
      ? `The catalog (${catalog.types.slice(0, 3).join(", ")}${catalog.types.length > 3 ? ", …" : ""}) declares no pipeline. Declare one with defineCatalog(events, { pipelines: [{ name, key, stages }] }), or pass the catalog that has it with --catalog.`
      : `--pipeline ${JSON.stringify(name)}: the catalog declares no such pipeline; it declares ${declared.join(", ")}.`,
  );
}

export function registerPipeline(program: Command, runtime: Runtime): void {
  const pipeline = program
    .command("pipeline")
    .description("The training pipeline's flow, per config key.");
  const verify = withCommonOptions(
    pipeline
      .command("verify")
      .description(
        "Did every pipeline stage fire for this config key? Each stage ✓/✗ with its event count; exits 1 unless every stage flowed.",
      )
      .argument(
        "<key>",
        "the value of the pipeline's key (its config_key for training), e.g. hex8_2p",
      )
      .option(
        "--hours <duration>",
        `window length, such as 24h, 90m or 7d; a bare number is hours (default: ${VERIFY_WINDOW_MS / 3_600_000}h)`,
        durationParser("--hours", { bareUnit: "h" }),
      )
      .option("--pipeline <name>", "which of the catalog's pipelines (default: its first)"),
  );
  examples(verify, [
    ["switchyard pipeline verify hex8_2p", "last 24 hours"],
    ["switchyard pipeline verify sq8_4p --hours 6h", "last 6 hours"],
    ["switchyard pipeline verify sq8_4p --hours 90m", "last 90 minutes"],
    ["switchyard pipeline verify hex8_2p --json | jq .missing", "the stages that did not fire"],
    [
      "switchyard pipeline verify hex8_2p --transport nats://10.0.0.5:4222/SWITCHYARD",
      "events on NATS JetStream",
    ],
  ]);
  withCatalogOption(verify);
  verify.action(
    action<VerifyOptions>(runtime, async ({ args, opts, out, catalog, driver }) => {
      const configKey = String(args[0]);
      if (configKey.trim() === "") throw new CliError("USAGE", "The config key is empty.");
      const pipeline = pipelineOf(catalog, opts.pipeline);
      const windowMs = opts.hours ?? VERIFY_WINDOW_MS;
      const options = { hours: windowMs / 3_600_000, stages: pipeline.stages, key: pipeline.key };
      const inspector = (await driver({ readOnly: true })).inspector();
      const result = await verifyPipeline(inspector, configKey, options);
      {
        out.data(result);
        out.line(
          `Pipeline ${pipeline.name} of ${pipeline.key} ${configKey}, last ${durationText(windowMs)}:`,
        );
        out.table(
          ["", "stage", "events", "last"],
          result.stages.map((s, i) => [
            s.ok ? "✓" : s.uncertain ? "?" : "✗",
            `${i + 1}. ${s.type}`,
            s.count,
            formatTime(s.lastAt),
          ]),
        );
        out.line();
        for (const warning of result.warnings) out.line(`Warning: ${warning}`);
        out.line(summaryLine(result));
        return result.ok ? ExitCode.ok : ExitCode.failed;
      }
    }),
  );
}

/** The last line of `pipeline verify`: what flowed, what is missing, what cannot be known. */
function summaryLine(result: PipelineVerification): string {
  const total = result.stages.length;
  if (result.ok) return `Every stage flowed (${total}/${total}).`;
  const flowed = total - result.missing.length;
  const unknown = result.stages.filter((s) => s.uncertain).map((s) => s.type);
  if (unknown.length === 0)
    return `${flowed}/${total} stages flowed; missing: ${result.missing.join(", ")}.`;
  if (result.coveredSince === result.until)
    return `${flowed}/${total} stages flowed; not known (removed events cannot be counted): ${unknown.join(", ")}.`;
  return (
    `${flowed}/${total} stages flowed; no event since ${formatTime(result.coveredSince)} ` +
    `(older ones pruned, so not known for the whole window): ${unknown.join(", ")}.`
  );
}
