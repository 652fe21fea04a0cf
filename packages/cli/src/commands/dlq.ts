import { type Command, InvalidArgumentError, Option } from "commander";
import {
  type DeadLetter,
  type DeadLetterQuery,
  type DeadLetterStatus,
  DeadLetterNotFoundError,
  ReplayConflictError,
  type ReplayReport,
  type SqliteDeadLetterStore,
  replayTo,
} from "@switchyard/dlq";
import { type CommonOptions, type Runtime, action, examples, withCommonOptions } from "../context";
import { DAMAGED, markDamaged, reportDamaged } from "../damaged";
import { backupDatabase, deadLetterReader, deadLetterWriter, withReadOnly } from "../database";
import { withCatalogOption } from "../catalog-option";
import { checkEventType } from "../event-types";
import {
  CliError,
  ExitCode,
  type Output,
  describeError,
  durationOption,
  formatDuration,
  formatPairs,
  formatTime,
  plural,
  positiveIntOption,
  sinceOption,
} from "../output";
import { countPurgeable, deadDeliveriesKept, hasDeadLetterType } from "../queries";
import { TRANSPORTS, type TransportKind, openTransport } from "../transport";

const STATUSES: readonly DeadLetterStatus[] = [
  "pending_retry",
  "retrying",
  "replayed",
  "permanently_failed",
  "purged",
];
/** What still needs attention (the depth). */
const OPEN: readonly DeadLetterStatus[] = ["pending_retry", "retrying", "permanently_failed"];

function statusesOption(text: string): DeadLetterStatus[] {
  const list = text.split(",").map((s) => s.trim());
  for (const s of list)
    if (!STATUSES.includes(s as DeadLetterStatus))
      throw new InvalidArgumentError(
        `Unknown status "${s}"; expected one of ${STATUSES.join(", ")}.`,
      );
  return list as DeadLetterStatus[];
}

function idArgument(text: string): number {
  const id = Number(text);
  if (!Number.isInteger(id) || id < 1)
    throw new InvalidArgumentError(
      "A dead letter id is a positive integer (see `switchyard dlq list`).",
    );
  return id;
}

interface ListOptions extends CommonOptions {
  readonly type?: string;
  readonly subscriber?: string;
  readonly status?: DeadLetterStatus[];
  readonly all?: boolean;
  readonly since?: Date;
  readonly limit: number;
}

interface ReplayOptions extends CommonOptions {
  readonly id?: number;
  readonly type?: string;
  readonly subscriber?: string;
  readonly status?: DeadLetterStatus[];
  readonly dryRun?: boolean;
  readonly transport: TransportKind;
  readonly limit: number;
}

interface PurgeCliOptions extends CommonOptions {
  readonly id?: number;
  readonly olderThan?: number;
  readonly type?: string;
  readonly subscriber?: string;
  readonly status?: DeadLetterStatus[];
  readonly all?: boolean;
  readonly hard?: boolean;
  readonly yes?: boolean;
}

/** What `switchyard dlq purge --json` prints. */
export interface PurgeReport {
  readonly purged: number;
  readonly byStatus: Partial<Record<DeadLetterStatus, number>>;
  /** The backup written before purging; absent when nothing matched. */
  readonly backup?: string;
  readonly hard: boolean;
}

