export { NatsTransport, natsTransport } from "./transport";
export type { NatsSubscriberStats, NatsTransportStats } from "./transport";
export { defaultNatsTransportOptions } from "./options";
export { auditConsumers, receiptStreamName, receiptSubject } from "./audit";
export type { NatsAudit } from "./audit";
export {
  NatsHeartbeatSink,
  defaultNatsHeartbeatMaxAgeMs,
  listNatsHeartbeats,
  natsHeartbeatSink,
} from "./heartbeats";
export type {
  ListNatsHeartbeatsOptions,
  NatsHeartbeat,
  NatsHeartbeatInfo,
  NatsHeartbeatLocation,
  NatsHeartbeatSinkOptions,
} from "./heartbeats";
export type { NatsTransportOptions } from "./options";
export {
  JetStreamUnavailableError,
  NatsAuthError,
  NatsClusterUnavailableError,
  NatsConnectionError,
  NatsHeartbeatWriteError,
  NatsOptionsError,
  NatsPayloadTooLargeError,
  NatsPublishError,
  NatsPublishUnavailableError,
  NatsStreamConfigError,
  NatsStreamNotFoundError,
  TransportClosedError,
  toNatsError,
} from "./errors";
// Naming helpers, deprecated: a tool asks `natsDriver`'s inspector instead of reading the streams
// itself; they become internal in a later minor.
export {
  describeConsumer,
  durableName,
  heartbeatPrefix,
  heartbeatStreamName,
  heartbeatSubject,
  isInternalSubject,
  isStreamName,
  isSubjectPrefix,
  isSubjectToken,
  parseConsumerTag,
  replayDurableName,
  replaySubject,
  subjectCovers,
  subscriberToken,
} from "./deprecated-names";
export type { ConsumerTag } from "./deprecated-names";
export { natsDriver } from "./driver";
export type { NatsDriverOptions } from "./driver";
export { NatsInspector, natsCapabilities } from "./inspector";
export {
  NatsDeadLetterStore,
  defaultNatsDeadLetterClaimMs,
  natsDeadLetterStore,
} from "./dead-letters";
export type {
  ClaimedNatsDeadLetter,
  NatsDeadLetterStoreOptions,
  NatsReplayOptions,
} from "./dead-letters";
