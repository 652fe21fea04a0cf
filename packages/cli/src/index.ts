export { createProgram, runCli } from "./program";
export type { ProgramOptions } from "./context";
export { drivers, openTarget } from "./drivers";
export type { OpenTargetOptions } from "./drivers";
export { verifyPipeline } from "./commands/pipeline";
export type {
  PipelineStageResult,
  PipelineVerification,
  VerifyPipelineOptions,
} from "./commands/pipeline";
export { checkHealth } from "./commands/health";
export type { HealthCheck, HealthOptions, HealthReport } from "./commands/health";
export { ExitCode } from "./output";
