import { createHash } from "node:crypto";

/** Longest readable part kept in a generated consumer name or subject token. */
const READABLE_MAX = 40;
/** Characters NATS allows in durable names and single subject tokens without surprises. */
const SAFE = /[^A-Za-z0-9_-]/g;

function hash(parts: readonly string[]): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 10);
}

function readable(value: string): string {
  const cleaned = value.replace(SAFE, "_").slice(0, READABLE_MAX);
  return cleaned.length > 0 ? cleaned : "_";
}

/**
 * The durable consumer name of one (subscriber, event type) pair: a readable, sanitised prefix
 * plus a hash of the exact pair, so the name is deterministic (every process derives the same
 * one), unique (`"a.b"` and `"a_b"` never collide; another subject prefix on the same stream
 * gets other consumers) and valid for NATS (no `.`, `*`, `>` or whitespace, at most 62 characters).
 *
 * @example
 * ```ts
 * durableName("switchyard.events", "evaluator", "TRAINING_COMPLETED"); // "evaluator__TRAINING_COMPLETED__<hash>"
 * ```
 */
export function durableName(prefix: string, subscriber: string, type: string): string {
  return `${readable(subscriber).slice(0, 20)}__${readable(type).slice(0, 28)}__${hash([prefix, subscriber, type])}`;
}

/**
 * The durable consumer name of a subscriber's replay consumer (dead-letter replays addressed to
 * that subscriber only). Cannot collide with {@link durableName}: the hashed input differs.
 */
export function replayDurableName(prefix: string, subscriber: string): string {
  return `${readable(subscriber)}__replay__${hash(["replay", prefix, subscriber])}`;
}

/**
 * A subscriber name as one subject token (for the replay subject): sanitised and suffixed with a
 * hash of the exact name, so distinct names never share a subject.
 */
export function subscriberToken(subscriber: string): string {
  return `${readable(subscriber)}-${hash(["subject", subscriber])}`;
}

/**
 * The subject a dead-letter replay addressed to one subscriber is stored on:
 * `${prefix}.__replay.<subscriber token>.<type>` (`type` may be `"*"` for a filter).
 */
export function replaySubject(prefix: string, subscriber: string, type: string): string {
  return `${prefix}.__replay.${subscriberToken(subscriber)}.${type}`;
}

/**
 * True when `subject` is one of the transport's own subjects under `prefix` (dead-letter replays),
 * not a published event: event types never start with `__`.
 */
export function isInternalSubject(prefix: string, subject: string): boolean {
  return subject.startsWith(`${prefix}.__`);
}

/**
 * The stream holding the daemon heartbeats that go with the event stream `stream`:
 * `${stream}_HEARTBEATS` (`SWITCHYARD_HEARTBEATS` by default). A stream of its own, beside the
 * event stream, so that heartbeats never reach an event consumer and keep their own retention.
 */
export function heartbeatStreamName(stream: string): string {
  return `${stream}_HEARTBEATS`;
}

/**
 * The subject prefix of the heartbeats that go with the event prefix `prefix`:
 * `${prefix}_heartbeats` (`switchyard.events_heartbeats` by default). It sits beside
 * `${prefix}.>`, not under it, so the event stream and its consumers never match a heartbeat.
 */
export function heartbeatPrefix(prefix: string): string {
  return `${prefix}_heartbeats`;
}

/**
 * The subject one daemon's heartbeats are stored on: `${prefix}_heartbeats.<daemon token>`, the
 * token being the sanitised name plus a hash of the exact name (distinct names never share a
 * subject). With `max_msgs_per_subject: 1`, the stream keeps the latest heartbeat per daemon.
 *
 * @example
 * ```ts
 * heartbeatSubject("switchyard.events", "quality_monitor"); // "switchyard.events_heartbeats.quality_monitor-<hash>"
 * ```
 */
export function heartbeatSubject(prefix: string, daemon: string): string {
  return `${heartbeatPrefix(prefix)}.${readable(daemon)}-${hash(["heartbeat", daemon])}`;
}

/**
 * True when a stream subject `pattern` already captures every subject under `${prefix}.`, e.g.
 * `"switchyard.>"` covers the prefix `"switchyard.events"`.
 */
export function subjectCovers(pattern: string, prefix: string): boolean {
  const p = pattern.split(".");
  const want = [...prefix.split("."), ">"];
  for (let i = 0; i < want.length; i++) {
    const token = p[i];
    if (token === undefined) return false;
    if (token === ">") return true;
    if (i === want.length - 1) return false;
    if (token !== "*" && token !== want[i]) return false;
  }
  return false;
}

/**
 * True when the stream subject `pattern` matches the literal `subject` (NATS wildcards: `*` is
 * one token, a final `>` one or more tokens), e.g. `"switchyard.*"` matches `"switchyard.JOB"`.
 */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === ">") return i === p.length - 1 && s.length > i;
    if (i >= s.length || (token !== "*" && token !== s[i])) return false;
  }
  return p.length === s.length;
}

