import { headers, type MsgHdrs } from "@nats-io/transport-node";
import {
  EventValidationError,
  type Envelope,
  describeType,
  isEnvelope,
} from "@switchyard/event-schema";
import { UnrecoverableError } from "@switchyard/transport";
import { NatsOptionsError } from "./errors";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const nativeWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean })
  .isWellFormed;
/** No unpaired surrogate: the native check where there is one (Node ≥ 20), else the regex. */
const wellFormed = (text: string): boolean =>
  nativeWellFormed ? nativeWellFormed.call(text) : !LONE_SURROGATE.test(text);

/**
 * The message for one envelope: the whole envelope as JSON in the body (the wire contract), and
 * CloudEvents binary-mode style headers so consumers in other languages can route and trace
 * without parsing it. `Nats-Msg-Id` is set by the publish call (the envelope id).
 *
 * Headers travel as UTF-8, where an unpaired surrogate becomes U+FFFD: two ids differing only
 * there would share one `Nats-Msg-Id`, and the second event would be dropped as a duplicate. Such
 * an id is rejected here, before anything is sent.
 */
export function encodeEnvelope(envelope: Envelope): { data: Uint8Array; headers: MsgHdrs } {
  return toMessage(envelope, envelopeJson(envelope));
}

/**
 * The checks and the body text of {@link encodeEnvelope}, without building the message: a batch
 * is checked (and sized, with `Buffer.byteLength`) before anything is sent, and each message is
 * built only when it is sent, so a large batch does not hold every encoded message at once.
 */
export function envelopeJson(envelope: Envelope): string {
  if (typeof envelope.id !== "string" || !wellFormed(envelope.id))
    throw new NatsOptionsError(
      "envelope.id",
      envelope.id,
      "a well-formed Unicode string without unpaired surrogates (NATS headers are UTF-8, so two such ids would collapse into one Nats-Msg-Id)",
    );
  try {
    return JSON.stringify(envelope);
  } catch (error) {
    throw new EventValidationError({
      eventType: envelope.type,
      reason: "invalid_payload",
      receivedType: describeType(envelope.data),
      message:
        `Event ${envelope.id} (${envelope.type}) cannot be published: its data is not JSON-serialisable ` +
        `(${(error as Error).message}). Publish plain JSON values only (no cycles, no BigInt).`,
      cause: error,
    });
  }
}

/** The message of an envelope whose body text {@link envelopeJson} returned. */
export function toMessage(
  envelope: Envelope,
  json: string,
): { data: Uint8Array; headers: MsgHdrs } {
  const h = headers();
  for (const [name, value] of headerEntries(envelope)) h.set(name, value);
  return { data: encoder.encode(json), headers: h };
}

/** The headers of {@link toMessage}, in order. */
function headerEntries(envelope: Envelope): [string, string][] {
  const entries: [string, string][] = [
    ["ce-specversion", envelope.specversion],
    ["ce-id", envelope.id],
    ["ce-type", envelope.type],
    ["ce-source", envelope.source],
    ["content-type", "application/cloudevents+json"],
  ];
  if (envelope.subject) entries.push(["ce-subject", envelope.subject]);
  if (envelope.traceparent) entries.push(["traceparent", envelope.traceparent]);
  if (envelope.tracestate) entries.push(["tracestate", envelope.tracestate]);
  return entries;
}

/** On a copy for one subscriber's replay subject (requeue, hand-back): the subscriber it is for. */
export const REPLAY_HEADER = "switchyard-replay";

/**
 * On a handed-back copy: the attempts made before it. JetStream counts deliveries, and a copy
 * starts again at 1, so its attempt is this plus its delivery count.
 */
export const ATTEMPTS_HEADER = "switchyard-attempts";

/**
 * A copy of an event for one subscriber's replay subject: `requeue()` (no attempts) or a
 * hand-back on close (`attemptsBefore`). It carries {@link REPLAY_HEADER} (and
 * {@link ATTEMPTS_HEADER}) instead of `Nats-Msg-Id`, which would make the stream drop it.
 */
export interface ReplayCopy {
  readonly subscriber: string;
  readonly attemptsBefore?: number;
}

/** The headers a {@link ReplayCopy} adds, in order. */
export function replayHeaders(copy: ReplayCopy): [string, string][] {
  const entries: [string, string][] = [[REPLAY_HEADER, copy.subscriber]];
  if (copy.attemptsBefore !== undefined)
    entries.push([ATTEMPTS_HEADER, String(copy.attemptsBefore)]);
  return entries;
}

/**
 * What a message counts against the server's `max_payload`: the body plus its headers in the
 * NATS header wire format (`NATS/1.0\r\n`, a `name: value\r\n` line each, `\r\n`). nats.js
 * refuses a message over that limit with a bare "max_payload size exceeded".
 */
export function messageBytes(
  bodyBytes: number,
  headerLines: Iterable<readonly [string, string]>,
): number {
  let bytes = bodyBytes + "NATS/1.0\r\n\r\n".length;
  for (const [name, value] of headerLines)
    bytes += Buffer.byteLength(`${name}: ${value}\r\n`, "utf8");
  return bytes;
}

/**
 * The {@link messageBytes} of `envelope` as sent: its body (`jsonBytes`, the UTF-8 size of
 * {@link envelopeJson}) and headers, with `Nats-Msg-Id` when published, or with the headers of a
 * {@link ReplayCopy} when it is a copy for one subscriber (`requeue()`, a hand-back).
 */
export function publishedBytes(envelope: Envelope, jsonBytes: number, copy?: ReplayCopy): number {
  return messageBytes(jsonBytes, [
    ...headerEntries(envelope),
    ...(copy === undefined
      ? [["Nats-Msg-Id", envelope.id] as [string, string]]
      : replayHeaders(copy)),
  ]);
}

/**
 * Read the envelope back from a message body. A body that is not an envelope (a foreign
 * publisher, corruption) yields a stand-in envelope and an `UnrecoverableError` wrapping an
 * `EventValidationError`, so the delivery is dead-lettered as `invalid_payload` instead of
 * looping or vanishing; only then is `describe` called, to name the message.
 */
export function decodeEnvelope(
  data: Uint8Array,
  describe: () => { subject: string; type: string; id: string | undefined; seq: number },
): { envelope: Envelope; error?: undefined } | { envelope: Envelope; error: Error } {
  const text = decoder.decode(data);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (parseError) {
    value = parseError;
  }
  if (isEnvelope(value)) return { envelope: value };
  // Only a body that is not an envelope needs the message's headers and subject (parsing them costs).
  const fallback = describe();
  const envelope: Envelope = {
    specversion: "1.0",
    id: fallback.id ?? `nats-seq-${fallback.seq}`,
    type: fallback.type,
    source: "nats",
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    dataversion: 1,
    data: text,
  };
  const where = `the message on ${fallback.subject} (stream sequence ${fallback.seq})`;
  const cause = new EventValidationError({
    eventType: fallback.type,
    reason: "invalid_envelope",
    receivedType: value instanceof Error ? "invalid JSON" : describeType(value),
    message:
      `${where} is not a Switchyard envelope; its raw body is kept as \`data\` of this dead letter. ` +
      `Publish envelopes (createEnvelope) to these subjects.`,
    ...(value instanceof Error ? { cause: value } : {}),
  });
  return {
    envelope,
    error: new UnrecoverableError(`${where} is not an envelope`, { cause }),
  };
}
