export { HandlerBase } from "./handler-base";
export type {
  DaemonStatus,
  EmitOptions,
  EventHandler,
  HandlerBaseFor,
  HandlerBaseOptions,
  ListenerRegistration,
  Subscriptions,
} from "./handler-base";
export { DaemonManager } from "./daemon-manager";
export type {
  Daemon,
  DaemonManagerOptions,
  EventPublisher,
  ManagedDaemonInfo,
  RunOptions,
} from "./daemon-manager";
export { memoryHeartbeatSink } from "./heartbeat";
export type {
  DaemonHeartbeat,
  DaemonRunState,
  HeartbeatSink,
  MemoryHeartbeatSink,
} from "./heartbeat";
export { DedupCache } from "./dedup";
export type { DedupCacheOptions, DedupCheckOptions } from "./dedup";
export type { DaemonErrorRecord, DaemonStats } from "./stats";
export {
  DaemonCrashedError,
  DaemonManagerClosedError,
  DaemonOptionsError,
  DaemonStartError,
  DaemonStartTimeoutError,
  DaemonStopTimeoutError,
  DuplicateDaemonError,
  EmitFailedError,
  UnknownDaemonError,
} from "./errors";
