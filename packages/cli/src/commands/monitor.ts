import type { Command } from "commander";
import { MAX_COUNT_BUCKETS } from "@switchyard/transport";
import { durationParser, formatDuration as durationText } from "../duration";
import {
  type CommonOptions,
  type Runtime,
  action,
  examples,
  requireCapability,
  requireSubscriber,
  withCommonOptions,
} from "../context";
import { ExitCode, formatDuration, plural, positiveIntOption } from "../output";

interface WindowOptions extends CommonOptions {
  readonly window?: number;
}

interface FailuresOptions extends WindowOptions {
  readonly limit: number;
}

interface DepthOptions extends CommonOptions {
  readonly subscriber?: string;
}

/** One failing event type, as `switchyard monitor failures --json` prints it. */
export interface FailureRow {
  readonly type: string;
  /** Dead letters that last failed within the window. */
  readonly deadLetters: number;
}

/** One subscriber failing now, as `switchyard monitor failures --json` prints it. */
export interface FailingSubscriber {
  readonly subscriber: string;
  /** Deliveries failed and waiting for a retry now. */
  readonly retrying: number;
  /** Deliveries dead-lettered and not settled since. */
  readonly dead: number;
}

const BAR = 40;
const HOUR = 3_600_000;
const DAY = 86_400_000;

function bar(n: number, max: number): string {
  return max === 0 ? "" : "█".repeat(Math.max(n > 0 ? 1 : 0, Math.round((n / max) * BAR)));
}