export function registerDlq(program: Command, runtime: Runtime): void {
  const dlq = program
    .command("dlq")
    .description("The dead-letter queue: list, inspect, replay and purge failed deliveries.");

  const stats = withCommonOptions(
    dlq
      .command("stats")
      .description("How deep is the DLQ? Depth by status, event type and subscriber, oldest age."),
  );
  examples(stats, [["switchyard dlq stats", "DLQ size and where it comes from"]]);
  stats.action(
    action<CommonOptions>(runtime, ({ out, dbPath }) =>
      withReadOnly(dbPath, (db) => {
        const report = deadLetterReader(db)?.stats() ?? {
          depth: 0,
          byStatus: Object.fromEntries(STATUSES.map((s) => [s, 0])),
          byType: {},
          bySubscriber: {},
          oldestAgeMs: undefined,
        };
        out.data(report);
        out.line(
          formatPairs([
            ["depth", report.depth],
            ...STATUSES.map((s) => [s, report.byStatus[s] ?? 0] as const),
            [
              "oldest",
              report.oldestAgeMs === undefined
                ? undefined
                : `${formatDuration(report.oldestAgeMs)} old`,
            ],
          ]),
        );
        const byType = Object.entries(report.byType);
        if (byType.length > 0) {
          out.line();
          out.table(["event type", "depth"], byType);
        }
        const bySubscriber = Object.entries(report.bySubscriber);
        if (bySubscriber.length > 0) {
          out.line();
          out.table(["subscriber", "depth"], bySubscriber);
        }
        return ExitCode.ok;
      }),
    ),
  );

  const list = withCommonOptions(
    dlq
      .command("list")
      .description(
        "What failed for good, and why? Dead letters newest first (by default those still to handle: pending_retry, retrying, permanently_failed).",
      )
      .option("--type <event-type>", "only this event type")
      .option("--subscriber <name>", "only this subscriber")
      .option(
        "--status <list>",
        `comma-separated statuses (${STATUSES.join(", ")})`,
        statusesOption,
      )
      .option("--all", "every status, replayed and purged ones included")
      .option(
        "--since <when>",
        "only those that last failed since a duration ago or an ISO time",
        sinceOption,
      )
      .option("--limit <n>", "at most this many", positiveIntOption, 50),
  );
  examples(list, [
    ["switchyard dlq list", "dead letters still to handle"],
    ["switchyard dlq list --type TRAINING_COMPLETED --since 24h", "recent failures of one type"],
    ["switchyard dlq list --status replayed,purged --json", "history, as JSON"],
  ]);
  withCatalogOption(list);
  list.action(
    action<ListOptions>(runtime, ({ opts, out, dbPath, catalog }) =>
      withReadOnly(dbPath, (db) => {
        const type =
          opts.type === undefined
            ? undefined
            : checkEventType(catalog, opts.type, (t) => hasDeadLetterType(db, t));
        const query: DeadLetterQuery = {
          ...(type !== undefined ? { type } : {}),
          ...(opts.subscriber !== undefined ? { subscriber: opts.subscriber } : {}),
          ...(opts.all ? {} : { status: opts.status ?? OPEN }),
          ...(opts.since !== undefined ? { since: opts.since } : {}),
          limit: opts.limit,
        };
        const deadLetters = deadLetterReader(db)?.list(query) ?? [];
        const kept = deadDeliveriesKept(db);
        out.data({ deadLetters, keptInQueue: kept });
        if (deadLetters.length === 0) out.line("No dead letters match.");
        else
          out.table(
            [
              "id",
              "last failed",
              "type",
              "subscriber",
              "status",
              "reason",
              "attempts",
              "replays",
              "error",
            ],
            deadLetters.map((d) => [
              d.id,
              formatTime(d.lastFailedAt),
              d.eventType,
              d.subscriber,
              markDamaged(d.status, d),
              d.reason,
              d.attempts,
              d.replays,
              `${d.error.name}: ${d.error.message}`,
            ]),
          );
        reportDamaged(out, deadLetters, (d) => `dead letter ${d.id}`);
        if (kept > 0) {
          out.line();
          out.line(
            `${plural(kept, "dead delivery", "dead deliveries")} stay in the queue without a dead-letter sink ` +
              "(see `switchyard subscribers`); give the transport a SqliteDeadLetterStore to keep them here.",
          );
        }
        return ExitCode.ok;
      }),
    ),
  );

  const inspect = withCommonOptions(
    dlq
      .command("inspect")
      .description(
        "Everything about one dead letter: envelope, error with stack, attempts, replays.",
      )
      .argument("<id>", "dead letter id (from dlq list)", idArgument),
  );
  examples(inspect, [
    ["switchyard dlq inspect 42", "one record in full"],
    ["switchyard dlq inspect 42 --json | jq .deadLetter.envelope", "the original envelope"],
  ]);
  inspect.action(
    action<CommonOptions>(runtime, ({ out, dbPath, args }) =>
      withReadOnly(dbPath, (db) => {
        const record = inspectRecord(deadLetterReader(db), args[0] as number, dbPath);
        out.data({ deadLetter: record });
        printRecord(out, record);
        return ExitCode.ok;
      }),
    ),
  );

  const replay = withCommonOptions(
    dlq
      .command("replay")
      .description(
        "Deliver dead letters again to the subscriber that failed them (after fixing the cause): one by id, or all matching --type/--subscriber.",
      )
      .argument("[id]", "dead letter id (from dlq list)", idArgument)
      .option("--id <id>", "only this dead letter (same as the argument)", idArgument)
      .option("--type <event-type>", "every dead letter of this event type")
      .option("--subscriber <name>", "every dead letter of this subscriber")
      .option(
        "--status <list>",
        "statuses to replay (default: pending_retry,permanently_failed)",
        statusesOption,
      )
      .option("--limit <n>", "at most this many records", positiveIntOption, 1000)
      .option("--dry-run", "only list what would be replayed")
      .addOption(
        new Option("--transport <name>", "transport that requeues them")
          .choices(TRANSPORTS)
          .default("sqlite"),
      ),
  );
  examples(replay, [
    ["switchyard dlq replay 42", "one record"],
    ["switchyard dlq replay --id 42", "the same"],
    ["switchyard dlq replay --subscriber evaluator --dry-run", "what would be replayed"],
    ["switchyard dlq replay --type TRAINING_COMPLETED", "every record of one type"],
  ]);
  withCatalogOption(replay);
  replay.action(
    action<ReplayOptions>(runtime, async ({ args, opts, out, dbPath, catalog }) => {
      const positional = args[0] as number | undefined;
      if (positional !== undefined && opts.id !== undefined && positional !== opts.id)
        throw new CliError(
          "USAGE",
          `Two different ids (${positional} and --id ${opts.id}); give one dead letter id.`,
        );
      const id = positional ?? opts.id;
      const filtered =
        opts.type !== undefined || opts.subscriber !== undefined || opts.status !== undefined;
      if (id !== undefined && filtered)
        throw new CliError(
          "USAGE",
          "Give either a dead letter id or --type/--subscriber/--status, not both.",
        );
      if (id === undefined && !filtered)
        throw new CliError(
          "USAGE",
          "Say what to replay: a dead letter id, or --type and/or --subscriber (add --dry-run to preview).",
        );
      const { candidates, query } = await withReadOnly(dbPath, (db) => {
        const reader = deadLetterReader(db);
        if (id !== undefined)
          return { candidates: [inspectRecord(reader, id, dbPath)], query: undefined };
        const type =
          opts.type === undefined
            ? undefined
            : checkEventType(catalog, opts.type, (t) => hasDeadLetterType(db, t));
        const query: DeadLetterQuery = {
          ...(type !== undefined ? { type } : {}),
          ...(opts.subscriber !== undefined ? { subscriber: opts.subscriber } : {}),
          status: opts.status ?? ["pending_retry", "permanently_failed"],
          limit: opts.limit,
        };
        return { candidates: reader?.list(query) ?? [], query };
      });
      const report = await replayRecords(candidates, query, opts, dbPath);
      out.data(report);
      printReplay(out, report);
      return report.failed.length > 0 ||
        (id !== undefined && report.replayed.length === 0 && !report.dryRun)
        ? ExitCode.failed
        : ExitCode.ok;
    }),
  );

  const purge = withCommonOptions(
    dlq
      .command("purge")
      .description(
        "Remove dead letters you are done with (destructive: needs --yes, backs the database up first). Records become tombstones without envelope; --hard deletes them.",
      )
      .option("--id <id>", "only this dead letter (e.g. one poison event)", idArgument)
      .option(
        "--older-than <duration>",
        "last failed longer ago than this (e.g. 7d)",
        durationOption,
      )
      .option("--type <event-type>", "only this event type")
      .option("--subscriber <name>", "only this subscriber")
      .option(
        "--status <list>",
        `comma-separated statuses (${STATUSES.join(", ")})`,
        statusesOption,
      )
      .option("--all", "every dead letter, when no other criterion is given")
      .option("--hard", "delete rows instead of keeping tombstones")
      .option("--yes", "really purge (after a backup)"),
  );
  examples(purge, [
    ["switchyard dlq purge --older-than 7d --yes", "the runbook's weekly clean-up"],
    ["switchyard dlq purge --id 42 --yes", "delete one poison event"],
    ["switchyard dlq purge --status replayed --yes", "records already replayed"],
    [
      "switchyard dlq purge --type QUALITY_ALERT --older-than 1d",
      "preview: refuses, says how many",
    ],
  ]);
  withCatalogOption(purge);
  purge.action(
    action<PurgeCliOptions>(runtime, async ({ opts, out, dbPath, catalog }) => {
      if (opts.id !== undefined) return purgeOne(opts, out, dbPath, opts.id);
      const hasCriterion =
        opts.olderThan !== undefined ||
        opts.type !== undefined ||
        opts.subscriber !== undefined ||
        opts.status !== undefined;
      if (!hasCriterion && !opts.all)
        throw new CliError(
          "USAGE",
          "Say what to purge: --id, --older-than, --type, --subscriber or --status (or --all for every dead letter).",
        );
      const before =
        opts.olderThan === undefined ? undefined : new Date(Date.now() - opts.olderThan);
      const { matching, type } = await withReadOnly(dbPath, (db) => {
        const type =
          opts.type === undefined
            ? undefined
            : checkEventType(catalog, opts.type, (t) => hasDeadLetterType(db, t));
        const matching = countPurgeable(db, {
          ...(before ? { before } : {}),
          ...(type !== undefined ? { type } : {}),
          ...(opts.subscriber !== undefined ? { subscriber: opts.subscriber } : {}),
          ...(opts.status ? { statuses: opts.status } : {}),
        });
        return { matching, type };
      });
      if (!opts.yes) {
        throw new CliError(
          "CONFIRMATION_REQUIRED",
          `Refusing to purge without --yes: ${plural(matching, "dead letter")} match. Purging is ` +
            `destructive; re-run with --yes (the database is backed up first).`,
        );
      }
      if (matching === 0) {
        const report: PurgeReport = { purged: 0, byStatus: {}, hard: opts.hard === true };
        out.data(report);
        out.line("Nothing to purge: no dead letter matches.");
        return ExitCode.ok;
      }
      const backup = await backupDatabase(dbPath);
      out.note(`Backed up ${dbPath} to ${backup}`);
      const store = deadLetterWriter(dbPath);
      try {
        const result = store.purge({
          ...(before ? { olderThan: before } : {}),
          ...(type !== undefined ? { type } : {}),
          ...(opts.subscriber !== undefined ? { subscriber: opts.subscriber } : {}),
          ...(opts.status ? { status: opts.status } : {}),
          ...(opts.all ? { all: true } : {}),
          ...(opts.hard ? { hard: true } : {}),
        });
        const report: PurgeReport = { ...result, backup, hard: opts.hard === true };
        out.data(report);
        out.line(
          `Purged ${plural(result.purged, "dead letter")}` +
            (result.purged
              ? ` (${Object.entries(result.byStatus)
                  .map(([s, n]) => `${s} ${n}`)
                  .join(", ")})`
              : "") +
            (opts.hard ? ", rows deleted." : ", kept as tombstones."),
        );
        out.line(`Backup: ${backup}`);
        return ExitCode.ok;
      } finally {
        store.close();
      }
    }),
  );
}

