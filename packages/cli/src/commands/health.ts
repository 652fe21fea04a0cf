import type Database from "better-sqlite3";
import type { Command } from "commander";
import {
  countPending,
  listHeartbeats,
  listSubscribers,
  type HeartbeatInfo,
} from "@switchyard/cross-process-queue";
import {
  type AnyCatalog,
  type EventDefinition,
  describeAlertRule,
  evaluateAlertRule,
  pipelineCatalog,
} from "@switchyard/event-schema";
import {
  type CommonOptions,
  type Runtime,
  type TransportOptions,
  action,
  examples,
  natsSourceOf,
  transportOf,
  withCommonOptions,
  withTransportOptions,
} from "../context";
import { heartbeatStreamName, subjectCovers } from "@switchyard/transport-nats";
import { deadLetterReader, openCompanion, withReadOnly } from "../database";
import { withCatalogOption } from "../catalog-option";
import { alertingTypes } from "../event-types";
import {
  type NatsEventSource,
  type NatsSession,
  type NatsSubscriberBacklog,
  onStream,
  readNatsHeartbeats,
  storedTimesSince,
  subscriberBacklogs,
  taggedConsumers,
  withJetStream,
} from "../nats";
import {
  CliError,
  ExitCode,
  type Output,
  countOption,
  durationOption,
  formatDuration,
  plural,
} from "../output";
import { DAMAGED, damageOf } from "../damaged";
import { deadDeliveriesKept, eventTimesSince, hasTable } from "../queries";

/** Outcome of one health check. */
export type CheckStatus = "ok" | "warn" | "fail";

/** One line of `switchyard health`. */
export interface HealthCheck {
  /**
   * `daemon:<name>`, `daemons`, `subscribers`, `backlog`, `dead-letters` or `alert:<TYPE>`; on
   * NATS also `nats`, `stream` and `subscriber:<name>`.
   */
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
  /** The catalog whose alert rules are checked. @defaultValue the pipeline catalog */
  readonly catalog?: AnyCatalog;
}

const FAILED_STATES = new Set(["crashed", "failed"]);

/** The runbook's full system check, over one database. */
export function checkHealth(
  db: Database.Database,
  path: string,
  options: HealthOptions,
): HealthReport {
  const checks: HealthCheck[] = [...daemonChecks(listHeartbeats(db, options.now), options)];

  const subscribers = listSubscribers(db);
  checks.push(subscriberCountCheck(subscribers.length, "no subscribers registered"));
  for (const s of subscribers) {
    const damaged = damageOf(s);
    if (damaged !== undefined)
      checks.push({
        check: `subscriber:${s.name}`,
        status: "warn",
        message: damagedMessage(damaged),
      });
  }

  const pending = countPending(db);
  checks.push({
    check: "backlog",
    status: pending > options.maxPending ? "fail" : "ok",
    message: `${pending} pending ${pending === 1 ? "delivery" : "deliveries"} (limit ${options.maxPending})`,
    value: pending,
    threshold: options.maxPending,
  });

  const store = deadLetterReader(db);
  checks.push(deadLetterCheck(store?.stats().depth ?? 0, deadDeliveriesKept(db), options));

  for (const def of alertingTypes(options.catalog ?? pipelineCatalog))
    checks.push(alertCheck(def, options, (type, since) => eventTimesSince(db, type, since)));

  return {
    healthy: checks.every((c) => c.status !== "fail"),
    db: path,
    checkedAt: new Date(options.now).toISOString(),
    checks,
  };
}

function daemonChecks(heartbeats: readonly HeartbeatInfo[], options: HealthOptions): HealthCheck[] {
  if (heartbeats.length === 0)
    return [
      {
        check: "daemons",
        status: "warn",
        message: "no daemon heartbeats (a DaemonManager with a SqliteHeartbeatSink writes them)",
        value: 0,
      },
    ];
  return heartbeats.map((beat) => daemonCheck(beat, options.staleAfterMs));
}

function subscriberCountCheck(subscribers: number, none: string): HealthCheck {
  return {
    check: "subscribers",
    status: subscribers === 0 ? "warn" : "ok",
    message: subscribers === 0 ? none : `${plural(subscribers, "subscriber")} registered`,
    value: subscribers,
  };
}

function deadLetterCheck(stored: number, kept: number, options: HealthOptions): HealthCheck {
  const depth = stored + kept;
  return {
    check: "dead-letters",
    status: depth > options.maxDeadLetters ? "fail" : "ok",
    message:
      `${plural(stored, "dead letter")} to handle` +
      (kept > 0 ? ` + ${plural(kept, "dead delivery", "dead deliveries")} kept in the queue` : "") +
      ` (limit ${options.maxDeadLetters})`,
    value: depth,
    threshold: options.maxDeadLetters,
  };
}

