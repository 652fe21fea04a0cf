export { SqliteDeadLetterStore } from "./store";
export type {
  ClaimedDeadLetter,
  DeadLetter,
  DeadLetterQuery,
  DeadLetterStats,
  DeadLetterStatus,
  DeadLetterStoreOptions,
  PurgeOptions,
  ReplayReport,
} from "./store";
export { replayTo } from "./replay";
export type { ReplayTarget } from "./replay";
export { DlqRetryDaemon } from "./retry-daemon";
export type { DlqRetryDaemonOptions } from "./retry-daemon";
export { DLQ_SCHEMA_VERSION } from "./schema";
export {
  DeadLetterNotFoundError,
  DeadLetterSchemaError,
  DeadLetterStoreBusyError,
  DeadLetterStoreFileError,
  ReplayConflictError,
  ReplayTargetMissingError,
  UnboundedPurgeError,
} from "./errors";
