import type { Command } from "commander";
import { durationParser, formatDuration as durationText, sinceOption } from "../duration";
import {
  type CausationNode,
  type DeadLetterInfo,
  type DeliveryInfo,
  type Driver,
  type Inspector,
  type StoredEvent,
  deliveryStepText,
} from "@switchyard/transport";
import {
  type CommonOptions,
  type Runtime,
  action,
  examples,
  snapshotOf,
  withCommonOptions,
} from "../context";
import { withCatalogOption } from "../catalog-option";
import { openCliTarget } from "../drivers";
import { markDamaged, reportDamaged } from "../damaged";
import {
  CliError,
  ExitCode,
  type Output,
  countOption,
  formatDuration,
  formatPairs,
  formatTime,
  jsonText,
  plural,
  positiveIntOption,
} from "../output";
import { longTimeout, sleep } from "../timers";
import { eventTypeOf } from "./shared";

/** An event caused by the traced one (its `causationid`), with its own deliveries and effects. */
export interface CausedEvent {
  readonly event: StoredEvent;
  readonly deliveries: readonly DeliveryInfo[];
  readonly caused: readonly CausedEvent[];
}

/** What `switchyard events trace --json` prints, the same on every transport. */
export interface TraceReport {
  readonly transport: string;
  readonly event: StoredEvent;
  /** The chain of causes, oldest first, ending with its direct cause. */
  readonly causes: readonly StoredEvent[];
  /** Every subscriber's delivery of it (empty when the transport has no delivery detail). */
  readonly deliveries: readonly DeliveryInfo[];
  /** Dead letters stored for it (one per subscriber that failed it). */
  readonly deadLetters: readonly Pick<
    DeadLetterInfo,
    "id" | "subscriber" | "status" | "reason" | "attempts"
  >[];
  /** Events it caused, recursively up to `--depth` levels. */
  readonly caused: readonly CausedEvent[];
  /** True when the tree was cut at `--depth` or at {@link MAX_CAUSED} events. */
  readonly truncated: boolean;
}

interface ListOptions extends CommonOptions {
  readonly type?: string;
  readonly subject?: string;
  readonly since?: Date;
  readonly limit: number;
}

interface TraceOptions extends CommonOptions {
  readonly depth: number;
}

interface TailOptions extends CommonOptions {
  readonly type?: string;
  readonly subject?: string;
  readonly since?: Date;
  readonly for?: number;
  readonly count?: number;
  readonly interval?: number;
}

/** Most events in one trace's tree, so a runaway chain cannot flood the terminal. */
const MAX_CAUSED = 200;

/** How often `events tail` asks for new events. */
const TAIL_INTERVAL_MS = 250;

/** How often `events tail` reads a fresh snapshot, at most. */
const SNAPSHOT_POLL_MS = 1000;