/** One record, or an error naming the id and the database. */
function inspectRecord(
  reader: SqliteDeadLetterStore | undefined,
  id: number,
  dbPath: string,
): DeadLetter {
  try {
    if (reader) return reader.inspect(id);
  } catch (error) {
    if (!(error instanceof DeadLetterNotFoundError)) throw error;
  }
  throw new CliError(
    "DEAD_LETTER_NOT_FOUND",
    `No dead letter with id ${id} in ${dbPath}. See the ids with \`switchyard dlq list --all\`.`,
  );
}

const IN_PROCESS =
  'origin "router": it failed in an in-process handler, so only the daemon\'s own process can replay ' +
  "it (its DlqRetryDaemon does, or store.replay() with replayTo({ router }) there)";

/** Why `record` cannot be replayed by this command, or `undefined` when it can. */
function notReplayable(record: DeadLetter, transport: TransportKind): string | undefined {
  if (record.origin === "router") return IN_PROCESS;
  if (record.damaged !== undefined) return `damaged: ${record.damaged}`;
  if (record.envelope === undefined) return "purged: the envelope is gone";
  if (record.origin !== transport)
    return `it came from the ${record.origin} transport; replay it with --transport ${record.origin}`;
  return undefined;
}

/**
 * Replay one record, or every record matching `query`. The store selects and claims the records
 * in one transaction, so two replays at the same instant (two operators, this and a retry
 * daemon) hand each record back once: `candidates` (read before) only explain what is skipped.
 */
