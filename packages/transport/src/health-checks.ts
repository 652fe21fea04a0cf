import {
  type AnyCatalog,
  type EventDefinition,
  describeAlertRule,
  evaluateAlertRule,
} from "@switchyard/event-schema";
import { type HealthCheckResult, type HealthStatus, healthFrom } from "./health";
import type { DeadLetterCounts, HeartbeatInfo, Inspector, SubscriberBacklog } from "./inspector";

/** One check of a system health report, in the contract's status vocabulary. */
export interface HealthCheck {
  /**
   * `daemons`, `daemon:<name>`, `subscribers`, `subscriber:<name>`, `backlog`, `dead-letters` or
   * `alert:<TYPE>`: the same checks on every transport.
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
 * The system health of one transport: the contract's `HealthCheckResult` (one verdict) with the
 * checks behind it. What `switchyard health --json` prints and the dashboard's overview shows.
 */
export interface HealthReport extends HealthCheckResult {
  /** The transport's name (`sqlite`, `nats`, `memory`). */
  readonly transport: string;
  readonly checkedAt: string;
  readonly checks: readonly HealthCheck[];
}

/** Thresholds of {@link checkHealth} and {@link healthChecks}. */
export interface HealthOptions {
  /** More unsettled deliveries (lag) than this is unhealthy. @defaultValue 1000 */
  readonly maxPending?: number;
  /** More dead letters than this is unhealthy. @defaultValue 100 */
  readonly maxDeadLetters?: number;
  /** A running daemon whose last heartbeat is older than this is unhealthy. @defaultValue 120_000 */
  readonly staleAfterMs?: number;
  /** Window of the "any occurrence" alert rules. @defaultValue 3_600_000 */
  readonly alertWindowMs?: number;
  /** The catalog whose alert rules are checked. @defaultValue none: no alert checks */
  readonly catalog?: AnyCatalog;
  /** @defaultValue Date.now() */
  readonly now?: number;
}

/** The defaults of {@link HealthOptions}. */
export const defaultHealthOptions = Object.freeze({
  maxPending: 1000,
  maxDeadLetters: 100,
  staleAfterMs: 120_000,
  alertWindowMs: 3_600_000,
});

/** One alert rule's input: its event type and the times (ms) its events were stored in its window. */
export interface AlertInput {
  readonly definition: EventDefinition;
  readonly windowMs: number;
  readonly times: readonly number[] | Error;
}

/**
 * What {@link healthChecks} computes from: reads already made (so a caller that shows them too
 * reads once), or the error of a read that failed; `undefined` where the transport stores none.
 */
export interface HealthInput {
  readonly transport: string;
  readonly heartbeats: readonly HeartbeatInfo[] | Error | undefined;
  readonly subscribers: readonly SubscriberBacklog[] | Error;
  readonly deadLetters: DeadLetterCounts | Error | undefined;
  readonly alerts?: readonly AlertInput[];
}

/** A duration for people, two units at most: `850ms`, `42s`, `3m 12s`, `1h`, `2h 5m`, `3d 4h`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  const two = (big: number, bigUnit: string, small: number, smallUnit: string) =>
    small === 0 ? `${big}${bigUnit}` : `${big}${bigUnit} ${small}${smallUnit}`;
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return two(m, "m", s % 60, "s");
  const h = Math.floor(m / 60);
  if (h < 24) return two(h, "h", m % 60, "m");
  return two(Math.floor(h / 24), "d", h % 24, "h");
}

const plural = (n: number, word: string, many = `${word}s`) => `${n} ${n === 1 ? word : many}`;
const FAILED_STATES = new Set(["crashed", "failed"]);
/** How a damaged stored row is named in messages. */
const DAMAGED = "DAMAGED";

/** The event types of a catalog that declare an alert rule. */
export function alertingTypes(catalog: AnyCatalog): EventDefinition[] {
  return catalog.types
    .map((type) => catalog.definitions[type] as EventDefinition)
    .filter((def) => def.alert !== undefined);
}

/** Where a daemon is, from its last heartbeat. */
export type DaemonState = "up" | "stale" | "stopped" | "failed";

/**
 * A daemon's state from its last heartbeat: `failed` (crashed or gave up), `stopped` (stopped
 * cleanly), `stale` (running before, but its last beat is older than `staleAfterMs`), else `up`.
 */
export function daemonState(beat: HeartbeatInfo, staleAfterMs: number): DaemonState {
  if (FAILED_STATES.has(beat.status)) return "failed";
  if (beat.status === "stopped") return "stopped";
  return beat.ageMs > staleAfterMs ? "stale" : "up";
}

function daemonCheck(beat: HeartbeatInfo, staleAfterMs: number): HealthCheck {
  const check = daemonCheckOf(beat, staleAfterMs);
  if (beat.damaged === undefined) return check;
  return {
    ...check,
    status: check.status === "healthy" ? "degraded" : check.status,
    message: `${check.message}; ${DAMAGED}, read as far as it can be: ${beat.damaged}`,
  };
}

function daemonCheckOf(beat: HeartbeatInfo, staleAfterMs: number): HealthCheck {
  const check = `daemon:${beat.daemon}`;
  const age = `heartbeat ${formatDuration(beat.ageMs)} ago`;
  const where = `pid ${beat.pid} on ${beat.host}`;
  const health = (beat.health ?? {}) as { healthy?: unknown; status?: unknown; message?: unknown };
  const healthMessage = typeof health.message === "string" ? health.message : "";
  switch (daemonState(beat, staleAfterMs)) {
    case "failed":
      return {
        check,
        status: "unhealthy",
        message: `${beat.status}: ${healthMessage || "no detail"} (${age}, ${where})`,
      };
    case "stopped":
      return { check, status: "degraded", message: `stopped (${age}, ${where})` };
    case "stale":
      return {
        check,
        status: "unhealthy",
        message: `stale: last heartbeat ${formatDuration(beat.ageMs)} ago (limit ${formatDuration(staleAfterMs)}), ${beat.status} before, ${where}`,
        value: beat.ageMs,
        threshold: staleAfterMs,
      };
    case "up":
      break;
  }
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

const unreadable = (check: string, error: Error): HealthCheck => ({
  check,
  status: "unhealthy",
  message: `cannot be read: ${error.message}`,
});

/**
 * The one health rule of a Switchyard system, over one transport's reads: daemon heartbeats
 * (failed, stopped, stale, or reporting themselves unhealthy/degraded), subscribers (none, damaged,
 * or pending with nothing claimed for `staleAfterMs`), the backlog against `maxPending`, dead letters
 * against `maxDeadLetters`, and the catalog's alert rules. What a transport cannot tell is a
 * `degraded` "not checked"; a read that failed is an `unhealthy` check, never an error. The CLI's
 * `switchyard health` and the dashboard's overview both show this.
 */
export function healthChecks(input: HealthInput, options: HealthOptions = {}): HealthReport {
  const o = { ...defaultHealthOptions, ...options };
  const now = options.now ?? Date.now();
  const checks: HealthCheck[] = [];
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
  else for (const beat of heartbeats) checks.push(daemonCheck(beat, o.staleAfterMs));

  if (subscribers instanceof Error) checks.push(unreadable("subscribers", subscribers));
  else {
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
      if (s.damaged !== undefined)
        checks.push({
          check: `subscriber:${s.subscriber}`,
          status: "degraded",
          message: `${DAMAGED}, read as far as it can be: ${s.damaged}`,
        });
      else if (
        !s.ephemeral &&
        s.pending > 0 &&
        s.inFlight === 0 &&
        s.lastSeen !== undefined &&
        now - Date.parse(s.lastSeen) > o.staleAfterMs
      )
        checks.push({
          check: `subscriber:${s.subscriber}`,
          status: "degraded",
          message:
            `${s.pending} pending, nothing in flight, last claim ${formatDuration(now - Date.parse(s.lastSeen))} ago: ` +
            "is its daemon running?",
          value: s.lag,
        });
    }
    const sum = (key: "pending" | "inFlight" | "retrying" | "lag") =>
      subscribers.reduce((total, s) => total + s[key], 0);
    const lag = sum("lag");
    checks.push({
      check: "backlog",
      status: lag > o.maxPending ? "unhealthy" : "healthy",
      message:
        `${plural(lag, "unsettled delivery", "unsettled deliveries")} (${sum("pending")} pending, ` +
        `${sum("inFlight")} in flight, ${sum("retrying")} retrying; limit ${o.maxPending})`,
      value: lag,
      threshold: o.maxPending,
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
      status: deadLetters.depth > o.maxDeadLetters ? "unhealthy" : "healthy",
      message: `${plural(deadLetters.depth, "dead letter")} to handle (limit ${o.maxDeadLetters})`,
      value: deadLetters.depth,
      threshold: o.maxDeadLetters,
    });

  for (const alert of input.alerts ?? []) {
    const { definition: def, windowMs, times } = alert;
    const check = `alert:${def.type}`;
    if (times instanceof Error) {
      checks.push(unreadable(check, times));
      continue;
    }
    const rule = def.alert!;
    const evaluation = evaluateAlertRule(rule, times, now);
    checks.push({
      check,
      status: evaluation.firing ? "unhealthy" : "healthy",
      message: `${evaluation.count} in the last ${formatDuration(windowMs)} (alerts on ${describeAlertRule(rule)})`,
      value: evaluation.count,
      ...(rule.kind === "rate" ? { threshold: rule.moreThan } : {}),
    });
  }

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
  return { ...result, transport: input.transport, checkedAt: new Date(now).toISOString(), checks };
}

/** Settle a read into its value or its error (a failed read is a check, not an exception). */
async function settle<T>(read: () => Promise<T>): Promise<T | Error> {
  try {
    return await read();
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** The storage times (ms) of one type's events since `since`, following the pages. */
async function eventTimes(
  inspector: Inspector,
  type: string,
  since: number,
  signal: AbortSignal | undefined,
  max = 100_000,
): Promise<number[]> {
  const times: number[] = [];
  let cursor: string | undefined;
  do {
    const page = await inspector.events({
      types: [type],
      since,
      order: "oldest",
      limit: 1000,
      ...(cursor ? { cursor } : {}),
      ...(signal ? { signal } : {}),
    });
    for (const event of page.events) times.push(Date.parse(event.storedAt));
    cursor = page.next;
  } while (cursor && times.length < max);
  return times;
}

/** Options of {@link readAlertInputs}. */
export interface ReadAlertInputsOptions {
  /** The time the windows end at (ms since the epoch). @defaultValue `Date.now()` */
  readonly now?: number;
  /**
   * The window of a `quiet`-style rule that has none of its own, in ms (a rate rule uses its
   * `withinMs`). @defaultValue {@link defaultHealthOptions}.alertWindowMs
   */
  readonly alertWindowMs?: number;
  /** Aborts the reads. */
  readonly signal?: AbortSignal;
}

/**
 * What {@link healthChecks} needs to evaluate a catalog's alert rules: for each alerting type, the
 * storage times of its events in the rule's window (at most 100,000 per type), or the error of the
 * read (a failed read becomes a check, not an exception). The one reading behind
 * {@link checkHealth} and the dashboard's health checks.
 *
 * @example
 * ```ts
 * // not runnable
 * const alerts = await readAlertInputs(driver.inspector(), pipelineCatalog);
 * ```
 */
export async function readAlertInputs(
  inspector: Inspector,
  catalog: AnyCatalog,
  options: ReadAlertInputsOptions = {},
): Promise<AlertInput[]> {
  const now = options.now ?? Date.now();
  const alertWindowMs = options.alertWindowMs ?? defaultHealthOptions.alertWindowMs;
  const alerts: AlertInput[] = [];
  for (const definition of alertingTypes(catalog)) {
    const rule = definition.alert!;
    const windowMs = rule.kind === "rate" ? rule.withinMs : alertWindowMs;
    alerts.push({
      definition,
      windowMs,
      times: await settle(() =>
        eventTimes(inspector, definition.type, now - windowMs, options.signal),
      ),
    });
  }
  return alerts;
}

/**
 * Read what {@link healthChecks} needs from an inspector — heartbeats, subscribers, dead-letter
 * counts and, with a `catalog`, each alert rule's events in its window — and check it.
 *
 * @example
 * ```ts
 * // not runnable
 * const report = await checkHealth(driver.inspector(), { catalog: pipelineCatalog });
 * console.log(report.status, report.checks.filter((c) => c.status !== "healthy"));
 * ```
 */
export async function checkHealth(
  inspector: Inspector,
  options: HealthOptions = {},
): Promise<HealthReport> {
  const now = options.now ?? Date.now();
  const alertWindowMs = options.alertWindowMs ?? defaultHealthOptions.alertWindowMs;
  const caps = inspector.capabilities;
  const [heartbeats, subscribers, deadLetters] = await Promise.all([
    caps.heartbeats ? settle(() => inspector.heartbeats()) : undefined,
    settle(() => inspector.subscribers()),
    caps.deadLetters ? settle(() => inspector.deadLetterCounts()) : undefined,
  ]);
  const alerts = options.catalog
    ? await readAlertInputs(inspector, options.catalog, { now, alertWindowMs })
    : [];
  return healthChecks(
    { transport: inspector.transport, heartbeats, subscribers, deadLetters, alerts },
    { ...options, now },
  );
}
