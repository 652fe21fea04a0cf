import type { Command } from "commander";
import type { SubscriberBacklog } from "@switchyard/transport";
import {
  type CommonOptions,
  type Runtime,
  action,
  examples,
  watching,
  withCommonOptions,
  withWatchOption,
} from "../context";
import { withCatalogOption } from "../catalog-option";
import { markDamaged, reportDamaged } from "../damaged";
import { ExitCode, formatDuration, formatTime, plural } from "../output";
import { eventTypeOf } from "./shared";

interface SubscribersOptions extends CommonOptions {
  readonly type?: string;
  readonly watch?: string | boolean;
}

/**
 * `switchyard subscribers --json` prints `{ subscribers }`: the inspector's
 * `SubscriberBacklog` of each (one definition of pending, in flight, retrying, dead and lag on
 * every transport).
 */
export type SubscriberReport = SubscriberBacklog;

export function registerSubscribers(program: Command, runtime: Runtime): void {
  const command = withCommonOptions(
    program
      .command("subscribers")
      .description(
        "Who receives what, and how far behind? Every subscriber with its types, lag (pending + in flight + retrying), dead and oldest pending age.",
      )
      .option("--type <event-type>", "only subscribers of this event type"),
  );
  examples(command, [
    ["switchyard subscribers", "every subscriber and its backlog"],
    ["switchyard subscribers --type TRAINING_COMPLETED", "does anything receive this type?"],
    [
      "switchyard subscribers --transport nats://10.0.0.5:4222/SWITCHYARD",
      "the same on NATS JetStream",
    ],
  ]);
  withCatalogOption(command);
  withWatchOption(command);
  command.action(
    action<SubscribersOptions>(runtime, async (context) => {
      const { opts, driver } = context;
      const inspector = (await driver({ readOnly: true })).inspector();
      const type = await eventTypeOf(context, opts.type, inspector);
      return watching(context, "switchyard subscribers", async (out) => {
        const all = await inspector.subscribers();
        const subscribers = all.filter((s) => type === undefined || s.types.includes(type));
        out.data({ subscribers });
        if (subscribers.length === 0) {
          out.line(
            type === undefined
              ? `No subscribers registered on ${inspector.transport}: no daemon has subscribed here yet.`
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
            "retrying",
            "dead",
            "oldest pending",
            "last seen",
            "types",
          ],
          subscribers.map((s) => [
            s.subscriber + (s.ephemeral ? " (ephemeral)" : ""),
            s.lag,
            s.pending,
            s.inFlight,
            s.retrying,
            s.dead,
            s.oldestPendingMs === undefined ? undefined : formatDuration(s.oldestPendingMs),
            formatTime(s.lastSeen),
            markDamaged(s.types.join(","), s),
          ]),
        );
        reportDamaged(out, subscribers, (s) => `subscriber ${s.subscriber}`);
        out.line();
        out.line(`${plural(subscribers.length, "subscriber")}.`);
        return ExitCode.ok;
      });
    }),
  );
}
