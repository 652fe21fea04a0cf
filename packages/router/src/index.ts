export { Router, createRouter, getRouter, hasRouter, resetRouter } from "./router";
export type {
  EventFor,
  EventStream,
  Handler,
  PublishItem,
  CloseOptions,
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
export { NoRouterError, QueueFullError, RouterClosedError } from "./errors";
// The transport contract, re-exported so that code written against the router keeps working.
export {
  DeliveryAbandonedError,
  HandlerTimeoutError,
  LeaseLostError,
  TransportClosedError,
  UnknownSubscriptionError,
  UnrecoverableError,
  UnsupportedOperationError,
  serializeError,
} from "@switchyard/transport";
export type { SerializedError } from "@switchyard/transport";
export { backoffDelay, defaultBackoff, sleep, abortReason } from "@switchyard/transport";
export type { BackoffOptions } from "@switchyard/transport";
export { silentLogger, childLogger } from "@switchyard/transport";
export type { Logger } from "@switchyard/transport";
export { healthFrom } from "@switchyard/transport";
export type { HealthCheckResult, HealthStatus } from "@switchyard/transport";
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
} from "@switchyard/transport";
export { MemoryStore, MemoryTransport, memoryTransport } from "@switchyard/transport";
export type { MemoryTransportOptions } from "@switchyard/transport";
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
export { retry } from "./middleware/retry";
export { isUnrecoverable, deadLetterReason } from "@switchyard/transport";
export type { RetryOptions } from "./middleware/retry";
export { dedup } from "./middleware/dedup";
export type { DedupOptions } from "./middleware/dedup";
export { concurrencyLimit, rateLimit } from "./middleware/limit";
export type { ConcurrencyLimitOptions, RateLimitOptions } from "./middleware/limit";
export { AuditLog, audit } from "./middleware/audit";
export type { AuditEntry, AuditQuery, AuditResult } from "./middleware/audit";
export { deadLetter } from "./middleware/dead-letter";
export type { DeadLetterOptions } from "./middleware/dead-letter";
export { validation } from "./middleware/validation";
export { openTelemetry } from "./middleware/open-telemetry";
export type {
  OpenTelemetryApi,
  OpenTelemetryOptions,
  OtelAttributes,
  OtelCounter,
  OtelHistogram,
  OtelInstrumentOptions,
  OtelMeter,
  OtelSpan,
  OtelSpanContext,
  OtelSpanOptions,
  OtelTraceState,
  OtelTracer,
} from "./middleware/open-telemetry";
