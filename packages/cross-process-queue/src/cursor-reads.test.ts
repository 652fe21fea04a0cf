import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { BACKLOG_SQL, type BacklogRow } from "./backlog";
import type { QueueStore } from "./claim";
import { countPending, traceEvent } from "./introspect";
import { clearPending } from "./recovery";
import { exchangeRequest, foreignWrite, job, tempQueue, workerStore } from "./test/fixtures";

// A subscriber's cursor another program overwrote with something not a number: every reader of
// `cursor_seq` must read it as the claim does (`cursorSql`), so what the backlog shows is what
// the claim delivers.

let queue: ReturnType<typeof tempQueue>;
const closers: (() => unknown)[] = [];
afterEach(() => {
  for (const close of closers.splice(0).reverse()) close();
  queue?.cleanup();
});

/** Subscriber "w" took and acked event 1 of 3; its cursor is then overwritten with `cursor`. */
function setUp(cursor: unknown): { s: QueueStore; ids: string[] } {
  queue = tempQueue();
  const s = workerStore(queue.path, closers);
  s.register("w", ["JOB"], false);
  const events = [job(1), job(2), job(3)];
  s.publish(events);
  const [first] = s.exchange(exchangeRequest([], 1), Date.now()).claimed;
  const ack = { kind: "ack" as const, seq: first!.seq, token: first!.token, attempt: 1 };
  expect(s.exchange(exchangeRequest([ack], 0), Date.now()).lost).toEqual([]);
  foreignWrite(queue.path, `UPDATE subscribers SET cursor_seq = ? WHERE name = 'w'`, cursor);
  return { s, ids: events.map((e) => e.id) };
}

/** A reader's connection of its own, closed after the test. */
function reader(): Database.Database {
  const db = new Database(queue.path, { readonly: true });
  closers.push(() => db.close());
  return db;
}

describe("a subscriber's cursor another program overwrote with something not a number", () => {
  it.each<[string, unknown]>([
    ["text", "junk"],
    ["BLOB", Buffer.from([1, 2])],
  ])(
    "regression: a %s cursor counts as pending exactly the events the next claim delivers",
    (_, cursor) => {
      const { s, ids } = setUp(cursor);
      const db = reader();
      const now = Date.now();
      const view = db.prepare(`SELECT pending, lag FROM backlog WHERE subscriber = 'w'`).get();
      const inspector = (db.prepare(BACKLOG_SQL).all({ now }) as BacklogRow[])[0]!;
      const pending = countPending(db, { subscriber: "w" });
      const skipped = clearPending(db, { subscriber: "w", dryRun: true }).skipped;
      const traced = traceEvent(db, ids[1]!)!.deliveries.find((d) => d.subscriber === "w");

      // The claim reads the cursor as 0: it starts over from the registration (at least once).
      const claimed = s.exchange(exchangeRequest([], 10), now).claimed.map((c) => c.seq);
      expect(claimed).toEqual([1, 2, 3]);
      // Before the fix every one of these read the cursor as text (above every seq): nothing
      // pending, while the claim delivered three events.
      expect.soft(view, "the backlog view").toEqual({ pending: 3, lag: 3 });
      expect.soft(inspector.pending, "the inspector's backlog").toBe(3);
      expect.soft(pending, "countPending").toBe(3);
      expect.soft(skipped, "clearPending's dry run").toBe(3);
      expect.soft(traced?.status, "traceEvent's inferred delivery").toBe("pending");
    },
  );
});
