import type { Command } from "commander";
import { listSubscribers, subscriberStats } from "@switchyard/cross-process-queue";
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
import { withCatalogOption } from "../catalog-option";
import { checkEventType } from "../event-types";
import { markDamaged, reportDamaged } from "../damaged";
import { natsSubscribers } from "../nats";
import { ExitCode, type Output, formatDuration, formatTime, plural } from "../output";

/** One subscriber as `switchyard subscribers --json` prints it. */
export interface SubscriberReport {
  readonly name: string;
  readonly types: readonly string[];
  readonly ephemeral: boolean;
  readonly createdAt: string;
  readonly lastSeen: string;
  /** Waiting to be claimed (new events, retries, expired leases). */
  readonly pending: number;
  /** Leased to a live worker. */
  readonly inFlight: number;
  /** pending + inFlight. */
  readonly lag: number;
  readonly dead: number;
  /** Age in ms of the oldest pending delivery's event. */
  readonly oldestPendingMs?: number;
  /** Why its row cannot be read as written (see `damaged.ts`); `types` is then empty. */
  readonly damaged?: string;
}

interface SubscribersOptions extends CommonOptions, TransportOptions {
  readonly type?: string;
}

export function registerSubscribers(program: Command, runtime: Runtime): void {
  const command = withTransportOptions(
    "subscribers",
    withCommonOptions(
      program
        .command("subscribers")
        .description(
          "Who receives what, and how far behind? Every subscriber with its types, lag, pending, in-flight, dead and oldest pending age.",
        )
        .option("--type <event-type>", "only subscribers of this event type"),
    ),
  );
  examples(command, [
    ["switchyard subscribers", "every subscriber and its backlog"],
    ["switchyard subscribers --type TRAINING_COMPLETED", "does anything receive this type?"],
    [
      "switchyard subscribers --transport nats --nats-url nats://10.0.0.5:4222",
      "consumers and lag on NATS JetStream",
    ],
  ]);
  withCatalogOption(command);
  command.action(
    action<SubscribersOptions>(runtime, async ({ opts, out, dbPath, catalog }) => {
      if (transportOf(opts) === "nats") return natsSubscribersCommand(opts, out);
      return withReadOnly(
        dbPath,
        (db) => {
          const infos = listSubscribers(db);
          const type =
            opts.type === undefined
              ? undefined
              : checkEventType(catalog, opts.type, (t) => infos.some((s) => s.types.includes(t)));
          const stats = new Map(subscriberStats(db).map((s) => [s.subscriber, s]));
          const subscribers: SubscriberReport[] = infos
            .filter((s) => type === undefined || s.types.includes(type))
            .map((s) => {
              const b = stats.get(s.name);
              return {
                name: s.name,
                types: s.types,
                ephemeral: s.ephemeral,
                createdAt: s.createdAt,
                lastSeen: s.lastSeen,
                pending: b?.pending ?? 0,
                inFlight: b?.inFlight ?? 0,
                lag: b?.lag ?? 0,
                dead: b?.deadLettered ?? 0,
                ...(b?.oldestPendingMs !== undefined ? { oldestPendingMs: b.oldestPendingMs } : {}),
                ...(s.damaged !== undefined ? { damaged: s.damaged } : {}),
              };
            });
          out.data({ subscribers });
          if (subscribers.length === 0) {
            out.line(
              type === undefined
                ? "No subscribers registered: no daemon has subscribed through this database yet."
                : `No subscriber receives ${type}. Start the daemon that handles it, and check that ${type} is durable in the catalog.`,
            );
            return ExitCode.ok;
          }
          out.table(
            [
              "subscriber",
              "lag",
              "pending",
              "in flight",
              "dead",
              "oldest pending",
              "last seen",
              "types",
            ],
            subscribers.map((s) => [
              s.name + (s.ephemeral ? " (ephemeral)" : ""),
              s.lag,
              s.pending,
              s.inFlight,
              s.dead,
              s.oldestPendingMs === undefined ? undefined : formatDuration(s.oldestPendingMs),
              formatTime(s.lastSeen),
              markDamaged(s.types.join(","), s),
            ]),
          );
          reportDamaged(out, subscribers, (s) => `subscriber ${s.name}`);
          out.line();
          out.line(`${plural(subscribers.length, "subscriber")}.`);
          return ExitCode.ok;
        },
        out,
      );
    }),
  );
}

async function natsSubscribersCommand(opts: SubscribersOptions, out: Output): Promise<number> {
  const all = await natsSubscribers(natsSourceOf(opts));
  const subscribers =
    opts.type === undefined ? all : all.filter((s) => s.types.includes(opts.type!));
  out.data({ subscribers });
  if (subscribers.length === 0) {
    out.line(
      `No Switchyard subscribers on stream ${opts.stream}${opts.type ? ` for ${opts.type}` : ""}.`,
    );
    return ExitCode.ok;
  }
  out.table(
    ["subscriber", "lag", "pending", "in flight", "redelivered", "consumers", "types"],
    subscribers.map((s) => [
      s.name + (s.ephemeral ? " (ephemeral)" : ""),
      s.lag,
      s.pending,
      s.inFlight,
      s.redelivered,
      s.consumers.length,
      s.types.join(","),
    ]),
  );
  out.line();
  out.line(`${plural(subscribers.length, "subscriber")} on stream ${opts.stream}.`);
  return ExitCode.ok;
}
