import type { Command } from "commander";
import { durationParser, formatDuration as durationText } from "../duration";
import {
  type AnyCatalog,
  type EventDefinition,
  describeAlertRule,
  evaluateAlertRule,
  pipelineCatalog,
} from "@switchyard/event-schema";
import {
  type HealthCheckResult,
  type HealthStatus,
  type HeartbeatInfo,
  type Inspector,
  healthFrom,
} from "@switchyard/transport";
import { withCatalogOption } from "../catalog-option";
import {
  type CommonOptions,
  type Runtime,
  action,
  examples,
  watching,
  withCommonOptions,
  withWatchOption,
} from "../context";
import { DAMAGED, damageOf } from "../damaged";
import { alertingTypes } from "../event-types";
import { CliError, ExitCode, type Output, countOption, formatDuration, plural } from "../output";
import { eventTimes } from "./shared";

/** One line of `switchyard health`, in the contract's status vocabulary. */
export interface HealthCheck {
  /**
   * `transport`, `daemon:<name>`, `daemons`, `subscribers`, `subscriber:<name>`, `backlog`,
   * `dead-letters` or `alert:<TYPE>`: the same checks on every transport.
   */
  readonly check: string;
  readonly status: HealthStatus;
  readonly message: string;
  /** The measured number, where there is one. */
  readonly value?: number;
  /** The limit it was compared with. */
  readonly threshold?: number;
}

/**
 * What `switchyard health --json` prints: the contract's `HealthCheckResult` (one verdict,
 * `healthy`/`degraded`/`unhealthy`) with the checks behind it.
 */
export interface HealthReport extends HealthCheckResult {
  /** The transport's name (`sqlite`, `nats`). */
  readonly transport: string;
  /** The target checked (credentials removed). */
  readonly target: string;
  readonly checkedAt: string;
  readonly checks: readonly HealthCheck[];
}

/** Thresholds of {@link checkHealth}. */
export interface HealthOptions {
  /** More unsettled deliveries (lag) than this is unhealthy. @defaultValue 1000 */
  readonly maxPending: number;
  /** More dead letters than this is unhealthy. @defaultValue 100 */
  readonly maxDeadLetters: number;
  /** A running daemon whose last heartbeat is older than this is unhealthy. @defaultValue 2 minutes */
  readonly staleAfterMs: number;
  /** Window of the "any occurrence" alert rules. @defaultValue 1 hour */
  readonly alertWindowMs: number;
  readonly now: number;
  /** The catalog whose alert rules are checked. @defaultValue the pipeline catalog */
  readonly catalog?: AnyCatalog;
}

/** Default of `--stale-after`. */
const STALE_AFTER_MS = 120_000;
/** Default of `--alert-window`. */
const ALERT_WINDOW_MS = 3_600_000;

const FAILED_STATES = new Set(["crashed", "failed"]);

/**
 * The runbook's full system check over one transport's inspector: daemon heartbeats, subscribers,
 * the backlog, dead letters and the catalog's alert rules. The same checks and verdict on every
 * transport; what a transport cannot tell is a `degraded` "not checked", and a read that fails is
 * an `unhealthy` check, never an error.
 */
