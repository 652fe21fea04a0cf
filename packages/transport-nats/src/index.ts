export { NatsTransport, natsTransport } from "./transport";
export type { NatsSubscriberStats, NatsTransportStats } from "./transport";
export { defaultNatsTransportOptions } from "./options";
export type { NatsTransportOptions } from "./options";
export {
  JetStreamUnavailableError,
  NatsAuthError,
  NatsConnectionError,
  NatsOptionsError,
  NatsPayloadTooLargeError,
  NatsPublishError,
  NatsStreamConfigError,
  TransportClosedError,
  toNatsError,
} from "./errors";
export {
  describeConsumer,
  durableName,
  isInternalSubject,
  isStreamName,
  isSubjectPrefix,
  isSubjectToken,
  parseConsumerTag,
  replayDurableName,
  replaySubject,
  subjectCovers,
  subscriberToken,
} from "./names";
export type { ConsumerTag } from "./names";
