import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { drivers } from "@switchyard/cli";
import { SqliteDeadLetterStore } from "@switchyard/dlq";
import { openDriver } from "@switchyard/transport";
import { heartbeatStreamName } from "@switchyard/transport-nats";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../../../", import.meta.url));

describe("the training-pipeline demo", { tags: ["slow"] }, () => {
  it(
    "flows every stage for every config, dead-letters the poison and survives a killed daemon",
    { timeout: 180_000 },
    async () => {
      const dir = join(tmpdir(), `switchyard-demo-test-${process.pid}-${Date.now()}`);
      const db = join(dir, "coordination.db");
      try {
        const { stdout } = await run(
          process.execPath,
          [
            "--import",
            "tsx",
            "apps/training-pipeline/src/demo.ts",
            "--configs",
            "hex8_2p,square8_4p",
            "--generations",
            "2",
            "--failure-rate",
            "0.2",
            "--kill",
            "evaluation",
            "--db",
            db,
            "--timeout",
            "150",
          ],
          {
            cwd: root,
            env: { ...process.env, TSX_TSCONFIG_PATH: join(root, "tsconfig.base.json") },
            maxBuffer: 10 * 2 ** 20,
          },
        );
        expect(stdout).toContain("all generations done");
        expect(stdout).toContain("every stage flowed for 2 configs");
        expect(stdout).not.toContain("✗");
        expect(stdout.match(/✓ MODEL_DISTRIBUTION_COMPLETE/g)).toHaveLength(2);
        expect(stdout).toContain("SIGKILL evaluation");
        // Every daemon process's last heartbeat, in the database.
        expect(stdout).toMatch(/Heartbeats \(.*coordination\.db\): 10 daemons, 10 stopped/);
        // The generated pipeline picture, at an anchor docs/events.md has.
        const picture = /Pipeline picture: docs\/events\.md#([\w-]+)/.exec(stdout)?.[1];
        expect(picture).toBe("pipeline-training");
        expect(readFileSync(join(root, "docs/events.md"), "utf8")).toContain(
          "### Pipeline training",
        );
        const store = new SqliteDeadLetterStore({ path: db });
        const poison = store.list({ type: "NEW_GAMES_AVAILABLE" });
        store.close();
        expect(poison).toEqual([
          expect.objectContaining({
            reason: "unrecoverable",
            status: "permanently_failed",
            subscriber: "data_sync:NEW_GAMES_AVAILABLE",
          }),
        ]);
        expect(stdout).toContain(`pnpm switchyard dlq list --transport 'sqlite:${db}'`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe("pnpm demo --dashboard", { tags: ["slow"] }, () => {
  it(
    "serves the dashboard of the run while it runs and after, until Ctrl-C, then closes with the demo",
    { timeout: 180_000 },
    async () => {
      const dir = join(tmpdir(), `switchyard-demo-dashboard-test-${process.pid}-${Date.now()}`);
      const child = spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          "apps/training-pipeline/src/demo.ts",
          "--configs",
          "hex8_2p",
          "--generations",
          "1",
          "--failure-rate",
          "0",
          "--db",
          join(dir, "coordination.db"),
          "--timeout",
          "120",
          "--dashboard",
          "0",
        ],
        {
          cwd: root,
          env: { ...process.env, TSX_TSCONFIG_PATH: join(root, "tsconfig.base.json") },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      /** Wait (bounded) until the demo printed a line matching `pattern`. */
      const printed = async (pattern: RegExp, ms: number) => {
        const end = Date.now() + ms;
        while (!pattern.test(stdout)) {
          if (Date.now() > end || child.exitCode !== null)
            throw new Error(`no ${String(pattern)} within ${ms} ms:\n${stdout}\n${stderr}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        return pattern.exec(stdout)!;
      };
      try {
        const url = (await printed(/Dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/, 60_000))[1]!;
        // While the daemons run: the overview answers from the run's transport.
        expect((await fetch(url)).status).toBe(200);
        await printed(/still serving the run/, 150_000);
        expect(stdout).toContain("every stage flowed for 1 configs");
        expect(stdout).not.toContain("Look:    pnpm switchyard dashboard");
        // After the run: the demo's events, checks, pipeline per key and the poison's dead letter.
        const overview = (await (await fetch(`${url}api/overview`)).json()) as {
          health: { checks: unknown[] };
          throughput: { totals: Record<string, number> };
          deadLetters: { depth: number };
        };
        expect(overview.throughput.totals.MODEL_DISTRIBUTION_COMPLETE).toBeGreaterThan(0);
        expect(overview.health.checks.length).toBeGreaterThan(0);
        expect(overview.deadLetters.depth).toBe(1);
        const page = await (await fetch(url)).text();
        expect(page).toContain('id="checks"');
        expect(page).toContain("MODEL_DISTRIBUTION_COMPLETE");
        const pipeline = await (await fetch(`${url}pipeline`)).text();
        expect(pipeline).toMatch(/<svg\s+id="pipeline-graph"/);
        expect(pipeline).toMatch(/<tr data-key="hex8_2p">[\s\S]*?complete/);
        const dead = await (await fetch(`${url}dead-letters`)).text();
        expect(dead).toContain("NEW_GAMES_AVAILABLE");
        // Ctrl-C: the demo ends and the dashboard with it.
        child.kill("SIGINT");
        const code = await Promise.race([
          exited,
          new Promise<"hung">((r) => setTimeout(() => r("hung"), 20_000)),
        ]);
        expect(code).toBe(0);
        await expect(fetch(url)).rejects.toThrow();
      } finally {
        if (child.exitCode === null) child.kill("SIGKILL");
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

async function natsReachable(): Promise<string | undefined> {
  try {
    const nc = await connect({ servers: NATS_URL, timeout: 2000, maxReconnectAttempts: 0 });
    await nc.close();
    return undefined;
  } catch (error) {
    return `NATS is not reachable at ${NATS_URL} (${(error as Error).message})`;
  }
}

describe("the training-pipeline demo on NATS JetStream", { tags: ["slow"] }, () => {
  it(
    "flows every stage for every config with the same daemons, by configuration alone",
    { timeout: 180_000 },
    async (context) => {
      const unreachable = await natsReachable();
      if (unreachable) {
        if (process.env.CI === "true") throw new Error(`${unreachable}; CI requires it`);
        console.warn(`skipped: ${unreachable}`);
        context.skip();
      }
      const dir = join(tmpdir(), `switchyard-demo-nats-test-${process.pid}-${Date.now()}`);
      const db = join(dir, "coordination.db");
      let stream: string | undefined;
      try {
        const { stdout } = await run(
          process.execPath,
          [
            "--import",
            "tsx",
            "apps/training-pipeline/src/demo.ts",
            "--transport",
            "nats",
            "--nats-url",
            NATS_URL,
            "--generations",
            "2",
            "--db",
            db,
            "--timeout",
            "150",
          ],
          {
            cwd: root,
            env: { ...process.env, TSX_TSCONFIG_PATH: join(root, "tsconfig.base.json") },
            maxBuffer: 10 * 2 ** 20,
          },
        );
        stream = /stream (SWITCHYARD_DEMO_\d+)/.exec(stdout)?.[1];
        expect(stream).toBeDefined();
        expect(stdout).toContain("every stage flowed for 2 configs");
        expect(stdout).not.toContain("✗");
        expect(stdout).toMatch(
          /#\w+ NEW_GAMES_AVAILABLE for data_sync:NEW_GAMES_AVAILABLE: unrecoverable, permanently_failed/,
        );
        // The heartbeats went to the NATS heartbeat stream, not the SQLite file.
        expect(stdout).toContain(`heartbeats   NATS stream ${stream}_HEARTBEATS`);
        expect(stdout).toMatch(/Heartbeats \(NATS stream \w+_HEARTBEATS\): 10 daemons, 10 stopped/);
        // The dead letters stay on NATS too, in the driver's store: the hint names the run's own
        // target, whose inspector lists the poison, given up by the retry daemon. No SQLite file.
        const target = /pnpm switchyard dlq list --transport '([^']+)'/.exec(stdout)?.[1];
        expect(target).toMatch(new RegExp(`^nats://.*/${stream}\\?prefix=`));
        expect(stdout).not.toContain("  database ");
        expect(existsSync(db)).toBe(false);
        const reader = await openDriver(target!, { drivers, readOnly: true });
        try {
          const { deadLetters } = await reader.inspector().deadLetters({
            type: "NEW_GAMES_AVAILABLE",
          });
          expect(deadLetters).toEqual([
            expect.objectContaining({
              eventType: "NEW_GAMES_AVAILABLE",
              subscriber: "data_sync:NEW_GAMES_AVAILABLE",
              reason: "unrecoverable",
              status: "permanently_failed",
            }),
          ]);
        } finally {
          await reader.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
        if (stream) {
          const nc = await connect({ servers: NATS_URL });
          const jsm = await jetstreamManager(nc);
          const streams = [
            stream,
            heartbeatStreamName(stream),
            `${stream}_DLQ`,
            `${stream}_ATTEMPTS`,
          ];
          for (const name of streams) await jsm.streams.delete(name).catch(() => false);
          await nc.close();
        }
      }
    },
  );
});
