export { createProgram, runCli } from "./program";
export type { ProgramOptions } from "./context";
export { verifyPipeline } from "./commands/pipeline";
export type {
  PipelineStageResult,
  PipelineVerification,
  VerifyPipelineOptions,
} from "./commands/pipeline";
export { ExitCode } from "./output";
