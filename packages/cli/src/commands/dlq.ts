import { type Command, InvalidArgumentError } from "commander";
import { agoDate, durationParser, sinceOption } from "../duration";
import {
  type ActionResult,
  type DeadLetterFilter,
  type DeadLetterInfo,
  type DeadLetterStatus,
  type Inspector,
  type ReplayResult,
  REPLAY_SKIP_REASONS,
  replaySkipReason,
} from "@switchyard/transport";
import {
  type CommonOptions,
  type Runtime,
  action,
  examples,
  requireCapability,
  withCommonOptions,
} from "../context";
import { DAMAGED, markDamaged, reportDamaged } from "../damaged";
import { withCatalogOption } from "../catalog-option";
import {
  CliError,
  ExitCode,
  type Output,
  formatDuration,
  formatPairs,
  formatTime,
  plural,
  positiveIntOption,
  wholeNumberOf,
} from "../output";
import { type RetryDaemonState, eventTypeOf, retryDaemonState, retryNote } from "./shared";

const STATUSES: readonly DeadLetterStatus[] = [
  "pending_retry",
  "retrying",
  "replayed",
  "permanently_failed",
  "purged",
];
/** What still needs attention (the depth). */
const OPEN: readonly DeadLetterStatus[] = ["pending_retry", "retrying", "permanently_failed"];
/** What `dlq replay` hands back by default; `--again` adds `replayed`. */
const REPLAYABLE: readonly DeadLetterStatus[] = ["pending_retry", "permanently_failed"];

function statusesOption(text: string): DeadLetterStatus[] {
  const list = text.split(",").map((s) => s.trim());
  for (const s of list)
    if (!STATUSES.includes(s as DeadLetterStatus))
      throw new InvalidArgumentError(
        `Unknown status "${s}"; expected one of ${STATUSES.join(", ")}.`,
      );
  return list as DeadLetterStatus[];
}

function idArgument(text: string): string {
  if (text.trim() === "")
    throw new InvalidArgumentError("A dead letter id is not empty (see `switchyard dlq list`).");
  return text.trim();
}

function eventIdOption(text: string): string {
  if (text.trim() === "")
    throw new InvalidArgumentError("An event id is not empty (see `switchyard events`).");
  return text.trim();
}

/** The `--event` part of a filter: the dead letters of one event (one per subscriber that gave up). */
const eventFilter = (event: string | undefined): Pick<DeadLetterFilter, "eventId"> =>
  event !== undefined ? { eventId: event } : {};

/** Commander option parser for `--keep <n>`: backups kept, at least 1. */
export function keepOption(text: string): number {
  const n = wholeNumberOf(text);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError("Expected the number of backups to keep (1 or more).");
  return n;
}

interface ListOptions extends CommonOptions {
  readonly event?: string;
  readonly type?: string;
  readonly subscriber?: string;
  readonly status?: DeadLetterStatus[];
  readonly all?: boolean;
  readonly since?: Date;
  readonly limit: number;
}

interface ReplayCliOptions extends CommonOptions {
  readonly id?: string;
  readonly event?: string;
  readonly type?: string;
  readonly subscriber?: string;
  readonly status?: DeadLetterStatus[];
  readonly dryRun?: boolean;
  readonly again?: boolean;
}

interface PurgeCliOptions extends CommonOptions {
  readonly id?: string;
  readonly olderThan?: number;
  readonly event?: string;
  readonly type?: string;
  readonly subscriber?: string;
  readonly status?: DeadLetterStatus[];
  readonly all?: boolean;
  readonly hard?: boolean;
  readonly yes?: boolean;
  readonly keep?: number;
}

/** What `switchyard dlq purge --json` prints: the admin's `ActionResult` and whether rows were deleted. */
export interface PurgeReport extends ActionResult {
  readonly hard: boolean;
}

/** What `switchyard dlq list --json` prints. */
export interface DeadLetterListReport {
  readonly deadLetters: readonly DeadLetterInfo[];
  /** Whether a retry daemon runs: without one, `nextRetryAt` is when it would, not when it will. */
  readonly retryDaemon: RetryDaemonState;
}

