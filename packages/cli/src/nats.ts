// Reading events back from a NATS JetStream stream, for the commands that make sense on NATS.
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { Envelope } from "@switchyard/event-schema";
import { parseConsumerTag } from "@switchyard/transport-nats";
import { CliError, ExitCode } from "./output";

/** Where the events are: the servers, the stream and its subject prefix. */
export interface NatsEventSource {
  readonly servers: readonly string[];
  readonly stream: string;
  /** @defaultValue "switchyard.events" */
  readonly prefix?: string;
}

async function open(source: NatsEventSource) {
  try {
    return await connect({ servers: [...source.servers], timeout: 5000, maxReconnectAttempts: 0 });
  } catch (error) {
    throw new CliError(
      "NATS_UNREACHABLE",
      `Cannot reach NATS at ${source.servers.join(", ")}: ${(error as Error).message}. Check --nats-url.`,
      ExitCode.usage,
      { cause: error },
    );
  }
}

/** Each stage's event count and newest time for `configKey` (by subject or payload config_key). */
export async function countStreamEvents(
  source: NatsEventSource,
  query: { configKey: string; types: readonly string[]; since: number; until: number },
): Promise<{ type: string; count: number; lastAt: number }[]> {
  const nc = await open(source);
  try {
    const js = jetstream(nc);
    const prefix = source.prefix ?? "switchyard.events";
    const out: { type: string; count: number; lastAt: number }[] = [];
    for (const type of query.types) {
      let count = 0;
      let lastAt = 0;
      for await (const envelope of readSubject(
        js,
        source.stream,
        `${prefix}.${type}`,
        query.since,
      )) {
        const at = Date.parse(envelope.time);
        if (at > query.until) break;
        const data = envelope.data as { config_key?: unknown } | null;
        if (envelope.subject !== query.configKey && data?.config_key !== query.configKey) continue;
        count++;
        lastAt = Math.max(lastAt, at);
      }
      out.push({ type, count, lastAt });
    }
    return out;
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(
      "NATS_STREAM",
      `Reading stream ${source.stream} failed: ${(error as Error).message}. Check --stream and --prefix.`,
      ExitCode.usage,
      { cause: error },
    );
  } finally {
    await nc.close();
  }
}

/** Every envelope stored on one subject from `since`, oldest first (an ordered consumer, read to its end). */
async function* readSubject(
  js: ReturnType<typeof jetstream>,
  stream: string,
  subject: string,
  since: number,
): AsyncGenerator<Envelope> {
  const consumer = await js.consumers.get(stream, {
    filter_subjects: subject,
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(since).toISOString(),
  });
  let pending = (await consumer.info(true)).num_pending;
  while (pending > 0) {
    const batch = await consumer.fetch({ max_messages: Math.min(pending, 500), expires: 2000 });
    let got = 0;
    for await (const message of batch) {
      got++;
      pending = message.info.pending;
      try {
        yield JSON.parse(new TextDecoder().decode(message.data)) as Envelope;
      } catch {
        // Not an envelope: not a pipeline event, whatever it is.
      }
      if (pending === 0) break;
    }
    if (got === 0) break;
  }
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
  /** Messages delivered more than once. */
  readonly redelivered: number;
  readonly consumers: readonly string[];
}

/**
 * Every Switchyard subscriber of a stream with its backlog, read from the consumers' info (the
 * same numbers every process of the subscriber sees). Only reads: nothing is created.
 */
export async function natsSubscribers(source: NatsEventSource): Promise<NatsSubscriberBacklog[]> {
  const nc = await open(source);
  try {
    const jsm = await jetstreamManager(nc);
    const bySubscriber = new Map<
      string,
      {
        types: Set<string>;
        ephemeral: boolean;
        pending: number;
        inFlight: number;
        redelivered: number;
        consumers: string[];
      }
    >();
    for await (const info of jsm.consumers.list(source.stream)) {
      const tag = parseConsumerTag(info.config.description);
      if (
        !tag ||
        (source.prefix !== undefined && tag.prefix !== undefined && tag.prefix !== source.prefix)
      )
        continue;
      const entry = bySubscriber.get(tag.subscriber) ?? {
        types: new Set<string>(),
        ephemeral: tag.ephemeral,
        pending: 0,
        inFlight: 0,
        redelivered: 0,
        consumers: [],
      };
      if (tag.type) entry.types.add(tag.type);
      entry.pending += info.num_pending;
      entry.inFlight += info.num_ack_pending;
      entry.redelivered += info.num_redelivered;
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
        consumers: e.consumers,
      }));
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(
      "NATS_STREAM",
      `Listing the consumers of stream ${source.stream} failed: ${(error as Error).message}. Check --stream.`,
      ExitCode.usage,
      { cause: error },
    );
  } finally {
    await nc.close();
  }
}
