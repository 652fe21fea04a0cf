// Reading events and consumer state back from a NATS JetStream stream, for the commands that make
// sense on NATS. Only reads: the ordered consumers used to read the stream are deleted afterwards,
// and nothing else is created.
import {
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type StreamInfo,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { type MsgHdrs, type NatsConnection, connect } from "@nats-io/transport-node";
import type { StoredEvent } from "@switchyard/cross-process-queue";
import { type Envelope, SwitchyardError, isEnvelope, uuidv7Time } from "@switchyard/event-schema";
import {
  type ConsumerTag,
  type NatsHeartbeatInfo,
  isInternalSubject,
  listNatsHeartbeats,
  parseConsumerTag,
} from "@switchyard/transport-nats";
import { CliError, ExitCode } from "./output";

/** Where the events are: the servers, the stream and its subject prefix. */
export interface NatsEventSource {
  readonly servers: readonly string[];
  readonly stream: string;
  /** @defaultValue "switchyard.events" */
  readonly prefix?: string;
}

const DEFAULT_PREFIX = "switchyard.events";
const REQUEST_TIMEOUT_MS = 5_000;
/** Messages asked for by one pull of a reading consumer. */
const PULL_BATCH = 500;
/** A read of the stream ends when no message arrives for this long. */
const IDLE_READ_MS = 5_000;

const isStreamNotFound = (error: unknown) => {
  const e = error as { name?: unknown; code?: unknown } | null;
  return e?.name === "StreamNotFoundError" || e?.code === 10059;
};

async function open(source: NatsEventSource): Promise<NatsConnection> {
  try {
    return await connect({
      servers: [...source.servers],
      timeout: REQUEST_TIMEOUT_MS,
      maxReconnectAttempts: 0,
      name: "switchyard-cli",
    });
  } catch (error) {
    throw new CliError(
      "NATS_UNREACHABLE",
      `Cannot reach NATS at ${source.servers.join(", ")}: ${(error as Error).message}. Check --nats-url.`,
      ExitCode.usage,
      { cause: error },
    );
  }
}

/** A connection that reaches JetStream, for one command. */
export interface NatsLink {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
}

/** One command's view of the stream: a connection, the JetStream APIs and the stream's info. */
export interface NatsSession extends NatsLink {
  readonly js: JetStreamClient;
  readonly stream: string;
  readonly prefix: string;
  /** The stream's configuration and state when the session opened. */
  readonly info: StreamInfo;
}

/**
 * Connect, check that JetStream answers, run `fn`, close. Failures to connect or reach JetStream
 * become {@link CliError}s with the codes `NATS_UNREACHABLE` or `NATS_NO_JETSTREAM` (exit code 2).
 */
export async function withJetStream<T>(
  source: NatsEventSource,
  fn: (link: NatsLink) => Promise<T>,
): Promise<T> {
  const nc = await open(source);
  try {
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(nc, { timeout: REQUEST_TIMEOUT_MS });
    } catch (error) {
      throw new CliError(
        "NATS_NO_JETSTREAM",
        `NATS at ${source.servers.join(", ")} does not answer JetStream requests: ${(error as Error).message}. ` +
          `Start nats-server with -js (JetStream), or check the account's permissions.`,
        ExitCode.usage,
        { cause: error },
      );
    }
    return await fn({ nc, jsm });
  } finally {
    await nc.close().catch(() => {});
  }
}

/**
 * Check that the stream exists on an open link and run `fn` on it. Failures become
 * {@link CliError}s with the codes `NATS_STREAM_NOT_FOUND` or `NATS_STREAM` (exit code 2); errors
 * `fn` throws on purpose (any `SwitchyardError`) pass through unchanged.
 */
export async function onStream<T>(
  link: NatsLink,
  source: NatsEventSource,
  fn: (session: NatsSession) => Promise<T>,
): Promise<T> {
  try {
    let info: StreamInfo;
    try {
      info = await link.jsm.streams.info(source.stream);
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
      throw new CliError(
        "NATS_STREAM_NOT_FOUND",
        `No stream ${source.stream} on NATS at ${source.servers.join(", ")}. The transport creates it when a daemon first ` +
          `connects; check --stream (default SWITCHYARD).`,
        ExitCode.usage,
        { cause: error },
      );
    }
    return await fn({
      ...link,
      js: jetstream(link.nc, { timeout: REQUEST_TIMEOUT_MS }),
      stream: source.stream,
      prefix: source.prefix ?? DEFAULT_PREFIX,
      info,
    });
  } catch (error) {
    if (error instanceof SwitchyardError) throw error;
    throw new CliError(
      "NATS_STREAM",
      `Reading stream ${source.stream} failed: ${(error as Error).message}. Check --stream and --prefix.`,
      ExitCode.usage,
      { cause: error },
    );
  }
}