export function registerMonitor(program: Command, runtime: Runtime): void {
  const monitor = program
    .command("monitor")
    .description(
      "The runbook's monitoring queries: throughput, failures by type, backlog per subscriber.",
    );

  const throughput = withCommonOptions(
    monitor
      .command("throughput")
      .description("How many events per minute are published?")
      .option(
        "--window <duration>",
        `how far back (default: ${durationText(HOUR)})`,
        durationParser("--window", {
          max: {
            // Whole days (69d): the help reads better than 100000m, and it stays within the bound.
            ms: Math.floor((MAX_COUNT_BUCKETS * 60_000) / DAY) * DAY,
            why: `events are counted per minute, and a transport lists at most ${MAX_COUNT_BUCKETS} buckets`,
          },
        }),
      ),
  );
  examples(throughput, [
    ["switchyard monitor throughput", "events per minute, last hour"],
    ["switchyard monitor throughput --window 15m --json", "last 15 minutes, as JSON"],
  ]);
  throughput.action(
    action<WindowOptions>(runtime, async ({ opts, out, driver }) => {
      const window = opts.window ?? HOUR;
      const inspector = (await driver({ readOnly: true })).inspector();
      const counts = await inspector.counts({ since: Date.now() - window, bucketMs: 60_000 });
      const perMinute = counts.buckets
        .map((b) => ({
          minute: b.start.slice(0, 16).replace("T", " "),
          count: Object.values(b.counts).reduce((a, n) => a + n, 0),
        }))
        .filter((m) => m.count > 0);
      const total = perMinute.reduce((sum, m) => sum + m.count, 0);
      out.data({ windowMs: window, total, perMinute, byType: counts.totals });
      if (perMinute.length === 0) {
        out.line(`No events in the last ${formatDuration(window)}.`);
        return ExitCode.ok;
      }
      const max = Math.max(...perMinute.map((m) => m.count));
      out.table(
        ["minute (UTC)", "events", ""],
        perMinute.map((m) => [m.minute, m.count, bar(m.count, max)]),
      );
      out.line();
      out.line(
        `${plural(total, "event")} in the last ${formatDuration(window)} ` +
          `(${(total / Math.max(1, window / 60_000)).toFixed(1)} per minute on average).`,
      );
      return ExitCode.ok;
    }),
  );

  const failures = withCommonOptions(
    monitor
      .command("failures")
      .description(
        "Which event types fail? Dead letters by type within the window, and the subscribers retrying or holding dead deliveries now.",
      )
      .option(
        "--window <duration>",
        `how far back (default: ${durationText(DAY)})`,
        durationParser("--window"),
      )
      .option("--limit <n>", "at most this many types", positiveIntOption, 10),
  );
  examples(failures, [
    ["switchyard monitor failures", "top failing types, last 24 hours"],
    ["switchyard monitor failures --window 1h --limit 3", "the worst three this hour"],
  ]);
  failures.action(
    action<FailuresOptions>(runtime, async ({ opts, out, driver }) => {
      const window = opts.window ?? DAY;
      const opened = await driver({ readOnly: true });
      requireCapability(opened, "deadLetters", "monitor failures");
      const inspector = opened.inspector();
      const byType = new Map<string, number>();
      let cursor: string | undefined;
      do {
        const page = await inspector.deadLetters({
          since: Date.now() - window,
          limit: 1000,
          ...(cursor ? { cursor } : {}),
        });
        for (const d of page.deadLetters)
          byType.set(d.eventType, (byType.get(d.eventType) ?? 0) + 1);
        cursor = page.next;
      } while (cursor);
      const types: FailureRow[] = [...byType]
        .map(([type, deadLetters]) => ({ type, deadLetters }))
        .sort((a, b) => b.deadLetters - a.deadLetters || a.type.localeCompare(b.type))
        .slice(0, opts.limit);
      const subscribers: FailingSubscriber[] = (await inspector.subscribers())
        .filter((s) => s.retrying > 0 || s.dead > 0)
        .map((s) => ({ subscriber: s.subscriber, retrying: s.retrying, dead: s.dead }))
        .sort((a, b) => b.dead - a.dead || b.retrying - a.retrying);
      out.data({ windowMs: window, types, subscribers });
      if (types.length === 0) out.line(`No dead letters in the last ${formatDuration(window)}.`);
      else
        out.table(
          ["event type", "dead letters"],
          types.map((t) => [t.type, t.deadLetters]),
        );
      if (subscribers.length > 0) {
        out.line();
        out.table(
          ["subscriber", "retrying now", "dead"],
          subscribers.map((s) => [s.subscriber, s.retrying, s.dead]),
        );
      }
      return ExitCode.ok;
    }),
  );

  const depth = withCommonOptions(
    monitor
      .command("depth")
      .description(
        "Where is the backlog? Each subscriber's unsettled deliveries and the age of its oldest pending one.",
      )
      .option("--subscriber <name>", "only this subscriber"),
  );
  examples(depth, [
    ["switchyard monitor depth", "backlog per subscriber"],
    ["switchyard monitor depth --subscriber trainer", "one subscriber's backlog"],
  ]);
  depth.action(
    action<DepthOptions>(runtime, async ({ opts, out, driver }) => {
      const inspector = (await driver({ readOnly: true })).inspector();
      const all = await inspector.subscribers();
      requireSubscriber(all, opts.subscriber);
      const subscribers = all
        .filter((s) => opts.subscriber === undefined || s.subscriber === opts.subscriber)
        .map((s) => ({
          subscriber: s.subscriber,
          lag: s.lag,
          ...(s.oldestPendingMs !== undefined ? { oldestPendingMs: s.oldestPendingMs } : {}),
        }))
        .sort((a, b) => b.lag - a.lag);
      const total = subscribers.reduce((sum, s) => sum + s.lag, 0);
      out.data({ total, subscribers });
      if (total === 0) {
        out.line("Nothing pending.");
        return ExitCode.ok;
      }
      const max = Math.max(...subscribers.map((s) => s.lag));
      out.table(
        ["subscriber", "lag", "oldest pending", ""],
        subscribers
          .filter((s) => s.lag > 0)
          .map((s) => [
            s.subscriber,
            s.lag,
            s.oldestPendingMs === undefined ? undefined : formatDuration(s.oldestPendingMs),
            bar(s.lag, max),
          ]),
      );
      out.line();
      out.line(`${total} unsettled in all.`);
      return ExitCode.ok;
    }),
  );
}
