/** Overall state of a component. */
export type HealthStatus = "healthy" | "degraded" | "unhealthy";

/**
 * The health report every Switchyard component returns: routers, daemons, transports. `details`
 * carries the numbers behind the verdict and is JSON-safe.
 */
export interface HealthCheckResult {
  readonly healthy: boolean;
  readonly status: HealthStatus;
  readonly message: string;
  readonly details: Readonly<Record<string, unknown>>;
}

/** Build a result from problems found: none → healthy; any `unhealthy` problem → unhealthy. */
export function healthFrom(
  problems: readonly { severity: "degraded" | "unhealthy"; message: string }[],
  healthyMessage: string,
  details: Record<string, unknown>,
): HealthCheckResult {
  if (problems.length === 0)
    return { healthy: true, status: "healthy", message: healthyMessage, details };
  const status: HealthStatus = problems.some((p) => p.severity === "unhealthy")
    ? "unhealthy"
    : "degraded";
  return {
    healthy: false,
    status,
    message: problems.map((p) => p.message).join("; "),
    details: { ...details, problems: problems.map((p) => p.message) },
  };
}
