import { afterEach, describe, expect, it } from "vitest";
import { InspectorQueryError } from "@switchyard/transport";
import {
  QueueOptionsError,
  type SqliteTransport,
  lastSeqBefore,
  openDatabase,
  sqliteTransport,
} from "./index";
import { eventually, foreignWrite, job, tempQueue } from "./test/fixtures";

// Retention over rows another program damaged: it must keep what a subscriber will still take.

let queue: ReturnType<typeof tempQueue>;
let transport: SqliteTransport | undefined;
afterEach(async () => {
  await transport?.close();
  transport = undefined;
  queue.cleanup();
});

/** Run `sql` on a connection of its own, as another program would. */
const foreign = (sql: string, ...params: unknown[]) => foreignWrite(queue.path, sql, ...params);

describe("retention and a subscriber's cursor overwritten with something not a number", () => {
  it.each<[string, unknown]>([
    ["text", "junk"],
    ["a BLOB", Buffer.from([7])],
  ])(
    "regression: keeps the events a cursor holding %s will still deliver (they were pruned, then never delivered)",
    async (_, damaged) => {
      queue = tempQueue();
      transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0, retentionMs: 0 });
      const t = transport;
      await t.register("reader", ["JOB"]);
      await t.publish([job(1), job(2), job(3)]);
      // The claim reads such a cursor as "from the start" (its registration): all three are due.
      foreign(`UPDATE subscribers SET cursor_seq = ? WHERE name = 'reader'`, damaged);
      foreign(`UPDATE events SET created_at = ?`, Date.now() - 60_000);
      const removed = await t.prune();
      expect(removed.events).toBe(0);
      const got: number[] = [];
      await t.subscribe({
        subscriber: "reader",
        types: ["JOB"],
        handler: async (d) => void got.push((d.envelope.data as { n: number }).n),
      });
      // Before the fix only the newest event (always kept) arrived: 1 and 2 were lost.
      await eventually(() => got.length === 3, "the three events");
      expect(got.sort()).toEqual([1, 2, 3]);
    },
  );
});

describe("prune({ now }) with a value that is not a time", () => {
  it.each<[string, unknown]>([
    ["NaN", Number.NaN],
    ["text", "soon"],
    ["Infinity", Infinity],
  ])(
    "regression: now %s is a QueueOptionsError and removes nothing (acked history inside the retention was removed)",
    async (_, now) => {
      queue = tempQueue();
      transport = sqliteTransport({
        path: queue.path,
        pruneIntervalMs: 0,
        keepAcked: true,
        retentionMs: 86_400_000,
      });
      const t = transport;
      let handled = 0;
      await t.subscribe({ subscriber: "a", types: ["JOB"], handler: async () => void handled++ });
      await t.publish([job(1), job(2), job(3)]);
      const db = openDatabase(queue.path);
      try {
        const count = (sql: string) => db.prepare(sql).pluck().get() as number;
        const acked = () => count("SELECT COUNT(*) FROM deliveries WHERE status = 'acked'");
        await eventually(() => handled === 3 && acked() === 3, "the three acks stored");
        await expect(t.prune({ now: now as number })).rejects.toMatchObject({
          constructor: QueueOptionsError,
          option: "now",
        });
        expect(count("SELECT COUNT(*) FROM events")).toBe(3);
        expect(count("SELECT COUNT(*) FROM deliveries WHERE status = 'acked'")).toBe(3);
        // The time reading under it refuses NaN too (it answered as if NaN were a time).
        expect(() => lastSeqBefore(db, Number.NaN)).toThrow(InspectorQueryError);
      } finally {
        db.close();
      }
    },
  );
});
