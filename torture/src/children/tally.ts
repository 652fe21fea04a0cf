// A consumer process of the contention suite: one router on the shared queue file with several
// subscriptions (subscriber name × event types), recording every delivery in memory. On "stop" it
// drains, writes `h <subscriber> <key> <attempt>` lines to its tally file, reports and exits.
import { writeFileSync } from "node:fs";
import { sqliteTransport } from "@switchyard/cross-process-queue";
import { createRouter } from "@switchyard/router";
import { tortureCatalog } from "../harness/catalog";
import { config, guard, logger, onMessage, send } from "./common";

interface TallyConfig {
  readonly path: string;
  readonly log: string;
  readonly tally: string;
  readonly concurrency: number;
  readonly subscriptions: readonly {
    readonly subscriber: string;
    readonly types: readonly ("TORTURE_JOB" | "TORTURE_TICK")[];
  }[];
}

const c = config<TallyConfig>();
const { line, logger: log } = logger(c.log);
guard(line);

const router = createRouter({
  catalog: tortureCatalog,
  transport: sqliteTransport({ path: c.path, pruneIntervalMs: 0, logger: log }),
  logger: log,
});
const seen: string[] = [];
for (const s of c.subscriptions) {
  await router.subscribe(
    s.types,
    (event, ctx) => void seen.push(`h ${s.subscriber} ${event.data.key} ${ctx.attempt}`),
    { name: s.subscriber, concurrency: c.concurrency },
  ).ready;
}
onMessage("stop", async () => {
  await router.shutdown();
  writeFileSync(c.tally, seen.length > 0 ? `${seen.join("\n")}\n` : "");
  send({ stopped: true, handled: seen.length });
  process.exit(0);
});
line(`ready ${process.pid} ${Date.now()}`);
send({ ready: true, pid: process.pid });