/**
 * Connect, check that the stream exists, run `fn`, close: {@link withJetStream} and
 * {@link onStream} in one, with their error codes.
 */
export async function withStream<T>(
  source: NatsEventSource,
  fn: (session: NatsSession) => Promise<T>,
): Promise<T> {
  return withJetStream(source, (link) => onStream(link, source, fn));
}

/**
 * Every daemon's latest heartbeat in the heartbeat stream beside `source.stream`
 * (`<stream>_HEARTBEATS`, written by `NatsHeartbeatSink`), by daemon name; `[]` when there is
 * no such stream. Only reads: no consumer is created.
 */
export async function readNatsHeartbeats(
  link: NatsLink,
  source: NatsEventSource,
  now: number,
): Promise<NatsHeartbeatInfo[]> {
  return listNatsHeartbeats({
    connection: link.nc,
    stream: source.stream,
    prefix: source.prefix ?? DEFAULT_PREFIX,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    now,
  });
}

/** One stored message, as the commands need it. */
export interface StreamMessage {
  readonly seq: number;
  readonly subject: string;
  /** When the stream stored it (Unix ms). */
  readonly storedAt: number;
  readonly headers: MsgHdrs | undefined;
  /** The body; empty when read headers-only. */
  readonly data: Uint8Array;
}

/** What {@link readStream} reads. */
interface ReadOptions {
  /** One filter subject (NATS 2.9 allows one per consumer). */
  readonly filter: string;
  /** Start at this stream sequence, or at the first message stored at or after this time (Unix ms). @defaultValue the stream's first message */
  readonly from?: { readonly seq: number } | { readonly time: number };
  /** Stop after this stream sequence: the stream's last when the command started, so a busy stream ends. */
  readonly until: number;
  /** Bodies are left on the server (searching by header, counting by time). @defaultValue false */
  readonly headersOnly?: boolean;
}

/**
 * The messages of the stream matching `filter`, oldest first, through an ordered consumer (no
 * ack state, nothing changes for the subscribers) that is deleted when the reading ends.
 *
 * The reading ends at the last matching message (asked for up front), not when the messages'
 * `pending` count reaches 0: nats-server 2.9 can overcount it for a wildcard filter.
 */
export async function* readStream(
  session: NatsSession,
  options: ReadOptions,
): AsyncGenerator<StreamMessage> {
  const { from } = options;
  const last = await session.jsm.streams.getMessage(session.stream, {
    last_by_subj: options.filter,
  });
  if (!last) return;
  // Newer matching messages than `until` exist when last.seq > until: the first of them ends it.
  const end = Math.min(options.until, last.seq);
  if (from && "seq" in from && from.seq > end) return;
  if (from && "time" in from && last.time.getTime() < from.time) return;
  const consumer = await session.js.consumers.get(session.stream, {
    filter_subjects: options.filter,
    ...(from === undefined
      ? {}
      : "seq" in from
        ? { opt_start_seq: Math.max(1, from.seq) }
        : { opt_start_time: new Date(from.time).toISOString() }),
    ...(options.headersOnly ? { headers_only: true } : {}),
  });
  try {
    // consume(), not fetch(): the ordered consumer re-creates itself after a gap and pulls on.
    const messages = await consumer.consume({ max_messages: PULL_BATCH });
    // Messages may vanish before they are delivered (interest retention, max age): give up when
    // nothing arrives for a while instead of waiting forever.
    let idle: NodeJS.Timeout | undefined;
    const watch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => void messages.close().catch(() => {}), IDLE_READ_MS);
    };
    watch();
    try {
      for await (const message of messages) {
        if (message.seq > options.until) break;
        clearTimeout(idle);
        yield {
          seq: message.seq,
          subject: message.subject,
          storedAt: message.time.getTime(),
          headers: message.headers,
          data: message.data,
        };
        if (message.seq >= end) break;
        watch();
      }
    } finally {
      clearTimeout(idle);
      await messages.close().catch(() => {});
    }
  } finally {
    await consumer.delete().catch(() => {});
  }
}