/** True when `value` can be used as one NATS subject token (an event type, a stream name). */
export function isSubjectToken(value: string): boolean {
  return value.length > 0 && !/[\s.*>]/.test(value);
}

/** True when `value` is a usable subject prefix: dot-separated tokens without wildcards. */
export function isSubjectPrefix(value: string): boolean {
  return value.length > 0 && value.split(".").every(isSubjectToken);
}

/** True when `value` is a valid stream name (no `.`, `*`, `>`, whitespace or path separators). */
export function isStreamName(value: string): boolean {
  return isSubjectToken(value) && !/[/\\]/.test(value) && value.length <= 255;
}

/** What this package writes into a consumer's `description`, to find its consumers again. */
export interface ConsumerTag {
  /** The subscriber the consumer belongs to. */
  readonly subscriber: string;
  /** The event type it filters on, or `null` for the replay consumer. */
  readonly type: string | null;
  readonly ephemeral: boolean;
  /** The transport's subject prefix (several prefixes may share one stream). */
  readonly prefix?: string;
}

const TAG = "switchyard-transport-nats";

/** Serialise a {@link ConsumerTag} into a consumer description. */
export function describeConsumer(tag: ConsumerTag): string {
  return JSON.stringify({ [TAG]: 1, ...tag });
}

/** Read a {@link ConsumerTag} back from a consumer description; `undefined` for foreign consumers. */
export function parseConsumerTag(description: string | undefined): ConsumerTag | undefined {
  if (!description || !description.includes(TAG)) return undefined;
  try {
    const value = JSON.parse(description) as Record<string, unknown>;
    if (value[TAG] !== 1 || typeof value.subscriber !== "string") return undefined;
    return {
      subscriber: value.subscriber,
      type: typeof value.type === "string" ? value.type : null,
      ephemeral: value.ephemeral === true,
      ...(typeof value.prefix === "string" ? { prefix: value.prefix } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * The stream holding the dead letters that go with the event stream `stream`: `${stream}_DLQ`
 * (`SWITCHYARD_DLQ` by default), beside the event stream, written by `NatsDeadLetterStore`.
 */
export function deadLetterStreamName(stream: string): string {
  return `${stream}_DLQ`;
}

/**
 * The subject prefix of the dead letters that go with the event prefix `prefix`:
 * `${prefix}_dlq` (`switchyard.events_dlq` by default). Beside `${prefix}.>`, not under it, so the
 * event stream never captures a dead letter (and its subjects do not overlap the DLQ stream's).
 */
export function deadLetterPrefix(prefix: string): string {
  return `${prefix}_dlq`;
}

/**
 * The id of the dead letter of one event for one subscriber: 20 hex characters of a hash of the
 * pair, so every process derives the same id (a second failure of the same event by the same
 * subscriber updates the record) and it is one safe subject token.
 */
export function deadLetterId(subscriber: string, eventId: string): string {
  return createHash("sha256")
    .update(JSON.stringify(["dlq", subscriber, eventId]))
    .digest("hex")
    .slice(0, 20);
}

/** The subject one dead-letter record is stored on: `${prefix}_dlq.<id>` (the latest version only). */
export function deadLetterSubject(prefix: string, id: string): string {
  return `${deadLetterPrefix(prefix)}.${id}`;
}

/**
 * The stream of the attempt journal that goes with the event stream `stream`: `${stream}_ATTEMPTS`.
 * It notes deliveries off the happy path (failed and waiting for a retry, acked after several
 * attempts), which JetStream's consumer state does not tell apart, for the inspector.
 */
export function attemptStreamName(stream: string): string {
  return `${stream}_ATTEMPTS`;
}

/** The subject prefix of the attempt journal of the event prefix `prefix`: `${prefix}_attempts`. */
export function attemptPrefix(prefix: string): string {
  return `${prefix}_attempts`;
}

/**
 * The key of one delivery's journal entries (one subscriber, one event): the same 20 hex
 * characters as its dead letter's id ({@link deadLetterId}), so everything the journal holds
 * about the delivery — its original message, replayed copies, the dead-lettering and the
 * replays — is under one subject token.
 */
export function attemptKey(subscriber: string, eventId: string): string {
  return deadLetterId(subscriber, eventId);
}

/**
 * The subject of one delivery's journal entries written while it ran as stream message `seq` of
 * consumer `consumer`: `${prefix}_attempts.<key>.<consumer>.<stream sequence>` (see
 * {@link attemptKey}).
 */
export function attemptSubject(prefix: string, key: string, consumer: string, seq: number): string {
  return `${attemptPrefix(prefix)}.${key}.${consumer}.${seq}`;
}

/**
 * The subject of the dead-letter store's journal entries of one delivery (its replays):
 * `${prefix}_attempts.<key>._store`. `_store` cannot be a consumer name: those all contain `__`.
 */
export function attemptStoreSubject(prefix: string, key: string): string {
  return `${attemptPrefix(prefix)}.${key}._store`;
}
