import { setTimeout as sleep } from "node:timers/promises";
import type Database from "better-sqlite3";
import type { Command } from "commander";
import {
  type DeliveryInfo,
  type StoredEvent,
  getEvent,
  lastSeqBefore,
  recentEvents,
  traceEvent,
} from "@switchyard/cross-process-queue";
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
import { isSnapshot, openCompanion, openReadOnly, withReadOnly } from "../database";
import { withCatalogOption } from "../catalog-option";
import { checkEventType, checkEventTypeAsync } from "../event-types";
import {
  type CausedStreamEvent,
  type NatsDeliveryInfo,
  causedStreamEvents,
  deliveriesOf,
  findStreamEvent,
  hasStreamType,
  recentStreamEvents,
  taggedConsumers,
  withStream,
} from "../nats";
import {
  CliError,
  ExitCode,
  type Output,
  countOption,
  durationOption,
  formatDuration,
  formatPairs,
  formatTime,
  jsonText,
  plural,
  positiveIntOption,
  sinceOption,
} from "../output";
import { type MaybeDamaged, markDamaged, reportDamaged } from "../damaged";
import {
  causedEventIds,
  deadLettersOfEvent,
  eventIdsAfter,
  hasEventType,
  maxSeq,
} from "../queries";

/** An event caused by the traced one (its `causationid`), with its own deliveries and effects. */
export interface CausedEvent {
  readonly event: StoredEvent;
  readonly deliveries: readonly DeliveryInfo[];
  readonly caused: readonly CausedEvent[];
}

/** What `switchyard events trace --json` prints. */
export interface TraceReport {
  readonly event: StoredEvent;
  /** Every subscriber's delivery of it. */
  readonly deliveries: readonly DeliveryInfo[];
  /** Dead letters stored for it (one per subscriber that failed it). */
  readonly deadLetters: readonly {
    id: number;
    subscriber: string;
    status: string;
    reason: string;
    attempts: number;
  }[];
  /** Events whose `causationid` is this event's id, recursively up to `--depth` levels. */
  readonly caused: readonly CausedEvent[];
}

/** An event caused by the traced one on NATS, with its own deliveries and effects. */
export interface NatsCausedEvent {
  readonly event: StoredEvent;
  readonly deliveries: readonly NatsDeliveryInfo[];
  readonly caused: readonly NatsCausedEvent[];
}

/** What `switchyard events trace --transport nats --json` prints: {@link TraceReport} on NATS. */
export interface NatsTraceReport {
  readonly transport: "nats";
  readonly stream: string;
  /** `seq` is the stream sequence, `createdAt` when the stream stored it. */
  readonly event: StoredEvent;
  /** Every subscriber's delivery of it, from its consumer's state. */
  readonly deliveries: readonly NatsDeliveryInfo[];
  /** Dead letters stored for it in the `--db` file (empty when no file is named). */
  readonly deadLetters: TraceReport["deadLetters"];
  /** Whether `deadLetters` was read (a `--db` file was named). */
  readonly deadLettersChecked: boolean;
  /** Events whose `causationid` is this event's id, recursively up to `--depth` levels. */
  readonly caused: readonly NatsCausedEvent[];
}

interface ListOptions extends CommonOptions, TransportOptions {
  readonly type?: string;
  readonly subject?: string;
  readonly since?: Date;
  readonly limit: number;
}

interface TraceOptions extends CommonOptions, TransportOptions {
  readonly depth: number;
}

interface TailOptions extends CommonOptions {
  readonly type?: string;
  readonly subject?: string;
  readonly since?: Date;
  readonly for?: number;
  readonly count?: number;
  readonly interval: number;
}

/** Most caused events followed in one trace, so a runaway chain cannot flood the terminal. */
const MAX_CAUSED = 200;

