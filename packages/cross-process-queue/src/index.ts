export { SqliteTransport, sqliteTransport, defaultSqliteTransportOptions } from "./queue";
export type { SqliteTransportOptions, SqliteTransportStats } from "./queue";
export type { CheckpointStats } from "./checkpoint";
export {
  PayloadTooLargeError,
  InspectorQueryError,
  QueueBusyError,
  QueueFileError,
  QueueFileMissingError,
  QueueFileNotFoundError,
  QueueNotInitialisedError,
  QueueFileReplacedError,
  QueueOptionsError,
  SchemaVersionError,
  TransportClosedError,
  UndecodableEventError,
} from "./errors";
export { SqliteHeartbeatSink } from "./heartbeats";
export type { Heartbeat, SqliteHeartbeatSinkOptions } from "./heartbeats";
export {
  countPending,
  deadDeliveries,
  depthByHour,
  eventsPerMinute,
  failuresByType,
  getEvent,
  lastSeqBefore,
  listHeartbeats,
  listSubscribers,
  oldestPendingAge,
  openQueueReadOnly,
  recentEvents,
  subscriberStats,
  traceEvent,
} from "./introspect";
export type {
  DeliveryInfo,
  EventTrace,
  HeartbeatInfo,
  RecentEventsQuery,
  StoredEvent,
  SubscriberBacklog,
  SubscriberFilter,
  SubscriberInfo,
  WindowOptions,
} from "./introspect";
export { SCHEMA_VERSION, migrate, migrations, schemaVersion } from "./schema/migrations";
export type { Migration } from "./schema/migrations";
export { DEFAULT_PATH, openDatabase } from "./database";
export type { OpenDatabaseOptions } from "./database";
export type { PruneResult } from "./retention";
export type { PollerCounters } from "./poller";
export { backupQueue, clearPending } from "./recovery";
export type { ClearResult } from "./recovery";
export { SqliteDeadLetterStore } from "./dead-letters";
export type {
  ClaimedDeadLetter,
  DeadLetter,
  DeadLetterQuery,
  DeadLetterStats,
  DeadLetterStatus,
  DeadLetterStoreOptions,
  PurgeOptions as DeadLetterPurgeOptions,
  ReplayReport,
  ReplayTarget,
} from "./dead-letters";
export { DLQ_SCHEMA_VERSION } from "./schema/dead-letters";
export {
  DeadLetterNotFoundError,
  DeadLetterSchemaError,
  DeadLetterStoreBusyError,
  DeadLetterStoreFileError,
  ReplayConflictError,
  UnboundedPurgeError,
} from "./dead-letter-errors";
export { SqliteDriver, sqliteDriver, sqlitePath } from "./driver";
export { SQLITE_CAPABILITIES, SqliteInspector, deadLetterInfo } from "./inspector";
export type { QueueTotals, SqliteInspectorOptions } from "./inspector";
export { DEFAULT_BACKUPS_KEPT, REPLAYED_BEFORE, SqliteAdmin } from "./admin";
export type { SqliteAdminParts } from "./admin";
export { openQueueFileReadOnly } from "./read-only";
export type { ReadOnlyFile, Snapshot } from "./read-only";
