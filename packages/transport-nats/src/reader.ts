// Internal: reading a stream back without changing it — ordered consumers that are deleted when
// the reading ends, and stored messages turned into the inspector's `StoredEvent`. Moved here from
// the CLI (`cli/src/nats.ts`), which read the stream the same way.
import type { JetStreamClient, JetStreamManager, StoredMsg } from "@nats-io/jetstream";
import type { MsgHdrs } from "@nats-io/transport-node";
import { isEnvelope } from "@switchyard/event-schema";
import type { StoredEvent } from "@switchyard/transport";
import { isInternalSubject } from "./names";

/** @internal What a reading needs: the JetStream APIs and the stream. */
export interface ReadSession {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly stream: string;
}

/** @internal One stored message. */
export interface StreamMessage {
  readonly seq: number;
  readonly subject: string;
  /** When the stream stored it (Unix ms). */
  readonly storedAt: number;
  readonly headers: MsgHdrs | undefined;
  /** The body; empty when read headers-only. */
  readonly data: Uint8Array;
}

/** @internal What {@link readStream} reads. */
export interface ReadOptions {
  /** One filter subject (NATS 2.9 allows one per consumer). */
  readonly filter: string;
  /** Start at this stream sequence, or at the first message stored at or after this time (Unix ms). @defaultValue the stream's first message */
  readonly from?: { readonly seq: number } | { readonly time: number };
  /** Stop after this stream sequence (the stream's last when the reading started, so a busy stream ends). */
  readonly until: number;
  /** Bodies are left on the server. @defaultValue false */
  readonly headersOnly?: boolean;
  /** Aborting ends the reading early (the generator returns). */
  readonly signal?: AbortSignal;
}

/** Messages asked for by one pull of a reading consumer. */
const PULL_BATCH = 500;
/** A reading ends when no message arrives for this long (messages removed meanwhile). */
const IDLE_READ_MS = 5_000;

/** @internal A stored message fetched by sequence or subject, as a {@link StreamMessage}. */
export function fromStoredMsg(message: StoredMsg): StreamMessage {
  return {
    seq: message.seq,
    subject: message.subject,
    storedAt: message.time.getTime(),
    headers: message.header,
    data: message.data,
  };
}

/**
 * @internal The messages of the stream matching `filter`, oldest first, through an ordered
 * consumer (no ack state; nothing changes for the subscribers) that is deleted when the reading
 * ends. The reading ends at the last matching message (asked for up front), not when `pending`
 * reaches 0: nats-server 2.9 can overcount it for a wildcard filter.
 */
export async function* readStream(
  session: ReadSession,
  options: ReadOptions,
): AsyncGenerator<StreamMessage> {
  const { from, signal } = options;
  if (signal?.aborted) return;
  const last = await session.jsm.streams.getMessage(session.stream, {
    last_by_subj: options.filter,
  });
  if (!last) return;
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
    let idle: NodeJS.Timeout | undefined;
    const stop = () => void messages.close().catch(() => {});
    const watch = () => {
      clearTimeout(idle);
      idle = setTimeout(stop, IDLE_READ_MS);
    };
    signal?.addEventListener("abort", stop, { once: true });
    watch();
    try {
      for await (const message of messages) {
        if (message.seq > options.until || signal?.aborted) break;
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
      signal?.removeEventListener("abort", stop);
      await messages.close().catch(() => {});
    }
  } finally {
    await consumer.delete().catch(() => {});
  }
}

const decoder = new TextDecoder();

/**
 * @internal A stored event message as the inspector shows it: `seq` is the stream sequence and
 * `storedAt` when the stream stored it. A body that is not an envelope keeps what the headers
 * tell (id from `ce-id`/`Nats-Msg-Id`, type from the subject) and says why in `damaged`.
 */
export function toStoredEvent(message: StreamMessage, prefix: string): StoredEvent {
  const storedAt = new Date(message.storedAt).toISOString();
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
      storedAt,
      envelope: value,
      ...(value.causationid !== undefined ? { causedBy: value.causationid } : {}),
    };
  }
  const h = message.headers;
  return {
    seq: message.seq,
    id: h?.get("ce-id") || h?.get("Nats-Msg-Id") || `nats-seq-${message.seq}`,
    type: h?.get("ce-type") || message.subject.slice(prefix.length + 1),
    source: h?.get("ce-source") || "nats",
    ...(h?.get("ce-subject") ? { subject: h.get("ce-subject") } : {}),
    time: storedAt,
    storedAt,
    damaged: `the message on ${message.subject} (stream sequence ${message.seq}) is ${problem}`,
  };
}

/** @internal The message's envelope id, from its headers (headers-only reads). */
export function headerId(message: StreamMessage): string | undefined {
  return message.headers?.get("ce-id") || message.headers?.get("Nats-Msg-Id") || undefined;
}

/** @internal A dead-letter replay (`${prefix}.__replay.…`) is a copy, not a published event. */
export const isReplayCopy = (prefix: string, subject: string) => isInternalSubject(prefix, subject);