export function registerEvents(program: Command, runtime: Runtime): void {
  const events = program
    .command("events")
    .description("Stored events: list them, trace one through every subscriber, follow new ones.");

  const list = withTransportOptions(
    "events",
    withCommonOptions(
      events
        .command("list")
        .description(
          "Was it published? The newest events first, optionally of one type, subject (config key) and since a time.",
        )
        .option("--type <event-type>", "only this event type")
        .option("--subject <key>", "only this subject (the config key, e.g. hex8_2p)")
        .option(
          "--since <when>",
          "only events stored since a duration ago (2h, 30m) or an ISO time",
          sinceOption,
        )
        .option("--limit <n>", "at most this many", positiveIntOption, 20),
    ),
  );
  examples(list, [
    ["switchyard events list", "the 20 newest events"],
    [
      "switchyard events list --type TRAINING_COMPLETED --since 2h",
      "was training completion published?",
    ],
    [
      "switchyard events list --subject hex8_2p --limit 50 --json",
      "one config's events, for a script",
    ],
    [
      "switchyard events list --transport nats --nats-url nats://10.0.0.5:4222 --since 1h",
      "from the NATS JetStream stream (seq = stream sequence)",
    ],
  ]);
  withCatalogOption(list);
  list.action(
    action<ListOptions>(runtime, async ({ opts, out, dbPath, catalog }) => {
      const query = (type: string | undefined) => ({
        ...(type !== undefined ? { type } : {}),
        ...(opts.subject !== undefined ? { subject: opts.subject } : {}),
        ...(opts.since !== undefined ? { since: opts.since } : {}),
        limit: opts.limit,
      });
      const found =
        transportOf(opts) === "nats"
          ? await withStream(natsSourceOf(opts), async (session) => {
              const type =
                opts.type === undefined
                  ? undefined
                  : await checkEventTypeAsync(catalog, opts.type, (t) => hasStreamType(session, t));
              return recentStreamEvents(session, query(type));
            })
          : await withReadOnly(
              dbPath,
              (db) => {
                const type =
                  opts.type === undefined
                    ? undefined
                    : checkEventType(catalog, opts.type, (t) => hasEventType(db, t));
                return recentEvents(db, query(type));
              },
              out,
            );
      out.data({ events: found });
      if (found.length === 0) {
        out.line("No events match.");
        return ExitCode.ok;
      }
      out.table(
        ["seq", "stored", "type", "subject", "source", "id"],
        found.map((e) => [
          e.seq,
          formatTime(e.createdAt),
          markDamaged(e.type, e),
          e.subject,
          e.source,
          e.id,
        ]),
      );
      reportDamaged(out, found, (e) => `event ${e.id} (seq ${e.seq})`);
      return ExitCode.ok;
    }),
  );

  const trace = withTransportOptions(
    "events",
    withCommonOptions(
      events
        .command("trace")
        .description(
          "Where did it go, where is it stuck? One event's delivery to every subscriber (attempts, status, last error), its dead letters, and the events it caused.",
        )
        .argument("<event-id>", "the envelope id")
        .option("--depth <n>", "levels of caused events to follow", countOption, 3),
    ),
  );
  examples(trace, [
    [
      "switchyard events trace 0193a5c2-7d1e-7cc0-b2b4-5f0c8e1d2a3b",
      "one event through the system",
    ],
    ["switchyard events trace <id> --depth 0 --json", "deliveries only, as JSON"],
    [
      "switchyard events trace <id> --transport nats --db coordination.db",
      "on NATS JetStream; dead letters from the file",
    ],
  ]);
  trace.action(
    action<TraceOptions>(runtime, async ({ args, opts, out, dbPath }) => {
      const id = String(args[0]);
      if (transportOf(opts) === "nats") return traceOnNats(id, opts, out, runtime);
      return withReadOnly(
        dbPath,
        (db) => {
          const traced = traceEvent(db, id);
          if (!traced) {
            throw new CliError(
              "EVENT_NOT_FOUND",
              `No event with id ${id} in ${dbPath}. Events are pruned after the retention period ` +
                `(24 h by default); find recent ids with \`switchyard events list\`.`,
            );
          }
          const budget = { left: MAX_CAUSED };
          const report: TraceReport = {
            event: traced.event,
            deliveries: traced.deliveries,
            deadLetters: deadLettersOfEvent(db, id),
            caused: causedBy(db, traced.event, opts.depth, budget),
          };
          out.data(report);
          printTrace(out, report, SQLITE_DELIVERIES);
          if (budget.left <= 0) out.line(`(stopped after ${MAX_CAUSED} caused events)`);
          return ExitCode.ok;
        },
        out,
      );
    }),
  );

  const tail = withCommonOptions(
    events
      .command("tail")
      .description("What is happening now? Print new events as they are stored, until Ctrl-C.")
      .option("--type <event-type>", "only this event type")
      .option("--subject <key>", "only this subject (config key)")
      .option(
        "--since <when>",
        "start with the events stored since a duration ago or an ISO time",
        sinceOption,
      )
      .option("--for <duration>", "stop after this long (e.g. 30s, 5m)", durationOption)
      .option("--count <n>", "stop after this many events", positiveIntOption)
      .option("--interval <duration>", "poll interval", durationOption, 250),
  );
  examples(tail, [
    ["switchyard events tail", "follow every new event"],
    ["switchyard events tail --type MODEL_PROMOTED --count 1", "wait for the next promotion"],
    [
      "switchyard events tail --since 10m --for 1m --json",
      "last 10 minutes, then one more, as JSON lines",
    ],
  ]);
  withCatalogOption(tail);
  tail.action(
    action<TailOptions>(runtime, async ({ opts, out, dbPath, catalog }) => {
      const db = openReadOnly(dbPath, out);
      try {
        if (isSnapshot(db))
          throw new CliError(
            "CANNOT_FOLLOW_SNAPSHOT",
            `events tail follows new events, and a snapshot of ${dbPath} never has any. Run it as ` +
              `a user who may write the file's directory, or use \`switchyard events list\`.`,
          );
        const type =
          opts.type === undefined
            ? undefined
            : checkEventType(catalog, opts.type, (t) => hasEventType(db, t));
        return await follow(db, out, runtime, { ...opts, type }, dbPath);
      } finally {
        db.close();
      }
    }),
  );
}

