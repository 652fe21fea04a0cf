export { SwitchyardError, EventValidationError, describeType, escapeJsonText } from "./errors";
export type { EventValidationIssue, EventValidationReason } from "./errors";
export { uuidv7, uuidv7Time, writeHex } from "./uuid";
export { assertEnvelope, createEnvelope, envelopeSchema, isEnvelope } from "./envelope";
export type { Envelope, CreateEnvelopeOptions } from "./envelope";
export { defineEvent, defineCatalog } from "./define";
export type {
  Catalog,
  DefineCatalogOptions,
  DefineEventOptions,
  DefinitionMap,
  EnvelopeUnion,
  EventDefinition,
  JsonSchema,
  PayloadSchema,
  SafeParseResult,
  Severity,
} from "./define";
export { isCatalog } from "./pipelines";
export type { PipelineDefinition } from "./pipelines";
export { evaluateAlertRule, describeAlertRule } from "./alerts";
export type { AlertRule, AlertEvaluation } from "./alerts";
export type {
  AnyCatalog,
  AnyEventOf,
  DefinitionsOf,
  EventData,
  EventInput,
  EventOf,
  EventsOf,
  EventType,
} from "./types";
export {
  pipelineCatalog,
  pipelineStages,
  DaemonPermanentlyFailed,
  DataSyncCompleted,
  DataSyncFailed,
  DlqDepthExceeded,
  DlqPermanentlyFailed,
  EvaluationCompleted,
  ModelDistributionComplete,
  ModelPromoted,
  NewGamesAvailable,
  NpzExportComplete,
  ProgressStallDetected,
  QualityAlert,
  RegressionCritical,
  RegressionDetected,
  SelfplayComplete,
  SplitBrainDetected,
  TrainingCompleted,
  TrainingFailed,
} from "./catalog/pipeline";
export type { PipelineCatalog } from "./catalog/pipeline";
export { catalogContracts, payloadSchema, schemaBreaks, typeContract } from "./contracts";
export type { SchemaBreak, TypeContract } from "./contracts";
