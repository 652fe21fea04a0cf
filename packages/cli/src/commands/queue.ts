import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import type { ActionResult } from "@switchyard/transport";
import {
  type CommonOptions,
  type Runtime,
  action,
  examples,
  requireCapability,
  requireSubscriber,
  withCommonOptions,
} from "../context";
import { withCatalogOption } from "../catalog-option";
import { CliError, ExitCode, plural } from "../output";
import { keepOption } from "./dlq";
import { eventTypeOf } from "./shared";

interface ClearOptions extends CommonOptions {
  readonly pending?: boolean;
  readonly subscriber?: string;
  readonly type?: string;
  readonly yes?: boolean;
  readonly keep?: number;
}

interface BackupCliOptions extends CommonOptions {
  readonly dir?: string;
  readonly keep?: number;
}

/** What `switchyard queue clear --json` prints: the admin's `ActionResult` and the scope. */
export interface ClearReport extends ActionResult {
  readonly subscriber?: string;
  readonly type?: string;
}

export function registerQueue(program: Command, runtime: Runtime): void {
  const queue = program
    .command("queue")
    .description("Recovery of the transport's backlog: back it up, clear what is pending.");

  const backup = withCommonOptions(
    queue
      .command("backup")
      .description(
        "Take a consistent backup while daemons keep writing (SQLite online backup), keeping the newest --keep.",
      )
      .option(
        "--dir <dir>",
        "directory for the backup (default: the transport's, next to the database for SQLite)",
      )
      .option(
        "--keep <n>",
        "backups kept in that directory; older ones are removed (default: 10)",
        keepOption,
      ),
  );
  examples(backup, [
    ["switchyard queue backup", "backup next to the database"],
    ["switchyard queue backup --dir /backups --keep 7", "into /backups, the last 7 kept"],
  ]);
  backup.action(
    action<BackupCliOptions>(runtime, async ({ opts, out, driver, runtime }) => {
      const opened = await driver({ readOnly: false });
      requireCapability(opened, "backup", "queue backup");
      // The directory is created when missing, as `cp -r` would not: a backup is never lost to it.
      if (opts.dir !== undefined) mkdirSync(resolve(opts.dir), { recursive: true });
      const path = await opened.admin().backup({
        ...(opts.dir !== undefined ? { dir: resolve(opts.dir) } : {}),
        ...(opts.keep !== undefined ? { keep: opts.keep } : {}),
        ...(runtime.signal ? { signal: runtime.signal } : {}),
      });
      out.data({ backup: path });
      out.line(`Backed up ${opened.target} to ${path}`);
      return ExitCode.ok;
    }),
  );

  const clear = withCommonOptions(
    queue
      .command("clear")
      .description(
        "Drop every delivery not settled yet, so nothing published so far is delivered (destructive: needs --yes, backs up first). Events and dead letters stay.",
      )
      .option(
        "--pending",
        "clear pending, in-flight and retrying deliveries (the only thing clear does)",
      )
      .option("--subscriber <name>", "only this subscriber's")
      .option(
        "--type <event-type>",
        "only deliveries of this event type (one the catalog defines, or one the transport holds)",
      )
      .option("--keep <n>", "backups kept; older ones are removed (default: 10)", keepOption)
      .option("--yes", "really clear (after a backup)"),
  );
  examples(clear, [
    ["switchyard queue clear --pending", "preview: refuses, says how many"],
    ["switchyard queue clear --pending --yes", "back up, then clear everything pending"],
    ["switchyard queue clear --pending --subscriber trainer --yes", "one subscriber's backlog"],
  ]);
  withCatalogOption(clear);
  clear.action(
    action<ClearOptions>(runtime, async (context) => {
      const { opts, out, driver, runtime } = context;
      if (!opts.pending)
        throw new CliError("USAGE", "Say what to clear: --pending (the backlog not settled yet).");
      const opened = await driver({ readOnly: opts.yes !== true });
      requireCapability(opened, "clearPending", "queue clear");
      const subscribers = await opened.inspector().subscribers();
      requireSubscriber(subscribers, opts.subscriber);
      // A misspelt type would clear nothing and report success: refused like an unknown subscriber.
      const type = await eventTypeOf(context, opts.type, opened.inspector());
      const filter = {
        ...(opts.subscriber !== undefined ? { subscriber: opts.subscriber } : {}),
        ...(type !== undefined ? { type } : {}),
      };
      const scope =
        (opts.subscriber === undefined ? "" : ` of ${opts.subscriber}`) +
        (type === undefined ? "" : ` for ${type}`);
      if (!opts.yes) {
        const lag = subscribers
          .filter((s) => opts.subscriber === undefined || s.subscriber === opts.subscriber)
          .reduce((sum, s) => sum + s.lag, 0);
        throw new CliError(
          "CONFIRMATION_REQUIRED",
          `Refusing to clear without --yes: the backlog${scope} (${plural(lag, "unsettled delivery", "unsettled deliveries")}` +
            `${type === undefined ? "" : " of every type"}) would be dropped. Clearing is destructive; re-run with --yes` +
            `${opened.capabilities.backup ? " (a backup is taken first)" : ""}.`,
        );
      }
      const result = await opened.admin().clearPending(filter, {
        ...(opts.keep !== undefined ? { backup: { keep: opts.keep } } : {}),
        ...(runtime.signal ? { signal: runtime.signal } : {}),
      });
      const report: ClearReport = { ...result, ...filter };
      out.data(report);
      if (result.backup) out.note(`Backed up to ${result.backup}`);
      out.line(`Cleared${scope}: ${plural(result.count, "delivery", "deliveries")} dropped.`);
      if (result.backup) out.line(`Backup: ${result.backup}`);
      return ExitCode.ok;
    }),
  );
}
