import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { type NatsConnection, nanos } from "@nats-io/transport-node";
import type { Envelope } from "@switchyard/event-schema";
import {
  type AuditOptions,
  type AuditReport,
  type ConsumerAudit,
  type UnhandledEvent,
  abortReason,
} from "@switchyard/transport";
import { decodeEnvelope } from "./codec";
import { parseConsumerTag, replayDurableName, replaySubject, subscriberToken } from "./names";

/**
 * The stream holding the receipts that go with the event stream `stream`: `${stream}_RECEIPTS`.
 */
export function receiptStreamName(stream: string): string {
  return `${stream}_RECEIPTS`;
}

/**
 * The subject one subscriber's receipts are stored on: `${prefix}_receipts.<subscriber token>`
 * (beside `${prefix}.>`, never under it, so no event consumer matches a receipt).
 */
export function receiptSubject(prefix: string, subscriber: string): string {
  return `${prefix}_receipts.${subscriberToken(subscriber)}`;
}

/**
 * The result of {@link NatsTransport.audit}: the transport contract's `AuditReport` (the stream,
 * its consumers' ack floors and the events they passed unhandled).
 */
export type NatsAudit = AuditReport;

/** @internal What the audit needs from the transport. */
export interface AuditHost {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly stream: string;
  readonly prefix: string;
  requeue(subscriber: string, envelope: Envelope): Promise<void>;
}

const ID_HEADER = "Nats-Msg-Id";
/** How long reading one range may take before the audit fails (it never reports on a partial read). */
const READ_TIMEOUT_MS = 60_000;
/**
 * Receipts are written without waiting for the stream, so one may be stored a moment after the
 * ack it goes with: candidates are checked again against receipts stored this long later.
 */
const RECEIPT_SETTLE_MS = 1_000;
const decoder = new TextDecoder();

/**
 * Read the messages of `stream` on `filter` from `from` to `to` (stream sequences, inclusive)
 * through a short-lived consumer of our own (AckNone, no durable), calling `each` per message.
 */
async function readRange(
  host: AuditHost,
  stream: string,
  filter: string,
  from: number,
  to: number,
  each: (
    seq: number,
    data: Uint8Array,
    id: string | undefined,
    time: number,
    msgId: string | undefined,
  ) => void,
): Promise<void> {
  if (to < from) return;
  const info = await host.jsm.consumers.add(stream, {
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: Math.max(1, from),
    filter_subject: filter,
    inactive_threshold: nanos(30_000),
    mem_storage: true,
  });
  try {
    const consumer = await host.js.consumers.get(stream, info.name);
    // A partial read would report handled events as unhandled: read to `to` (or to the end of
    // the filter's messages), or fail.
    const deadline = Date.now() + READ_TIMEOUT_MS;
    for (;;) {
      const batch = await consumer.fetch({ max_messages: 500, expires: 2_000 });
      let received = 0;
      for await (const m of batch) {
        received++;
        if (m.seq > to) return;
        // Replayed and handed-back copies carry the id in ce-id only (no Nats-Msg-Id).
        const msgId = m.headers?.get(ID_HEADER) || undefined;
        const id = msgId ?? (m.headers?.get("ce-id") || undefined);
        each(m.seq, m.data, id, m.info.timestampNanos / 1e6, msgId);
        if (m.seq >= to || m.info.pending === 0) return;
      }
      if (received === 0 && (await consumer.info()).num_pending === 0) return;
      if (Date.now() > deadline)
        throw new Error(
          `reading ${stream} on ${filter} up to sequence ${to} did not finish within ${READ_TIMEOUT_MS} ms`,
        );
    }
  } finally {
    await host.jsm.consumers.delete(stream, info.name).catch(() => {});
  }
}

/** Ids of the copies on `subscriber`'s replay subject above its replay consumer's ack floor. */
async function pendingCopies(host: AuditHost, subscriber: string): Promise<Set<string>> {
  const ids = new Set<string>();
  let floor: number;
  try {
    const info = await host.jsm.consumers.info(
      host.stream,
      replayDurableName(host.prefix, subscriber),
    );
    floor = info.ack_floor.stream_seq;
  } catch {
    return ids; // no replay consumer: no copies
  }
  const last = (await host.jsm.streams.info(host.stream)).state.last_seq;
  await readRange(
    host,
    host.stream,
    replaySubject(host.prefix, subscriber, "*"),
    floor + 1,
    last,
    (_seq, _data, id) => {
      if (id !== undefined) ids.add(id);
    },
  );
  return ids;
}

/** Add the receipts on `subject` stored after `known.upTo` to `known.ids`. */
async function readReceipts(
  host: AuditHost,
  stream: string,
  subject: string,
  known: { ids: Set<string>; upTo: number },
): Promise<void> {
  const info = await host.jsm.streams.info(stream);
  const from = Math.max(known.upTo + 1, info.state.first_seq);
  await readRange(host, stream, subject, from, info.state.last_seq, (_seq, data) =>
    known.ids.add(decoder.decode(data)),
  );
  known.upTo = Math.max(known.upTo, info.state.last_seq);
}

/**
 * @internal Compare each durable consumer of the transport's subscribers with the stream (and,
 * when present, with the receipts): see {@link NatsTransport.audit}.
 */