export function registerDlq(program: Command, runtime: Runtime): void {
  const dlq = program
    .command("dlq")
    .description("The dead-letter queue: list, inspect, replay and purge failed deliveries.");

  const stats = withCommonOptions(
    dlq
      .command("stats")
      .description(
        "How deep is the DLQ? Depth by status, reason, event type and subscriber, oldest age.",
      ),
  );
  examples(stats, [["switchyard dlq stats", "DLQ size and where it comes from"]]);
  stats.action(
    action<CommonOptions>(runtime, async ({ out, driver }) => {
      const opened = await driver({ readOnly: true });
      requireCapability(opened, "deadLetters", "dlq stats");
      const report = await opened.inspector().deadLetterCounts();
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
      for (const [title, counts] of [
        ["reason", report.byReason],
        ["event type", report.byType],
        ["subscriber", report.bySubscriber],
      ] as const) {
        const rows = Object.entries(counts);
        if (rows.length === 0) continue;
        out.line();
        out.table([title, "depth"], rows);
      }
      return ExitCode.ok;
    }),
  );

  const list = withCommonOptions(
    dlq
      .command("list")
      .description(
        "What failed for good, and why? Dead letters newest first (by default those still to handle: pending_retry, retrying, permanently_failed), and whether a retry daemon runs.",
      )
      .option(
        "--event <id>",
        "only the dead letters of this event (one per subscriber that gave up on it)",
        eventIdOption,
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
    ["switchyard dlq list --event 0192f3a4-… --all", "where one event failed, every status"],
    ["switchyard dlq list --status replayed,purged --json", "history, as JSON"],
  ]);
  withCatalogOption(list);
  list.action(
    action<ListOptions>(runtime, async (context) => {
      const { opts, out, driver } = context;
      const opened = await driver({ readOnly: true });
      requireCapability(opened, "deadLetters", "dlq list");
      const inspector = opened.inspector();
      const type = await eventTypeOf(context, opts.type, inspector);
      const { deadLetters } = await inspector.deadLetters({
        ...eventFilter(opts.event),
        ...(type !== undefined ? { type } : {}),
        ...(opts.subscriber !== undefined ? { subscriber: opts.subscriber } : {}),
        ...(opts.all ? {} : { status: opts.status ?? OPEN }),
        ...(opts.since !== undefined ? { since: opts.since } : {}),
        limit: opts.limit,
      });
      const retryDaemon = await retryDaemonState(inspector);
      const report: DeadLetterListReport = { deadLetters, retryDaemon };
      out.data(report);
      if (deadLetters.length === 0) {
        out.line("No dead letters match.");
        return ExitCode.ok;
      }
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
          "next retry",
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
          nextRetry(d, retryDaemon),
          `${d.error.name}: ${d.error.message}`,
        ]),
        { whole: ["id"] },
      );
      reportDamaged(out, deadLetters, (d) => `dead letter ${d.id}`);
      // pending_retry is what a retry daemon retries: say whether one runs.
      if (deadLetters.some((d) => d.nextRetryAt !== undefined || d.status === "pending_retry")) {
        out.line();
        out.line(retryNote(retryDaemon));
      }
      return ExitCode.ok;
    }),
  );

  const inspect = withCommonOptions(
    dlq
      .command("inspect")
      .description(
        "Everything about one dead letter: envelope, error with stack, attempts, replays, next retry.",
      )
      .argument("<id>", "dead letter id (from dlq list)", idArgument),
  );
  examples(inspect, [
    ["switchyard dlq inspect 42", "one record in full"],
    ["switchyard dlq inspect 42 --json | jq .deadLetter.envelope", "the original envelope"],
  ]);
  inspect.action(
    action<CommonOptions>(runtime, async ({ out, args, driver }) => {
      const opened = await driver({ readOnly: true });
      requireCapability(opened, "deadLetters", "dlq inspect");
      const inspector = opened.inspector();
      const record = await recordOf(inspector, String(args[0]), opened.target);
      const retryDaemon = await retryDaemonState(inspector);
      out.data({ deadLetter: record, retryDaemon });
      printRecord(out, record, retryDaemon);
      return ExitCode.ok;
    }),
  );

  const replay = withCommonOptions(
    dlq
      .command("replay")
      .description(
        "Deliver dead letters again to the subscriber that failed them (after fixing the cause): one by id, or all matching --event/--type/--subscriber/--status. One already replayed needs --again.",
      )
      .argument("[id]", "dead letter id (from dlq list)", idArgument)
      .option("--id <id>", "only this dead letter (same as the argument)", idArgument)
      .option("--event <id>", "every dead letter of this event (each subscriber's)", eventIdOption)
      .option("--type <event-type>", "every dead letter of this event type")
      .option("--subscriber <name>", "every dead letter of this subscriber")
      .option(
        "--status <list>",
        "statuses to replay (default: pending_retry,permanently_failed; with --again also replayed)",
        statusesOption,
      )
      .option("--again", "also replay dead letters replayed before")
      .option("--dry-run", "only list what would be replayed"),
  );
  examples(replay, [
    ["switchyard dlq replay 42", "one record"],
    ["switchyard dlq replay 42 --again", "one record replayed before, once more"],
    ["switchyard dlq replay --subscriber evaluator --dry-run", "what would be replayed"],
    ["switchyard dlq replay --type TRAINING_COMPLETED", "every record of one type"],
    ["switchyard dlq replay --event 0192f3a4-…", "one event, to every subscriber that gave up"],
  ]);
  withCatalogOption(replay);
  replay.action(
    action<ReplayCliOptions>(runtime, async (context) => {
      const { args, opts, out, driver, runtime } = context;
      // Stops the replay between records (the records not replayed yet are left as they were).
      const signalOption = runtime.signal ? { signal: runtime.signal } : {};
      const positional = args[0] as string | undefined;
      if (positional !== undefined && opts.id !== undefined && positional !== opts.id)
        throw new CliError(
          "USAGE",
          `Two different ids (${positional} and --id ${opts.id}); give one dead letter id.`,
        );
      const id = positional ?? opts.id;
      const filtered =
        opts.event !== undefined ||
        opts.type !== undefined ||
        opts.subscriber !== undefined ||
        opts.status !== undefined;
      if (id !== undefined && filtered)
        throw new CliError(
          "USAGE",
          "Give either a dead letter id or --event/--type/--subscriber/--status, not both.",
        );
      if (id === undefined && !filtered)
        throw new CliError(
          "USAGE",
          "Say what to replay: a dead letter id, or --event, --type and/or --subscriber (add --dry-run to preview).",
        );
      // A dry run only reads (the inspector), so it works on a file in a read-only directory.
      const opened = await driver({ readOnly: opts.dryRun === true });
      requireCapability(opened, "deadLetters", "dlq replay");
      if (!opts.dryRun) requireCapability(opened, "replay", "dlq replay");
      const inspector = opened.inspector();
      let filter: DeadLetterFilter;
      if (id !== undefined) {
        const record = await recordOf(inspector, id, opened.target);
        if (record.status === "replayed" && !opts.again) {
          const report: ReplayResult = {
            dryRun: opts.dryRun === true,
            matched: 1,
            replayed: [],
            skipped: [
              {
                id,
                reason: `replayed before (${formatTime(record.replayedAt) ?? "time unknown"})`,
              },
            ],
            failed: [],
            wouldReplay: [],
          };
          out.data(report);
          out.line(
            `Dead letter ${id} was replayed before (${plural(record.replays, "replay")}, last at ` +
              `${formatTime(record.replayedAt) ?? "an unknown time"}): add --again to replay it once more.`,
          );
          return ExitCode.failed;
        }
        filter = { id };
      } else {
        const type = await eventTypeOf(context, opts.type, inspector);
        filter = {
          ...eventFilter(opts.event),
          ...(type !== undefined ? { type } : {}),
          ...(opts.subscriber !== undefined ? { subscriber: opts.subscriber } : {}),
          status: opts.status ?? (opts.again ? [...REPLAYABLE, "replayed"] : REPLAYABLE),
        };
      }
      const report = opts.dryRun
        ? await previewReplay(inspector, filter, { again: opts.again === true, ...signalOption })
        : await opened
            .admin()
            .replay(filter, { dryRun: false, again: opts.again === true, ...signalOption });
      out.data(report);
      printReplay(out, report, opts.again === true);
      // Stopped partway by its signal: what was done is printed above; the rest was not tried.
      if (report.skipped.some((s) => s.reason === REPLAY_SKIP_REASONS.aborted))
        return ExitCode.interrupted;
      return report.failed.length > 0 ||
        (id !== undefined && !report.dryRun && report.replayed.length === 0) ||
        (id !== undefined && report.dryRun && report.wouldReplay.length === 0)
        ? ExitCode.failed
        : ExitCode.ok;
    }),
  );

  const purge = withCommonOptions(
    dlq
      .command("purge")
      .description(
        "Remove dead letters you are done with (destructive: needs --yes, backs up first where the transport can). Records become tombstones without envelope; --hard deletes them.",
      )
      .option("--id <id>", "only this dead letter (e.g. one poison event)", idArgument)
      .option(
        "--older-than <duration>",
        "last failed longer ago than this (e.g. 7d)",
        durationParser("--older-than"),
      )
      .option("--event <id>", "only the dead letters of this event", eventIdOption)
      .option("--type <event-type>", "only this event type")
      .option("--subscriber <name>", "only this subscriber")
      .option(
        "--status <list>",
        `comma-separated statuses (${STATUSES.join(", ")})`,
        statusesOption,
      )
      .option("--all", "every dead letter, when no other criterion is given")
      .option("--hard", "delete rows instead of keeping tombstones")
      .option("--keep <n>", "backups kept; older ones are removed (default: 10)", keepOption)
      .option("--yes", "really purge (after a backup)"),
  );
  examples(purge, [
    ["switchyard dlq purge --older-than 7d --yes", "the runbook's weekly clean-up"],
    ["switchyard dlq purge --id 42 --yes", "delete one poison event"],
    ["switchyard dlq purge --event 0192f3a4-… --yes", "every dead letter of one event"],
    ["switchyard dlq purge --status replayed --yes --keep 3", "records already replayed"],
    [
      "switchyard dlq purge --type QUALITY_ALERT --older-than 1d",
      "preview: refuses, says how many",
    ],
  ]);
  withCatalogOption(purge);
  purge.action(
    action<PurgeCliOptions>(runtime, async (context) => {
      const { opts, out, driver, runtime } = context;
      const criteria =
        opts.olderThan !== undefined ||
        opts.event !== undefined ||
        opts.type !== undefined ||
        opts.subscriber !== undefined ||
        opts.status !== undefined;
      if (opts.id !== undefined && (criteria || opts.all))
        throw new CliError(
          "USAGE",
          "Give either --id or --older-than/--event/--type/--subscriber/--status/--all, not both.",
        );
      if (opts.id === undefined && !criteria && !opts.all)
        throw new CliError(
          "USAGE",
          "Say what to purge: --id, --older-than, --event, --type, --subscriber or --status (or --all for every dead letter).",
        );
      const opened = await driver({ readOnly: opts.yes !== true });
      requireCapability(opened, "deadLetters", "dlq purge");
      if (opts.yes) requireCapability(opened, "purge", "dlq purge");
      const inspector = opened.inspector();
      let filter: DeadLetterFilter;
      let what: string;
      if (opts.id !== undefined) {
        const record = await recordOf(inspector, opts.id, opened.target);
        if (record.status === "purged" && !opts.hard) {
          const report: PurgeReport = { dryRun: false, count: 0, hard: false };
          out.data(report);
          out.line(
            `Dead letter ${opts.id} is purged already (add --hard to delete its tombstone).`,
          );
          return ExitCode.ok;
        }
        filter = { id: opts.id };
        what = `dead letter ${opts.id} (${record.eventType} for ${record.subscriber}, ${record.status})`;
      } else {
        const type = await eventTypeOf(context, opts.type, inspector);
        filter = {
          ...(opts.olderThan !== undefined
            ? { before: agoDate(opts.olderThan, "--older-than") }
            : {}),
          ...eventFilter(opts.event),
          ...(type !== undefined ? { type } : {}),
          ...(opts.subscriber !== undefined ? { subscriber: opts.subscriber } : {}),
          ...(opts.status ? { status: opts.status } : {}),
        };
        what = "";
      }
      if (!opts.yes) {
        const matching = await countMatching(inspector, filter);
        throw new CliError(
          "CONFIRMATION_REQUIRED",
          `Refusing to purge ${what || plural(matching, "matching dead letter")} without --yes. ` +
            `Purging is destructive; re-run with --yes${opened.capabilities.backup ? " (a backup is taken first)" : ""}.`,
        );
      }
      const result = await opened.admin().purge(filter, {
        all: opts.all === true && !criteria,
        hard: opts.hard === true,
        ...(opts.keep !== undefined ? { backup: { keep: opts.keep } } : {}),
        ...(runtime.signal ? { signal: runtime.signal } : {}),
      });
      const report: PurgeReport = { ...result, hard: opts.hard === true };
      out.data(report);
      if (result.backup) out.note(`Backed up to ${result.backup}`);
      if (opts.id !== undefined && result.count === 0) {
        out.line(
          `Dead letter ${opts.id} was not purged: it is being replayed right now. Try again once the replay is done.`,
        );
        return ExitCode.failed;
      }
      out.line(
        result.count === 0
          ? "Nothing to purge: no dead letter matches."
          : `Purged ${plural(result.count, "dead letter")}${opts.hard ? ", rows deleted." : ", kept as tombstones."}`,
      );
      if (result.backup) out.line(`Backup: ${result.backup}`);
      return ExitCode.ok;
    }),
  );
}