function alertCheck(
  def: EventDefinition,
  options: HealthOptions,
  timesSince: (type: string, since: number) => readonly number[],
  note = "",
): HealthCheck {
  const rule = def.alert!;
  const windowMs = rule.kind === "rate" ? rule.withinMs : options.alertWindowMs;
  const evaluation = evaluateAlertRule(
    rule,
    [...timesSince(def.type, options.now - windowMs)],
    options.now,
  );
  return {
    check: `alert:${def.type}`,
    status: evaluation.firing ? "fail" : "ok",
    message: `${evaluation.count} in the last ${formatDuration(windowMs)} (alerts on ${describeAlertRule(rule)})${note}`,
    value: evaluation.count,
    ...(rule.kind === "rate" ? { threshold: rule.moreThan } : {}),
  };
}

/** One JetStream consumer of the transport, as `switchyard health --transport nats --json` lists it. */
export interface NatsConsumerState {
  /** The durable name. */
  readonly name: string;
  readonly subscriber: string;
  /** The event type it filters on; `null` for the subscriber's dead-letter replay consumer. */
  readonly type: string | null;
  readonly ephemeral: boolean;
  /** Stored, not delivered yet (`num_pending`). */
  readonly pending: number;
  /** Delivered, not acknowledged yet: in flight or waiting for a retry (`num_ack_pending`). */
  readonly ackPending: number;
  /** Unacknowledged deliveries made more than once (`num_redelivered`). */
  readonly redelivered: number;
  /** Pull requests waiting on the server (`num_waiting`): above 0 while a process consumes. */
  readonly waiting: number;
}

/** What `switchyard health --transport nats --json` prints. */
export interface NatsHealthReport {
  /** False when any check failed (warnings do not count). */
  readonly healthy: boolean;
  readonly transport: "nats";
  readonly servers: readonly string[];
  readonly stream: string;
  readonly prefix: string;
  /**
   * The file dead letters (and daemon heartbeats, when the heartbeat stream has none) were read
   * from, when `--db` named one.
   */
  readonly db?: string;
  /**
   * Where the daemon heartbeats were read from: the heartbeat stream (`<stream>_HEARTBEATS`,
   * written by `NatsHeartbeatSink`), else the `--db` file; absent when neither had any.
   */
  readonly heartbeats?:
    | { readonly source: "nats"; readonly stream: string }
    | { readonly source: "db"; readonly path: string };
  readonly checkedAt: string;
  readonly checks: readonly HealthCheck[];
  /** Every consumer of the transport on the stream (empty when the stream was not reached). */
  readonly consumers: readonly NatsConsumerState[];
}

/** The connection failures that make a NATS health report unhealthy rather than a usage error. */
const UNREACHABLE: Record<string, string> = {
  NATS_UNREACHABLE: "nats",
  NATS_NO_JETSTREAM: "nats",
};

/**
 * The system check on NATS JetStream: the connection, the stream, every subscriber's consumers
 * (pending, unacknowledged, being retried, anyone pulling), the total backlog and the catalog's
 * alert rules over the stored events. Daemon heartbeats are read from the heartbeat stream beside
 * the event stream (`NatsHeartbeatSink`), else from the `companion` file when one is given, and
 * checked as on SQLite; dead letters only from the `companion` file. What neither holds is
 * reported as not checked (warn). An unreachable server or a missing stream is a failed check,
 * not an error.
 */
