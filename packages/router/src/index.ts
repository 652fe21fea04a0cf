export { Router, createRouter, getRouter, hasRouter, resetRouter } from "./router";
export type {
  EventFor,
  EventStream,
  Handler,
  PublishItem,
  PublishOptions,
  RouterOptions,
  RouterStats,
  SubscriptionDefaults,
  Subscription,
  SubscriptionInfo,
  WaitForPromise,
} from "./router";
export type { Overflow, SubscribeOptions, SubscriptionStats } from "./subscription";
export type { ContextPublishOptions, HandlerContext } from "./context";
export type { MatchedType, Pattern } from "./pattern";
export { resolvePatterns } from "./pattern";
export {
  DeliveryAbandonedError,
  HandlerTimeoutError,
  LeaseLostError,
  NoRouterError,
  QueueFullError,
  RouterClosedError,
  UnknownSubscriptionError,
  UnrecoverableError,
  UnsupportedOperationError,
  serializeError,
} from "./errors";
export type { SerializedError } from "./errors";
export { backoffDelay, defaultBackoff, sleep, abortReason } from "./backoff";
export type { BackoffOptions } from "./backoff";
export { silentLogger, childLogger } from "./logger";
export type { Logger } from "./logger";
export { healthFrom } from "./health";
export type { HealthCheckResult, HealthStatus } from "./health";
export { newTraceparent, childTraceparent, traceIdOf } from "./trace";
export type { DurationStats } from "./stats";
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
export { MemoryStore, MemoryTransport, memoryTransport } from "./memory-transport";
export type { MemoryTransportOptions } from "./memory-transport";
export { defineMiddleware, middlewareStages } from "./middleware/types";
export type {
  HandlerFn,
  Middleware,
  MiddlewareCounters,
  MiddlewareScope,
  MiddlewareStage,
} from "./middleware/types";
export { timeout } from "./middleware/timeout";
export type { TimeoutOptions } from "./middleware/timeout";
export { retry, isUnrecoverable } from "./middleware/retry";
export type { RetryOptions } from "./middleware/retry";
export { dedup } from "./middleware/dedup";
export type { DedupOptions } from "./middleware/dedup";
export { concurrencyLimit, rateLimit } from "./middleware/limit";
export type { ConcurrencyLimitOptions, RateLimitOptions } from "./middleware/limit";
export { AuditLog, audit } from "./middleware/audit";
export type { AuditEntry, AuditQuery, AuditResult } from "./middleware/audit";
export { deadLetter, deadLetterReason } from "./middleware/dead-letter";
export type { DeadLetterOptions } from "./middleware/dead-letter";
export { validation } from "./middleware/validation";
export { openTelemetry } from "./middleware/open-telemetry";
export type {
  OpenTelemetryApi,
  OpenTelemetryOptions,
  OtelSpan,
  OtelSpanContext,
  OtelTracer,
} from "./middleware/open-telemetry";
