export { normalizeEventPayload } from "./normalize";
export { extractConfigKey, formatConfigKey, parseConfigKey } from "./config-key";
export type { ConfigKeyParts } from "./config-key";
export { extractEvaluationData, extractTrainingData } from "./extract";
export type {
  ConfigFields,
  EvaluationData,
  EvaluationFields,
  Extracted,
  TrainingData,
  TrainingFields,
} from "./extract";
export { eventContentHash } from "./hash";
export type { ContentHashOptions } from "./hash";
export { getEventId, getTraceparent } from "./ids";