export async function checkHealth(
  inspector: Inspector,
  target: string,
  options: HealthOptions,
): Promise<HealthReport> {
  const checks: HealthCheck[] = [];
  const guarded = async (check: string, run: () => Promise<void>) => {
    try {
      await run();
    } catch (error) {
      checks.push({
        check,
        status: "unhealthy",
        message: `cannot be read: ${(error as Error).message}`,
      });
    }
  };

  await guarded("daemons", async () => {
    if (!inspector.capabilities.heartbeats) {
      checks.push({
        check: "daemons",
        status: "degraded",
        message: `not checked: the ${inspector.transport} transport stores no daemon heartbeats`,
      });
      return;
    }
    const beats = await inspector.heartbeats();
    if (beats.length === 0)
      checks.push({
        check: "daemons",
        status: "degraded",
        message:
          "no daemon heartbeats (a DaemonManager with the driver's heartbeat sink writes them)",
        value: 0,
      });
    for (const beat of beats) checks.push(daemonCheck(beat, options.staleAfterMs));
  });

  await guarded("subscribers", async () => {
    const subscribers = await inspector.subscribers();
    const count = subscribers.length;
    checks.push({
      check: "subscribers",
      status: count === 0 ? "degraded" : "healthy",
      message:
        count === 0
          ? "no subscribers registered (daemons register theirs when they subscribe)"
          : `${plural(count, "subscriber")} registered`,
      value: count,
    });
    for (const s of subscribers) {
      const damaged = damageOf(s);
      if (damaged !== undefined)
        checks.push({
          check: `subscriber:${s.subscriber}`,
          status: "degraded",
          message: `${DAMAGED}, read as far as it can be: ${damaged}`,
        });
      else if (
        !s.ephemeral &&
        s.pending > 0 &&
        s.inFlight === 0 &&
        s.lastSeen !== undefined &&
        options.now - Date.parse(s.lastSeen) > options.staleAfterMs
      )
        checks.push({
          check: `subscriber:${s.subscriber}`,
          status: "degraded",
          message:
            `${s.pending} pending, nothing in flight, last claim ${formatDuration(options.now - Date.parse(s.lastSeen))} ago: ` +
            "is its daemon running?",
          value: s.lag,
        });
    }
    const lag = subscribers.reduce((sum, s) => sum + s.lag, 0);
    const sum = (key: "pending" | "inFlight" | "retrying") =>
      subscribers.reduce((total, s) => total + s[key], 0);
    checks.push({
      check: "backlog",
      status: lag > options.maxPending ? "unhealthy" : "healthy",
      message:
        `${plural(lag, "unsettled delivery", "unsettled deliveries")} (${sum("pending")} pending, ` +
        `${sum("inFlight")} in flight, ${sum("retrying")} retrying; limit ${options.maxPending})`,
      value: lag,
      threshold: options.maxPending,
    });
  });

  await guarded("dead-letters", async () => {
    if (!inspector.capabilities.deadLetters) {
      checks.push({
        check: "dead-letters",
        status: "degraded",
        message: `not checked: the ${inspector.transport} transport stores no dead letters`,
      });
      return;
    }
    const { depth } = await inspector.deadLetterCounts();
    checks.push({
      check: "dead-letters",
      status: depth > options.maxDeadLetters ? "unhealthy" : "healthy",
      message: `${plural(depth, "dead letter")} to handle (limit ${options.maxDeadLetters})`,
      value: depth,
      threshold: options.maxDeadLetters,
    });
  });

  for (const def of alertingTypes(options.catalog ?? pipelineCatalog))
    await guarded(`alert:${def.type}`, async () => {
      checks.push(await alertCheck(inspector, def, options));
    });

  const problems = checks
    .filter((c) => c.status !== "healthy")
    .map((c) => ({
      severity: c.status as "degraded" | "unhealthy",
      message: `${c.check}: ${c.message}`,
    }));
  const result = healthFrom(problems, `every check passed (${plural(checks.length, "check")})`, {
    checks: checks.length,
    unhealthy: checks.filter((c) => c.status === "unhealthy").length,
    degraded: checks.filter((c) => c.status === "degraded").length,
  });
  return {
    ...result,
    transport: inspector.transport,
    target,
    checkedAt: new Date(options.now).toISOString(),
    checks,
  };
}

async function alertCheck(
  inspector: Inspector,
  def: EventDefinition,
  options: HealthOptions,
): Promise<HealthCheck> {
  const rule = def.alert!;
  const windowMs = rule.kind === "rate" ? rule.withinMs : options.alertWindowMs;
  const times = await eventTimes(inspector, def.type, options.now - windowMs);
  const evaluation = evaluateAlertRule(rule, times, options.now);
  return {
    check: `alert:${def.type}`,
    status: evaluation.firing ? "unhealthy" : "healthy",
    message: `${evaluation.count} in the last ${formatDuration(windowMs)} (alerts on ${describeAlertRule(rule)})`,
    value: evaluation.count,
    ...(rule.kind === "rate" ? { threshold: rule.moreThan } : {}),
  };
}

/** A daemon's check; a damaged heartbeat is at least degraded, and says why. */
function daemonCheck(beat: HeartbeatInfo, staleAfterMs: number): HealthCheck {
  const check = daemonCheckOf(beat, staleAfterMs);
  const damaged = damageOf(beat);
  if (damaged === undefined) return check;
  return {
    ...check,
    status: check.status === "healthy" ? "degraded" : check.status,
    message: `${check.message}; ${DAMAGED}, read as far as it can be: ${damaged}`,
  };
}

function daemonCheckOf(beat: HeartbeatInfo, staleAfterMs: number): HealthCheck {
  const check = `daemon:${beat.daemon}`;
  const age = `heartbeat ${formatDuration(beat.ageMs)} ago`;
  const where = `pid ${beat.pid} on ${beat.host}`;
  const health = (beat.health ?? {}) as { healthy?: unknown; status?: unknown; message?: unknown };
  const healthMessage = typeof health.message === "string" ? health.message : "";
  if (FAILED_STATES.has(beat.status))
    return {
      check,
      status: "unhealthy",
      message: `${beat.status}: ${healthMessage || "no detail"} (${age}, ${where})`,
    };
  if (beat.status === "stopped")
    return { check, status: "degraded", message: `stopped (${age}, ${where})` };
  if (beat.ageMs > staleAfterMs)
    return {
      check,
      status: "unhealthy",
      message: `stale: last heartbeat ${formatDuration(beat.ageMs)} ago (limit ${formatDuration(staleAfterMs)}), ${beat.status} before, ${where}`,
      value: beat.ageMs,
      threshold: staleAfterMs,
    };
  if (health.status === "unhealthy" || (health.healthy === false && health.status !== "degraded"))
    return {
      check,
      status: "unhealthy",
      message: `unhealthy: ${healthMessage || "no detail"} (${age})`,
    };
  if (health.status === "degraded")
    return {
      check,
      status: "degraded",
      message: `degraded: ${healthMessage || "no detail"} (${age})`,
    };
  return { check, status: "healthy", message: `${beat.status}, ${age}` };
}