export async function checkNatsHealth(
  source: NatsEventSource & { readonly prefix: string },
  companion: { readonly path: string; readonly db: Database.Database } | undefined,
  options: HealthOptions,
): Promise<NatsHealthReport> {
  const connection: HealthCheck[] = [];
  const streamChecks: HealthCheck[] = [];
  const alerts: HealthCheck[] = [];
  let consumers: NatsConsumerState[] = [];
  let beats: HeartbeatInfo[] = [];
  let beatsUnread: string | undefined = "NATS was not reached";
  try {
    await withJetStream(source, async (link) => {
      const server = link.nc.info;
      connection.push({
        check: "nats",
        status: "ok",
        message: `connected to ${link.nc.getServer()}${server ? ` (nats-server ${server.version})` : ""}`,
      });
      try {
        beats = await readNatsHeartbeats(link, source, options.now);
        beatsUnread = undefined;
      } catch (error) {
        beatsUnread = `reading the heartbeat stream failed (${(error as Error).message})`;
      }
      await onStream(link, source, async (session) => {
        connection.push(streamCheck(session));
        const tagged = await taggedConsumers(session);
        consumers = tagged.map(({ tag, info }) => ({
          name: info.name,
          subscriber: tag.subscriber,
          type: tag.type,
          ephemeral: tag.ephemeral,
          pending: info.num_pending,
          ackPending: info.num_ack_pending,
          redelivered: info.num_redelivered,
          waiting: info.num_waiting,
        }));
        const subscribers = subscriberBacklogs(tagged);
        streamChecks.push(
          subscriberCountCheck(
            subscribers.length,
            `no subscribers: no consumer of prefix ${session.prefix} on stream ${session.stream} (daemons create theirs when they subscribe)`,
          ),
        );
        for (const s of subscribers) streamChecks.push(natsSubscriberCheck(s));
        const lag = subscribers.reduce((sum, s) => sum + s.lag, 0);
        const inFlight = subscribers.reduce((sum, s) => sum + s.inFlight, 0);
        streamChecks.push({
          check: "backlog",
          status: lag > options.maxPending ? "fail" : "ok",
          message: `${lag} unacknowledged ${lag === 1 ? "delivery" : "deliveries"} (${lag - inFlight} pending, ${inFlight} in flight; limit ${options.maxPending})`,
          value: lag,
          threshold: options.maxPending,
        });
        const interest = session.info.config.retention !== "limits";
        const note = interest
          ? ` (${session.info.config.retention} retention: only events some subscriber has not acked yet)`
          : "";
        for (const def of alertingTypes(options.catalog ?? pipelineCatalog)) {
          const rule = def.alert!;
          const windowMs = rule.kind === "rate" ? rule.withinMs : options.alertWindowMs;
          const times = await storedTimesSince(session, def.type, options.now - windowMs);
          alerts.push(alertCheck(def, options, () => times, note));
        }
      }).catch((error: unknown) => {
        // A missing stream is a failed check of its own; the heartbeats were still read.
        if (!(error instanceof CliError && error.code === "NATS_STREAM_NOT_FOUND")) throw error;
        connection.push({ check: "stream", status: "fail", message: error.message });
      });
    });
  } catch (error) {
    const check = error instanceof CliError ? UNREACHABLE[error.code] : undefined;
    if (check === undefined) throw error;
    connection.push({ check, status: "fail", message: (error as CliError).message });
  }

  const checks: HealthCheck[] = [...connection];
  const heartbeatStream = heartbeatStreamName(source.stream);
  let heartbeats: NatsHealthReport["heartbeats"];
  const fromFile =
    beats.length === 0 && companion && hasTable(companion.db, "daemon_heartbeats")
      ? listHeartbeats(companion.db, options.now)
      : [];
  if (beats.length > 0) {
    heartbeats = { source: "nats", stream: heartbeatStream };
    checks.push(...daemonChecks(beats, options));
  } else if (companion && fromFile.length > 0) {
    heartbeats = { source: "db", path: companion.path };
    checks.push(...daemonChecks(fromFile, options));
  } else {
    checks.push({
      check: "daemons",
      status: "warn",
      message:
        `not checked: ${beatsUnread ?? `no daemon heartbeats in stream ${heartbeatStream}`} ` +
        (companion
          ? `nor in ${companion.path} (a DaemonManager with a NatsHeartbeatSink, or a SqliteHeartbeatSink on that file, writes them)`
          : "and no --db file (a DaemonManager with a NatsHeartbeatSink writes them to the stream; name a SqliteHeartbeatSink's file with --db)"),
    });
  }
  checks.push(...streamChecks);
  if (companion) {
    const store = deadLetterReader(companion.db);
    checks.push(deadLetterCheck(store?.stats().depth ?? 0, 0, options));
  } else {
    checks.push({
      check: "dead-letters",
      status: "warn",
      message:
        "not checked: dead letters go to the transport's dead-letter sink, not the stream; name " +
        "the SqliteDeadLetterStore's file with --db",
    });
  }
  checks.push(...alerts);

  return {
    healthy: checks.every((c) => c.status !== "fail"),
    transport: "nats",
    servers: source.servers,
    stream: source.stream,
    prefix: source.prefix,
    ...(companion ? { db: companion.path } : {}),
    ...(heartbeats ? { heartbeats } : {}),
    checkedAt: new Date(options.now).toISOString(),
    checks,
    consumers,
  };
}