/** The filter subject of every event type (`${prefix}.>`; replays are skipped by {@link isReplay}). */
const everyType = (session: NatsSession) => `${session.prefix}.>`;

/**
 * Whether a message is a dead-letter replay (`${prefix}.__replay.<subscriber>.<type>`): a copy of
 * an event addressed to one subscriber, not a publish. Event types never start with `__`.
 */
const isReplay = (session: NatsSession, subject: string) =>
  isInternalSubject(session.prefix, subject);

const decoder = new TextDecoder();

/**
 * A stored message as the `events` commands show it, in the shape of a SQLite row: `seq` is the
 * stream sequence and `createdAt` when the stream stored it. The body is read as the transport
 * writes it (the whole envelope as JSON); a body that is not an envelope gets a stand-in envelope
 * (raw body as `data`, id from `Nats-Msg-Id`) and `payloadError`, as a damaged SQLite row does.
 */
export function toStoredEvent(message: StreamMessage, prefix: string): StoredEvent {
  const createdAt = new Date(message.storedAt).toISOString();
  const text = decoder.decode(message.data);
  let value: unknown;
  let problem = "not a Switchyard envelope";
  try {
    value = JSON.parse(text);
  } catch (error) {
    problem = `not JSON (${(error as Error).message})`;
  }
  if (isEnvelope(value)) {
    return {
      seq: message.seq,
      id: value.id,
      type: value.type,
      source: value.source,
      ...(value.subject !== undefined ? { subject: value.subject } : {}),
      time: value.time,
      createdAt,
      envelope: value,
    };
  }
  const id =
    message.headers?.get("Nats-Msg-Id") ||
    message.headers?.get("ce-id") ||
    `nats-seq-${message.seq}`;
  const envelope: Envelope = {
    specversion: "1.0",
    id,
    type: message.subject.slice(prefix.length + 1),
    source: message.headers?.get("ce-source") || "nats",
    time: createdAt,
    datacontenttype: "application/json",
    dataversion: 1,
    data: text,
  };
  return {
    payloadError: `the message on ${message.subject} (stream sequence ${message.seq}) is ${problem}`,
    seq: message.seq,
    id,
    type: envelope.type,
    source: envelope.source,
    time: createdAt,
    createdAt,
    envelope,
  };
}

/** Whether any event of `type` is stored in the stream. */
export async function hasStreamType(session: NatsSession, type: string): Promise<boolean> {
  const last = await session.jsm.streams.getMessage(session.stream, {
    last_by_subj: `${session.prefix}.${type}`,
  });
  return last !== null;
}

/** Filter of {@link recentStreamEvents}, as `switchyard events list` takes it. */
export interface RecentStreamQuery {
  readonly type?: string;
  /** The envelope's subject (config key); the server cannot filter on it, so it is read and compared. */
  readonly subject?: string;
  readonly since?: Date;
  readonly limit: number;
}

/**
 * The newest events first, at most `limit`. Reads backwards in growing windows of stream
 * sequences (each message at most once), so the newest few of a long stream cost a few reads.
 */
export async function recentStreamEvents(
  session: NatsSession,
  query: RecentStreamQuery,
): Promise<StoredEvent[]> {
  const { state } = session.info;
  if (state.messages === 0) return [];
  const since = query.since?.getTime();
  let lower = state.first_seq;
  if (since !== undefined) {
    const first = await firstSeqSince(session, since, state.last_seq);
    if (first === undefined) return [];
    lower = Math.max(lower, first);
  }
  const filter = query.type !== undefined ? `${session.prefix}.${query.type}` : everyType(session);
  let newest: StoredEvent[] = [];
  let end = state.last_seq;
  for (let window = Math.max(query.limit * 2, 256); end >= lower; window *= 4) {
    const start = Math.max(lower, end - window + 1);
    const chunk: StoredEvent[] = [];
    for await (const message of readStream(session, { filter, from: { seq: start }, until: end })) {
      if (isReplay(session, message.subject)) continue;
      if (since !== undefined && message.storedAt < since) continue;
      const event = toStoredEvent(message, session.prefix);
      if (query.subject !== undefined && event.subject !== query.subject) continue;
      chunk.push(event);
    }
    newest = [...chunk, ...newest];
    if (newest.length >= query.limit) break;
    end = start - 1;
  }
  return newest.slice(-query.limit).reverse();
}

