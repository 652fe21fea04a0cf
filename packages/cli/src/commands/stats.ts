import type { Command } from "commander";
import type { DeadLetterCounts } from "@switchyard/transport";
import { type CommonOptions, type Runtime, action, examples, withCommonOptions } from "../context";
import { ExitCode, formatDuration, formatPairs, formatTime } from "../output";

/** What `switchyard stats --json` prints, the same on every transport. */
export interface StatsReport {
  readonly transport: string;
  readonly target: string;
  readonly events: {
    /** Events stored now. */
    readonly total: number;
    /** Log position of the newest event (SQLite `seq`, JetStream stream sequence). */
    readonly lastSeq?: number;
    readonly oldest?: string;
    readonly newest?: string;
    readonly byType: Readonly<Record<string, number>>;
  };
  /** The subscribers' backlogs summed (see `SubscriberBacklog`). */
  readonly deliveries: {
    /** pending + inFlight + retrying. */
    readonly lag: number;
    readonly pending: number;
    readonly inFlight: number;
    readonly retrying: number;
    readonly dead: number;
  };
  readonly subscribers: number;
  /** Daemons with a heartbeat; `null` when the transport stores none. */
  readonly daemons: number | null;
  /** `null` when the transport stores no dead letters. */
  readonly deadLetters: DeadLetterCounts | null;
}

export function registerStats(program: Command, runtime: Runtime): void {
  const command = withCommonOptions(
    program
      .command("stats")
      .description(
        "How much is going through? Events stored, the subscribers' backlog, daemons and the dead-letter queue.",
      ),
  );
  examples(command, [
    ["switchyard stats", "overview"],
    ["switchyard stats --json | jq .deliveries", "delivery counts for a script"],
  ]);
  command.action(
    action<CommonOptions>(runtime, async ({ out, driver }) => {
      const opened = await driver({ readOnly: true });
      const inspector = opened.inspector();
      const now = Date.now();
      const [oldest] = (await inspector.events({ limit: 1, order: "oldest" })).events;
      const [newest] = (await inspector.events({ limit: 1, order: "newest" })).events;
      const byType: Record<string, number> = {};
      if (oldest) {
        const since = Date.parse(oldest.storedAt);
        const counts = await inspector.counts({
          since,
          until: now + 1,
          bucketMs: Math.max(60_000, now + 1 - since),
        });
        Object.assign(byType, counts.totals);
      }
      const subscribers = await inspector.subscribers();
      const sum = (key: "lag" | "pending" | "inFlight" | "retrying" | "dead") =>
        subscribers.reduce((total, s) => total + s[key], 0);
      const report: StatsReport = {
        transport: inspector.transport,
        target: opened.target,
        events: {
          total: Object.values(byType).reduce((a, b) => a + b, 0),
          ...(newest ? { lastSeq: newest.seq } : {}),
          ...(oldest ? { oldest: oldest.storedAt } : {}),
          ...(newest ? { newest: newest.storedAt } : {}),
          byType,
        },
        deliveries: {
          lag: sum("lag"),
          pending: sum("pending"),
          inFlight: sum("inFlight"),
          retrying: sum("retrying"),
          dead: sum("dead"),
        },
        subscribers: subscribers.length,
        daemons: inspector.capabilities.heartbeats ? (await inspector.heartbeats()).length : null,
        deadLetters: inspector.capabilities.deadLetters ? await inspector.deadLetterCounts() : null,
      };
      out.data(report);
      if (out.json) return ExitCode.ok;

      const d = report.deliveries;
      const dlq = report.deadLetters;
      const e = report.events;
      out.line(
        formatPairs([
          ["transport", report.target],
          [
            "events",
            `${e.total} stored` +
              (e.lastSeq !== undefined ? `, last seq ${e.lastSeq}` : "") +
              (e.oldest ? `, ${formatTime(e.oldest)} … ${formatTime(e.newest)}` : ""),
          ],
          [
            "deliveries",
            `${d.lag} unsettled (${d.pending} pending, ${d.inFlight} in flight, ${d.retrying} retrying), ${d.dead} dead`,
          ],
          ["subscribers", report.subscribers],
          [
            "daemons",
            report.daemons === null
              ? "not stored by this transport"
              : `${report.daemons} with heartbeats`,
          ],
          [
            "dead letters",
            dlq
              ? `${dlq.depth} to handle (${Object.entries(dlq.byStatus)
                  .map(([status, n]) => `${status} ${n}`)
                  .join(", ")})` +
                (dlq.oldestAgeMs !== undefined
                  ? `, oldest ${formatDuration(dlq.oldestAgeMs)} old`
                  : "")
              : "not stored by this transport",
          ],
        ]),
      );
      const types = Object.entries(byType);
      if (types.length > 0) {
        out.line();
        out.table(["event type", "events"], types);
      }
      return ExitCode.ok;
    }),
  );
}