async function replayRecords(
  candidates: readonly DeadLetter[],
  query: DeadLetterQuery | undefined,
  opts: ReplayOptions,
  dbPath: string,
): Promise<ReplayReport> {
  const skipped: { id: number; reason: string }[] = [];
  const replayable: DeadLetter[] = [];
  for (const record of candidates) {
    const why = notReplayable(record, opts.transport);
    if (why === undefined) replayable.push(record);
    else skipped.push({ id: record.id, reason: why });
  }
  if (query === undefined && skipped.length > 0) {
    throw new CliError(
      "NOT_REPLAYABLE",
      `Dead letter ${skipped[0]!.id} cannot be replayed from here: ${skipped[0]!.reason}.`,
    );
  }
  const report = {
    dryRun: opts.dryRun === true,
    matched: candidates.length,
    replayed: [] as number[],
    skipped,
    failed: [] as { id: number; error: string }[],
    wouldReplay: [] as number[],
  };
  if (opts.dryRun) {
    report.wouldReplay = replayable.map((r) => r.id);
    return report;
  }
  if (replayable.length === 0) return report;
  const store = deadLetterWriter(dbPath);
  const transport = openTransport(opts.transport, { path: dbPath });
  try {
    const to = replayTo({ transport });
    if (query === undefined) {
      const record = replayable[0]!;
      try {
        // The record as read above: refused if someone replayed it since.
        await store.replay(record, { to });
        report.replayed.push(record.id);
      } catch (error) {
        if (error instanceof ReplayConflictError)
          report.skipped.push({ id: record.id, reason: error.message });
        else report.failed.push({ id: record.id, error: describeError(error).message });
      }
      return report;
    }
    const done = await store.replay({ ...query, origin: opts.transport }, { to });
    const explained = new Set(skipped.map((s) => s.id));
    report.replayed.push(...done.replayed);
    report.skipped.push(...done.skipped.filter((s) => !explained.has(s.id)));
    report.failed.push(...done.failed);
    // Read above but gone from the selection by now: replayed or claimed by someone else.
    const handled = new Set([
      ...done.replayed,
      ...done.skipped.map((s) => s.id),
      ...done.failed.map((f) => f.id),
    ]);
    for (const record of replayable)
      if (!handled.has(record.id))
        report.skipped.push({
          id: record.id,
          reason: "replayed or being replayed by someone else",
        });
  } finally {
    await transport.close();
    store.close();
  }
  return report;
}