function causedBy(
  db: Database.Database,
  event: StoredEvent,
  depth: number,
  budget: { left: number },
): CausedEvent[] {
  if (depth <= 0 || budget.left <= 0) return [];
  const caused: CausedEvent[] = [];
  for (const id of causedEventIds(db, event.id, event.seq, budget.left)) {
    const child = traceEvent(db, id);
    if (!child || budget.left <= 0) continue;
    budget.left--;
    caused.push({
      event: child.event,
      deliveries: child.deliveries,
      caused: causedBy(db, child.event, depth - 1, budget),
    });
  }
  return caused;
}

/** An event with its deliveries and the events it caused, whatever the transport. */
interface TraceTree<D> {
  readonly event: StoredEvent;
  readonly deliveries: readonly D[];
  readonly caused: readonly TraceTree<D>[];
}

/** How one transport's deliveries are printed. */
interface DeliveryView<D> {
  /** The traced event's deliveries, as a table. */
  table(out: Output, deliveries: readonly D[]): void;
  /** A caused event's deliveries, in a few words. */
  summary(deliveries: readonly D[]): string;
  /** Printed when the dead letters could not be read, instead of their table. */
  readonly deadLettersUnknown?: string;
}

function outcome(d: DeliveryInfo): string {
  if (d.fromCursor) return d.status === "acked" ? "acked" : "pending (not claimed yet)";
  if (d.status === "dead")
    return `dead (${d.deadReason ?? "unknown"}${d.handedOff ? ", in the DLQ" : ", kept in the queue"})`;
  if (d.status === "pending" && d.lastError) return `retrying at ${formatTime(d.availableAt)}`;
  if (d.status === "leased") return `in flight until ${formatTime(d.leaseUntil)}`;
  return d.status;
}

function countStatuses(deliveries: readonly { readonly status: string }[]): string {
  if (deliveries.length === 0) return "no subscribers";
  const counts = new Map<string, number>();
  for (const d of deliveries) counts.set(d.status, (counts.get(d.status) ?? 0) + 1);
  return [...counts].map(([status, n]) => `${n} ${status}`).join(", ");
}

