// `pnpm demo`: the training pipeline for a few configs, each daemon its own process, until every
// config has run its generations; then the pipeline-flow verification, per stage. Exit 0 only if
// every stage flowed for every config.
import { type AnyEventOf, type PipelineCatalog, pipelineCatalog } from "@switchyard/event-schema";
import { existsSync } from "node:fs";
import { verifyPipeline } from "@switchyard/cli";
import { type ServedDashboard, serveDashboard } from "@switchyard/dashboard";
import type { Driver } from "@switchyard/transport";
import { summarizeTraces } from "./process/otel";
import { type DemoArgs, DemoUsageError, USAGE, parseDemoArgs } from "./args";
import { generationOf } from "./simulation";
import { startPipeline } from "./supervisor";
import { heartbeatsWhere, natsReplicas, openPipelineDriver, pipelineTarget } from "./transport";

/** The parsed command line; a usage error prints the usage and exits 2, never a stack trace. */
function parse(): Extract<DemoArgs, { help: false }> {
  let parsed: DemoArgs;
  try {
    parsed = parseDemoArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof DemoUsageError)) throw error;
    console.error(`${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (parsed.help) {
    console.log(USAGE);
    process.exit(0);
  }
  return parsed;
}

const { settings, timeoutMs, kill, dashboard } = parse();
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;

console.log(`Switchyard training-pipeline demo`);
console.log(`  configs      ${settings.configs.join(", ")} × ${settings.generations} generations`);
console.log(
  `  failures     ${Math.round(settings.failureRate * 100)}% transient${settings.poison ? ", plus one poison event" : ""}`,
);
console.log(
  `  transport    ${settings.transport === "nats" ? `NATS JetStream at ${settings.natsUrl}, stream ${settings.natsStream} (R${natsReplicas(settings)})` : "SQLite"}`,
);
// A NATS run keeps everything on the server (events, heartbeats, dead letters): no database file.
if (settings.transport === "sqlite") console.log(`  database     ${settings.db}`);
console.log(`  heartbeats   ${heartbeatsWhere(settings)}`);
console.log(`  daemon logs  ${settings.dataDir}/daemons.log\n`);

const ended = new Map(settings.configs.map((c) => [c, new Set<number>()]));
let poisonGivenUp = !settings.poison;
let wake: () => void = () => {};

function describe(event: AnyEventOf<PipelineCatalog>): string | undefined {
  switch (event.type) {
    case "NEW_GAMES_AVAILABLE":
      return (event.data as { poison?: boolean }).poison
        ? "poison: a corrupt games database"
        : `${event.data.new_games} new games`;
    case "DATA_SYNC_COMPLETED":
      return `${event.data.files_synced} file synced`;
    case "DATA_SYNC_FAILED":
      return `sync failed (attempt ${event.data.attempt}), will retry`;
    case "NPZ_EXPORT_COMPLETE":
      return `${event.data.samples_exported} samples`;
    case "TRAINING_COMPLETED":
      return `loss ${event.data.loss}`;
    case "TRAINING_FAILED":
      return `training failed, will retry`;
    case "EVALUATION_COMPLETED":
      return `Elo ${event.data.elo} over ${event.data.games_played} games`;
    case "MODEL_PROMOTED":
      return `promoted at Elo ${event.data.elo}`;
    case "REGRESSION_DETECTED":
      return `regression: −${event.data.elo_drop} Elo, kept the previous model`;
    case "REGRESSION_CRITICAL":
      return `critical regression: −${event.data.elo_drop} Elo`;
    case "MODEL_DISTRIBUTION_COMPLETE":
      return `on ${event.data.hosts_updated} hosts`;
    case "QUALITY_ALERT":
      return `self-play quality ${event.data.quality_score} < ${event.data.threshold}`;
    case "PROGRESS_STALL_DETECTED":
      return `no improvement for ${event.data.generations_without_improvement} generations`;
    case "DLQ_PERMANENTLY_FAILED":
      return `dead letter ${event.data.dead_letter_id} (${event.data.event_type} for ${event.data.subscriber}) given up: ${event.data.error}`;
    case "DLQ_DEPTH_EXCEEDED":
      return `dead-letter depth ${event.data.depth} > ${event.data.threshold}`;
    case "DAEMON_PERMANENTLY_FAILED":
      return `daemon ${event.data.daemon_name} gave up after ${event.data.restart_attempts} restarts`;
    case "SELFPLAY_COMPLETE":
    case "SPLIT_BRAIN_DETECTED":
      return undefined;
  }
}

function onEvent(event: AnyEventOf<PipelineCatalog>): void {
  const text = describe(event);
  const data = event.data as { config_key?: string };
  const gen = generationOf(event.data);
  if (text) {
    const where = `${(data.config_key ?? "").padEnd(11)} ${gen ? `gen ${gen}` : "     "}`;
    console.log(`${elapsed()}  ${where}  ${event.type.padEnd(28)} ${text}`);
  }
  if (
    (event.type === "MODEL_DISTRIBUTION_COMPLETE" || event.type === "REGRESSION_DETECTED") &&
    data.config_key
  ) {
    ended.get(data.config_key)?.add(gen);
  }
  if (event.type === "DLQ_PERMANENTLY_FAILED") poisonGivenUp = true;
  wake();
}

const done = () =>
  poisonGivenUp && [...ended.values()].every((gens) => gens.size >= settings.generations);

console.log(`${elapsed()}  starting the daemon processes…`);
const pipeline = await startPipeline(settings, onEvent);
console.log(`${elapsed()}  ${pipeline.processes.size} daemon processes running\n`);
// `--dashboard`: the web dashboard over the run's transport, read-only, on loopback, from now on
// until the demo ends.
let served: { dashboard: ServedDashboard; driver: Driver } | undefined;
if (dashboard !== undefined) {
  const driver = await openPipelineDriver(settings, { readOnly: true });
  try {
    served = {
      dashboard: await serveDashboard({
        driver,
        port: dashboard,
        host: "127.0.0.1",
        catalog: pipelineCatalog,
        title: "Switchyard demo",
      }),
      driver,
    };
  } catch (error) {
    await driver.close();
    await pipeline.stop();
    const inUse = (error as { code?: unknown }).code === "EADDRINUSE";
    console.error(
      `--dashboard: cannot listen on 127.0.0.1:${dashboard}: ${(error as Error).message}` +
        (inUse
          ? ` (pass another port, e.g. --dashboard ${dashboard + 1}, or 0 for a free one)`
          : ""),
    );
    process.exit(2);
  }
  console.log(
    `${elapsed()}  Dashboard: ${served.dashboard.url} (the run's transport, read-only)\n`,
  );
}
/** End the dashboard, if one is served. */
const closeDashboard = async () => {
  await served?.dashboard.close();
  await served?.driver.close();
};
const victim = kill ? pipeline.processes.get(kill as never) : undefined;
if (kill && !victim) {
  console.error(
    `--kill: no daemon named ${kill} (daemons: ${[...pipeline.processes.keys()].join(", ")})`,
  );
  await pipeline.stop();
  process.exit(2);
}
if (victim) {
  setTimeout(() => {
    console.log(
      `${elapsed()}  ✂ SIGKILL ${victim.name} (pid ${victim.pid}): the manager restarts it, its leased work is redelivered`,
    );
    victim.kill();
  }, 1500);
}
let interrupted = false;
const interrupt = () => {
  interrupted = true;
  wake();
};
process.once("SIGINT", interrupt);
const deadline = Date.now() + timeoutMs;
while (!done() && !interrupted && Date.now() < deadline) {
  await new Promise<void>((resolve) => {
    wake = resolve;
    setTimeout(resolve, 500);
  });
}
const timedOut = !done() && !interrupted;
console.log(
  `\n${elapsed()}  ${interrupted ? "interrupted" : timedOut ? `timed out after ${timeoutMs / 1000} s` : "all generations done"}: stopping the daemons…`,
);
await pipeline.stop();

