import type { Command } from "commander";
import { durationParser, formatDuration as durationText } from "../duration";
import {
  type HealthCheck,
  type HealthOptions,
  type HealthReport,
  type HealthStatus,
  type Inspector,
  checkHealth,
  defaultHealthOptions,
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
import { CliError, ExitCode, type Output, countOption, plural } from "../output";

/** What `switchyard health --json` prints: the contract's `HealthReport` and the target checked. */
export interface CliHealthReport extends HealthReport {
  /** The target checked (credentials removed). */
  readonly target: string;
}

/** Default of `--stale-after`. */
const STALE_AFTER_MS = defaultHealthOptions.staleAfterMs;
/** Default of `--alert-window`. */
const ALERT_WINDOW_MS = defaultHealthOptions.alertWindowMs;

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
        // An unknown scheme is a usage error; a target that cannot be opened is unhealthy; an
        // open the caller stopped is no verdict at all (exit 130, see `action`).
        if (
          (error instanceof CliError && ["UNKNOWN_TARGET", "USAGE"].includes(error.code)) ||
          context.runtime.signal?.aborted
        )
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
        return printHealth(out, { ...(await checkHealth(inspector, options)), target: shown });
      });
    }),
  );
}

function unreachable(target: string, error: unknown, now: number): CliHealthReport {
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

function printHealth(out: Output, report: CliHealthReport): number {
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
