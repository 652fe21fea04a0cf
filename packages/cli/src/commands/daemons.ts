import type { Command } from "commander";
import type { HeartbeatInfo } from "@switchyard/transport";
import {
  type CommonOptions,
  type Runtime,
  action,
  examples,
  requireCapability,
  watching,
  withCommonOptions,
  withWatchOption,
} from "../context";
import { markDamaged, reportDamaged } from "../damaged";
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
        "What runs, and how is each daemon doing? The last heartbeat of every daemon: state, health, age, restarts, processed, deduplicated and failed work.",
      ),
  );
  examples(command, [
    ["switchyard daemons", "last heartbeat of every daemon"],
    ["switchyard daemons --json | jq '.daemons[].stats.eventsDeduplicated'", "dedup counters"],
    [
      "switchyard daemons --transport nats://10.0.0.5:4222/SWITCHYARD",
      "heartbeats on NATS JetStream",
    ],
  ]);
  withWatchOption(command);
  command.action(
    action<CommonOptions & { readonly watch?: string | boolean }>(runtime, async (context) => {
      const opened = await context.driver({ readOnly: true });
      requireCapability(opened, "heartbeats", "daemons");
      return watching(context, "switchyard daemons", async (out) => {
        const daemons = await opened.inspector().heartbeats();
        out.data({ daemons });
        if (daemons.length === 0) {
          out.line(
            `No daemon heartbeats on ${opened.target}: no DaemonManager writes to this transport's heartbeat sink.`,
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
            "restarts",
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
            d.restarts,
            numberAt(d.stats, "eventsProcessed"),
            numberAt(d.stats, "eventsDeduplicated"),
            numberAt(d.stats, "errorsCount"),
          ]),
        );
        reportDamaged(out, daemons, (d) => `daemon ${d.daemon}`);
        return ExitCode.ok;
      });
    }),
  );
}