/** `dlq purge --id N`: one record, after a backup. */
async function purgeOne(
  opts: PurgeCliOptions,
  out: Output,
  dbPath: string,
  id: number,
): Promise<number> {
  if (
    opts.olderThan !== undefined ||
    opts.type !== undefined ||
    opts.subscriber !== undefined ||
    opts.status !== undefined ||
    opts.all
  )
    throw new CliError(
      "USAGE",
      "Give either --id or --older-than/--type/--subscriber/--status/--all, not both.",
    );
  const record = await withReadOnly(dbPath, (db) =>
    inspectRecord(deadLetterReader(db), id, dbPath),
  );
  if (!opts.yes)
    throw new CliError(
      "CONFIRMATION_REQUIRED",
      `Refusing to purge dead letter ${id} (${record.eventType} for ${record.subscriber}, ${record.status}) ` +
        "without --yes. Purging is destructive; re-run with --yes (the database is backed up first).",
    );
  if (record.status === "purged" && !opts.hard) {
    const report: PurgeReport = { purged: 0, byStatus: {}, hard: false };
    out.data(report);
    out.line(`Dead letter ${id} is purged already (add --hard to delete its tombstone).`);
    return ExitCode.ok;
  }
  const backup = await backupDatabase(dbPath);
  out.note(`Backed up ${dbPath} to ${backup}`);
  const store = deadLetterWriter(dbPath);
  try {
    const result = store.purge({ id, ...(opts.hard ? { hard: true } : {}) });
    const report: PurgeReport = { ...result, backup, hard: opts.hard === true };
    out.data(report);
    if (result.purged === 0) {
      out.line(
        `Dead letter ${id} was not purged: it is being replayed right now. Try again once the replay is done.`,
      );
      return ExitCode.failed;
    }
    out.line(`Purged dead letter ${id}${opts.hard ? ", row deleted." : ", kept as a tombstone."}`);
    out.line(`Backup: ${backup}`);
    return ExitCode.ok;
  } finally {
    store.close();
  }
}

