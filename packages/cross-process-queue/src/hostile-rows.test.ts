import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { type SqliteTransport, type SqliteTransportOptions, sqliteTransport } from "./index";
import { MAX_TIMER_MS, timerDelay } from "./timers";
import { delay, eventually, foreignWrite, job, tempQueue } from "./test/fixtures";

// Rows another program wrote into the queue file: the transport must neither stall nor spin.

let queue: ReturnType<typeof tempQueue>;
let open: SqliteTransport[] = [];
afterEach(async () => {
  await Promise.all(open.map((t) => t.close()));
  open = [];
  queue.cleanup();
});
function connect(options: SqliteTransportOptions = {}): SqliteTransport {
  const t = sqliteTransport({ path: queue.path, pruneIntervalMs: 0, ...options });
  open.push(t);
  return t;
}
/** Run `sql` on a connection of its own, as another program would. */
const foreign = (sql: string, ...params: unknown[]) => foreignWrite(queue.path, sql, ...params);

describe("a huge seq written by another program", () => {
  it.each([
    ["10^12", 1e12],
    ["near 2^53", 2 ** 53 - 1_000],
  ])(
    "regression: does not stall subscribers; events after a row with seq %s are delivered at once",
    async (_, seq) => {
      queue = tempQueue();
      const t = connect();
      const got: number[] = [];
      await t.subscribe({
        subscriber: "reader",
        types: ["JOB"],
        handler: async (d) => void got.push((d.envelope.data as { n: number }).n),
      });
      await t.publish([job(1)]);
      await eventually(() => got.length === 1, "the first event");
      const hostile = job(-1);
      foreign(
        `INSERT INTO events (seq, id, type, source, time, dataversion, payload, created_at)
         VALUES (?, ?, 'JOB', 'elsewhere', ?, 1, '{"n":-1}', ?)`,
        seq,
        hostile.id,
        hostile.time,
        Date.now(),
      );
      const before = (await t.stats()).poller.claims;
      await t.publish(Array.from({ length: 10 }, (_, i) => job(i + 2)));
      // Before the fix the claim walked the gap 4,096 seqs per claim: never within 5 s.
      await eventually(() => got.length === 12, "the events published after the hostile row");
      expect(got.sort((a, b) => a - b)).toEqual([-1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      // Crossing the gap is one index seek, not a walk: a handful of claims in all.
      expect((await t.stats()).poller.claims - before).toBeLessThan(20);
    },
  );
});

describe("a far-future available_at written by another program", () => {
  it("regression: arms no overflowing timer and does not wake the subscription in a loop", async () => {
    queue = tempQueue();
    const t = connect();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => void warnings.push(w);
    process.on("warning", onWarning);
    try {
      // Register the subscriber, then leave a delivery due in ~30,000 years behind it.
      const first = await t.subscribe({
        subscriber: "later",
        types: ["JOB"],
        handler: async () => {},
      });
      await first.close();
      const e = job(1);
      await t.publish([e]);
      foreign(
        `INSERT INTO deliveries (subscriber, event_seq, type, status, attempts, available_at, updated_at)
         SELECT 'later', seq, type, 'pending', 1, ?, ? FROM events WHERE id = ?`,
        1e15,
        Date.now(),
        e.id,
      );
      let handled = 0;
      await t.subscribe({
        subscriber: "later",
        types: ["JOB"],
        handler: async () => void handled++,
      });
      await eventually(async () => (await t.stats()).poller.dueChecks >= 1, "the first due check");
      const before = (await t.stats()).poller;
      // An observation window: the timer overflowed to 1 ms before the fix (hundreds of wakes here).
      await delay(300);
      const after = (await t.stats()).poller;
      expect(after.dueChecks - before.dueChecks).toBeLessThanOrEqual(2);
      expect(after.claims - before.claims).toBeLessThanOrEqual(2);
      expect(handled).toBe(0);
      expect(warnings.map((w) => w.name)).not.toContain("TimeoutOverflowWarning");
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("clamps every delay to what Node's timers take", () => {
    expect(timerDelay(1e15)).toBe(MAX_TIMER_MS);
    expect(timerDelay(Number.POSITIVE_INFINITY)).toBe(MAX_TIMER_MS);
    expect(timerDelay(Number.NaN)).toBe(MAX_TIMER_MS);
    expect(timerDelay(-5)).toBe(0);
    expect(timerDelay(2.2)).toBe(3);
  });
});

describe("a subscriber row damaged by another program", () => {
  it("regression: a cursor that is not a number no longer hides every new event; they are delivered", async () => {
    queue = tempQueue();
    const t = connect();
    await t.register("reader", ["JOB"]);
    await t.publish([job(1)]);
    foreign(`UPDATE subscribers SET cursor_seq = 'damaged' WHERE name = 'reader'`);
    await t.publish([job(2)]);
    const got: number[] = [];
    await t.subscribe({
      subscriber: "reader",
      types: ["JOB"],
      handler: async (d) => void got.push((d.envelope.data as { n: number }).n),
    });
    await t.publish([job(3)]);
    // Before the fix nothing came: text compares above every seq, so no event was ever "after" it.
    await eventually(() => got.length === 3, "the events after the damaged cursor");
    expect(got.sort((a, b) => a - b)).toEqual([1, 2, 3]);
    const db = new Database(queue.path, { readonly: true });
    try {
      expect(db.prepare(`SELECT typeof(cursor_seq) FROM subscribers`).pluck().get()).toBe(
        "integer",
      );
    } finally {
      db.close();
    }
  });

  it.each([["not json"], ['{"JOB":1}'], ["[1,2]"]])(
    "regression: types %s neither fail the subscribe (a crash loop at every restart) nor stop the claims",
    async (damaged) => {
      queue = tempQueue();
      const t = connect();
      const got: number[] = [];
      const running = await t.subscribe({
        subscriber: "reader",
        types: ["JOB"],
        handler: async (d) => void got.push((d.envelope.data as { n: number }).n),
      });
      await t.publish([job(1)]);
      await eventually(() => got.length === 1, "the first event");
      foreign(`UPDATE subscribers SET types = ? WHERE name = 'reader'`, damaged);
      // A running subscription keeps claiming (before the fix every claim threw a SyntaxError).
      await t.publish([job(2)]);
      await eventually(() => got.length === 2, "an event after the damage");
      await running.close();
      // Subscribing again (a restart) works and rebuilds the types from the registrations.
      await t.subscribe({
        subscriber: "reader",
        types: ["JOB", "OTHER"],
        handler: async (d) => void got.push((d.envelope.data as { n: number }).n),
      });
      await t.publish([job(3), job(4, "OTHER")]);
      await eventually(() => got.length === 4, "the events after the restart");
      const db = new Database(queue.path, { readonly: true });
      try {
        expect(
          JSON.parse(db.prepare(`SELECT types FROM subscribers`).pluck().get() as string),
        ).toEqual(["JOB", "OTHER"]);
      } finally {
        db.close();
      }
    },
  );
});
