/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return -- the API answers JSON, checked by value */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sqliteDriver } from "@switchyard/cross-process-queue";
import {
  defineCatalog,
  defineEvent,
  pipelineCatalog,
  typeContract,
} from "@switchyard/event-schema";
import {
  type DaemonContracts,
  type Driver,
  contractTopology,
  openDriver,
} from "@switchyard/transport";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { type DashboardHandler, createDashboard } from "./index";
import { daemonBeat, getJson, memory } from "./test/fixture";

const c = (type: string) => typeContract(pipelineCatalog, type);
const training = pipelineCatalog.get("TRAINING_COMPLETED");
/** TRAINING_COMPLETED as a consumer built against a newer schema sees it: one more required field. */
const stricter = defineCatalog([
  defineEvent({ ...training, data: training.data.extend({ dataset: z.string() }) }),
]);

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const sqlite = () => {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-dashboard-contracts-"));
  dirs.push(dir);
  return openDriver(`sqlite:${join(dir, "coordination.db")}`, { drivers: [sqliteDriver] });
};

const beat = (daemon: string, at: number, contracts?: DaemonContracts) =>
  daemonBeat(daemon, "running", at, contracts ? { contracts } : {});

const page = async (dash: DashboardHandler, path: string) => {
  const response = await dash(new Request(`http://dash.test${path}`));
  return { status: response.status, text: await response.text() };
};

for (const [name, open] of [
  ["memory", memory],
  ["SQLite", sqlite],
] as const) {
  describe(`the Contracts page on the ${name} driver`, () => {
    let driver: Driver;
    let dash: DashboardHandler;
    let withCatalog: DashboardHandler;
    beforeAll(async () => {
      driver = await open();
      const sink = driver.heartbeatSink();
      const now = Date.now();
      // The trainer publishes TRAINING_COMPLETED as the catalog defines it; the evaluator was
      // built against a schema that requires one more field: a break. The exporter's event has
      // no consumer yet (drift), a hostile daemon name must come out escaped, and a daemon of a
      // manager that does not announce is listed as silent.
      await sink.write(
        beat("trainer", now, {
          publishes: [c("TRAINING_COMPLETED")],
          subscribes: [c("NPZ_EXPORT_COMPLETE")],
        }),
      );
      await sink.write(
        beat("<script>window.__pwned=1</script>", now, {
          publishes: [c("NPZ_EXPORT_COMPLETE")],
          subscribes: [],
        }),
      );
      await sink.write(
        beat("evaluator", now, {
          publishes: [c("EVALUATION_COMPLETED")],
          subscribes: [typeContract(stricter, "TRAINING_COMPLETED")],
        }),
      );
      await sink.write(beat("quiet_daemon", now));
      dash = createDashboard(driver);
      withCatalog = createDashboard(driver, { catalog: pipelineCatalog });
    });
    afterAll(async () => {
      await dash?.close();
      await withCatalog?.close();
      await driver?.close();
    });

    it("answers the topology that `switchyard contracts` computes from the same heartbeats", async () => {
      const { status, body } = await getJson(dash, "/api/contracts");
      expect(status).toBe(200);
      expect(body.supported).toBe(true);
      expect(body.catalogCompared).toBe(false);
      expect(Object.fromEntries(body.types.map((t: any) => [t.type, t.issues]))).toEqual({
        EVALUATION_COMPLETED: ["published_not_consumed"],
        NPZ_EXPORT_COMPLETE: [],
        TRAINING_COMPLETED: ["incompatible"],
      });
      expect(body.consistent).toBe(false);
      expect(body.silent).toEqual(["quiet_daemon"]);
      const training = body.types.find((t: any) => t.type === "TRAINING_COMPLETED");
      expect(training.breaks).toEqual([
        expect.objectContaining({
          publisher: "trainer",
          consumer: "evaluator",
          path: "dataset",
          problem: "required_not_sent",
        }),
      ]);
      // One rule: the same answer as the contract package's function on the inspector's heartbeats.
      const expected = contractTopology(await driver.inspector().heartbeats(), {
        staleAfterMs: 120_000,
      });
      expect(body.types).toEqual(JSON.parse(JSON.stringify(expected.types)));
      const listed = (await getJson(dash, "/api")).body.endpoints;
      expect(listed).toContain("GET api/contracts");
    });

    it("compares with the catalog when it was given one", async () => {
      const { body } = await getJson(withCatalog, "/api/contracts");
      expect(body.catalogCompared).toBe(true);
      const issues = Object.fromEntries(body.types.map((t: any) => [t.type, t.issues]));
      // The evaluator's TRAINING_COMPLETED is not the catalog's.
      expect(issues.TRAINING_COMPLETED).toEqual(["incompatible", "differs_from_catalog"]);
      expect(issues.NPZ_EXPORT_COMPLETE).toEqual([]);
    });

    it("shows each type's publishers, consumers and state, the breaking fields, and escapes what daemons wrote", async () => {
      const { status, text } = await page(dash, "/contracts");
      expect(status).toBe(200);
      expect(text).toContain('aria-current="page"\n                      >Contracts</a');
      const row = (type: string) =>
        text.slice(
          text.indexOf(`<td>${type}</td>`),
          text.indexOf("</tr>", text.indexOf(`<td>${type}</td>`)),
        );
      expect(row("TRAINING_COMPLETED")).toContain("badge-unhealthy");
      expect(row("TRAINING_COMPLETED")).toContain("incompatible schemas");
      expect(row("EVALUATION_COMPLETED")).toContain("badge-degraded");
      expect(row("EVALUATION_COMPLETED")).toContain("published, no consumer");
      expect(row("NPZ_EXPORT_COMPLETE")).toContain("badge-healthy");
      expect(text).toMatch(
        /TRAINING_COMPLETED: trainer →\s+evaluator: dataset: the consumer requires it, the producer does not send it/,
      );
      expect(text).toMatch(/Daemons announcing no contracts:\s+quiet_daemon/);
      expect(text).not.toContain("<script>window.__pwned");
      expect(text).toContain("&lt;script&gt;window.__pwned=1&lt;/script&gt;");
      expect(text).toContain("give the dashboard the catalog");
    });
  });
}

describe("the Contracts page without announcements", () => {
  it("says none were made yet", async () => {
    const driver = await memory();
    const dash = createDashboard(driver);
    try {
      const { body } = await getJson(dash, "/api/contracts");
      expect(body).toMatchObject({ supported: true, types: [], silent: [], consistent: true });
      const { text } = await page(dash, "/contracts");
      expect(text).toContain("No announcements yet");
    } finally {
      await dash.close();
      await driver.close();
    }
  });
});
