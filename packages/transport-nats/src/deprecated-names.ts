// The naming helpers as they were exported from the package root, each marked deprecated: tools
// ask `natsDriver`'s inspector instead of reading the streams themselves. The package's own
// modules import `./names`, which is not deprecated.
import * as names from "./names";

/**
 * The durable consumer name of one (subscriber, event type) pair.
 * @deprecated Internal naming. Read a subscriber's state through `natsDriver`'s
 * `driver.inspector().subscribers()` / `deliveries(id)`; this export will be removed.
 */
export const durableName: typeof names.durableName = names.durableName;

/**
 * The durable consumer name of a subscriber's replay consumer.
 * @deprecated Internal naming. Replay with `driver.admin().replay()`; this export will be removed.
 */
export const replayDurableName: typeof names.replayDurableName = names.replayDurableName;

/**
 * A subscriber name as one subject token.
 * @deprecated Internal naming; this export will be removed.
 */
export const subscriberToken: typeof names.subscriberToken = names.subscriberToken;

/**
 * The subject a dead-letter replay addressed to one subscriber is stored on.
 * @deprecated Internal naming. Replay with `driver.admin().replay()`; this export will be removed.
 */
export const replaySubject: typeof names.replaySubject = names.replaySubject;

/**
 * True when `subject` is one of the transport's own subjects under `prefix`.
 * @deprecated Internal naming. `driver.inspector().events()` lists published events only; this
 * export will be removed.
 */
export const isInternalSubject: typeof names.isInternalSubject = names.isInternalSubject;

/**
 * The stream holding the daemon heartbeats that go with the event stream `stream`.
 * @deprecated Internal naming. Read heartbeats with `driver.inspector().heartbeats()`, or show the
 * driver's target; this export will be removed.
 */
export const heartbeatStreamName: typeof names.heartbeatStreamName = names.heartbeatStreamName;

/**
 * The subject prefix of the heartbeats that go with the event prefix `prefix`.
 * @deprecated Internal naming. Read heartbeats with `driver.inspector().heartbeats()`; this export
 * will be removed.
 */
export const heartbeatPrefix: typeof names.heartbeatPrefix = names.heartbeatPrefix;

/**
 * The subject one daemon's heartbeats are stored on.
 * @deprecated Internal naming. Write heartbeats with `driver.heartbeatSink()` and read them with
 * `driver.inspector().heartbeats()`; this export will be removed.
 */
export const heartbeatSubject: typeof names.heartbeatSubject = names.heartbeatSubject;

/**
 * True when a stream subject `pattern` already captures every subject under `${prefix}.`.
 * @deprecated Internal to the stream set-up `natsTransport` does; this export will be removed.
 */
export const subjectCovers: typeof names.subjectCovers = names.subjectCovers;

/**
 * True when `value` can be used as one NATS subject token.
 * @deprecated Internal validation (`NatsOptionsError` names a bad option); this export will be
 * removed.
 */
export const isSubjectToken: typeof names.isSubjectToken = names.isSubjectToken;

/**
 * True when `value` is a usable subject prefix.
 * @deprecated Internal validation (`NatsOptionsError` names a bad option); this export will be
 * removed.
 */
export const isSubjectPrefix: typeof names.isSubjectPrefix = names.isSubjectPrefix;

/**
 * True when `value` is a valid stream name.
 * @deprecated Internal validation (`NatsOptionsError` names a bad option); this export will be
 * removed.
 */
export const isStreamName: typeof names.isStreamName = names.isStreamName;

/**
 * What this package writes into a consumer's `description`.
 * @deprecated Internal naming. `driver.inspector().subscribers()` lists subscribers with their
 * types; this export will be removed.
 */
export type ConsumerTag = names.ConsumerTag;

/**
 * Serialise a {@link ConsumerTag} into a consumer description.
 * @deprecated Internal naming; this export will be removed.
 */
export const describeConsumer: typeof names.describeConsumer = names.describeConsumer;

/**
 * Read a {@link ConsumerTag} back from a consumer description.
 * @deprecated Internal naming. `driver.inspector().subscribers()` lists subscribers with their
 * types; this export will be removed.
 */
export const parseConsumerTag: typeof names.parseConsumerTag = names.parseConsumerTag;
