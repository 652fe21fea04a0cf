export { createProgram, runCli } from "./program";
export type { ProgramOptions } from "./context";
export { drivers, openTarget } from "./drivers";
export type { OpenTargetOptions } from "./drivers";
export { verifyPipeline } from "./commands/pipeline";
export type { VerifyPipelineOptions } from "./commands/pipeline";
// The verification rule lives in the dashboard (its Pipeline page shows it per key).
export type { PipelineStageResult, PipelineVerification } from "@switchyard/transport";
// The one health rule lives in the contract; the CLI prints it (with the target checked).
export { checkHealth } from "@switchyard/transport";
export type { HealthCheck, HealthOptions, HealthReport } from "@switchyard/transport";
export type { CliHealthReport } from "./commands/health";
export { ExitCode } from "./output";
