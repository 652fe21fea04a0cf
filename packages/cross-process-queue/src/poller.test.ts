import { utimesSync } from "node:fs";
import Database from "better-sqlite3";
import { silentLogger } from "@switchyard/transport";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type SqliteTransport, sqliteTransport } from "./index";
import { Poller } from "./poller";
import { delay, eventually, job, tempQueue } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue>;
let open: SqliteTransport[] = [];
afterEach(async () => {
  await Promise.all(open.map((t) => t.close()));
  open = [];
  queue.cleanup();
});
const connect = (options = {}) => {
  const t = sqliteTransport({ path: queue.path, pruneIntervalMs: 0, ...options });
  open.push(t);
  return t;
};
const queries = async (t: SqliteTransport) => {
  const { poller } = await t.stats();
  return poller.checks + poller.claims + poller.dueChecks;
};

describe("the poller", () => {
  it("backs off while idle: a handful of cheap queries per second, not a busy loop", async () => {
    queue = tempQueue();
    const t = connect();
    await t.subscribe({ subscriber: "idle", types: ["JOB"], handler: async () => {} });
    await delay(200); // past the first claim and its wake-ups
    const before = await queries(t);
    await delay(1_000);
    const during = (await queries(t)) - before;
    // Fallback checks double from 25 ms up to 1 s: at most ~6 in this second, plus nothing else.
    expect(during).toBeLessThanOrEqual(8);
    const { poller } = await t.stats();
    expect(poller.claims).toBeLessThanOrEqual(2);
  });

  it("still delivers when file notifications are off, through the backing-off poll", async () => {
    queue = tempQueue();
    const publisher = connect();
    const subscriber = connect({ watch: false, maxPollMs: 100 });
    const got: number[] = [];
    await subscriber.subscribe({
      subscriber: "polling",
      types: ["JOB"],
      handler: async () => void got.push(1),
    });
    await delay(300);
    await publisher.publish([job(1)]);
    await eventually(() => got.length === 1, "the delivery through polling", 2_000);
    expect((await subscriber.stats()).poller.watching).toBe(false);
  });

  it("regression: a notification that shows no commit costs a check and two timed rechecks, not a spin", async () => {
    queue = tempQueue();
    const t = connect();
    await t.subscribe({ subscriber: "w", types: ["JOB"], handler: async () => {} });
    await delay(200); // past the first claim and its wake-ups
    const before = (await t.stats()).poller;
    // Five notifications without a commit (the WAL's times change), each given time for its rechecks.
    for (let i = 0; i < 5; i++) {
      const at = new Date(Date.now() + i * 1_000);
      utimesSync(`${queue.path}-wal`, at, at);
      const seen = (await t.stats()).poller.notifications;
      await eventually(async () => (await t.stats()).poller.notifications > seen, "a notification");
      await delay(20);
    }
    const after = (await t.stats()).poller;
    expect(after.changes).toBe(before.changes);
    // Each: one check on the next turn of the event loop, rechecks 1 ms and 4 ms later; plus the
    // fallback poll's few. Before the fix every one spun on setImmediate for 0.3 ms: dozens each.
    expect(after.checks - before.checks).toBeLessThanOrEqual(5 * 3 + 4);
  });

  it("watches the WAL file when it can", async () => {
    queue = tempQueue();
    const t = connect();
    await t.subscribe({ subscriber: "w", types: ["JOB"], handler: async () => {} });
    expect((await t.stats()).poller.watching).toBe(true);
    expect((await t.health()).healthy).toBe(true);
  });
});

describe("the poller's rechecks", () => {
  afterEach(() => void vi.useRealTimers());

  it("regression: a new notification gets its 1 ms recheck even while an older 4 ms one is pending", () => {
    // Traced at 500 events/s: the check after a commit's last WAL write ran just before the commit
    // became visible, and its 1 ms recheck was dropped because the 4 ms recheck of an earlier
    // notification (this process's own commit) was pending: the event waited for the next one.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "performance"] });
    queue = tempQueue();
    const db = new Database(queue.path);
    db.pragma("journal_mode = WAL");
    db.exec("CREATE TABLE t (x)");
    const other = new Database(queue.path);
    let woken = 0;
    const options = { minIntervalMs: 60_000, maxIntervalMs: 60_000, watch: false };
    const poller = new Poller(db, queue.path, options, () => woken++, silentLogger);
    poller.start();
    try {
      poller.notified(); // an earlier notification: nothing committed
      vi.advanceTimersByTime(0); // its check
      vi.advanceTimersByTime(1); // its 1 ms recheck; the 4 ms one is now pending (t = 5)
      expect(poller.counters.checks).toBe(2);
      vi.advanceTimersByTime(1); // t = 2: a new commit's last WAL write notifies...
      poller.notified();
      vi.advanceTimersByTime(0); // ...and its check runs before the commit is visible
      expect(poller.counters.checks).toBe(3);
      other.exec("INSERT INTO t VALUES (1)"); // now it is
      vi.advanceTimersByTime(1); // t = 3: the new notification's 1 ms recheck sees it
      expect(poller.counters.checks).toBe(4);
      expect(woken).toBe(1);
      vi.advanceTimersByTime(10); // a recheck that saw the commit ends the sequence; the old one is gone
      expect(poller.counters.checks).toBe(4);
      expect(woken).toBe(1);
    } finally {
      poller.stop();
      other.close();
      db.close();
    }
  });
});
