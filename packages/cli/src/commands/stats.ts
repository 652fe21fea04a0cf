import type { Command } from "commander";
import { countPending, listHeartbeats, listSubscribers } from "@switchyard/cross-process-queue";
import type { DeadLetterStats } from "@switchyard/dlq";
import { type CommonOptions, type Runtime, action, examples, withCommonOptions } from "../context";
import { deadLetterReader, withReadOnly } from "../database";
import { ExitCode, formatDuration, formatPairs, formatTime } from "../output";
import { deadDeliveriesKept, deliveriesByStatus, eventTotals } from "../queries";

/** What `switchyard stats --json` prints. */
export interface StatsReport {
  readonly db: string;
  readonly events: {
    readonly total: number;
    readonly lastSeq: number;
    readonly oldest?: string;
    readonly newest?: string;
    readonly byType: Readonly<Record<string, number>>;
  };
  readonly deliveries: {
    /** Not acked yet: queued + pending + leased (the runbook's `count_pending()`). */
    readonly open: number;
    /** Published, ahead of the subscriber's cursor: no delivery row yet. */
    readonly queued: number;
    readonly pending: number;
    /** In flight (leased to a worker). */
    readonly leased: number;
    /** Acked rows still stored (only with `keepAcked`; acks normally delete the row). */
    readonly acked: number;
    readonly dead: number;
    /** Dead deliveries no dead-letter sink holds. */
    readonly deadKeptInQueue: number;
  };
  readonly subscribers: number;
  readonly daemons: number;
  /** `null` when no dead letter was ever stored. */
  readonly deadLetters: DeadLetterStats | null;
}

export function registerStats(program: Command, runtime: Runtime): void {
  const command = withCommonOptions(
    program
      .command("stats")
      .description(
        "How much is going through? Events stored, deliveries by status, subscribers, daemons and the dead-letter queue.",
      ),
  );
  examples(command, [
    ["switchyard stats", "overview"],
    ["switchyard stats --json | jq .deliveries", "delivery counts for a script"],
  ]);
  command.action(
    action<CommonOptions>(runtime, ({ out, dbPath }) =>
      withReadOnly(
        dbPath,
        (db) => {
          const events = eventTotals(db);
          const rows = deliveriesByStatus(db);
          const open = countPending(db);
          const pending = rows.pending ?? 0;
          const leased = rows.leased ?? 0;
          const store = deadLetterReader(db);
          const report: StatsReport = {
            db: dbPath,
            events: {
              total: events.total,
              lastSeq: events.lastSeq,
              ...(events.oldestAt !== null
                ? { oldest: new Date(events.oldestAt).toISOString() }
                : {}),
              ...(events.newestAt !== null
                ? { newest: new Date(events.newestAt).toISOString() }
                : {}),
              byType: events.byType,
            },
            deliveries: {
              open,
              queued: Math.max(0, open - pending - leased),
              pending,
              leased,
              acked: rows.acked ?? 0,
              dead: rows.dead ?? 0,
              deadKeptInQueue: deadDeliveriesKept(db),
            },
            subscribers: listSubscribers(db).length,
            daemons: listHeartbeats(db).length,
            deadLetters: store?.stats() ?? null,
          };
          out.data(report);
          if (out.json) return ExitCode.ok;

          const d = report.deliveries;
          const dlq = report.deadLetters;
          out.line(
            formatPairs([
              ["database", dbPath],
              [
                "events",
                `${events.total} stored, last seq ${events.lastSeq}` +
                  (report.events.oldest
                    ? `, ${formatTime(report.events.oldest)} … ${formatTime(report.events.newest)}`
                    : ""),
              ],
              [
                "deliveries",
                `${d.open} open (${d.queued} queued, ${d.pending} pending, ${d.leased} in flight), ` +
                  `${d.dead} dead${d.deadKeptInQueue ? ` (${d.deadKeptInQueue} only in the queue)` : ""}, ${d.acked} acked rows kept`,
              ],
              ["subscribers", report.subscribers],
              ["daemons", `${report.daemons} with heartbeats`],
              [
                "dead letters",
                dlq
                  ? `${dlq.depth} to handle (${Object.entries(dlq.byStatus)
                      .map(([status, n]) => `${status} ${n}`)
                      .join(", ")})` +
                    (dlq.oldestAgeMs !== undefined
                      ? `, oldest ${formatDuration(dlq.oldestAgeMs)} old`
                      : "")
                  : "none stored",
              ],
            ]),
          );
          const byType = Object.entries(events.byType);
          if (byType.length > 0) {
            out.line();
            out.table(["event type", "events"], byType);
          }
          return ExitCode.ok;
        },
        out,
      ),
    ),
  );
}