/** The sequence of the first message stored at or after `time`, if any up to `until`. */
async function firstSeqSince(
  session: NatsSession,
  time: number,
  until: number,
): Promise<number | undefined> {
  for await (const message of readStream(session, {
    filter: everyType(session),
    from: { time },
    until,
    headersOnly: true,
  }))
    return message.seq;
  return undefined;
}

/** Storage times (Unix ms) of the events of `type` stored at or after `since` (headers only). */
export async function storedTimesSince(
  session: NatsSession,
  type: string,
  since: number,
): Promise<number[]> {
  const times: number[] = [];
  for await (const message of readStream(session, {
    filter: `${session.prefix}.${type}`,
    from: { time: since },
    until: session.info.state.last_seq,
    headersOnly: true,
  }))
    times.push(message.storedAt);
  return times;
}

/** How far before an id's UUIDv7 time its event is looked for (clocks of publishers differ). */
const CLOCK_SKEW_MS = 10 * 60_000;

/**
 * The event with envelope id `id`, found by its `Nats-Msg-Id`/`ce-id` header (headers-only
 * reads). A UUIDv7 id starts the search a little before its creation time; when that misses, or
 * the id is no UUIDv7, the whole stream is searched. Replays are not the event: they are skipped.
 */
export async function findStreamEvent(
  session: NatsSession,
  id: string,
): Promise<StoredEvent | undefined> {
  const { state } = session.info;
  if (state.messages === 0) return undefined;
  const created = uuidv7Time(id);
  const search = async (from: ReadOptions["from"]) => {
    for await (const message of readStream(session, {
      filter: everyType(session),
      ...(from ? { from } : {}),
      until: state.last_seq,
      headersOnly: true,
    })) {
      if (isReplay(session, message.subject)) continue;
      const h = message.headers;
      if (h?.get("Nats-Msg-Id") === id || h?.get("ce-id") === id) return message.seq;
    }
    return undefined;
  };
  let seq = created === undefined ? undefined : await search({ time: created - CLOCK_SKEW_MS });
  seq ??= await search(undefined);
  if (seq === undefined) return undefined;
  const stored = await session.jsm.streams.getMessage(session.stream, { seq });
  if (!stored) return undefined; // removed between the two reads
  return toStoredEvent(
    {
      seq: stored.seq,
      subject: stored.subject,
      storedAt: stored.time.getTime(),
      headers: stored.header,
      data: stored.data,
    },
    session.prefix,
  );
}

/** An event caused by another (its `causationid`), with the events it caused in turn. */
export interface CausedStreamEvent {
  readonly event: StoredEvent;
  readonly caused: CausedStreamEvent[];
}

/**
 * The events caused by `root` (their `causationid` is its id), recursively up to `depth` levels,
 * in stream order: one read of the stream after `root`, since an effect is always stored after
 * its cause. Stops adding once `budget.left` reaches 0.
 */
export async function causedStreamEvents(
  session: NatsSession,
  root: StoredEvent,
  depth: number,
  budget: { left: number },
): Promise<CausedStreamEvent[]> {
  if (depth <= 0 || budget.left <= 0) return [];
  const top: CausedStreamEvent[] = [];
  // Every event of the tree so far, by id: where its children go and how deep it is.
  const nodes = new Map<string, { children: CausedStreamEvent[]; level: number }>([
    [root.id, { children: top, level: 0 }],
  ]);
  for await (const message of readStream(session, {
    filter: everyType(session),
    from: { seq: root.seq + 1 },
    until: session.info.state.last_seq,
  })) {
    if (isReplay(session, message.subject)) continue;
    const event = toStoredEvent(message, session.prefix);
    const cause = event.envelope.causationid;
    const parent = cause === undefined ? undefined : nodes.get(cause);
    if (!parent || parent.level >= depth || nodes.has(event.id)) continue;
    const node: CausedStreamEvent = { event, caused: [] };
    parent.children.push(node);
    nodes.set(event.id, { children: node.caused, level: parent.level + 1 });
    if (--budget.left <= 0) break;
  }
  return top;
}

