import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Router, createRouter } from "@switchyard/router";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sqliteTransport } from "./queue";
import { eventually, memoryLogger, testCatalog } from "./test/fixtures";

// Subscribers declared ahead of publishing, on a real SQLite file shared by two routers (as two
// processes would share it): the publisher's events wait for a subscriber that starts later.

let dir: string;
let path: string;
const routers: Router<typeof testCatalog>[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "cpq-declare-"));
  path = join(dir, "coordination.db");
});
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.shutdown({ timeoutMs: 200 })));
  rmSync(dir, { recursive: true, force: true });
});

function processRouter(logger = memoryLogger()): Router<typeof testCatalog> {
  const router = createRouter({
    catalog: testCatalog,
    logger,
    transport: sqliteTransport({ path, pruneIntervalMs: 0 }),
  });
  routers.push(router);
  return router;
}

describe("declaring a subscriber on SQLite", () => {
  it("keeps events published before the subscriber's process started", async () => {
    const publisher = processRouter();
    await publisher.declareSubscriber("echo", "PING");
    await publisher.publish("PING", { n: 1 });
    await publisher.publish("PING", { n: 2 });

    const consumer = processRouter();
    const seen: number[] = [];
    await consumer.subscribe("PING", (e) => void seen.push(e.data.n), { name: "echo" }).ready;
    await eventually(() => seen.length === 2, "both PINGs");
    expect(seen).toEqual([1, 2]);
  });

  it("warns once when a durable type is published with no subscriber registered", async () => {
    const logger = memoryLogger();
    const publisher = processRouter(logger);
    await publisher.publish("PONG", { n: 1, pid: 1 });
    await publisher.publish("PONG", { n: 2, pid: 1 });
    const warned = () =>
      logger.lines.filter((l) => l.level === "warn" && /no subscriber/.test(l.msg ?? ""));
    await eventually(() => warned().length === 1, "the warning");
    expect(warned()[0]!.obj).toMatchObject({ eventType: "PONG", transport: "sqlite" });
    await expect(publisher.transport!.hasSubscribers!("PONG")).resolves.toBe(false);
    await publisher.declareSubscriber("echo", "PONG");
    await expect(publisher.transport!.hasSubscribers!("PONG")).resolves.toBe(true);
  });
});