/** How many dead letters a filter matches (the pages followed). */
async function countMatching(inspector: Inspector, filter: DeadLetterFilter): Promise<number> {
  let count = 0;
  let cursor: string | undefined;
  do {
    const page = await inspector.deadLetters({
      ...filter,
      limit: 1000,
      ...(cursor ? { cursor } : {}),
    });
    count += page.deadLetters.length;
    cursor = page.next;
  } while (cursor);
  return count;
}

/** One record, or an error naming the id and the target. */
/** Options of {@link previewReplay}. */
interface PreviewReplayOptions {
  /** Count dead letters replayed before as replayable (`--again`). @defaultValue false */
  readonly again?: boolean;
  readonly signal?: AbortSignal;
}

/**
 * What `dlq replay --dry-run` reports: the dead letters `filter` matches, read through the
 * inspector only (so it works on a database opened read-only), split into those a replay would
 * hand back and those it would skip, with why. Without a `status` in `filter`, every status but
 * `purged` matches, as the admins' `replay` does.
 */
async function previewReplay(
  inspector: Inspector,
  filter: DeadLetterFilter,
  options: PreviewReplayOptions = {},
): Promise<ReplayResult> {
  const query: DeadLetterFilter = {
    ...filter,
    status: filter.status ?? STATUSES.filter((status) => status !== "purged"),
  };
  const matched: DeadLetterInfo[] = [];
  let cursor: string | undefined;
  do {
    const page = await inspector.deadLetters({
      ...query,
      limit: 500,
      ...(cursor !== undefined ? { cursor } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    matched.push(...page.deadLetters);
    cursor = page.next;
  } while (cursor !== undefined);
  const skipped: { id: string; reason: string }[] = [];
  const wouldReplay: string[] = [];
  // Oldest first, as a replay hands them back.
  for (const record of matched.reverse()) {
    // Whether a retrying record's claim is still live is not in DeadLetterInfo: taken as live.
    const why = replaySkipReason(
      {
        status: record.status,
        hasEnvelope: record.envelope !== undefined,
        ...(record.damaged !== undefined ? { damaged: record.damaged } : {}),
      },
      { again: options.again === true },
    );
    if (why === undefined) wouldReplay.push(record.id);
    else skipped.push({ id: record.id, reason: why });
  }
  return { dryRun: true, matched: matched.length, replayed: [], skipped, failed: [], wouldReplay };
}

async function recordOf(inspector: Inspector, id: string, target: string): Promise<DeadLetterInfo> {
  const record = await inspector.deadLetter(id);
  if (record) return record;
  throw new CliError(
    "DEAD_LETTER_NOT_FOUND",
    `No dead letter with id ${id} on ${target}. See the ids with \`switchyard dlq list --all\`.`,
  );
}

/** The "next retry" cell: the time, marked when nothing will retry it then. */
function nextRetry(d: DeadLetterInfo, daemon: RetryDaemonState): string | undefined {
  if (d.nextRetryAt === undefined) return undefined;
  const at = formatTime(d.nextRetryAt);
  return daemon.running ? at : `${at} (no retry daemon)`;
}

function printReplay(out: Output, report: ReplayResult, again: boolean): void {
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
  for (const s of report.skipped)
    out.line(
      // The contract's "pass again", as this command spells it.
      !again && s.reason === REPLAY_SKIP_REASONS.replayedBefore
        ? `skipped ${s.id}: replayed before; add --again to replay it once more`
        : `skipped ${s.id}: ${s.reason}`,
    );
  for (const f of report.failed) out.line(`failed ${f.id}: ${f.error}`);
}

function printRecord(out: Output, d: DeadLetterInfo, daemon: RetryDaemonState): void {
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
      ["next retry", nextRetry(d, daemon)],
      ["replayed at", formatTime(d.replayedAt)],
      ["error", `${d.error.name}${d.error.code ? ` [${d.error.code}]` : ""}: ${d.error.message}`],
    ]),
  );
  if (d.nextRetryAt !== undefined) {
    out.line();
    out.line(retryNote(daemon));
  }
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
