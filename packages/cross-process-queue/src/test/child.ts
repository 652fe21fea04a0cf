// A child process for the multi-process tests, bundled with esbuild (see bundle.ts) because Node
// cannot run TypeScript. It drives the package's real code; it never reimplements its SQL.
// Usage: node child.mjs <mode> <queue path> [options as JSON]; talks to the parent over IPC.
import type { Envelope } from "@switchyard/event-schema";
import { createRouter } from "@switchyard/router";
import { sqliteTransport } from "../index";
import { job, testCatalog } from "./fixtures";

const [mode, path, json] = process.argv.slice(2);
const options = JSON.parse(json ?? "{}") as Record<string, number>;
const send = (message: unknown) => process.send?.(message);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const onMessage = (wanted: string, then: () => Promise<void> | void) =>
  process.on("message", (m) => {
    if (m === wanted) void then();
  });
// If the parent goes away, go too: no orphans.
process.on("disconnect", () => process.exit(0));

if (!path) throw new Error("usage: child <mode> <queue path> [options json]");

switch (mode ?? "") {
  case "consume": {
    // Handle the shared subscriber's backlog; report every event handled (acked) on "stop".
    const transport = sqliteTransport({ path, pruneIntervalMs: 0 });
    const handled: number[] = [];
    await transport.subscribe({
      subscriber: "workers",
      types: ["JOB"],
      concurrency: options.concurrency ?? 8,
      leaseMs: 60_000,
      handler: async (d) => {
        if (options.workMs) await sleep(options.workMs);
        handled.push((d.envelope.data as { n: number }).n);
      },
    });
    onMessage("stop", async () => {
      const { checkpoints } = await transport.stats();
      await transport.close();
      send({ handled, checkpoints });
      process.exit(0);
    });
    send("ready");
    break;
  }
  case "hang": {
    // Take one delivery and never finish it: the parent SIGKILLs this process mid-handler.
    const transport = sqliteTransport({ path, pruneIntervalMs: 0 });
    await transport.subscribe({
      subscriber: "crashy",
      types: ["JOB"],
      leaseMs: options.leaseMs ?? 500,
      handler: async (d) => {
        send({
          started: (d.envelope.data as { n: number }).n,
          attempt: d.attempt,
          pid: process.pid,
        });
        await new Promise(() => {});
      },
    });
    send("ready");
    break;
  }
  case "publish": {
    // Publish as fast as possible once told to go: singles and batches of 10. Count failures by code.
    const transport = sqliteTransport({ path, pruneIntervalMs: 0 });
    const count = options.count ?? 1_000;
    const prefix = options.writer ?? 0;
    onMessage("go", async () => {
      let published = 0;
      const errors: string[] = [];
      for (let n = 0; n < count;) {
        const size = n % 50 === 0 ? Math.min(10, count - n) : 1;
        const batch = Array.from({ length: size }, (_, i) => job(prefix * 1_000_000 + n + i));
        try {
          published += (await transport.publish(batch)).published;
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          errors.push(typeof code === "string" ? code : (error as Error).message);
        }
        n += size;
      }
      await transport.close();
      send({ published, errors });
      process.exit(0);
    });
    send("ready");
    break;
  }
  case "echo": {
    // A router in another process: answers every PING with a PONG caused by it.
    const router = createRouter({ catalog: testCatalog, transport: sqliteTransport({ path }) });
    await router.subscribe(
      "PING",
      async (event, ctx) => {
        await ctx.publish("PONG", { n: event.data.n, pid: process.pid });
      },
      { name: "echo" },
    ).ready;
    onMessage("stop", async () => {
      await router.shutdown();
      send("stopped");
      process.exit(0);
    });
    send("ready");
    break;
  }
  case "requeue": {
    // A dead-letter replayer in another process: requeue what the parent sends, say what it did.
    const transport = sqliteTransport({ path, pruneIntervalMs: 0 });
    process.on("message", (m) => {
      const { requeue, subscriber } = (m ?? {}) as { requeue?: Envelope; subscriber?: string };
      if (!requeue || !subscriber) return;
      transport.requeue(subscriber, requeue).then(
        () => send({ requeued: requeue.id }),
        (error: unknown) => send({ failed: String(error) }),
      );
    });
    onMessage("stop", async () => {
      await transport.close();
      send("stopped");
      process.exit(0);
    });
    send("ready");
    break;
  }
  default:
    throw new Error(`unknown mode ${mode}`);
}
