import type { Command } from "commander";
import { type AnyCatalog, type PipelineDefinition, pipelineStages } from "@switchyard/event-schema";
import { withCatalogOption } from "../catalog-option";
import { type CommonOptions, type Runtime, action, examples, withCommonOptions } from "../context";
import type { Inspector } from "@switchyard/transport";
import { openTarget } from "../drivers";
import { CliError, ExitCode, formatDuration, formatTime, positiveNumberOption } from "../output";
import { eventsSince } from "./shared";

/** Options of {@link verifyPipeline}. */
export interface VerifyPipelineOptions {
  /** Length of the window ending now, in hours. @defaultValue 24 */
  readonly hours?: number;
  /** End of the window (Unix ms). @defaultValue `Date.now()` */
  readonly now?: number;
  /**
   * The stages to check, in order: a catalog's pipeline (`catalog.pipeline("name").stages`).
   * @defaultValue the stages of the pipeline catalog's `training` pipeline
   */
  readonly stages?: readonly string[];
  /**
   * The payload field linking the stages (a catalog pipeline's `key`); the envelope `subject`
   * matches too. @defaultValue "config_key"
   */
  readonly key?: string;
}

/** One stage of a {@link PipelineVerification}. */
export interface PipelineStageResult {
  /** The stage's event type, e.g. `"TRAINING_COMPLETED"`. */
  readonly type: string;
  /** Events of this type for the config key within the window. */
  readonly count: number;
  /** Whether the stage flowed (`count > 0`). */
  readonly ok: boolean;
  /** When the newest of them was stored (RFC 3339). */
  readonly lastAt?: string;
  /**
   * Set on a stage with no event when the window reaches back past what is still stored
   * (`coveredSince`): none since then, and whether one came earlier in the window cannot be
   * known, its events being pruned. Shown as `?`, not `✗`.
   */
  readonly uncertain?: true;
}

/** The result of {@link verifyPipeline}. */
export interface PipelineVerification {
  readonly configKey: string;
  readonly hours: number;
  /** Start of the window (RFC 3339). */
  readonly since: string;
  /** End of the window (RFC 3339). */
  readonly until: string;
  /**
   * From when on every event of the window is still stored (RFC 3339): `since`, unless retention
   * pruned events of the window's start (then later; see `warnings`).
   */
  readonly coveredSince: string;
  /** What makes the result less than it seems: the window reaches past retention. Empty when none. */
  readonly warnings: readonly string[];
  /** True when every stage flowed. */
  readonly ok: boolean;
  /** Every stage, in pipeline order. */
  readonly stages: readonly PipelineStageResult[];
  /** The stages with no event, in pipeline order (including the `uncertain` ones). */
  readonly missing: readonly string[];
}

/** From when on the transport still holds every event, and why older ones are gone. */
interface StorageHorizon {
  /** Unix ms from which every stored event is complete; `undefined` when nothing is stored. */
  readonly at: number | undefined;
  readonly note: string;
}

/**
 * Did every pipeline stage fire for one config key within the last `hours`? Counts the stored
 * events of each stage whose envelope `subject` or payload key field is `configKey`, on any
 * transport: `source` is an open inspector, or a target (`sqlite:path`, a bare path,
 * `nats://…`) opened read-only and closed again.
 *
 * @example
 * ```ts
 * // not runnable
 * const result = await verifyPipeline("data/coordination/coordination.db", "hex8_2p", { hours: 6 });
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
  if (typeof source === "string") {
    const driver = await openTarget(source, { readOnly: true });
    try {
      return await verifyPipeline(driver.inspector(), configKey, options);
    } finally {
      await driver.close();
    }
  }
  const until = options.now ?? Date.now();
  const since = until - hours * 3_600_000;
  const types = options.stages ?? pipelineStages;
  const field = options.key ?? "config_key";
  const counts = new Map<string, { type: string; count: number; lastAt: number }>();
  for (const event of await eventsSince(source, { types, since, until })) {
    const data = event.envelope?.data as Record<string, unknown> | undefined;
    if (event.subject !== configKey && data?.[field] !== configKey) continue;
    const at = Date.parse(event.storedAt);
    const row = counts.get(event.type);
    if (row) {
      row.count++;
      row.lastAt = Math.max(row.lastAt, at);
    } else counts.set(event.type, { type: event.type, count: 1, lastAt: at });
  }
  return summarize(
    configKey,
    hours,
    since,
    until,
    types,
    [...counts.values()],
    await horizonOf(source),
  );
}

/**
 * What the transport no longer holds: logs number events from 1 (SQLite `seq`, the JetStream
 * stream sequence), so an oldest stored event past 1 means older ones were removed.
 */
async function horizonOf(inspector: Inspector): Promise<StorageHorizon | undefined> {
  const oldest = (await inspector.events({ limit: 1, order: "oldest" })).events[0];
  if (!oldest || oldest.seq <= 1) return undefined;
  return {
    at: Date.parse(oldest.storedAt),
    note: `older events were removed by the ${inspector.transport} transport's retention`,
  };
}

function summarize(
  configKey: string,
  hours: number,
  since: number,
  until: number,
  types: readonly string[],
  rows: readonly { type: string; count: number; lastAt: number }[],
  horizon: StorageHorizon | undefined,
): PipelineVerification {
  // The window is complete from `covered` on; before it, a missing stage proves nothing.
  const covered = horizon ? Math.max(since, Math.min(horizon.at ?? until, until)) : since;
  const truncated = covered > since;
  const counts = new Map(rows.map((r) => [r.type, r]));
  const stages = types.map((type): PipelineStageResult => {
    const row = counts.get(type);
    if (row && row.count > 0)
      return { type, count: row.count, ok: true, lastAt: new Date(row.lastAt).toISOString() };
    return truncated
      ? { type, count: 0, ok: false, uncertain: true }
      : { type, count: 0, ok: false };
  });
  const missing = stages.filter((s) => !s.ok).map((s) => s.type);
  const warnings: string[] = [];
  if (truncated && horizon) {
    const at = new Date(covered).toISOString();
    warnings.push(
      horizon.at === undefined
        ? `The window cannot be checked in full: ${horizon.note}.`
        : `The ${hours} h window starts before ${at} (${formatDuration(until - covered)} ago), where ` +
            `the stored events begin: ${horizon.note}. Only the last ${formatDuration(until - covered)} ` +
            `are checked in full; a stage with no event since then (?) may have fired earlier.`,
    );
  }
  return {
    configKey,
    hours,
    since: new Date(since).toISOString(),
    until: new Date(until).toISOString(),
    coveredSince: new Date(covered).toISOString(),
    warnings,
    ok: missing.length === 0,
    stages,
    missing,
  };
}

interface VerifyOptions extends CommonOptions {
  readonly hours: number;
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
      .option("--hours <n>", "window length in hours", positiveNumberOption, 24)
      .option("--pipeline <name>", "which of the catalog's pipelines (default: its first)"),
  );
  examples(verify, [
    ["switchyard pipeline verify hex8_2p", "last 24 hours"],
    ["switchyard pipeline verify sq8_4p --hours 6", "last 6 hours"],
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
      const options = { hours: opts.hours, stages: pipeline.stages, key: pipeline.key };
      const inspector = (await driver({ readOnly: true })).inspector();
      const result = await verifyPipeline(inspector, configKey, options);
      {
        out.data(result);
        out.line(
          `Pipeline ${pipeline.name} of ${pipeline.key} ${configKey}, last ${opts.hours} h:`,
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
