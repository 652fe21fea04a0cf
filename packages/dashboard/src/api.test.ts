import { createEnvelope, defineCatalog, defineEvent } from "@switchyard/event-schema";
import { type HealthCheck, checkHealth } from "@switchyard/transport";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createDashboard } from "./index";
import { apiSuite } from "./test/api-suite";
import { getJson, memory } from "./test/fixture";

apiSuite("the memory driver", memory);

describe("the health verdict with a catalog", () => {
  const catalog = defineCatalog([
    defineEvent({
      type: "JOB_FAILED",
      description: "A job failed",
      alert: { kind: "any" },
      data: z.object({ job: z.string() }),
    }),
    defineEvent({
      type: "DISK_LOW",
      description: "A disk is nearly full",
      alert: { kind: "rate", moreThan: 2, withinMs: 600_000 },
      data: z.object({ disk: z.string() }),
    }),
    defineEvent({
      type: "JOB_DONE",
      description: "A job ran",
      data: z.object({ job: z.string() }),
    }),
  ]);
  const alertChecks = (checks: readonly HealthCheck[]) =>
    checks
      .filter((c) => c.check.startsWith("alert:"))
      .sort((a, b) => a.check.localeCompare(b.check));

  it("evaluates the catalog's alert rules as switchyard health does (checkHealth)", async () => {
    await using driver = await memory();
    await driver
      .transport()
      .publish([
        createEnvelope({ type: "JOB_FAILED", source: "worker", data: { job: "a" } }),
        createEnvelope({ type: "DISK_LOW", source: "worker", data: { disk: "/" } }),
        createEnvelope({ type: "DISK_LOW", source: "worker", data: { disk: "/" } }),
        createEnvelope({ type: "JOB_DONE", source: "worker", data: { job: "b" } }),
      ]);
    const dash = createDashboard(driver, { catalog });
    const { status, body } = await getJson(dash, "/api/health");
    const fromDashboard = alertChecks(body.checks as HealthCheck[]);
    expect(fromDashboard.map((c) => [c.check, c.status, c.value])).toEqual([
      ["alert:DISK_LOW", "healthy", 2], // 2 in 10 minutes, alerts above 2
      ["alert:JOB_FAILED", "unhealthy", 1], // any occurrence
    ]);
    expect(status).toBe(503);
    // The same checks, word for word, as the contract's checkHealth gives `switchyard health`.
    const fromCli = alertChecks((await checkHealth(driver.inspector(), { catalog })).checks);
    expect(fromDashboard).toEqual(fromCli);
    // The overview shows the same verdict.
    const overview = await getJson(dash, "/api/overview");
    expect(alertChecks(overview.body.health.checks as HealthCheck[])).toEqual(fromDashboard);
    await dash.close();
  });

  it("checks no alert rule when given only pipelines", async () => {
    await using driver = await memory();
    await driver
      .transport()
      .publish([createEnvelope({ type: "JOB_FAILED", source: "worker", data: { job: "a" } })]);
    const dash = createDashboard(driver, { catalog: { pipelines: catalog.pipelines } });
    const { body } = await getJson(dash, "/api/health");
    expect(alertChecks(body.checks as HealthCheck[])).toEqual([]);
    await dash.close();
  });
});
