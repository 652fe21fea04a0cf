export type {
  DeadLetterReason,
  DeadLetterRecord,
  DeadLetterSink,
  Delivery,
  PublishResult,
  SubscriberStats,
  Transport,
  TransportStats,
  TransportSubscribeOptions,
  TransportSubscription,
} from "./transport";
export {
  DeliveryAbandonedError,
  HandlerTimeoutError,
  LeaseLostError,
  TransportClosedError,
  UnknownSubscriptionError,
  UnrecoverableError,
  UnsupportedOperationError,
  cutText,
  serializeError,
} from "./errors";
export type { SerializedError } from "./errors";
export {
  deadLetterReason,
  deadLetterRecord,
  decideOutcome,
  isUnrecoverable,
  keyedRandom,
  logDelivery,
  retryDelay,
  runAttempt,
} from "./outcome";
export type {
  AttemptInput,
  AttemptResult,
  DeadLetterInput,
  DeliveryLogFields,
  Outcome,
  OutcomePolicy,
} from "./outcome";
export {
  abortReason,
  backoffDelay,
  backoffProblem,
  deadLetterBackoffProblem,
  deadLetterRetryDelay,
  defaultBackoff,
  defaultDeadLetterBackoff,
  isThenable,
  sleep,
  untilAborted,
} from "./backoff";
export { MAX_TIMER_MS, drainWithin, timerDelay } from "./timers";
export {
  TransportOptionsError,
  describeOptionValue,
  subscribeOptionsProblem,
} from "./subscribe-options";
export type { OptionProblem } from "./subscribe-options";
export type { BackoffOptions, DeadLetterBackoff } from "./backoff";
export { childLogger, silentLogger } from "./logger";
export type { Logger } from "./logger";
export { healthFrom } from "./health";
export type { HealthCheckResult, HealthStatus } from "./health";
export {
  alertingTypes,
  checkHealth,
  daemonState,
  defaultHealthOptions,
  formatDuration,
  healthChecks,
  readAlertInputs,
} from "./health-checks";
export type {
  AlertInput,
  DaemonState,
  ReadAlertInputsOptions,
  HealthCheck,
  HealthInput,
  HealthOptions,
  HealthReport,
} from "./health-checks";
export { isDaemonContracts } from "./heartbeat";
export type {
  AnnouncedType,
  DaemonContracts,
  DaemonHeartbeat,
  DaemonRunState,
  DaemonStats,
  DaemonStatus,
  HeartbeatSink,
} from "./heartbeat";
export {
  InspectorQueryError,
  MAX_COUNT_BUCKETS,
  UnboundedPurgeError,
  checkCountBuckets,
  deliveryStepText,
  matchesDeadLetterFilter,
  timeInputMs,
} from "./inspector";
export type {
  ActionResult,
  Admin,
  AuditOptions,
  AuditReport,
  BackupOptions,
  Capabilities,
  CausationNode,
  CausationTree,
  ConsumerAudit,
  CountQuery,
  DeadLetterCounts,
  DeadLetterFilter,
  DeadLetterInfo,
  DeadLetterListQuery,
  DeadLetterPage,
  DeadLetterRelease,
  DeadLetterStatus,
  DeliveryInfo,
  DeliveryState,
  DeliveryStep,
  DeliveryStepKind,
  EventCounts,
  EventPage,
  EventQuery,
  HeartbeatInfo,
  Inspector,
  PurgeOptions,
  ReplayOptions,
  ReplayResult,
  StoredEvent,
  SubscriberBacklog,
  TimeInput,
  UnhandledEvent,
} from "./inspector";
export { REPLAY_SKIP_REASONS, replaySkipReason } from "./replay-rule";
export type { ReplaySkipOptions, ReplayState } from "./replay-rule";
export { pipelineKeysOf, verifyPipeline, verifyPipelineKeys } from "./pipeline-verify";
export type {
  PipelineKeyResult,
  PipelineKeysVerification,
  PipelineStageResult,
  PipelineVerdict,
  PipelineVerification,
  PipelineWindow,
  VerifyPipelineOptions,
} from "./pipeline-verify";
export { BREAKING_TOPOLOGY_ISSUES, TOPOLOGY_ISSUE_TEXT, contractTopology } from "./topology";
export type {
  ContractBreak,
  ContractTopology,
  TopologyIssue,
  TopologyOptions,
  TypeEndpoint,
  TypeTopology,
} from "./topology";
export { UnknownTargetError, openDriver, parseTarget } from "./driver";
export type {
  Driver,
  DriverFactory,
  DriverOpenOptions,
  DriverTransportOptions,
  Target,
} from "./driver";
export { MemoryStore, MemoryTransport, memoryTransport } from "./memory-transport";
export type { MemoryTransportOptions } from "./memory-transport";
export { MemoryAdmin, MemoryInspector, memoryCapabilities } from "./memory-inspector";
export { memoryDriver, memoryStore } from "./memory-driver";
