import type Database from "better-sqlite3";
import type { Command } from "commander";
import {
  countPending,
  listHeartbeats,
  listSubscribers,
  type HeartbeatInfo,
} from "@switchyard/cross-process-queue";
import { describeAlertRule, evaluateAlertRule } from "@switchyard/event-schema";
import { type CommonOptions, type Runtime, action, examples, withCommonOptions } from "../context";
import { deadLetterReader, withReadOnly } from "../database";
import { alertingTypes } from "../event-types";
import { ExitCode, countOption, durationOption, formatDuration, plural } from "../output";
import { deadDeliveriesKept, eventTimesSince } from "../queries";

/** Outcome of one health check. */
export type CheckStatus = "ok" | "warn" | "fail";

/** One line of `switchyard health`. */
export interface HealthCheck {
  /** `daemon:<name>`, `daemons`, `subscribers`, `backlog`, `dead-letters` or `alert:<TYPE>`. */
  readonly check: string;
  readonly status: CheckStatus;
  readonly message: string;
  /** The measured number, where there is one. */
  readonly value?: number;
  /** The limit it was compared with. */
  readonly threshold?: number;
}

/** What `switchyard health --json` prints. */
export interface HealthReport {
  /** False when any check failed (warnings do not count). */
  readonly healthy: boolean;
  readonly db: string;
  readonly checkedAt: string;
  readonly checks: readonly HealthCheck[];
}

/** Thresholds of {@link checkHealth}. */
export interface HealthOptions {
  /** More pending deliveries than this fails. @defaultValue 1000 */
  readonly maxPending: number;
  /** More dead letters than this fails. @defaultValue 100 */
  readonly maxDeadLetters: number;
  /** A running daemon whose last heartbeat is older than this fails. @defaultValue 2 minutes */
  readonly staleAfterMs: number;
  /** Window of the "any occurrence" alert rules. @defaultValue 1 hour */
  readonly alertWindowMs: number;
  readonly now: number;
}

const FAILED_STATES = new Set(["crashed", "failed"]);

/** The runbook's full system check, over one database. */
export function checkHealth(
  db: Database.Database,
  path: string,
  options: HealthOptions,
): HealthReport {
  const checks: HealthCheck[] = [];
  const heartbeats = listHeartbeats(db, options.now);
  if (heartbeats.length === 0) {
    checks.push({
      check: "daemons",
      status: "warn",
      message: "no daemon heartbeats (a DaemonManager with a SqliteHeartbeatSink writes them)",
      value: 0,
    });
  }
  for (const beat of heartbeats) checks.push(daemonCheck(beat, options.staleAfterMs));

  const subscribers = listSubscribers(db).length;
  checks.push({
    check: "subscribers",
    status: subscribers === 0 ? "warn" : "ok",
    message:
      subscribers === 0
        ? "no subscribers registered"
        : `${plural(subscribers, "subscriber")} registered`,
    value: subscribers,
  });

  const pending = countPending(db);
  checks.push({
    check: "backlog",
    status: pending > options.maxPending ? "fail" : "ok",
    message: `${pending} pending ${pending === 1 ? "delivery" : "deliveries"} (limit ${options.maxPending})`,
    value: pending,
    threshold: options.maxPending,
  });

  const store = deadLetterReader(db);
  const stored = store?.stats().depth ?? 0;
  const kept = deadDeliveriesKept(db);
  const depth = stored + kept;
  checks.push({
    check: "dead-letters",
    status: depth > options.maxDeadLetters ? "fail" : "ok",
    message:
      `${plural(stored, "dead letter")} to handle` +
      (kept > 0 ? ` + ${plural(kept, "dead delivery", "dead deliveries")} kept in the queue` : "") +
      ` (limit ${options.maxDeadLetters})`,
    value: depth,
    threshold: options.maxDeadLetters,
  });

  for (const def of alertingTypes()) {
    const rule = def.alert!;
    const windowMs = rule.kind === "rate" ? rule.withinMs : options.alertWindowMs;
    const times = eventTimesSince(db, def.type, options.now - windowMs);
    const evaluation = evaluateAlertRule(rule, times, options.now);
    checks.push({
      check: `alert:${def.type}`,
      status: evaluation.firing ? "fail" : "ok",
      message: `${evaluation.count} in the last ${formatDuration(windowMs)} (alerts on ${describeAlertRule(rule)})`,
      value: evaluation.count,
      ...(rule.kind === "rate" ? { threshold: rule.moreThan } : {}),
    });
  }

  return {
    healthy: checks.every((c) => c.status !== "fail"),
    db: path,
    checkedAt: new Date(options.now).toISOString(),
    checks,
  };
}

