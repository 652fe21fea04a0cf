import type { Command } from "commander";
import { type HeartbeatInfo, listHeartbeats } from "@switchyard/cross-process-queue";
import { heartbeatStreamName } from "@switchyard/transport-nats";
import {
  type CommonOptions,
  type Runtime,
  type TransportOptions,
  action,
  examples,
  natsSourceOf,
  transportOf,
  withCommonOptions,
  withTransportOptions,
} from "../context";
import { withReadOnly } from "../database";
import { markDamaged, reportDamaged } from "../damaged";
import { readNatsHeartbeats, withJetStream } from "../nats";
import { ExitCode, type Output, formatDuration } from "../output";

function numberAt(value: unknown, key: string): number | undefined {
  const n = (value as Record<string, unknown> | null)?.[key];
  return typeof n === "number" ? n : undefined;
}

function healthOf(beat: HeartbeatInfo): string | undefined {
  const health = beat.health as { status?: unknown; message?: unknown } | null;
  if (!health || typeof health.status !== "string") return undefined;
  return typeof health.message === "string" && health.status !== "healthy"
    ? `${health.status}: ${health.message}`
    : health.status;
}

/** Print the heartbeats as `switchyard daemons` does, on SQLite and on NATS; `none` when there are none. */
function printDaemons(out: Output, daemons: readonly HeartbeatInfo[], none: string): number {
  out.data({ daemons });
  if (daemons.length === 0) {
    out.line(none);
    return ExitCode.ok;
  }
  out.table(
    [
      "daemon",
      "state",
      "health",
      "heartbeat",
      "pid",
      "host",
      "processed",
      "deduplicated",
      "errors",
    ],
    daemons.map((d) => [
      d.daemon,
      d.status,
      markDamaged(healthOf(d), d),
      `${formatDuration(d.ageMs)} ago`,
      d.pid,
      d.host,
      numberAt(d.stats, "eventsProcessed"),
      numberAt(d.stats, "eventsDeduplicated"),
      numberAt(d.stats, "errorsCount"),
    ]),
  );
  reportDamaged(out, daemons, (d) => `daemon ${d.daemon}`);
  return ExitCode.ok;
}

interface DaemonsOptions extends CommonOptions, TransportOptions {}

export function registerDaemons(program: Command, runtime: Runtime): void {
  const command = withTransportOptions(
    "daemon heartbeats",
    withCommonOptions(
      program
        .command("daemons")
        .description(
          "What runs, and how is each daemon doing? The last heartbeat of every daemon: state, health, age, processed, deduplicated and failed work.",
        ),
    ),
  );
  command.addHelpText(
    "after",
    `
With --transport nats: the heartbeats in the stream <stream>_HEARTBEATS beside the event stream
(a DaemonManager with a NatsHeartbeatSink writes them there), from any machine.
`,
  );
  examples(command, [
    ["switchyard daemons", "last heartbeat of every daemon"],
    ["switchyard daemons --json | jq '.daemons[].stats.eventsDeduplicated'", "dedup counters"],
    [
      "switchyard daemons --transport nats --nats-url nats://10.0.0.5:4222",
      "heartbeats on NATS JetStream",
    ],
  ]);
  command.action(
    action<DaemonsOptions>(runtime, async ({ opts, out, dbPath }) => {
      if (transportOf(opts) === "nats") {
        const source = natsSourceOf(opts);
        const daemons = await withJetStream(source, (link) =>
          readNatsHeartbeats(link, source, Date.now()),
        );
        return printDaemons(
          out,
          daemons,
          `No daemon heartbeats in stream ${heartbeatStreamName(opts.stream)} (prefix ${opts.prefix}): ` +
            "no DaemonManager with a NatsHeartbeatSink writes there; check --stream and --prefix.",
        );
      }
      return withReadOnly(
        dbPath,
        (db) =>
          printDaemons(
            out,
            listHeartbeats(db),
            "No daemon heartbeats: no DaemonManager with a SqliteHeartbeatSink writes to this database.",
          ),
        out,
      );
    }),
  );
}