function streamCheck(session: NatsSession): HealthCheck {
  const { config, state } = session.info;
  const subjects = config.subjects ?? [];
  if (!subjects.some((s) => subjectCovers(s, session.prefix)))
    return {
      check: "stream",
      status: "warn",
      message:
        `stream ${session.stream} does not store ${session.prefix}.> (its subjects: ${subjects.join(", ") || "none"}); ` +
        `check --prefix`,
      value: state.messages,
    };
  return {
    check: "stream",
    status: "ok",
    message:
      `${session.stream}: ${plural(state.messages, "message")} stored, ${config.retention} retention` +
      (config.retention === "limits"
        ? ""
        : " (an event is kept only until every subscriber acked it, and not at all when none subscribes to its type)"),
    value: state.messages,
  };
}

function natsSubscriberCheck(s: NatsSubscriberBacklog): HealthCheck {
  const check = `subscriber:${s.name}`;
  const numbers =
    `lag ${s.lag}: ${s.pending} pending, ${s.inFlight} in flight, ${s.redelivered} being retried` +
    ` (${plural(s.consumers.length, "consumer")}${s.ephemeral ? ", ephemeral" : ""})`;
  // Pending events, none in flight and no pull request: no process of it is consuming.
  if (s.pending > 0 && s.inFlight === 0 && s.waiting === 0)
    return {
      check,
      status: "warn",
      message: `${numbers}; nothing is pulling: is its daemon running?`,
      value: s.lag,
    };
  return { check, status: "ok", message: numbers, value: s.lag };
}

function damagedMessage(reason: string): string {
  return `${DAMAGED} row, read as far as it can be: ${reason}`;
}

/** A daemon's check; a damaged heartbeat row is at least a warning, and says why. */
function daemonCheck(beat: HeartbeatInfo, staleAfterMs: number): HealthCheck {
  const check = daemonCheckOf(beat, staleAfterMs);
  const damaged = damageOf(beat);
  if (damaged === undefined) return check;
  return {
    ...check,
    status: check.status === "ok" ? "warn" : check.status,
    message: `${check.message}; ${damagedMessage(damaged)}`,
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

interface HealthCliOptions extends CommonOptions, TransportOptions {
  readonly maxPending: number;
  readonly maxDlq: number;
  readonly staleAfter: number;
  readonly alertWindow: number;
}

const MARK: Record<CheckStatus, string> = { ok: "ok", warn: "warn", fail: "FAIL" };

export function registerHealth(program: Command, runtime: Runtime): void {
  const command = withTransportOptions(
    "events and subscribers",
    withCommonOptions(
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
    ),
  );
  command.addHelpText(
    "after",
    `
With --transport nats: the connection, the stream, each subscriber's consumers (pending, in
flight, being retried, anyone pulling), the backlog and the alert rules over the stream's events.
Daemon heartbeats are read from the heartbeat stream <stream>_HEARTBEATS (a DaemonManager with a
NatsHeartbeatSink writes them), else from the --db file (or $SWITCHYARD_DB) when one is named.
Dead letters are not on NATS: they are checked in the --db file. What neither holds is reported
as "not checked". An unreachable server or a missing stream fails the check (exit 1).
`,
  );
  examples(command, [
    ["switchyard health", "every check, exit 1 if any fails"],
    ["switchyard health --max-pending 500 --stale-after 90s", "stricter limits"],
    ["switchyard health --json | jq '.checks[] | select(.status == \"fail\")'", "failures only"],
    [
      "switchyard health --transport nats --nats-url nats://10.0.0.5:4222",
      "on NATS JetStream, heartbeats from the heartbeat stream",
    ],
    [
      "switchyard health --transport nats --nats-url nats://10.0.0.5:4222 --db coordination.db",
      "… and dead letters from the file",
    ],
  ]);
  withCatalogOption(command);
  command.action(
    action<HealthCliOptions>(runtime, async ({ opts, out, dbPath, catalog }) => {
      const options: HealthOptions = {
        maxPending: opts.maxPending,
        maxDeadLetters: opts.maxDlq,
        staleAfterMs: opts.staleAfter,
        alertWindowMs: opts.alertWindow,
        now: Date.now(),
        catalog,
      };
      if (transportOf(opts) === "nats") {
        const companion = openCompanion(opts.db, runtime.env, out);
        try {
          const report = await checkNatsHealth(natsSourceOf(opts), companion, options);
          return printHealth(out, report);
        } finally {
          companion?.db.close();
        }
      }
      return withReadOnly(dbPath, (db) => printHealth(out, checkHealth(db, dbPath, options)), out);
    }),
  );
}

function printHealth(out: Output, report: HealthReport | NatsHealthReport): number {
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
}
