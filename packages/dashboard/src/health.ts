import type {
  DeadLetterCounts,
  HealthStatus,
  HeartbeatInfo,
  SubscriberBacklog,
} from "@switchyard/transport";

/** One check of the overview, in the contract's status vocabulary (as `switchyard health`). */
export interface DashboardCheck {
  /** `daemons`, `daemon:<name>`, `subscribers`, `backlog` or `dead-letters`. */
  readonly check: string;
  readonly status: HealthStatus;
  readonly message: string;
  readonly value?: number;
  readonly threshold?: number;
}

/** Where a daemon is, from its last heartbeat. */
export type DaemonState = "up" | "stale" | "stopped" | "failed";

const FAILED_STATES = new Set(["crashed", "failed"]);

/**
 * A daemon's state from its last heartbeat: `failed` (crashed or gave up), `stopped` (stopped
 * cleanly), `stale` (running before, but its last beat is older than `staleAfterMs`), else `up`.
 */
export function daemonState(beat: HeartbeatInfo, staleAfterMs: number): DaemonState {
  if (FAILED_STATES.has(beat.status)) return "failed";
  if (beat.status === "stopped") return "stopped";
  return beat.ageMs > staleAfterMs ? "stale" : "up";
}

const seconds = (ms: number) =>
  ms < 1000
    ? `${Math.round(ms)} ms`
    : ms < 120_000
      ? `${Math.round(ms / 1000)} s`
      : `${Math.round(ms / 60_000)} min`;

function daemonCheck(beat: HeartbeatInfo, staleAfterMs: number): DashboardCheck {
  const check = `daemon:${beat.daemon}`;
  const age = `heartbeat ${seconds(beat.ageMs)} ago`;
  const health = (beat.health ?? {}) as { healthy?: unknown; status?: unknown; message?: unknown };
  const detail =
    typeof health.message === "string" && health.message ? health.message : "no detail";
  const damaged = beat.damaged !== undefined ? `; stored heartbeat damaged: ${beat.damaged}` : "";
  const state = daemonState(beat, staleAfterMs);
  let result: DashboardCheck;
  if (state === "failed")
    result = { check, status: "unhealthy", message: `${beat.status}: ${detail} (${age})` };
  else if (state === "stopped") result = { check, status: "degraded", message: `stopped (${age})` };
  else if (state === "stale")
    result = {
      check,
      status: "unhealthy",
      message: `stale: last heartbeat ${seconds(beat.ageMs)} ago (limit ${seconds(staleAfterMs)})`,
      value: beat.ageMs,
      threshold: staleAfterMs,
    };
  else if (
    health.status === "unhealthy" ||
    (health.healthy === false && health.status !== "degraded")
  )
    result = { check, status: "unhealthy", message: `unhealthy: ${detail} (${age})` };
  else if (health.status === "degraded")
    result = { check, status: "degraded", message: `degraded: ${detail} (${age})` };
  else result = { check, status: "healthy", message: `${beat.status}, ${age}` };
  if (damaged && result.status === "healthy")
    return { ...result, status: "degraded", message: result.message + damaged };
  return damaged ? { ...result, message: result.message + damaged } : result;
}

/** What the checks are computed from: reads already made, or the error of a read that failed. */
export interface HealthInput {
  readonly transport: string;
  readonly heartbeats: readonly HeartbeatInfo[] | Error | undefined;
  readonly subscribers: readonly SubscriberBacklog[] | Error;
  readonly deadLetters: DeadLetterCounts | Error | undefined;
  readonly staleAfterMs: number;
  readonly maxPending: number;
  readonly maxDeadLetters: number;
}

/** The checks and the verdict: unhealthy if any check is, else degraded if any is, else healthy. */
export interface HealthSummary {
  readonly status: HealthStatus;
  readonly checks: readonly DashboardCheck[];
}

const unreadable = (check: string, error: Error): DashboardCheck => ({
  check,
  status: "unhealthy",
  message: `cannot be read: ${error.message}`,
});

/**
 * The basic checks of `switchyard health` over one inspector's reads, with its thresholds and
 * messages: daemon heartbeats, subscribers, the backlog and the dead letters. (The CLI's
 * `checkHealth` also evaluates catalog alert rules; both should move to one shared place.)
 */
export function healthChecks(input: HealthInput): HealthSummary {
  const checks: DashboardCheck[] = [];
  const { heartbeats, subscribers, deadLetters } = input;
  if (heartbeats === undefined)
    checks.push({
      check: "daemons",
      status: "degraded",
      message: `not checked: the ${input.transport} transport stores no daemon heartbeats`,
    });
  else if (heartbeats instanceof Error) checks.push(unreadable("daemons", heartbeats));
  else if (heartbeats.length === 0)
    checks.push({
      check: "daemons",
      status: "degraded",
      message:
        "no daemon heartbeats (a DaemonManager with the driver's heartbeat sink writes them)",
      value: 0,
    });
  else for (const beat of heartbeats) checks.push(daemonCheck(beat, input.staleAfterMs));

  if (subscribers instanceof Error) checks.push(unreadable("subscribers", subscribers));
  else {
    const count = subscribers.length;
    checks.push({
      check: "subscribers",
      status: count === 0 ? "degraded" : "healthy",
      message:
        count === 0
          ? "no subscribers registered (daemons register theirs when they subscribe)"
          : `${count} subscriber${count === 1 ? "" : "s"} registered`,
      value: count,
    });
    const sum = (key: "pending" | "inFlight" | "retrying" | "lag") =>
      subscribers.reduce((total, s) => total + s[key], 0);
    const lag = sum("lag");
    checks.push({
      check: "backlog",
      status: lag > input.maxPending ? "unhealthy" : "healthy",
      message:
        `${lag} unsettled ${lag === 1 ? "delivery" : "deliveries"} (${sum("pending")} pending, ` +
        `${sum("inFlight")} in flight, ${sum("retrying")} retrying; limit ${input.maxPending})`,
      value: lag,
      threshold: input.maxPending,
    });
  }

  if (deadLetters === undefined)
    checks.push({
      check: "dead-letters",
      status: "degraded",
      message: `not checked: the ${input.transport} transport stores no dead letters`,
    });
  else if (deadLetters instanceof Error) checks.push(unreadable("dead-letters", deadLetters));
  else
    checks.push({
      check: "dead-letters",
      status: deadLetters.depth > input.maxDeadLetters ? "unhealthy" : "healthy",
      message: `${deadLetters.depth} dead letter${deadLetters.depth === 1 ? "" : "s"} to handle (limit ${input.maxDeadLetters})`,
      value: deadLetters.depth,
      threshold: input.maxDeadLetters,
    });

  const status: HealthStatus = checks.some((c) => c.status === "unhealthy")
    ? "unhealthy"
    : checks.some((c) => c.status === "degraded")
      ? "degraded"
      : "healthy";
  return { status, checks };
}