interface HealthCliOptions extends CommonOptions {
  readonly maxPending: number;
  readonly maxDlq: number;
  readonly staleAfter: number;
  readonly alertWindow: number;
  readonly watch?: string | boolean;
}

const MARK: Record<HealthStatus, string> = {
  healthy: "ok",
  degraded: "degraded",
  unhealthy: "UNHEALTHY",
};

export function registerHealth(program: Command, runtime: Runtime): void {
  const command = withCommonOptions(
    program
      .command("health")
      .description(
        "Is the event system healthy? Daemon heartbeats, subscribers, backlog, dead-letter depth and the catalog's alert rules; exits 1 when unhealthy.",
      )
      .option(
        "--max-pending <n>",
        "unhealthy above this many unsettled deliveries",
        countOption,
        1000,
      )
      .option("--max-dlq <n>", "unhealthy above this many dead letters", countOption, 100)
      .option(
        "--stale-after <duration>",
        `unhealthy when a running daemon's heartbeat is older (default: ${durationText(STALE_AFTER_MS)})`,
        durationParser("--stale-after"),
      )
      .option(
        "--alert-window <duration>",
        `window of the any-occurrence alert rules (default: ${durationText(ALERT_WINDOW_MS)})`,
        durationParser("--alert-window"),
      ),
  );
  command.addHelpText(
    "after",
    `
The same checks and the same verdict on every transport: healthy, degraded (exit 0) or unhealthy
(exit 1). What a transport does not store is reported as "not checked" (degraded); a transport that
cannot be reached is unhealthy.
`,
  );
  examples(command, [
    ["switchyard health", "every check, exit 1 if unhealthy"],
    ["switchyard health --max-pending 500 --stale-after 90s", "stricter limits"],
    [
      "switchyard health --json | jq '.checks[] | select(.status == \"unhealthy\")'",
      "failures only",
    ],
    ["switchyard health --transport nats://10.0.0.5:4222/SWITCHYARD", "on NATS JetStream"],
  ]);
  withCatalogOption(command);
  withWatchOption(command);
  command.action(
    action<HealthCliOptions>(runtime, async (context) => {
      const { opts, target, catalog, driver } = context;
      let inspector: Inspector;
      let shown = target;
      try {
        const opened = await driver({ readOnly: true });
        inspector = opened.inspector();
        shown = opened.target;
      } catch (error) {
        // An unknown scheme is a usage error; a target that cannot be opened is unhealthy.
        if (error instanceof CliError && ["UNKNOWN_TARGET", "USAGE"].includes(error.code))
          throw error;
        return printHealth(context.out, unreachable(target, error, Date.now()));
      }
      return watching(context, "switchyard health", async (out) => {
        const options: HealthOptions = {
          maxPending: opts.maxPending,
          maxDeadLetters: opts.maxDlq,
          staleAfterMs: opts.staleAfter ?? STALE_AFTER_MS,
          alertWindowMs: opts.alertWindow ?? ALERT_WINDOW_MS,
          now: Date.now(),
          catalog,
        };
        return printHealth(out, await checkHealth(inspector, shown, options));
      });
    }),
  );
}

function unreachable(target: string, error: unknown, now: number): HealthReport {
  const check: HealthCheck = {
    check: "transport",
    status: "unhealthy",
    message: `cannot open ${target}: ${(error as Error).message}`,
  };
  return {
    ...healthFrom([{ severity: "unhealthy", message: `transport: ${check.message}` }], "", {
      checks: 1,
      unhealthy: 1,
      degraded: 0,
    }),
    transport: target.split(":")[0]!,
    target,
    checkedAt: new Date(now).toISOString(),
    checks: [check],
  };
}

function printHealth(out: Output, report: HealthReport): number {
  out.data(report);
  out.table(
    ["status", "check", "detail"],
    report.checks.map((c) => [MARK[c.status], c.check, c.message]),
  );
  out.line();
  const count = (status: HealthStatus) => report.checks.filter((c) => c.status === status).length;
  out.line(
    report.status === "healthy"
      ? "Healthy."
      : report.status === "degraded"
        ? `Degraded: ${plural(count("degraded"), "check")} of ${report.checks.length} degraded, none unhealthy.`
        : `Unhealthy: ${count("unhealthy")} of ${plural(report.checks.length, "check")} unhealthy.`,
  );
  return report.status === "unhealthy" ? ExitCode.failed : ExitCode.ok;
}