function printReplay(out: Output, report: ReplayReport): void {
  if (report.dryRun) {
    out.line(
      report.wouldReplay.length
        ? `Would replay ${plural(report.wouldReplay.length, "dead letter")}: ${report.wouldReplay.join(", ")}`
        : "Nothing would be replayed.",
    );
  } else if (report.replayed.length) {
    out.line(
      `Replayed ${plural(report.replayed.length, "dead letter")}: ${report.replayed.join(", ")}`,
    );
  } else if (report.matched === 0) {
    out.line("No dead letters match.");
  }
  for (const s of report.skipped) out.line(`skipped ${s.id}: ${s.reason}`);
  for (const f of report.failed) out.line(`failed ${f.id}: ${f.error}`);
}

function printRecord(out: Output, d: DeadLetter): void {
  out.line(
    formatPairs([
      ["id", d.id],
      ["event", `${d.eventType} ${d.eventId}`],
      ["subscriber", d.subscriber],
      ["origin", d.origin],
      ["status", markDamaged(d.status, d)],
      ["reason", d.reason],
      ["attempts", d.attempts],
      ["replays", d.replays],
      ["first failed", formatTime(d.firstFailedAt)],
      ["last failed", formatTime(d.lastFailedAt)],
      ["next retry", d.nextRetryAt === undefined ? undefined : formatTime(d.nextRetryAt)],
      ["replayed at", formatTime(d.replayedAt)],
      ["error", `${d.error.name}${d.error.code ? ` [${d.error.code}]` : ""}: ${d.error.message}`],
    ]),
  );
  if (d.error.stack) {
    out.line();
    out.line(d.error.stack);
  }
  out.line();
  out.line(
    d.damaged !== undefined
      ? `(${DAMAGED}: ${d.damaged})`
      : d.envelope
        ? JSON.stringify(d.envelope, null, 2)
        : "(envelope purged)",
  );
}
