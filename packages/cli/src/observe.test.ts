import { type AddressInfo, createServer } from "node:net";
import {
  defineCatalog,
  defineEvent,
  pipelineCatalog,
  typeContract,
} from "@switchyard/event-schema";
import { z } from "zod";
import type { DaemonContracts } from "@switchyard/transport";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeIf } from "../../transport-nats/src/test/nats";
import { openTarget } from "./drivers";
import { cli } from "./test/fixture";
import { TARGETS, heartbeat } from "./test/scenario";

const c = (type: string) => typeContract(pipelineCatalog, type);
const training = pipelineCatalog.get("TRAINING_COMPLETED");
/** The pipeline catalog with TRAINING_COMPLETED requiring one more field. */
const stricter = defineCatalog([
  defineEvent({ ...training, data: training.data.extend({ dataset: z.string() }) }),
]);
/** …and with that field optional. */
const additive = defineCatalog([
  defineEvent({ ...training, data: training.data.extend({ dataset: z.string().optional() }) }),
]);

// `contracts`, `metrics` and `dashboard` on SQLite AND NATS: daemons announce their contracts in
// heartbeats written through each driver's sink, and the commands read them back.
for (const kind of TARGETS) {
  describeIf(
    kind.unavailable ? { ok: false, reason: kind.unavailable } : { ok: true },
    `switchyard contracts, metrics and dashboard on ${kind.name}`,
    { tags: ["slow"] },
    () => {
      let target: string;
      let cleanup: () => Promise<void>;
      beforeAll(async () => {
        const created = await kind.create("observe");
        target = created.target;
        cleanup = created.cleanup;
        const driver = await openTarget(target);
        try {
          const transport = driver.transport();
          await transport.register?.("evaluator", ["TRAINING_COMPLETED"]);
          const announce = (daemon: string, contracts: DaemonContracts) =>
            driver.heartbeatSink().write({
              ...heartbeat(daemon, 0, { healthy: true, status: "healthy", message: "ok" }),
              contracts,
            });
          await announce("trainer", {
            publishes: [c("TRAINING_COMPLETED")],
            subscribes: [c("NPZ_EXPORT_COMPLETE")],
          });
          await announce("evaluator", {
            publishes: [c("EVALUATION_COMPLETED")],
            // An evaluator built against a newer schema: it requires a field the trainer never sends.
            subscribes: [typeContract(stricter, "TRAINING_COMPLETED")],
          });
        } finally {
          await driver.close();
        }
      }, 60_000);
      afterAll(async () => cleanup?.());

      it("contracts shows who publishes and consumes each type, and the drift", async () => {
        const result = await cli(["contracts", "--transport", target, "--json"]);
        expect(result.code).toBe(0);
        const types = result.json().types as { type: string; issues: string[] }[];
        expect(Object.fromEntries(types.map((t) => [t.type, t.issues]))).toEqual({
          EVALUATION_COMPLETED: ["published_not_consumed"],
          NPZ_EXPORT_COMPLETE: ["consumed_not_published"],
          TRAINING_COMPLETED: ["incompatible"],
        });
        const text = await cli(["contracts", "--transport", target]);
        expect(text.stdout).toMatch(/TRAINING_COMPLETED.*trainer.*evaluator.*incompatible/s);
      });

      it("contracts check fails naming the field a consumer requires and the producer does not send, and passes once the change is additive", async () => {
        const result = await cli(["contracts", "check", "--transport", target]);
        expect(result.code).toBe(1);
        expect(result.stderr).toMatch(
          /TRAINING_COMPLETED: trainer → evaluator: dataset: the consumer requires it, the producer does not send it/,
        );
        // The evaluator is redeployed with `dataset` optional: an additive change.
        const driver = await openTarget(target);
        try {
          await driver.heartbeatSink().write({
            ...heartbeat("evaluator", 0, { healthy: true, status: "healthy", message: "ok" }),
            contracts: {
              publishes: [c("EVALUATION_COMPLETED")],
              subscribes: [typeContract(additive, "TRAINING_COMPLETED")],
            },
          });
        } finally {
          await driver.close();
        }
        const after = await cli(["contracts", "check", "--transport", target]);
        expect(after.stderr).toMatch(/accepted by its consumers/);
        expect(after.code).toBe(0); // drift (published, not consumed) is shown, not failed
      });

      it("metrics --once prints the Prometheus exposition of the target", async () => {
        const result = await cli(["metrics", "--transport", target, "--once"]);
        expect(result.code).toBe(0);
        expect(result.stdout).toMatch(/^switchyard_up 1$/m);
        expect(result.stdout).toMatch(
          /^switchyard_daemon_heartbeat_age_seconds\{daemon="trainer"\} /m,
        );
        expect(result.stdout).toMatch(
          /^switchyard_subscriber_backlog\{subscriber="evaluator"\} 0$/m,
        );
      });

      it("dashboard serves the target on loopback until stopped, read-only without a token", async () => {
        const port = await freePort();
        const url = `http://127.0.0.1:${port}/`;
        const controller = new AbortController();
        const run = cli(["dashboard", "--transport", target, "--port", String(port)], {
          signal: controller.signal,
        });
        const deadline = Date.now() + 20_000;
        while (
          !(await fetch(`${url}api/health`).then(
            () => true,
            () => false,
          ))
        ) {
          if (Date.now() > deadline) throw new Error(`the dashboard did not answer at ${url}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        const overview = await fetch(`${url}api/overview`);
        expect(overview.status).toBe(200);
        const write = await fetch(`${url}api/dead-letters/replay`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
        });
        expect(write.status).toBe(403);
        controller.abort();
        const result = await run;
        expect(result.code).toBe(0);
        expect(result.stderr).toMatch(/Dashboard at http:\/\/127\.0\.0\.1:\d+\/ \(read-only/);
      });
    },
  );
}

/** A port nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
