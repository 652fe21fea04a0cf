import { Worker } from "node:worker_threads";
import { createRequire } from "node:module";
import { afterEach, describe, expect, it } from "vitest";
import { sqliteTransport } from "./queue";
import { job, tempQueue } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue>;
afterEach(() => queue?.cleanup());

const driver = createRequire(import.meta.url).resolve("better-sqlite3");

describe("retention pruning", () => {
  it("lets another process's writes in between its windows instead of holding them off until it ends", async () => {
    queue = tempQueue();
    const t = sqliteTransport({ path: queue.path, pruneIntervalMs: 0, retentionMs: 1 });
    try {
      // Events of a type nobody subscribes to: all of them are pruned.
      for (let i = 0; i < 40_000; i += 1_000)
        await t.publish(Array.from({ length: 1_000 }, (_, k) => job(i + k, "NOBODY")));
      // Another writer on its own thread and connection, retrying every millisecond while busy
      // (as the transport's writers do), counting the writes it got in.
      const shared = new Int32Array(new SharedArrayBuffer(12)); // [ready, stop, writes]
      const writer = new Worker(
        `const { workerData: { path, shared, driver } } = require("node:worker_threads");
         const Database = require(driver);
         const db = new Database(path);
         db.pragma("busy_timeout = 0");
         db.exec("CREATE TABLE IF NOT EXISTS scratch (n INTEGER)");
         const insert = db.prepare("INSERT INTO scratch (n) VALUES (1)");
         const pause = new Int32Array(new SharedArrayBuffer(4));
         Atomics.store(shared, 0, 1);
         while (Atomics.load(shared, 1) === 0) {
           try { insert.run(); Atomics.add(shared, 2, 1); } catch (e) { if (!String(e.code).startsWith("SQLITE_BUSY")) throw e; }
           Atomics.wait(pause, 0, 0, 1);
         }
         db.close();`,
        { eval: true, workerData: { path: queue.path, shared, driver } },
      );
      while (Atomics.load(shared, 0) === 0) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 20));
      const before = Atomics.load(shared, 2);
      const { events } = await t.prune({ now: Date.now() + 1_000 });
      const during = Atomics.load(shared, 2) - before;
      Atomics.store(shared, 1, 1);
      await new Promise((r) => writer.once("exit", r));
      expect(events).toBeGreaterThanOrEqual(39_999);
      // One write per window the prune handed the lock over at least; a prune that took the lock
      // straight back (a bare setImmediate between windows) let almost none in.
      expect(during).toBeGreaterThanOrEqual(20);
    } finally {
      await t.close();
    }
  });
});
