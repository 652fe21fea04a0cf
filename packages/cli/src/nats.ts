// Reading events back from a NATS JetStream stream, for the commands that make sense on NATS.
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { Envelope } from "@switchyard/event-schema";
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
