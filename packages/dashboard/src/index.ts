export { CONTENT_SECURITY_POLICY, TOKEN_HEADER, createDashboard } from "./dashboard";
export type { DashboardHandler } from "./dashboard";
export { DashboardOptionsError, defaultDashboardOptions } from "./options";
export type { DashboardOptions, DashboardPipeline } from "./options";
export { defaultServeOptions, serveDashboard } from "./serve";
export type { ServeDashboardOptions, ServedDashboard } from "./serve";
export { ATTENTION, DashboardRequestError, DashboardTimeoutError, WINDOWS } from "./data";
export type {
  ActionOutcome,
  ActionTarget,
  DaemonView,
  DeadLetterGroup,
  DeadLetterGroups,
  EventDetail,
  Overview,
} from "./data";
export type { PipelineEdge, PipelineGraph, PipelineNode } from "./pipeline";
