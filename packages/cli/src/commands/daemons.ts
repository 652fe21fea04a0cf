import type { Command } from "commander";
import { type HeartbeatInfo, listHeartbeats } from "@switchyard/cross-process-queue";
import { type CommonOptions, type Runtime, action, examples, withCommonOptions } from "../context";
import { withReadOnly } from "../database";
import { ExitCode, formatDuration } from "../output";

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

export function registerDaemons(program: Command, runtime: Runtime): void {
  const command = withCommonOptions(
    program
      .command("daemons")
      .description(
        "What runs, and how is each daemon doing? The last heartbeat of every daemon: state, health, age, processed, deduplicated and failed work.",
      ),
  );
  examples(command, [
    ["switchyard daemons", "last heartbeat of every daemon"],
    ["switchyard daemons --json | jq '.daemons[].stats.eventsDeduplicated'", "dedup counters"],
  ]);
  command.action(
    action<CommonOptions>(runtime, ({ out, dbPath }) =>
      withReadOnly(dbPath, (db) => {
        const daemons = listHeartbeats(db);
        out.data({ daemons });
        if (daemons.length === 0) {
          out.line(
            "No daemon heartbeats: no DaemonManager with a SqliteHeartbeatSink writes to this database.",
          );
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
            healthOf(d),
            `${formatDuration(d.ageMs)} ago`,
            d.pid,
            d.host,
            numberAt(d.stats, "eventsProcessed"),
            numberAt(d.stats, "eventsDeduplicated"),
            numberAt(d.stats, "errorsCount"),
          ]),
        );
        return ExitCode.ok;
      }),
    ),
  );
}
