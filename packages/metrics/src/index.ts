export { DAEMON_STATES, createMetrics, defaultMetricsOptions } from "./metrics";
export type { MetricsOptions, SwitchyardMetrics } from "./metrics";
