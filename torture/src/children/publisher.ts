// A publisher process of the contention suite: on "go", publishes TORTURE_JOB / TORTURE_TICK
// batches of 1–20 through its own router on the shared queue file as fast as it can, until its
// time or count runs out. Keys are `w<writer>-<n>`; every third one (n % 3 === 2) is a TICK.
// Reports { published, duplicates, errors } and exits.
import { sqliteTransport } from "@switchyard/cross-process-queue";
import { createEnvelope } from "@switchyard/event-schema";
import { tortureCatalog } from "../harness/catalog";
import { config, guard, logger, onMessage, send } from "./common";

interface PublisherConfig {
  readonly path: string;
  readonly writer: number;
  readonly log: string;
  readonly durationMs: number;
  readonly maxCount: number;
}

const c = config<PublisherConfig>();
const { line, logger: log } = logger(c.log);
guard(line);

// The transport itself, not a router: its publish reports `{ published, duplicates }`.
const transport = sqliteTransport({ path: c.path, pruneIntervalMs: 0, logger: log });

onMessage("go", async () => {
  const until = Date.now() + c.durationMs;
  let n = 0;
  let published = 0;
  let duplicates = 0;
  const errors: string[] = [];
  while (n < c.maxCount && Date.now() < until) {
    const size = Math.min(c.maxCount - n, 1 + Math.floor(Math.random() * 20));
    const envelopes = Array.from({ length: size }, (_, i) => {
      const k = n + i;
      const type = k % 3 === 2 ? "TORTURE_TICK" : "TORTURE_JOB";
      const data = tortureCatalog.parse(type, { key: `w${c.writer}-${k}` });
      return createEnvelope({ type, source: `publisher-${c.writer}`, data });
    });
    try {
      const result = await transport.publish(envelopes);
      published += result.published;
      duplicates += result.duplicates;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      errors.push(`${typeof code === "string" ? code : "?"}: ${(error as Error).message}`);
      line(`error publish ${n}..${n + size - 1} failed: ${(error as Error).message}`);
      // This batch may or may not be stored: the parent only counts what was acknowledged.
    }
    n += size;
  }
  await transport.close();
  send({ published, attempted: n, duplicates, errors });
  process.exit(0);
});
line(`ready ${process.pid} ${Date.now()}`);
send({ ready: true, pid: process.pid });
