export { createProgram, runCli } from "./program";
export type { ProgramOptions } from "./context";
export { verifyPipeline, verifyPipelineOnNats } from "./commands/pipeline";
export type { NatsEventSource } from "./nats";
export type {
  PipelineStageResult,
  PipelineVerification,
  VerifyPipelineOptions,
} from "./commands/pipeline";
export { ExitCode } from "./output";