const SQLITE_DELIVERIES: DeliveryView<DeliveryInfo> = {
  table: (out, deliveries) =>
    out.table(
      ["subscriber", "status", "attempts", "updated", "last error"],
      deliveries.map((d) => [
        d.subscriber,
        outcome(d),
        d.attempts,
        formatTime(d.updatedAt),
        markDamaged(d.lastError ? `${d.lastError.name}: ${d.lastError.message}` : undefined, d),
      ]),
    ),
  summary: countStatuses,
};

const NATS_OUTCOME: Record<NatsDeliveryInfo["status"], string> = {
  pending: "pending (not delivered yet)",
  delivered: "delivered, not acked yet (in flight or waiting for a retry)",
  acked: "acked",
  dead: "dead (terminated, in the DLQ)",
};

function natsDeliveryView(deadLettersChecked: boolean): DeliveryView<NatsDeliveryInfo> {
  return {
    table: (out, deliveries) =>
      out.table(
        ["subscriber", "status", "consumer unacked", "consumer retrying", "consumer"],
        deliveries.map((d) => [
          d.subscriber + (d.ephemeral ? " (ephemeral)" : ""),
          NATS_OUTCOME[d.status],
          d.consumerAckPending,
          d.consumerRedelivered,
          d.consumer,
        ]),
      ),
    summary: countStatuses,
    ...(deadLettersChecked
      ? {}
      : {
          deadLettersUnknown:
            "Dead letters not checked: the transport writes them to its dead-letter sink, not the " +
            "stream; name the SqliteDeadLetterStore's file with --db to see them.",
        }),
  };
}

function printTrace<D extends { readonly subscriber: string } & MaybeDamaged>(
  out: Output,
  report: TraceTree<D> & { readonly deadLetters: TraceReport["deadLetters"] },
  view: DeliveryView<D>,
): void {
  const e = report.event;
  const env = e.envelope;
  out.line(
    formatPairs([
      ["event", `${e.type} ${e.id}`],
      ["source", e.source],
      ["subject", e.subject],
      ["time", `${formatTime(e.time)} (stored ${formatTime(e.createdAt)}, seq ${e.seq})`],
      ["data", jsonText(env.data)],
      ...(env.traceparent ? [["traceparent", env.traceparent] as const] : []),
      ...(env.correlationid ? [["correlationid", env.correlationid] as const] : []),
      ...(env.causationid ? [["causationid", env.causationid] as const] : []),
      ...(e.payloadError ? [["problem", e.payloadError] as const] : []),
    ]),
  );
  out.line();
  if (report.deliveries.length === 0) {
    out.line(
      "No subscriber was registered for this type when it was published: nobody received it.",
    );
  } else {
    view.table(out, report.deliveries);
    reportDamaged(out, report.deliveries, (d) => `delivery to ${d.subscriber}`);
  }
  if (view.deadLettersUnknown) {
    out.line();
    out.line(view.deadLettersUnknown);
  } else if (report.deadLetters.length > 0) {
    out.line();
    out.table(
      ["dead letter", "subscriber", "status", "reason", "attempts"],
      report.deadLetters.map((d) => [d.id, d.subscriber, d.status, d.reason, d.attempts]),
    );
  }
  out.line();
  if (report.caused.length === 0) {
    out.line("Caused no stored events (none has this id as causationid).");
    return;
  }
  out.line("Caused:");
  const walk = (items: readonly TraceTree<D>[], indent: string) => {
    items.forEach((c, i) => {
      const last = i === items.length - 1;
      out.line(
        `${indent}${last ? "└─" : "├─"} ${c.event.type} ${c.event.id} from ${c.event.source} ` +
          `(${formatTime(c.event.createdAt)}; ${view.summary(c.deliveries)})`,
      );
      walk(c.caused, `${indent}${last ? "   " : "│  "}`);
    });
  };
  walk(report.caused, "");
}

/**
 * `events trace` on NATS: the event found in the stream by id, each subscriber's delivery from
 * its consumer's state, dead letters from the `--db` file when one is named, and the caused
 * events from one read of the stream after it.
 */