export function registerEvents(program: Command, runtime: Runtime): void {
  const events = program
    .command("events")
    .description("Stored events: list them, trace one through every subscriber, follow new ones.");

  const list = withCommonOptions(
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
      "switchyard events list --transport nats://10.0.0.5:4222/SWITCHYARD --since 1h",
      "from a NATS JetStream stream (seq = stream sequence)",
    ],
  ]);
  withCatalogOption(list);
  list.action(
    action<ListOptions>(runtime, async (context) => {
      const { opts, out, driver } = context;
      const inspector = (await driver({ readOnly: true })).inspector();
      const type = await eventTypeOf(context, opts.type, inspector);
      const page = await inspector.events({
        ...(type !== undefined ? { types: [type] } : {}),
        ...(opts.subject !== undefined ? { subject: opts.subject } : {}),
        ...(opts.since !== undefined ? { since: opts.since } : {}),
        limit: opts.limit,
        order: "newest",
      });
      const found = page.events;
      out.data({ events: found });
      if (found.length === 0) {
        out.line("No events match.");
        return ExitCode.ok;
      }
      out.table(
        ["seq", "stored", "type", "subject", "source", "id"],
        found.map((e) => [
          e.seq,
          formatTime(e.storedAt),
          markDamaged(e.type, e),
          e.subject,
          e.source,
          e.id,
        ]),
        { whole: ["id"] },
      );
      reportDamaged(out, found, (e) => `event ${e.id} (seq ${e.seq})`);
      return ExitCode.ok;
    }),
  );

  const trace = withCommonOptions(
    events
      .command("trace")
      .description(
        "Where did it go, where is it stuck, why did it run twice? One event's delivery to every subscriber (attempts, state, last error, and the timeline of its retries, lease expiries, fencing, dead-lettering and replays where the transport keeps one), its dead letters, what caused it and the events it caused.",
      )
      .argument("<event-id>", "the envelope id")
      .option("--depth <n>", "levels of caused events to follow", countOption, 3),
  );
  examples(trace, [
    [
      "switchyard events trace 0193a5c2-7d1e-7cc0-b2b4-5f0c8e1d2a3b",
      "one event through the system",
    ],
    ["switchyard events trace <id> --depth 0 --json", "deliveries only, as JSON"],
    [
      "switchyard events trace <id> --transport nats://10.0.0.5:4222/SWITCHYARD",
      "the same on NATS JetStream",
    ],
  ]);
  trace.action(
    action<TraceOptions>(runtime, async ({ args, opts, out, driver }) => {
      const id = String(args[0]);
      const opened = await driver({ readOnly: true });
      const inspector = opened.inspector();
      const tree = await inspector.causation(id, { depth: opts.depth, limit: MAX_CAUSED });
      if (!tree)
        throw new CliError(
          "EVENT_NOT_FOUND",
          `No event with id ${id} on ${opened.target}. Transports remove events after their ` +
            `retention; find stored ids with \`switchyard events list\`.`,
        );
      const deliveriesOf = (eventId: string) =>
        inspector.capabilities.deliveries ? inspector.deliveries(eventId) : Promise.resolve([]);
      const withDeliveries = async (node: CausationNode): Promise<CausedEvent> => ({
        event: node.event,
        deliveries: await deliveriesOf(node.event.id),
        caused: await Promise.all(node.caused.map(withDeliveries)),
      });
      const report: TraceReport = {
        transport: inspector.transport,
        event: tree.root.event,
        causes: tree.causes,
        deliveries: await deliveriesOf(id),
        deadLetters: await deadLettersOf(inspector, tree.root.event),
        caused: await Promise.all(tree.root.caused.map(withDeliveries)),
        truncated: tree.truncated,
      };
      out.data(report);
      printTrace(out, report, inspector.capabilities.deliveries);
      return ExitCode.ok;
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
      .option("--for <duration>", "stop after this long (e.g. 30s, 5m)", durationParser("--for"))
      .option("--count <n>", "stop after this many events", positiveIntOption)
      .option(
        "--interval <duration>",
        `poll interval (default: ${durationText(TAIL_INTERVAL_MS)})`,
        durationParser("--interval"),
      ),
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
    action<TailOptions>(runtime, async (context) => {
      const { opts, out, driver, target } = context;
      const opened = await driver({ readOnly: true });
      const inspector = opened.inspector();
      const type = await eventTypeOf(context, opts.type, inspector);
      // A snapshot never changes: read a fresh one at each poll, until the target is read in place.
      const fresh =
        snapshotOf(opened) === undefined
          ? undefined
          : () => openCliTarget(target, { readOnly: true });
      if (fresh)
        out.note(
          `note: following a snapshot: a fresh copy is read every ${durationText(SNAPSHOT_POLL_MS)} ` +
            "or more, until a process has the file open.",
        );
      return follow(inspector, out, runtime, { ...opts, type }, opened.target, fresh);
    }),
  );
}

/** The dead letters of one event (one per subscriber that failed it), every status. */
async function deadLettersOf(
  inspector: Inspector,
  event: StoredEvent,
): Promise<TraceReport["deadLetters"]> {
  if (!inspector.capabilities.deadLetters) return [];
  const page = await inspector.deadLetters({ eventId: event.id, limit: 1000 });
  return page.deadLetters.map((d) => ({
    id: d.id,
    subscriber: d.subscriber,
    status: d.status,
    reason: d.reason,
    attempts: d.attempts,
  }));
}

function outcome(d: DeliveryInfo): string {
  switch (d.state) {
    case "dead":
      return `dead (${d.deadReason ?? "unknown"})`;
    case "retrying":
      return d.availableAt ? `retrying at ${formatTime(d.availableAt)}` : "retrying";
    case "in_flight":
      return d.leaseUntil ? `in flight until ${formatTime(d.leaseUntil)}` : "in flight";
    case "acked":
    case "pending":
    case "unknown":
      return d.state;
  }
}

/**
 * One delivery's timeline (`DeliveryInfo.history`), when the transport keeps one and it holds a
 * step: what answers "why did it run twice?".
 */
function printTimeline(out: Output, d: DeliveryInfo): void {
  if (!d.history || d.history.length === 0) return;
  out.line();
  out.line(
    `Timeline of ${d.subscriber}` +
      (d.historyTruncated ? " (older steps dropped by the transport's bound):" : ":"),
  );
  out.table(
    ["at", "step", "attempt", "delay", "reason", "error", "by"],
    d.history.map((step) => [
      step.at,
      deliveryStepText[step.kind] ?? step.kind,
      step.attempt,
      step.delayMs === undefined ? undefined : formatDuration(step.delayMs),
      step.reason,
      step.error
        ? `${step.error.name}: ${String(step.error.message ?? "").split("\n", 1)[0]}`
        : step.detail,
      step.by,
    ]),
  );
}

function countStates(deliveries: readonly DeliveryInfo[]): string {
  if (deliveries.length === 0) return "no deliveries";
  const counts = new Map<string, number>();
  for (const d of deliveries) counts.set(d.state, (counts.get(d.state) ?? 0) + 1);
  return [...counts].map(([state, n]) => `${n} ${state}`).join(", ");
}

function printTrace(out: Output, report: TraceReport, hasDeliveries: boolean): void {
  const e = report.event;
  const env = e.envelope;
  out.line(
    formatPairs([
      ["event", `${e.type} ${e.id}`],
      ["source", e.source],
      ["subject", e.subject],
      ["time", `${formatTime(e.time)} (stored ${formatTime(e.storedAt)}, seq ${e.seq})`],
      ["data", env ? jsonText(env.data) : undefined],
      ...(env?.traceparent ? [["traceparent", env.traceparent] as const] : []),
      ...(env?.correlationid ? [["correlationid", env.correlationid] as const] : []),
      ...(e.causedBy ? [["caused by", e.causedBy] as const] : []),
      ...(e.damaged ? [["problem", e.damaged] as const] : []),
    ]),
  );
  if (report.causes.length > 0) {
    out.line();
    out.line(
      `Caused by: ${report.causes.map((c) => `${c.type} ${c.id}`).join(" → ")} → this event`,
    );
  }
  out.line();
  if (!hasDeliveries) {
    out.line(`The ${report.transport} transport keeps no per-subscriber delivery detail.`);
  } else if (report.deliveries.length === 0) {
    out.line(
      "No subscriber was registered for this type when it was published: nobody received it.",
    );
  } else {
    out.table(
      ["subscriber", "state", "attempts", "updated", "last error"],
      report.deliveries.map((d) => [
        d.subscriber,
        outcome(d),
        d.attempts,
        formatTime(d.updatedAt),
        markDamaged(d.lastError ? `${d.lastError.name}: ${d.lastError.message}` : undefined, d),
      ]),
    );
    reportDamaged(out, report.deliveries, (d) => `delivery to ${d.subscriber}`);
    for (const d of report.deliveries) printTimeline(out, d);
  }
  if (report.deadLetters.length > 0) {
    out.line();
    out.table(
      ["dead letter", "subscriber", "status", "reason", "attempts"],
      report.deadLetters.map((d) => [d.id, d.subscriber, d.status, d.reason, d.attempts]),
      { whole: ["dead letter"] },
    );
  }
  out.line();
  if (report.caused.length === 0) {
    out.line("Caused no stored events (none has this id as causationid).");
  } else {
    out.line("Caused:");
    const walk = (items: readonly CausedEvent[], indent: string) => {
      items.forEach((c, i) => {
        const last = i === items.length - 1;
        out.line(
          `${indent}${last ? "└─" : "├─"} ${c.event.type} ${c.event.id} from ${c.event.source} ` +
            `(${formatTime(c.event.storedAt)}; ${countStates(c.deliveries)})`,
        );
        walk(c.caused, `${indent}${last ? "   " : "│  "}`);
      });
    };
    walk(report.caused, "");
  }
  if (report.truncated) out.line(`(cut at --depth or after ${MAX_CAUSED} events)`);
}

/**
 * Poll the inspector for events stored after the last one printed. Pages are read oldest first
 * from a little before the last storage time (clocks of writers differ by a few ms) and events
 * already printed are skipped by their log position.
 */
async function follow(
  initial: Inspector,
  out: Output,
  runtime: Runtime,
  opts: Omit<TailOptions, "type"> & { readonly type: string | undefined },
  target: string,
  reopen: (() => Promise<Driver>) | undefined,
): Promise<number> {
  let fresh = reopen;
  let reopened: Driver | undefined;
  let inspector = initial;
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  process.once("SIGINT", onSigint);
  const onOuterAbort = () => stop.abort();
  runtime.signal?.addEventListener("abort", onOuterAbort, { once: true });
  if (runtime.signal?.aborted) stop.abort();
  const timer = opts.for === undefined ? undefined : longTimeout(() => stop.abort(), opts.for);
  const filter = {
    ...(opts.type !== undefined ? { types: [opts.type] } : {}),
    ...(opts.subject !== undefined ? { subject: opts.subject } : {}),
  };
  try {
    let lastSeq = -1;
    let from: number;
    if (opts.since !== undefined) from = opts.since.getTime();
    else {
      // Start after the newest event stored now.
      const newest = (await inspector.events({ limit: 1, order: "newest" })).events[0];
      lastSeq = newest?.seq ?? -1;
      from = newest ? Date.parse(newest.storedAt) : Date.now();
    }
    let printed = 0;
    out.note(
      `Following ${opts.type ?? "all"} events on ${target}` +
        (opts.count !== undefined ? ` until ${plural(opts.count, "event")}` : "") +
        (opts.for !== undefined ? ` for at most ${formatDuration(opts.for)}` : "") +
        " (Ctrl-C to stop)…",
    );
    let first = true;
    while (!stop.signal.aborted) {
      if (fresh && !first) {
        const next = await fresh();
        await reopened?.close();
        reopened = next;
        inspector = next.inspector();
        if (snapshotOf(next) === undefined) fresh = undefined;
      }
      first = false;
      let cursor: string | undefined;
      do {
        const page = await inspector.events({
          ...filter,
          since: from - 1000,
          order: "oldest",
          limit: 200,
          ...(cursor ? { cursor } : {}),
        });
        for (const event of page.events) {
          if (event.seq <= lastSeq) continue;
          lastSeq = event.seq;
          from = Math.max(from, Date.parse(event.storedAt));
          if (out.json) out.jsonLine(event);
          else
            out.line(
              `${formatTime(event.storedAt)}  #${event.seq}  ${event.type}  ` +
                `${event.subject ?? "-"}  ${event.source}  ${event.id}  ${jsonText(event.envelope?.data)}`,
            );
          printed++;
          if (opts.count !== undefined && printed >= opts.count) return ExitCode.ok;
        }
        cursor = page.next;
      } while (cursor && !stop.signal.aborted);
      const interval = opts.interval ?? TAIL_INTERVAL_MS;
      await sleep(fresh ? Math.max(interval, SNAPSHOT_POLL_MS) : interval, stop.signal);
    }
    return ExitCode.ok;
  } finally {
    await reopened?.close();
    timer?.clear();
    process.removeListener("SIGINT", onSigint);
    runtime.signal?.removeEventListener("abort", onOuterAbort);
  }
}
