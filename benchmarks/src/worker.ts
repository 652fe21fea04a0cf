// A worker process of the SQLite benchmarks (started by child.ts): one consumer of one library.
//   consume: counts deliveries; the benchmark process times the backlog running empty.
//   latency: records publish → handler latency (CLOCK_MONOTONIC, shared by all processes), and
//            measures its own CPU use while idle on request.
//            With `window` set, sends `window { ms, steadyMs }` once that many deliveries were
//            handled after `go` (the scaling runs time a fixed window out of a large backlog);
//            its steadyMs starts at delivery `skip` + 1.
// Messages in: go, idle { ms }, stop. Out: ready, window { ms, steadyMs }, cpu { percent },
// done { handled, ms, latencies }.
import type { Message } from "./child";
import { type Lib, consumer } from "./sqlite-libs";

const [role = "", json = "{}"] = process.argv.slice(2);
const args = JSON.parse(json) as {
  lib: Lib;
  path: string;
  subscriber: string;
  type: string;
  concurrency: number;
  pollMs: number;
  subscribers?: number;
  window?: number;
  /** Deliveries before the steady timing starts (the worker process's JIT warm-up). */
  skip?: number;
  transport?: Record<string, unknown>;
};

const send = (m: Message) =>
  new Promise<void>((resolve) => process.send!(m, undefined, {}, () => resolve()));
const inbox: Message[] = [];
let wake: (() => void) | undefined;
process.on("message", (m: Message) => {
  inbox.push(m);
  wake?.();
});
async function next(): Promise<Message> {
  while (inbox.length === 0) await new Promise<void>((resolve) => (wake = resolve));
  return inbox.shift()!;
}

// Bounded even if the benchmark process dies without telling: no worker outlives 5 minutes.
setTimeout(() => process.exit(3), 300_000).unref();
process.on("disconnect", () => process.exit(4));

let handled = 0;
let goAt = Number.NaN;
const latencies: number[] = [];
let firstAt = Number.NaN;
const counted = () => {
  if (++handled === (args.skip ?? 0) + 1) firstAt = performance.now();
  // steadyMs leaves out the start (subscribing, the first claim, and the first `skip` deliveries
  // while the JIT warms up): the scaling runs want the steady claim cost, not the start-up.
  if (handled === args.window) {
    const now = performance.now();
    void send({ type: "window", ms: now - goAt, steadyMs: now - firstAt });
  }
};
const handler =
  role === "latency"
    ? (data: unknown) => {
        const sent = (data as { t: number }).t;
        latencies.push((Number(process.hrtime.bigint()) - sent) / 1e6);
        counted();
      }
    : counted;

try {
  const c = await consumer(args.lib, args.path, { ...args, handler });
  if (role === "latency") await c.start();
  await send({ type: "ready" });
  for (;;) {
    const m = await next();
    if (m.type === "go") {
      goAt = performance.now();
      await c.start();
    } else if (m.type === "idle") {
      const cpu = process.cpuUsage();
      const start = performance.now();
      await new Promise((resolve) => setTimeout(resolve, m.ms as number));
      const used = process.cpuUsage(cpu);
      const wall = performance.now() - start;
      await send({ type: "cpu", percent: ((used.user + used.system) / 1000 / wall) * 100 });
    } else if (m.type === "stop") {
      const ms = performance.now() - goAt;
      await c.stop();
      await send({ type: "done", handled, ms, latencies });
      break;
    }
  }
  process.exit(0);
} catch (error) {
  await send({ type: "error", message: String((error as Error).stack ?? error) });
  process.exit(1);
}
