import { type AddressInfo, createServer } from "node:net";
import {
  defineCatalog,
  defineEvent,
  pipelineCatalog,
  typeContract,
} from "@switchyard/event-schema";
import { z } from "zod";
import { type Daemon, DaemonManager, HandlerBase } from "@switchyard/handler-base";
import { type Router, createRouter } from "@switchyard/router";
import type { DaemonContracts, Driver } from "@switchyard/transport";
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

      it("metrics --port serves the exposition over HTTP on loopback until stopped", async () => {
        const port = await freePort();
        const url = `http://127.0.0.1:${port}/metrics`;
        const controller = new AbortController();
        const run = cli(["metrics", "--transport", target, "--port", String(port)], {
          signal: controller.signal,
        });
        let response: Response | undefined;
        const deadline = Date.now() + 20_000;
        while (!(response = await fetch(url).catch(() => undefined))) {
          if (Date.now() > deadline) throw new Error(`the metrics server did not answer at ${url}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        expect(response.status).toBe(200);
        const text = await response.text();
        expect(text).toMatch(/^switchyard_up 1$/m);
        expect(text).toMatch(/^switchyard_subscriber_backlog\{subscriber="evaluator"\} 0$/m);
        controller.abort();
        const result = await run;
        expect(result.code).toBe(0);
        expect(result.stderr).toContain(`Serving metrics at ${url}`);
        await expect(fetch(url)).rejects.toThrow();
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

/** The trainer: publishes TRAINING_COMPLETED as the pipeline catalog defines it. */
class Trainer extends HandlerBase.for(pipelineCatalog) {
  constructor(router: Router<typeof pipelineCatalog>) {
    super({ name: "trainer", router, publishes: ["TRAINING_COMPLETED"], runCycleOnStart: false });
  }
}

/** The evaluator built against a newer schema: it requires `dataset`. */
class StrictEvaluator extends HandlerBase.for(stricter) {
  constructor(router: Router<typeof stricter>) {
    super({ name: "evaluator", router, runCycleOnStart: false });
  }
  protected override subscriptions() {
    return this.on({ TRAINING_COMPLETED: async () => {} });
  }
}

/** The same evaluator redeployed with `dataset` optional. */
class AdditiveEvaluator extends HandlerBase.for(additive) {
  constructor(router: Router<typeof additive>) {
    super({ name: "evaluator", router, runCycleOnStart: false });
  }
  protected override subscriptions() {
    return this.on({ TRAINING_COMPLETED: async () => {} });
  }
}

// The same check with real daemons: HandlerBase daemons under a DaemonManager announce their
// contracts through the driver's heartbeat sink, on SQLite and NATS.
for (const kind of TARGETS) {
  describeIf(
    kind.unavailable ? { ok: false, reason: kind.unavailable } : { ok: true },
    `switchyard contracts check with running daemons on ${kind.name}`,
    { tags: ["slow"] },
    () => {
      let target: string;
      let cleanup: () => Promise<void>;
      let driver: Driver;
      const managers: DaemonManager[] = [];
      const routers: { shutdown(): Promise<unknown> }[] = [];
      /** Run one daemon, built over its own catalog's router, under a manager that beats. */
      async function run(
        build: () => { daemon: Daemon; router: { shutdown(): Promise<unknown> } },
      ) {
        const { daemon, router } = build();
        routers.push(router);
        const manager = new DaemonManager({
          daemons: [daemon],
          heartbeatSink: driver.heartbeatSink(),
          heartbeatIntervalMs: 200,
        });
        managers.push(manager);
        await manager.startAll();
        return manager;
      }
      const routerOf = <C extends typeof pipelineCatalog | typeof stricter | typeof additive>(
        catalog: C,
      ) => createRouter({ catalog, transport: driver.transport(), closeTransport: false });
      /** `contracts check` until its exit code is `code` (heartbeats land asynchronously). */
      async function checkUntil(code: number) {
        const deadline = Date.now() + 15_000;
        for (;;) {
          const result = await cli(["contracts", "check", "--transport", target]);
          if (result.code === code || Date.now() > deadline) return result;
          await new Promise((r) => setTimeout(r, 200));
        }
      }

      beforeAll(async () => {
        const created = await kind.create("daemons");
        target = created.target;
        cleanup = created.cleanup;
        driver = await openTarget(target);
      }, 60_000);
      afterAll(async () => {
        for (const manager of managers) await manager.stopAll();
        for (const router of routers) await router.shutdown();
        await driver?.close();
        await cleanup?.();
      });

      it("fails naming the field the consumer requires and the producer does not send, and passes once the consumer makes it optional", async () => {
        await run(() => {
          const router = routerOf(pipelineCatalog);
          return { daemon: new Trainer(router), router };
        });
        const strict = await run(() => {
          const router = routerOf(stricter);
          return { daemon: new StrictEvaluator(router), router };
        });
        const failing = await checkUntil(1);
        expect(failing.code, failing.stderr).toBe(1);
        expect(failing.stderr).toMatch(
          /TRAINING_COMPLETED: trainer → evaluator: dataset: the consumer requires it, the producer does not send it/,
        );

        // Redeploy the evaluator with `dataset` optional: an additive change.
        await strict.stopAll();
        await run(() => {
          const router = routerOf(additive);
          return { daemon: new AdditiveEvaluator(router), router };
        });
        const passing = await checkUntil(0);
        expect(passing.code, passing.stderr).toBe(0);
        expect(passing.stderr).toMatch(/accepted by its consumers/);
      }, 60_000);
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
