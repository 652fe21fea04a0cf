import Database from "better-sqlite3";
import type { Envelope } from "@switchyard/event-schema";
import { afterEach, describe, expect, it } from "vitest";
import {
  SCHEMA_VERSION,
  type SqliteTransport,
  migrations,
  schemaVersion,
  sqliteTransport,
} from "../index";
import { eventually, job, tempQueue } from "../test/fixtures";

// Version 5 drops AUTOINCREMENT from events.seq: the high-water mark of removed events moves to
// events_high_water, raised by a delete trigger. A seq must still never be handed out twice, or
// an event published after the newest ones were removed would sit at or below a cursor and never
// be delivered.
let queue: ReturnType<typeof tempQueue> | undefined;
let transport: SqliteTransport | undefined;
afterEach(async () => {
  await transport?.close();
  transport = undefined;
  queue?.cleanup();
  queue = undefined;
});

const seqs = (db: Database.Database) =>
  db.prepare(`SELECT seq, id FROM events ORDER BY seq`).raw().all() as [number, string][];

async function subscribeAll(t: SqliteTransport, got: Envelope[]): Promise<void> {
  await t.subscribe({
    subscriber: "reader",
    types: ["JOB"],
    handler: async (d) => void got.push(d.envelope),
  });
}

describe("schema version 5", () => {
  /** A version-4 file: 5 events published and delivered to `reader`, the newest 2 then removed. */
  function versionFour(path: string): void {
    const raw = new Database(path);
    raw.pragma("journal_mode = WAL");
    for (const step of migrations.filter((m) => m.version <= 4)) step.up(raw);
    raw.pragma("user_version = 4");
    const now = Date.now();
    const insert = raw.prepare(
      `INSERT INTO events (id, type, source, time, payload, created_at) VALUES (?, 'JOB', 's', ?, ?, ?)`,
    );
    for (let n = 1; n <= 5; n++)
      insert.run(`e${n}`, new Date(now).toISOString(), `{"n":${n}}`, now);
    raw
      .prepare(
        `INSERT INTO subscribers (name, types, cursor_seq, created_at, last_seen) VALUES ('reader', '["JOB"]', 5, ?, ?)`,
      )
      .run(now, now);
    raw
      .prepare(
        `INSERT INTO subscriber_types (subscriber, type, since_seq) VALUES ('reader', 'JOB', 0)`,
      )
      .run();
    raw
      .prepare(
        `INSERT INTO deliveries (subscriber, event_seq, type, status, attempts, available_at, last_error, updated_at)
         VALUES ('reader', 2, 'JOB', 'dead', 3, ?, '{"name":"Error","message":"x"}', ?)`,
      )
      .run(now, now);
    raw.prepare(`DELETE FROM events WHERE seq > 3`).run();
    expect(raw.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'events'`).pluck().get()).toBe(
      5,
    );
    raw.close();
  }

  it("migrates a version-4 file: rows, seqs and the AUTOINCREMENT counter kept, no AUTOINCREMENT left", async () => {
    queue = tempQueue();
    versionFour(queue.path);
    transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    const db = new Database(queue.path, { readonly: true });
    try {
      expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
      expect(seqs(db)).toEqual([
        [1, "e1"],
        [2, "e2"],
        [3, "e3"],
      ]);
      expect(db.prepare(`SELECT seq FROM events_high_water`).pluck().get()).toBe(5);
      const sql = db.prepare(`SELECT sql FROM sqlite_schema WHERE name = 'events'`).pluck().get();
      expect(sql).not.toMatch(/AUTOINCREMENT/i);
      expect(sql).toMatch(/id\s+TEXT\s+NOT NULL UNIQUE/);
      // The backlog view was recreated over the new table: the dead delivery and nothing pending.
      expect(db.prepare(`SELECT pending, dead FROM backlog`).get()).toEqual({
        pending: 0,
        dead: 1,
      });
    } finally {
      db.close();
    }
  });

  it("publishes after the migrated file's newest events were removed: past the old counter, delivered", async () => {
    queue = tempQueue();
    versionFour(queue.path);
    transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    const got: Envelope[] = [];
    await subscribeAll(transport, got);
    const single = job(6);
    await transport.publish([single]);
    const batch = [job(7), job(8), job(9)];
    await transport.publish(batch);
    await eventually(() => got.length === 4, "the four events published after the migration");
    expect(got.map((e) => e.id)).toEqual([single, ...batch].map((e) => e.id));
    const db = new Database(queue.path, { readonly: true });
    expect(seqs(db).slice(3)).toEqual([
      [6, single.id],
      [7, batch[0]!.id],
      [8, batch[1]!.id],
      [9, batch[2]!.id],
    ]);
    db.close();
  });

  it.each([
    ["one event per call", 1],
    ["a batch", 3],
  ])(
    "never hands out a removed seq again (%s), whoever removed the newest events",
    async (_, size) => {
      queue = tempQueue();
      transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
      const got: Envelope[] = [];
      await subscribeAll(transport, got);
      for (let n = 0; n < 4; n++) await transport.publish([job(n)]);
      await eventually(() => got.length === 4, "four deliveries");
      const db = new Database(queue.path);
      db.prepare(`DELETE FROM events WHERE seq >= 3`).run();
      db.prepare(`DELETE FROM events`).run(); // every row, as an operator might
      db.close();
      const next = Array.from({ length: size }, (_, i) => job(100 + i));
      expect(await transport.publish(next)).toEqual({ published: size, duplicates: 0 });
      await eventually(() => got.length === 4 + size, "the events published after the deletion");
      const check = new Database(queue.path, { readonly: true });
      expect(seqs(check).map(([seq]) => seq)).toEqual(next.map((_, i) => 5 + i));
      check.close();
    },
  );

  it("counts a re-published id as a duplicate when the newest events were removed", async () => {
    queue = tempQueue();
    transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    const kept = job(1);
    await transport.publish([kept, job(2)]);
    const db = new Database(queue.path);
    db.prepare(`DELETE FROM events WHERE seq = 2`).run();
    db.close();
    // The high-water path stores one by one until one goes in: the duplicate first is skipped.
    expect(await transport.publish([kept, job(3), job(4)])).toEqual({
      published: 2,
      duplicates: 1,
    });
    const check = new Database(queue.path, { readonly: true });
    expect(seqs(check).map(([seq]) => seq)).toEqual([1, 3, 4]);
    check.close();
  });
});