// The runbook's pipeline-flow verification, per config, and the heartbeats: read back through
// the run's driver, read-only, the way the CLI reads them.
const reader = await openPipelineDriver(settings, { readOnly: true });
const training = pipelineCatalog.pipeline("training")!;
let allFlowed = true;
console.log(`\nPipeline flow (last hour):`);
for (const configKey of settings.configs) {
  const result = await verifyPipeline(reader.inspector(), configKey, {
    hours: 1,
    stages: training.stages,
    key: training.key,
  });
  allFlowed &&= result.ok;
  console.log(`\n  ${configKey}`);
  for (const stage of result.stages)
    console.log(`    ${stage.ok ? "✓" : "✗"} ${stage.type.padEnd(28)} ${stage.count}`);
}
// Every daemon process wrote a last heartbeat when it stopped.
const beats = await reader.inspector().heartbeats();
// The dead letters of every status, from the driver's store, as the CLI's `dlq list` reads them.
const { deadLetters } = await reader.inspector().deadLetters({ limit: 10 });
await reader.close();
console.log(`\nDead letters: ${deadLetters.length}`);
for (const d of deadLetters)
  console.log(
    `  #${d.id} ${d.eventType} for ${d.subscriber}: ${d.reason}, ${d.status} — ${d.error.message}`,
  );
