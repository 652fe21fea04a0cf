import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import {
  type ClearResult,
  backupQueue,
  clearPending,
  countPending,
  listSubscribers,
} from "@switchyard/cross-process-queue";
import { type CommonOptions, type Runtime, action, examples, withCommonOptions } from "../context";
import { backupDatabase, openReadOnly, openWritable, withReadOnly } from "../database";
import { CliError, ExitCode, plural } from "../output";

interface ClearOptions extends CommonOptions {
  readonly pending?: boolean;
  readonly subscriber?: string;
  readonly yes?: boolean;
}

interface BackupOptions extends CommonOptions {
  readonly to?: string;
}

/** What `switchyard queue clear --json` prints. */
export interface ClearReport extends ClearResult {
  /** The backup written before clearing. */
  readonly backup: string;
  readonly subscriber?: string;
}

export function registerQueue(program: Command, runtime: Runtime): void {
  const queue = program
    .command("queue")
    .description("Recovery of the cross-process queue: back it up, clear what is pending.");

  const backup = withCommonOptions(
    queue
      .command("backup")
      .description("Copy the database safely while daemons keep writing (SQLite online backup).")
      .option("--to <file>", "where to write it (default: <db>.<UTC time>.bak next to it)"),
  );
  examples(backup, [
    ["switchyard queue backup", "backup next to the database"],
    ["switchyard queue backup --to /backups/coordination.db", "backup to a chosen file"],
  ]);
  backup.action(
    action<BackupOptions>(runtime, async ({ opts, out, dbPath }) => {
      let destination: string;
      if (opts.to === undefined) destination = await backupDatabase(dbPath);
      else {
        destination = resolve(opts.to);
        if (existsSync(destination))
          throw new CliError(
            "BACKUP_EXISTS",
            `${destination} already exists; choose another --to file.`,
          );
        const db = openReadOnly(dbPath, out);
        try {
          await backupQueue(db, destination);
        } finally {
          db.close();
        }
      }
      out.data({ backup: destination });
      out.line(`Backed up ${dbPath} to ${destination}`);
      return ExitCode.ok;
    }),
  );

  const clear = withCommonOptions(
    queue
      .command("clear")
      .description(
        "Drop every delivery not acked yet, so nothing published so far is delivered (destructive: needs --yes, backs the database up first). Events and dead deliveries stay.",
      )
      .option("--pending", "clear pending and in-flight deliveries (the only thing clear does)")
      .option("--subscriber <name>", "only this subscriber's")
      .option("--yes", "really clear (after a backup)"),
  );
  examples(clear, [
    ["switchyard queue clear --pending", "preview: refuses, says how many"],
    ["switchyard queue clear --pending --yes", "back up, then clear everything pending"],
    ["switchyard queue clear --pending --subscriber trainer --yes", "one subscriber's backlog"],
  ]);
  clear.action(
    action<ClearOptions>(runtime, async ({ opts, out, dbPath }) => {
      if (!opts.pending)
        throw new CliError(
          "USAGE",
          "Say what to clear: --pending (pending and in-flight deliveries).",
        );
      const pending = await withReadOnly(
        dbPath,
        (db) => {
          if (
            opts.subscriber !== undefined &&
            !listSubscribers(db).some((s) => s.name === opts.subscriber)
          )
            throw new CliError(
              "UNKNOWN_SUBSCRIBER",
              `No subscriber named "${opts.subscriber}"; see \`switchyard subscribers\`.`,
            );
          return countPending(
            db,
            opts.subscriber === undefined ? {} : { subscriber: opts.subscriber },
          );
        },
        out,
      );
      const scope = opts.subscriber === undefined ? "" : ` of ${opts.subscriber}`;
      if (!opts.yes) {
        throw new CliError(
          "CONFIRMATION_REQUIRED",
          `Refusing to clear without --yes: ${plural(pending, "pending delivery", "pending deliveries")}${scope} ` +
            `would be dropped. Clearing is destructive; re-run with --yes (the database is backed up first).`,
        );
      }
      const backup = await backupDatabase(dbPath);
      out.note(`Backed up ${dbPath} to ${backup}`);
      const db = openWritable(dbPath);
      let result: ClearResult;
      try {
        result = clearPending(
          db,
          opts.subscriber === undefined ? {} : { subscriber: opts.subscriber },
        );
      } finally {
        db.close();
      }
      const report: ClearReport = {
        ...result,
        backup,
        ...(opts.subscriber !== undefined ? { subscriber: opts.subscriber } : {}),
      };
      out.data(report);
      out.line(
        `Cleared${scope}: ${plural(result.deliveries, "open delivery", "open deliveries")} deleted, ` +
          `${plural(result.skipped, "queued event")} skipped.`,
      );
      out.line(`Backup: ${backup}`);
      return ExitCode.ok;
    }),
  );
}