async function traceOnNats(
  id: string,
  opts: TraceOptions,
  out: Output,
  runtime: Runtime,
): Promise<number> {
  const companion = openCompanion(opts.db, runtime.env, out);
  try {
    const budget = { left: MAX_CAUSED };
    const report = await withStream(
      natsSourceOf(opts),
      async (session): Promise<NatsTraceReport> => {
        const event = await findStreamEvent(session, id);
        if (!event) {
          const retention = session.info.config.retention;
          throw new CliError(
            "EVENT_NOT_FOUND",
            `No event with id ${id} in stream ${session.stream} (prefix ${session.prefix}). ` +
              (retention === "limits"
                ? "The stream removes events after its max age or size limits; "
                : `With ${retention} retention the stream removes an event once every subscriber acked it; `) +
              `find stored ids with \`switchyard events list --transport nats\`.`,
          );
        }
        const caused = await causedStreamEvents(session, event, opts.depth, budget);
        const consumers = await taggedConsumers(session);
        const deadLettersOf = (eventId: string) =>
          companion ? deadLettersOfEvent(companion.db, eventId) : [];
        const deliveries = (e: StoredEvent, dead: TraceReport["deadLetters"]) =>
          deliveriesOf(e, consumers, new Set(dead.map((d) => d.subscriber)));
        const withDeliveries = (node: CausedStreamEvent): NatsCausedEvent => ({
          event: node.event,
          deliveries: deliveries(node.event, deadLettersOf(node.event.id)),
          caused: node.caused.map(withDeliveries),
        });
        const deadLetters = deadLettersOf(id);
        return {
          transport: "nats",
          stream: session.stream,
          event,
          deliveries: deliveries(event, deadLetters),
          deadLetters,
          deadLettersChecked: companion !== undefined,
          caused: caused.map(withDeliveries),
        };
      },
    );
    out.data(report);
    printTrace(out, report, natsDeliveryView(report.deadLettersChecked));
    if (budget.left <= 0) out.line(`(stopped after ${MAX_CAUSED} caused events)`);
    return ExitCode.ok;
  } finally {
    companion?.db.close();
  }
}

async function follow(
  db: Database.Database,
  out: Output,
  runtime: Runtime,
  opts: TailOptions,
  dbPath: string,
): Promise<number> {
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  process.once("SIGINT", onSigint);
  const onOuterAbort = () => stop.abort();
  runtime.signal?.addEventListener("abort", onOuterAbort, { once: true });
  if (runtime.signal?.aborted) stop.abort();
  const timer = opts.for === undefined ? undefined : setTimeout(() => stop.abort(), opts.for);
  try {
    let after = opts.since === undefined ? maxSeq(db) : lastSeqBefore(db, opts.since);
    let printed = 0;
    out.note(
      `Following ${opts.type ?? "all"} events in ${dbPath}` +
        (opts.count !== undefined ? ` until ${plural(opts.count, "event")}` : "") +
        (opts.for !== undefined ? ` for at most ${formatDuration(opts.for)}` : "") +
        " (Ctrl-C to stop)…",
    );
    while (!stop.signal.aborted) {
      const batch = eventIdsAfter(db, after, {
        ...(opts.type !== undefined ? { type: opts.type } : {}),
        ...(opts.subject !== undefined ? { subject: opts.subject } : {}),
        limit: 200,
      });
      for (const { seq, id } of batch) {
        after = seq;
        const event = getEvent(db, id);
        if (!event) continue; // pruned between the two reads
        if (out.json) out.jsonLine(event);
        else
          out.line(
            `${formatTime(event.createdAt)}  #${event.seq}  ${event.type}  ` +
              `${event.subject ?? "-"}  ${event.source}  ${event.id}  ${jsonText(event.envelope.data)}`,
          );
        printed++;
        if (opts.count !== undefined && printed >= opts.count) return ExitCode.ok;
      }
      if (batch.length < 200) {
        await sleep(opts.interval, undefined, { signal: stop.signal }).catch(() => undefined);
      }
    }
    return ExitCode.ok;
  } finally {
    clearTimeout(timer);
    process.removeListener("SIGINT", onSigint);
    runtime.signal?.removeEventListener("abort", onOuterAbort);
  }
}