export async function audit(host: AuditHost, options: AuditOptions = {}): Promise<NatsAudit> {
  const { jsm, stream, prefix } = host;
  const { signal } = options;
  if (signal?.aborted) throw abortReason(signal);
  const info = await jsm.streams.info(stream);
  const firstSeq = info.state.first_seq;
  const lastSeq = info.state.last_seq;
  const receiptStream = receiptStreamName(stream);
  const receiptsOn = await jsm.streams
    .info(receiptStream)
    .then(() => true)
    .catch(() => false);
  const consumers: ConsumerAudit[] = [];
  /** Each subscriber's receipts (envelope ids) and the receipt stream sequence read up to. */
  const receipts = new Map<string, { ids: Set<string>; upTo: number }>();
  let gaps = 0;
  let requeued = 0;
  for await (const c of jsm.consumers.list(stream)) {
    if (signal?.aborted) throw abortReason(signal);
    const tag = parseConsumerTag(c.config.description);
    if (!tag || tag.type === null || tag.ephemeral) continue;
    if (tag.prefix !== undefined && tag.prefix !== prefix) continue;
    if (options.subscriber !== undefined && tag.subscriber !== options.subscriber) continue;
    const ackFloor = c.ack_floor.stream_seq;
    const delivered = c.delivered.stream_seq;
    const removedBeforeAck =
      firstSeq - 1 > ackFloor && lastSeq > ackFloor
        ? { from: ackFloor + 1, to: Math.min(firstSeq - 1, lastSeq) }
        : undefined;
    const aheadOfStream = ackFloor > lastSeq || delivered > lastSeq;
    let unhandled: UnhandledEvent[] | undefined;
    let checked = 0;
    if (receiptsOn) {
      const subject = receiptSubject(prefix, tag.subscriber);
      let known = receipts.get(tag.subscriber);
      if (!known) {
        known = { ids: new Set<string>(), upTo: 0 };
        receipts.set(tag.subscriber, known);
        await readReceipts(host, receiptStream, subject, known);
      }
      const handled = known.ids;
      const created = Date.parse(c.created);
      const found: { seq: number; id: string; data: Uint8Array }[] = [];
      await readRange(
        host,
        stream,
        c.config.filter_subject ?? `${prefix}.${tag.type}`,
        firstSeq,
        Math.min(ackFloor, lastSeq),
        (seq, data, id, time, msgId) => {
          // Events stored before the consumer existed were never meant for it.
          if (time < created) return;
          if (id !== undefined && handled.has(id)) {
            checked++;
            return;
          }
          // A receipt holds the id the subscriber read from the body, which another program's
          // message may not have in its headers (a Nats-Msg-Id of its own, or no headers): only
          // for those is the body decoded, as the subscription decodes it.
          const read = decodeEnvelope(data, () => ({
            subject: `${prefix}.${tag.type}`,
            type: tag.type!,
            id: msgId,
            seq,
          })).envelope.id;
          checked++;
          if (!handled.has(read)) found.push({ seq, id: read, data });
        },
      );
      if (found.length > 0) {
        await new Promise((resolve) => setTimeout(resolve, RECEIPT_SETTLE_MS));
        await readReceipts(host, receiptStream, subject, known);
      }
      // A copy on the subscriber's replay subject not yet acknowledged (a hand-back on close, a
      // replay) is on its way to a handler: not a gap.
      const onTheirWay = found.length > 0 ? await pendingCopies(host, tag.subscriber) : new Set();
      const missing = found.filter((f) => !handled.has(f.id) && !onTheirWay.has(f.id));
      unhandled = missing.map((f) => ({ seq: f.seq, id: f.id, type: tag.type! }));
      if (options.repair) {
        for (const f of missing) {
          if (signal?.aborted) throw abortReason(signal);
          const { envelope, error } = decodeEnvelope(f.data, () => ({
            subject: `${prefix}.${tag.type}`,
            type: tag.type!,
            id: f.id,
            seq: f.seq,
          }));
          if (error) continue;
          await host.requeue(tag.subscriber, envelope);
          requeued++;
        }
      }
    }
    gaps += (unhandled?.length ?? 0) + (aheadOfStream ? 1 : 0);
    consumers.push({
      subscriber: tag.subscriber,
      type: tag.type,
      consumer: c.name,
      ackFloor,
      delivered,
      ackPending: c.num_ack_pending,
      pending: c.num_pending,
      removedBeforeAck,
      aheadOfStream,
      unhandled,
      checked,
    });
  }
  consumers.sort(
    (a, b) => a.subscriber.localeCompare(b.subscriber) || a.type.localeCompare(b.type),
  );
  return {
    stream,
    retention: info.config.retention,
    firstSeq,
    lastSeq,
    receipts: receiptsOn,
    consumers,
    gaps,
    requeued,
  };
}

/** @internal Create (or keep) the receipt stream that goes with `stream`. */
export async function ensureReceiptStream(
  jsm: JetStreamManager,
  o: {
    stream: string;
    prefix: string;
    replicas: number;
    maxAgeMs: number;
    storage: "file" | "memory";
  },
): Promise<void> {
  const name = receiptStreamName(o.stream);
  try {
    await jsm.streams.info(name);
    return;
  } catch {
    // not there yet
  }
  await jsm.streams
    .add({
      name,
      subjects: [`${o.prefix}_receipts.>`],
      retention: RetentionPolicy.Limits,
      storage: o.storage === "file" ? StorageType.File : StorageType.Memory,
      num_replicas: o.replicas,
      max_age: nanos(o.maxAgeMs),
      description: "Switchyard delivery receipts (@switchyard/transport-nats audit)",
    })
    .catch((error: unknown) => {
      // created concurrently by another process
      if ((error as { code?: unknown } | null)?.code !== 10058) throw error;
    });
}

/**
 * {@link NatsTransport.audit} as a function: compare what the stream holds with what each
 * durable subscriber acknowledged (see there for what it reports).
 *
 * @example
 * ```ts
 * // not runnable
 * const report = await auditConsumers(transport, { subscriber: "evaluator" });
 * ```
 */
export function auditConsumers(
  transport: { audit(options?: AuditOptions): Promise<NatsAudit> },
  options: AuditOptions = {},
): Promise<NatsAudit> {
  return transport.audit(options);
}
