import { createEnvelope, defineCatalog, defineEvent } from "@switchyard/event-schema";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import type { HeartbeatInfo } from "./inspector";
import { checkHealth, healthChecks } from "./health-checks";
import { memoryDriver } from "./memory-driver";
import { openDriver } from "./driver";

const catalog = defineCatalog([
  defineEvent({ type: "WORK_DONE", description: "t", durable: true, data: z.looseObject({}) }),
  defineEvent({
    type: "WORK_FAILED",
    description: "t",
    durable: true,
    alert: { kind: "any" },
    data: z.looseObject({}),
  }),
]);

const beat = (
  daemon: string,
  status: string,
  ageMs: number,
  health: object = {},
): HeartbeatInfo => ({
  daemon,
  pid: 7,
  host: "h",
  status,
  health,
  stats: {},
  restarts: 0,
  startedAt: null,
  at: new Date().toISOString(),
  ageMs,
});

describe("the health rule", () => {
  it("judges daemons: failed and stale are unhealthy, stopped and self-degraded are degraded", () => {
    const report = healthChecks(
      {
        transport: "test",
        heartbeats: [
          beat("ok", "running", 1_000, { status: "healthy" }),
          beat("crashy", "crashed", 1_000, { message: "boom" }),
          beat("old", "running", 600_000),
          beat("done", "stopped", 1_000),
          beat("slow", "running", 1_000, { status: "degraded", message: "lagging" }),
        ],
        subscribers: [],
        deadLetters: { depth: 0, byStatus: {}, byReason: {}, byType: {}, bySubscriber: {} },
      },
      { staleAfterMs: 120_000 },
    );
    const by = Object.fromEntries(report.checks.map((c) => [c.check, c.status]));
    expect(by).toMatchObject({
      "daemon:ok": "healthy",
      "daemon:crashy": "unhealthy",
      "daemon:old": "unhealthy",
      "daemon:done": "degraded",
      "daemon:slow": "degraded",
      subscribers: "degraded",
    });
    expect(report.status).toBe("unhealthy");
    expect(report.checks.find((c) => c.check === "daemon:old")?.message).toMatch(
      /^stale: last heartbeat 10m ago \(limit 2m\)/,
    );
  });

  it("reports a failed read as an unhealthy check, and what a transport does not store as not checked", () => {
    const report = healthChecks({
      transport: "test",
      heartbeats: undefined,
      subscribers: new Error("database is locked"),
      deadLetters: undefined,
    });
    expect(report.checks).toEqual([
      expect.objectContaining({
        check: "daemons",
        status: "degraded",
        message: expect.stringMatching(/not checked/),
      }),
      { check: "subscribers", status: "unhealthy", message: "cannot be read: database is locked" },
      expect.objectContaining({ check: "dead-letters", status: "degraded" }),
    ]);
  });

  it("reads an inspector: the backlog and dead-letter limits, and the catalog's alert rules", async () => {
    await using driver = await openDriver(`memory:health-${Date.now()}`, {
      drivers: [memoryDriver],
    });
    const transport = driver.transport();
    await transport.register!("worker", ["WORK_DONE"]);
    await transport.publish([
      createEnvelope({ type: "WORK_DONE", source: "t", data: {} }),
      createEnvelope({ type: "WORK_DONE", source: "t", data: {} }),
      createEnvelope({ type: "WORK_FAILED", source: "t", data: {} }),
    ]);
    const report = await checkHealth(driver.inspector(), { catalog, maxPending: 1 });
    const by = Object.fromEntries(report.checks.map((c) => [c.check, c]));
    expect(by.backlog).toMatchObject({ status: "unhealthy", value: 2, threshold: 1 });
    expect(by["alert:WORK_FAILED"]).toMatchObject({ status: "unhealthy", value: 1 });
    expect(by["alert:WORK_DONE"]).toBeUndefined(); // no alert rule
    expect(report.transport).toBe("memory");
    const relaxed = await checkHealth(driver.inspector(), { maxPending: 10 });
    expect(relaxed.checks.find((c) => c.check === "backlog")?.status).toBe("healthy");
  });
});
