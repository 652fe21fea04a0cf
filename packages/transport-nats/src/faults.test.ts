import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createEnvelope } from "@switchyard/event-schema";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { type NatsTransport, natsTransport } from "./index";
import {
  type OwnServer,
  deleteStream,
  describeIf,
  eventually,
  natsServerBinary,
  startOwnServer,
  uniqueNames,
} from "./test/nats";

const root = join(import.meta.dirname, "../../..");
const job = (n: number) => createEnvelope({ type: "JOB", source: "fault-test", data: { n } });

interface Child {
  readonly process: ChildProcess;
  readonly lines: Record<string, unknown>[];
  readonly exited: Promise<void>;
}

/** Run the worker child (TypeScript through tsx) and collect its JSON lines. */
function startWorker(args: string[]): Child {
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", join(import.meta.dirname, "test/worker-child.ts"), ...args],
    {
      cwd: root,
      env: { ...process.env, TSX_TSCONFIG_PATH: join(root, "tsconfig.base.json") },
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: proc.stdout }).on("line", (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not one of ours
    }
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  return { process: proc, lines, exited };
}

describeIf(
  natsServerBinary(),
  "faults: server restarts and killed consumers",
  { tags: ["slow"] },
  () => {
    let server: OwnServer;
    let names: { stream: string; prefix: string };
    let open: NatsTransport[] = [];
    let children: Child[] = [];

    const transport = () => {
      const t = natsTransport({
        servers: server.url,
        ...names,
        drainTimeoutMs: 1_000,
        pullExpiresMs: 2_000,
        connectionOptions: { reconnectTimeWait: 100 },
      });
      open.push(t);
      return t;
    };

    beforeAll(async () => {
      server = await startOwnServer();
    });
    afterAll(async () => {
      await server?.dispose();
    });
    afterEach(async () => {
      for (const c of children) if (c.process.exitCode === null) c.process.kill("SIGKILL");
      await Promise.all(children.map((c) => c.exited));
      children = [];
      await Promise.allSettled(open.map((t) => t.close()));
      open = [];
      await deleteStream(server.url, names.stream).catch(() => {});
    });

    it("loses no event when the server is killed and restarted mid-stream", async () => {
      names = uniqueNames("restart");
      const consumer = transport();
      const publisher = transport();
      const got = new Set<number>();
      let deliveries = 0;
      await consumer.subscribe({
        subscriber: "survivor",
        types: ["JOB"],
        concurrency: 4,
        leaseMs: 2_000,
        handler: async (d) => {
          deliveries++;
          await new Promise((r) => setTimeout(r, 2));
          got.add((d.envelope.data as { n: number }).n);
        },
      });
      const total = 300;
      let restarting: Promise<void> | undefined;
      let restartedAt = -1;
      let publishFailures = 0;
      let current = 0;
      for (let n = 0; n < total; n = ++current) {
        // SIGKILL, then start on the same port and store, while the publishing goes on.
        if (n === 100) restarting = server.restart().then(() => void (restartedAt = current));
        for (let tries = 0; ; tries++) {
          try {
            await publisher.publish([job(n)]);
            break;
          } catch (error) {
            publishFailures++;
            if (tries >= 100) throw error;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      }
      await restarting;
      expect(restartedAt).toBeGreaterThanOrEqual(100);
      expect(restartedAt).toBeLessThan(total);
      await eventually(() => got.size === total, `all ${total} events after the restart`, 30_000);
      expect([...got].sort((a, b) => a - b)).toEqual([...Array(total).keys()]);
      // At least once: redeliveries of in-flight work are allowed, losses are not.
      expect(deliveries).toBeGreaterThanOrEqual(total);
      expect(publishFailures).toBeLessThan(100);
    }, 90_000);

    it("redelivers the event of a consumer process killed mid-handler to another process", async () => {
      names = uniqueNames("sigkill");
      const args = [server.url, names.stream, names.prefix];
      const doomed = startWorker([...args, "hang"]);
      children.push(doomed);
      await eventually(
        () => doomed.lines.some((l) => l.ready),
        "the first worker to subscribe",
        30_000,
      );
      const publisher = transport();
      const event = job(1);
      await publisher.publish([event]);
      await eventually(
        () => doomed.lines.some((l) => l.started === event.id),
        "the first worker to start the handler",
        10_000,
      );
      doomed.process.kill("SIGKILL");
      await doomed.exited;

      const survivor = startWorker([...args, "ack"]);
      children.push(survivor);
      await eventually(
        () => survivor.lines.some((l) => l.handled === event.id),
        "the second worker to handle the redelivery",
        30_000,
      );
      const handled = survivor.lines.find((l) => l.handled === event.id)!;
      expect(handled).toMatchObject({ attempt: 2, pid: survivor.process.pid });
      await eventually(async () => {
        const stats = await publisher.stats();
        return stats.subscribers.find((s) => s.subscriber === "workers")?.lag === 0;
      }, "the redelivered event to be acknowledged");
    }, 90_000);
  },
);
