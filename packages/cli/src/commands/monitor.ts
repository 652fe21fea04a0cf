import type { Command } from "commander";
import { depthByHour, eventsPerMinute, failuresByType } from "@switchyard/cross-process-queue";
import { type CommonOptions, type Runtime, action, examples, withCommonOptions } from "../context";
import { withReadOnly } from "../database";
import { ExitCode, durationOption, formatDuration, plural, positiveIntOption } from "../output";
import { deadLettersByType } from "../queries";

interface WindowOptions extends CommonOptions {
  readonly window: number;
}

interface FailuresOptions extends WindowOptions {
  readonly limit: number;
}

interface DepthOptions extends WindowOptions {
  readonly subscriber?: string;
}

/** One failing event type, as `switchyard monitor failures --json` prints it. */
export interface FailureRow {
  readonly type: string;
  /** Dead letters that last failed within the window. */
  readonly deadLetters: number;
  /** Deliveries marked dead in the queue within the window. */
  readonly deadDeliveries: number;
  /** Deliveries failing and waiting for a retry right now. */
  readonly retrying: number;
}

const BAR = 40;

function bar(n: number, max: number): string {
  return max === 0 ? "" : "█".repeat(Math.max(n > 0 ? 1 : 0, Math.round((n / max) * BAR)));
}

export function registerMonitor(program: Command, runtime: Runtime): void {
  const monitor = program
    .command("monitor")
    .description(
      "The runbook's monitoring queries: throughput, failures by type, queue depth over time.",
    );

  const throughput = withCommonOptions(
    monitor
      .command("throughput")
      .description("How many events per minute are published?")
      .option("--window <duration>", "how far back", durationOption, 3_600_000),
  );
  examples(throughput, [
    ["switchyard monitor throughput", "events per minute, last hour"],
    ["switchyard monitor throughput --window 15m --json", "last 15 minutes, as JSON"],
  ]);
  throughput.action(
    action<WindowOptions>(runtime, ({ opts, out, dbPath }) =>
      withReadOnly(
        dbPath,
        (db) => {
          const perMinute = eventsPerMinute(db, { windowMs: opts.window });
          const total = perMinute.reduce((sum, m) => sum + m.count, 0);
          out.data({ windowMs: opts.window, total, perMinute });
          if (perMinute.length === 0) {
            out.line(`No events in the last ${formatDuration(opts.window)}.`);
            return ExitCode.ok;
          }
          const max = Math.max(...perMinute.map((m) => m.count));
          out.table(
            ["minute (UTC)", "events", ""],
            perMinute.map((m) => [m.minute, m.count, bar(m.count, max)]),
          );
          out.line();
          out.line(
            `${plural(total, "event")} in the last ${formatDuration(opts.window)} ` +
              `(${(total / Math.max(1, opts.window / 60_000)).toFixed(1)} per minute on average).`,
          );
          return ExitCode.ok;
        },
        out,
      ),
    ),
  );

  const failures = withCommonOptions(
    monitor
      .command("failures")
      .description("Which event types fail? Dead letters, dead deliveries and retries by type.")
      .option("--window <duration>", "how far back", durationOption, 86_400_000)
      .option("--limit <n>", "at most this many types", positiveIntOption, 10),
  );
  examples(failures, [
    ["switchyard monitor failures", "top failing types, last 24 hours"],
    ["switchyard monitor failures --window 1h --limit 3", "the worst three this hour"],
  ]);
  failures.action(
    action<FailuresOptions>(runtime, ({ opts, out, dbPath }) =>
      withReadOnly(
        dbPath,
        (db) => {
          const rows = new Map<
            string,
            { deadLetters: number; deadDeliveries: number; retrying: number }
          >();
          const row = (type: string) => {
            let r = rows.get(type);
            if (!r) rows.set(type, (r = { deadLetters: 0, deadDeliveries: 0, retrying: 0 }));
            return r;
          };
          for (const d of deadLettersByType(db, Date.now() - opts.window, opts.limit))
            row(d.type).deadLetters = d.count;
          for (const f of failuresByType(db, { windowMs: opts.window, limit: opts.limit })) {
            row(f.type).deadDeliveries = f.dead;
            row(f.type).retrying = f.retrying;
          }
          const types: FailureRow[] = [...rows]
            .map(([type, r]) => ({ type, ...r }))
            .sort(
              (a, b) =>
                Math.max(b.deadLetters, b.deadDeliveries) -
                  Math.max(a.deadLetters, a.deadDeliveries) ||
                b.retrying - a.retrying ||
                a.type.localeCompare(b.type),
            )
            .slice(0, opts.limit);
          out.data({ windowMs: opts.window, types });
          if (types.length === 0) {
            out.line(`No failures in the last ${formatDuration(opts.window)}.`);
            return ExitCode.ok;
          }
          out.table(
            ["event type", "dead letters", "dead deliveries", "retrying now"],
            types.map((t) => [t.type, t.deadLetters, t.deadDeliveries, t.retrying]),
          );
          return ExitCode.ok;
        },
        out,
      ),
    ),
  );

  const depth = withCommonOptions(
    monitor
      .command("depth")
      .description(
        "How is the backlog spread over time? Pending deliveries by the hour their event was published.",
      )
      .option("--window <duration>", "how far back", durationOption, 86_400_000)
      .option("--subscriber <name>", "only this subscriber"),
  );
  examples(depth, [
    ["switchyard monitor depth", "pending deliveries per hour, last 24 hours"],
    ["switchyard monitor depth --subscriber trainer --window 7d", "one subscriber's backlog"],
  ]);
  depth.action(
    action<DepthOptions>(runtime, ({ opts, out, dbPath }) =>
      withReadOnly(
        dbPath,
        (db) => {
          const all = depthByHour(
            db,
            opts.subscriber === undefined ? {} : { subscriber: opts.subscriber },
          );
          // Hours are "YYYY-MM-DD HH:00" in UTC; keep those overlapping the window.
          const since = Date.now() - opts.window;
          const hourStart = (hour: string) => Date.parse(`${hour.replace(" ", "T")}:00Z`);
          const perHour = all.filter((h) => hourStart(h.hour) + 3_600_000 > since);
          const total = perHour.reduce((sum, h) => sum + h.pending, 0);
          const older = all.reduce((sum, h) => sum + h.pending, 0) - total;
          out.data({ windowMs: opts.window, total, olderThanWindow: older, perHour });
          if (perHour.length === 0)
            out.line(`Nothing pending from the last ${formatDuration(opts.window)}.`);
          else {
            const max = Math.max(...perHour.map((h) => h.pending));
            out.table(
              ["hour (UTC)", "pending", ""],
              perHour.map((h) => [h.hour, h.pending, bar(h.pending, max)]),
            );
            out.line();
            out.line(`${total} pending from the last ${formatDuration(opts.window)}.`);
          }
          if (older > 0)
            out.line(`${older} more pending from earlier (widen --window to see them).`);
          return ExitCode.ok;
        },
        out,
      ),
    ),
  );
}
