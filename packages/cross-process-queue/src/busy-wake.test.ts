import Database from "better-sqlite3";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type SqliteTransport, sqliteTransport } from "./index";
import type { SqliteSubscription } from "./subscription";
import { job, tempQueue } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue> | undefined;
const closers: (() => unknown)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const close of closers.splice(0).reverse()) await close();
  queue?.cleanup();
  queue = undefined;
});

/** Turns of the event loop (real `setImmediate`, whatever the fake timers do) until `done()`. */
async function turns(done: () => boolean, most = 2_000): Promise<void> {
  for (let i = 0; i < most && !done(); i++) await new Promise((resolve) => setImmediate(resolve));
}

describe("a subscription waiting out another connection's write lock", () => {
  it("regression: claims at the next wake-up (a commit) instead of sleeping on until its backoff timer fires", async () => {
    queue = tempQueue();
    const connect = (): SqliteTransport => {
      const t = sqliteTransport({ path: queue!.path, pruneIntervalMs: 0, watch: false });
      closers.push(() => t.close());
      return t;
    };
    const consumer = connect();
    const publisher = connect();
    const got: number[] = [];
    const sub = (await consumer.subscribe({
      subscriber: "w",
      types: ["JOB"],
      handler: async (d) => void got.push((d.envelope.data as { n: number }).n),
    })) as SqliteSubscription;
    await turns(() => false, 50); // past the first (empty) claim

    // From here timers never fire on their own: a delivery can only come from a wake-up.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const holder = new Database(queue.path);
    closers.push(() => holder.close());
    holder.exec("BEGIN IMMEDIATE");
    const claimsBefore = (await consumer.stats()).poller.claims;
    sub.wake();
    // The claim finds the lock taken, spins on setImmediate (16 turns), then waits on a timer.
    await turns(() => false, 200);
    expect((await consumer.stats()).poller.claims).toBeGreaterThan(claimsBefore);
    expect(got).toEqual([]);
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    holder.exec("COMMIT");

    // A commit in this process wakes the subscription directly (another process's through the
    // WAL watch): the lock it waited for is free now.
    await publisher.publish([job(1)]);
    await turns(() => got.length === 1);
    // Before the fix the wake-up was dropped while the backoff timer was armed: nothing arrived
    // until that timer fired (up to 75 ms later; here, never).
    expect(got).toEqual([1]);
  });
});