function daemonCheck(beat: HeartbeatInfo, staleAfterMs: number): HealthCheck {
  const check = `daemon:${beat.daemon}`;
  const age = `heartbeat ${formatDuration(beat.ageMs)} ago`;
  const where = `pid ${beat.pid} on ${beat.host}`;
  const health = (beat.health ?? {}) as { healthy?: unknown; status?: unknown; message?: unknown };
  const healthMessage = typeof health.message === "string" ? health.message : "";
  if (FAILED_STATES.has(beat.status))
    return {
      check,
      status: "fail",
      message: `${beat.status}: ${healthMessage || "no detail"} (${age}, ${where})`,
    };
  if (beat.status === "stopped")
    return { check, status: "warn", message: `stopped (${age}, ${where})` };
  if (beat.ageMs > staleAfterMs)
    return {
      check,
      status: "fail",
      message: `stale: last heartbeat ${formatDuration(beat.ageMs)} ago (limit ${formatDuration(staleAfterMs)}), ${beat.status} before, ${where}`,
      value: beat.ageMs,
      threshold: staleAfterMs,
    };
  if (health.status === "unhealthy" || (health.healthy === false && health.status !== "degraded"))
    return {
      check,
      status: "fail",
      message: `unhealthy: ${healthMessage || "no detail"} (${age})`,
    };
  if (health.status === "degraded")
    return { check, status: "warn", message: `degraded: ${healthMessage || "no detail"} (${age})` };
  return { check, status: "ok", message: `${beat.status}, ${age}` };
}

interface HealthCliOptions extends CommonOptions {
  readonly maxPending: number;
  readonly maxDlq: number;
  readonly staleAfter: number;
  readonly alertWindow: number;
}

const MARK: Record<CheckStatus, string> = { ok: "ok", warn: "warn", fail: "FAIL" };

export function registerHealth(program: Command, runtime: Runtime): void {
  const command = withCommonOptions(
    program
      .command("health")
      .description(
        "Is the event system healthy? Daemon heartbeats, queue backlog, dead-letter depth and the catalog's alert rules; exits 1 when a check fails.",
      )
      .option("--max-pending <n>", "fail above this many pending deliveries", countOption, 1000)
      .option("--max-dlq <n>", "fail above this many dead letters", countOption, 100)
      .option(
        "--stale-after <duration>",
        "fail when a running daemon's heartbeat is older",
        durationOption,
        120_000,
      )
      .option(
        "--alert-window <duration>",
        "window of the any-occurrence alert rules",
        durationOption,
        3_600_000,
      ),
  );
  examples(command, [
    ["switchyard health", "every check, exit 1 if any fails"],
    ["switchyard health --max-pending 500 --stale-after 90s", "stricter limits"],
    ["switchyard health --json | jq '.checks[] | select(.status == \"fail\")'", "failures only"],
  ]);
  command.action(
    action<HealthCliOptions>(runtime, ({ opts, out, dbPath }) =>
      withReadOnly(dbPath, (db) => {
        const report = checkHealth(db, dbPath, {
          maxPending: opts.maxPending,
          maxDeadLetters: opts.maxDlq,
          staleAfterMs: opts.staleAfter,
          alertWindowMs: opts.alertWindow,
          now: Date.now(),
        });
        out.data(report);
        out.table(
          ["status", "check", "detail"],
          report.checks.map((c) => [MARK[c.status], c.check, c.message]),
        );
        const failed = report.checks.filter((c) => c.status === "fail").length;
        const warned = report.checks.filter((c) => c.status === "warn").length;
        out.line();
        out.line(
          report.healthy
            ? `Healthy${warned ? ` (${plural(warned, "warning")})` : ""}.`
            : `Unhealthy: ${failed} of ${plural(report.checks.length, "check")} failed.`,
        );
        return report.healthy ? ExitCode.ok : ExitCode.failed;
      }),
    ),
  );
}