/** One consumer of the transport (found by its description tag) with its server-side state. */
export interface TaggedConsumer {
  readonly tag: ConsumerTag;
  readonly info: ConsumerInfo;
}

/**
 * The transport's consumers on the stream: those tagged by `@switchyard/transport-nats`, of this
 * prefix (consumers of other prefixes sharing the stream, and ordered readers, are left out).
 */
export async function taggedConsumers(session: NatsSession): Promise<TaggedConsumer[]> {
  const found: TaggedConsumer[] = [];
  for await (const info of session.jsm.consumers.list(session.stream)) {
    const tag = parseConsumerTag(info.config.description);
    if (!tag || (tag.prefix !== undefined && tag.prefix !== session.prefix)) continue;
    found.push({ tag, info });
  }
  return found.sort((a, b) => a.info.name.localeCompare(b.info.name));
}

/** One subscriber's delivery of one event on NATS, as far as JetStream tells it. */
export interface NatsDeliveryInfo {
  readonly subscriber: string;
  /** The event's stream sequence. */
  readonly eventSeq: number;
  readonly type: string;
  /**
   * - `pending`: not delivered yet.
   * - `delivered`: handed to a worker and maybe not acknowledged yet (in flight, or waiting for a
   *   retry); JetStream keeps no per-message ack state an outsider can read, so an event acked
   *   out of order also shows as `delivered` while earlier ones are unacknowledged.
   * - `acked`: acknowledged, or terminated after its dead letter was written.
   * - `dead`: terminated, with a dead letter for it in the `--db` file's dead-letter store.
   */
  readonly status: "pending" | "delivered" | "acked" | "dead";
  /** The JetStream consumer (durable name) it goes through. */
  readonly consumer: string;
  readonly ephemeral: boolean;
  /** The consumer's unacknowledged deliveries (all of its events, not only this one). */
  readonly consumerAckPending: number;
  /** Of those, how many were delivered more than once (being retried). */
  readonly consumerRedelivered: number;
}

/**
 * Every subscriber's delivery of `event`: one per consumer of its type that existed when the
 * event was stored (a consumer starts with the events published after it was created), read
 * from the consumer's delivered and ack-floor sequences.
 */
export function deliveriesOf(
  event: StoredEvent,
  consumers: readonly TaggedConsumer[],
  deadFor: ReadonlySet<string> = new Set(),
): NatsDeliveryInfo[] {
  const storedAt = Date.parse(event.createdAt);
  return consumers
    .filter(({ tag, info }) => tag.type === event.type && Date.parse(info.created) <= storedAt)
    .map(({ tag, info }): NatsDeliveryInfo => {
      let status: NatsDeliveryInfo["status"];
      if (event.seq <= info.ack_floor.stream_seq) status = "acked";
      else if (event.seq <= info.delivered.stream_seq)
        status = info.num_ack_pending === 0 ? "acked" : "delivered";
      else status = "pending";
      if (status !== "pending" && deadFor.has(tag.subscriber)) status = "dead";
      return {
        subscriber: tag.subscriber,
        eventSeq: event.seq,
        type: event.type,
        status,
        consumer: info.name,
        ephemeral: tag.ephemeral,
        consumerAckPending: info.num_ack_pending,
        consumerRedelivered: info.num_redelivered,
      };
    })
    .sort((a, b) => a.subscriber.localeCompare(b.subscriber));
}

/**
 * Where a window reaches past what a store still holds: before `at` some events are gone (all
 * through the window when `at` is absent), for the reason `note` gives.
 */
export interface StorageHorizon {
  readonly at?: number;
  readonly note: string;
}

/**
 * What the stream no longer holds: with limits retention, the messages before its first one
 * when any were removed (max age, size or count limits); with interest or work-queue retention,
 * every acked event, anywhere in the window.
 */
