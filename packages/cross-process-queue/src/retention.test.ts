import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { type SqliteTransport, sqliteTransport } from "./index";
import { eventually, job, tempQueue } from "./test/fixtures";

const DAY = 86_400_000;
let queue: ReturnType<typeof tempQueue>;
let transport: SqliteTransport | undefined;
afterEach(async () => {
  await transport?.close();
  transport = undefined;
  queue.cleanup();
});

describe("retention", () => {
  it("prunes acked deliveries and events nobody needs, keeping pending, dead and recent ones", async () => {
    queue = tempQueue();
    transport = sqliteTransport({
      path: queue.path,
      pruneIntervalMs: 0,
      keepAcked: true,
      retentionMs: DAY,
    });
    const t = transport;
    for (const subscriber of ["done", "behind", "broken"]) {
      await (await t.subscribe({ subscriber, types: ["JOB"], handler: async () => {} })).close();
    }
    await t.publish(Array.from({ length: 6 }, (_, i) => job(i)));
    let handled = 0;
    const done = await t.subscribe({
      subscriber: "done",
      types: ["JOB"],
      concurrency: 6,
      handler: async () => void handled++,
    });
    const broken = await t.subscribe({
      subscriber: "broken",
      types: ["JOB"],
      maxAttempts: 1,
      handler: async (d) => {
        if ((d.envelope.data as { n: number }).n === 0) throw new Error("bad event");
      },
    });
    await eventually(async () => {
      const stats = (await t.stats()).subscribers;
      return handled === 6 && stats.find((s) => s.subscriber === "broken")?.lag === 0;
    }, "the deliveries to settle");
    await done.close();
    await broken.close();
    // "behind" has handled events 0..2 only: its cursor sits after event 3 (seq 3).
    const db = new Database(queue.path);
    db.prepare("UPDATE subscribers SET cursor_seq = 3 WHERE name = 'behind'").run();
    // Age everything: the first five events are 2 days old, the last one is fresh.
    const now = Date.now();
    db.prepare("UPDATE events SET created_at = ? WHERE seq <= 5").run(now - 2 * DAY);
    const count = (sql: string) => db.prepare(sql).pluck().get() as number;
    expect(count("SELECT COUNT(*) FROM deliveries WHERE status = 'acked'")).toBe(11);

    const removed = await t.prune();

    // Acked rows of old events go; the fresh event's acked rows stay until they age too.
    expect(count("SELECT COUNT(*) FROM deliveries WHERE status = 'acked'")).toBe(2);
    expect(count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'")).toBe(1);
    // Kept: seq 1 (dead for "broken"), 4 and 5 (ahead of "behind"'s cursor), 6 (fresh).
    expect(db.prepare("SELECT seq FROM events ORDER BY seq").pluck().all()).toEqual([1, 4, 5, 6]);
    expect(removed).toEqual({ deliveries: 9, events: 2, subscribers: 0 });
    db.close();
  });

  it("never removes the newest event, so seq never goes back", async () => {
    queue = tempQueue();
    transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0, retentionMs: 0 });
    await transport.publish([job(1), job(2)]);
    await transport.prune({ now: Date.now() + DAY });
    const db = new Database(queue.path);
    expect(db.prepare("SELECT seq FROM events").pluck().all()).toEqual([2]);
    db.close();
  });

  it("removes ephemeral subscribers of processes that died", async () => {
    queue = tempQueue();
    transport = sqliteTransport({
      path: queue.path,
      pruneIntervalMs: 0,
      ephemeralTimeoutMs: 1_000,
    });
    // A process that subscribed ephemerally and was killed: its rows stay until pruned.
    const db = new Database(queue.path);
    db.prepare(
      `INSERT INTO subscribers (name, types, ephemeral, cursor_seq, created_at, last_seen) VALUES ('gone', '["JOB"]', 1, 0, 0, 0)`,
    ).run();
    db.prepare(
      `INSERT INTO subscriber_types (subscriber, type, since_seq) VALUES ('gone', 'JOB', 0)`,
    ).run();
    await transport.publish([job(1)]);
    expect(await transport.prune()).toMatchObject({ subscribers: 1 });
    expect(db.prepare("SELECT COUNT(*) FROM subscribers").pluck().get()).toBe(0);
    expect(db.prepare("SELECT COUNT(*) FROM subscriber_types").pluck().get()).toBe(0);
    db.close();
  });

  it("prunes on a schedule", async () => {
    queue = tempQueue();
    transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 50, retentionMs: 0 });
    await transport.publish([job(1), job(2), job(3)]);
    const db = new Database(queue.path, { readonly: true });
    await eventually(
      () => db.prepare("SELECT COUNT(*) FROM events").pluck().get() === 1,
      "the scheduled prune",
    );
    db.close();
  });
});