const states = new Map<string, number>();
for (const beat of beats) states.set(beat.status, (states.get(beat.status) ?? 0) + 1);
console.log(
  `\nHeartbeats (${heartbeatsWhere(settings)}): ${beats.length} daemons, ` +
    ([...states].map(([status, n]) => `${n} ${status}`).join(", ") || "none"),
);
const restarts = [...pipeline.processes.values()].reduce((n, p) => n + p.starts - 1, 0);
console.log(
  `\nSummary: ${allFlowed ? "every stage flowed" : "some stages did not flow"} for ${settings.configs.length} configs; ${restarts} daemon restarts; took ${elapsed().trim()}.`,
);
if (settings.otel && existsSync(settings.otel)) {
  // One trace per event chain, across the daemon processes (the router's send/process spans).
  const traces = summarizeTraces(settings.otel);
  console.log(
    `\nTraces (OpenTelemetry, OTLP JSON lines): ${settings.otel}\n  ${traces.spans} spans in ${traces.traces} traces from ${traces.services.length} processes; the longest:`,
  );
  for (const span of traces.longest.slice(0, 12))
    console.log(`    ${span.service.padEnd(22)} ${span.name}`);
  if (traces.longest.length > 12) console.log(`    … ${traces.longest.length - 12} more`);
}
// The same target the CLI takes: the one place a user says which transport.
const target = pipelineTarget(settings);
console.log(
  `Inspect: pnpm switchyard health --transport '${target}'   ` +
    `(or: events list, daemons, pipeline verify ${settings.configs[0]})` +
    `\n         pnpm switchyard dlq list --transport '${target}'   (the dead letters)`,
);
if (!served)
  console.log(
    `Look:    pnpm switchyard dashboard --transport '${target}'   (http://127.0.0.1:4000/: pipeline graph, checks, dead letters)` +
      `\n         or run the demo with --dashboard`,
  );
// The picture `pnpm docs:catalog` generates from the catalog's declared pipeline.
console.log(
  `Pipeline picture: docs/events.md#pipeline-${pipelineCatalog.pipeline()!.name} (regenerate: pnpm docs:catalog)`,
);
const code = allFlowed && !timedOut ? 0 : 1;
if (served && !interrupted) {
  // The run is over and its data stays: keep showing it until the operator is done.
  console.log(
    `\nDashboard: ${served.dashboard.url} still serving the run (pipeline graph, checks, dead letters): Ctrl-C to end.`,
  );
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
}
await closeDashboard();
process.exit(code);
