// The SQLite dead-letter store lives with the rest of the SQLite storage in
// @switchyard/cross-process-queue; re-exported here so existing imports keep working.
export { DLQ_SCHEMA_VERSION, SqliteDeadLetterStore } from "@switchyard/cross-process-queue";
export type {
  ClaimedDeadLetter,
  DeadLetter,
  DeadLetterQuery,
  DeadLetterStats,
  DeadLetterStatus,
  DeadLetterStoreOptions,
  DeadLetterPurgeOptions as PurgeOptions,
  ReplayReport,
  ReplayTarget,
} from "@switchyard/cross-process-queue";
export {
  DeadLetterNotFoundError,
  DeadLetterSchemaError,
  DeadLetterStoreBusyError,
  DeadLetterStoreFileError,
  ReplayConflictError,
  UnboundedPurgeError,
} from "@switchyard/cross-process-queue";
export { replayTo } from "./replay";
export { DamagedDeadLetterError, ReplayTargetMissingError, ReplayTimeoutError } from "./errors";
export { DlqRetryDaemon } from "./retry-daemon";
export type {
  DlqRetryDaemonOptions,
  RetryTarget,
  RetryableDeadLetter,
  RetryableDeadLetterStore,
  RetryStoreStats,
} from "./retry-daemon";