export function streamHorizon(session: NatsSession): StorageHorizon | undefined {
  const { config, state } = session.info;
  if (config.retention !== "limits")
    return {
      note:
        `stream ${session.stream} has ${config.retention} retention: it removes an event once ` +
        "every subscriber acked it, so a stage with no event may still have fired",
    };
  const first = Date.parse(state.first_ts);
  if (state.first_seq <= 1 || Number.isNaN(first)) return undefined;
  const maxAge = config.max_age > 0 ? ` (max age ${Math.round(config.max_age / 1e9)} s)` : "";
  return {
    at: first,
    note:
      `stream ${session.stream} no longer holds its first ${state.first_seq - 1} messages: ` +
      `its limits${maxAge} removed them`,
  };
}

/**
 * Each stage's event count and newest time for `configKey` (by subject, or the payload field
 * `field`, `config_key` unless given).
 */
export async function countStreamEvents(
  source: NatsEventSource,
  query: {
    configKey: string;
    field?: string;
    types: readonly string[];
    since: number;
    until: number;
  },
): Promise<{
  counts: { type: string; count: number; lastAt: number }[];
  horizon: StorageHorizon | undefined;
}> {
  return withStream(source, async (session) => {
    const out: { type: string; count: number; lastAt: number }[] = [];
    for (const type of query.types) {
      let count = 0;
      let lastAt = 0;
      for await (const message of readStream(session, {
        filter: `${session.prefix}.${type}`,
        from: { time: query.since },
        until: session.info.state.last_seq,
      })) {
        const event = toStoredEvent(message, session.prefix);
        const at = Date.parse(event.time);
        if (at > query.until) break;
        const data = event.envelope.data as Record<string, unknown> | null;
        const field = query.field ?? "config_key";
        if (event.subject !== query.configKey && data?.[field] !== query.configKey) continue;
        count++;
        lastAt = Math.max(lastAt, at);
      }
      out.push({ type, count, lastAt });
    }
    return { counts: out, horizon: streamHorizon(session) };
  });
}

/** One subscriber's backlog on NATS, summed over its consumers. */
export interface NatsSubscriberBacklog {
  readonly name: string;
  readonly types: readonly string[];
  readonly ephemeral: boolean;
  /** Messages not yet delivered to it. */
  readonly pending: number;
  /** Delivered, not yet acked (in flight, or waiting for a nak delay). */
  readonly inFlight: number;
  readonly lag: number;
  /** Unacknowledged messages delivered more than once (being retried). */
  readonly redelivered: number;
  /** Pull requests waiting on the server: more than 0 while some process of it is consuming. */
  readonly waiting: number;
  readonly consumers: readonly string[];
}

/** Every subscriber of the consumers, with its backlog summed over them, sorted by name. */
export function subscriberBacklogs(consumers: readonly TaggedConsumer[]): NatsSubscriberBacklog[] {
  const bySubscriber = new Map<
    string,
    {
      types: Set<string>;
      ephemeral: boolean;
      pending: number;
      inFlight: number;
      redelivered: number;
      waiting: number;
      consumers: string[];
    }
  >();
  for (const { tag, info } of consumers) {
    const entry = bySubscriber.get(tag.subscriber) ?? {
      types: new Set<string>(),
      ephemeral: tag.ephemeral,
      pending: 0,
      inFlight: 0,
      redelivered: 0,
      waiting: 0,
      consumers: [],
    };
    if (tag.type) entry.types.add(tag.type);
    entry.pending += info.num_pending;
    entry.inFlight += info.num_ack_pending;
    entry.redelivered += info.num_redelivered;
    entry.waiting += info.num_waiting;
    entry.consumers.push(info.name);
    bySubscriber.set(tag.subscriber, entry);
  }
  return [...bySubscriber.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, e]) => ({
      name,
      types: [...e.types].sort(),
      ephemeral: e.ephemeral,
      pending: e.pending,
      inFlight: e.inFlight,
      lag: e.pending + e.inFlight,
      redelivered: e.redelivered,
      waiting: e.waiting,
      consumers: e.consumers,
    }));
}

/**
 * Every Switchyard subscriber of a stream with its backlog, read from the consumers' info (the
 * same numbers every process of the subscriber sees). Only reads: nothing is created.
 */
export async function natsSubscribers(source: NatsEventSource): Promise<NatsSubscriberBacklog[]> {
  return withStream(source, async (session) => subscriberBacklogs(await taggedConsumers(session)));
}
