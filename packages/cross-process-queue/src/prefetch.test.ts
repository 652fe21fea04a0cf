import Database from "better-sqlite3";
import type { Envelope } from "@switchyard/event-schema";
import { afterEach, describe, expect, it } from "vitest";
import { sqliteTransport } from "./queue";
import { delay, eventually, job, tempQueue } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue>;
const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  queue?.cleanup();
});

const n = (e: Envelope) => (e.data as { n: number }).n;

function reader(path: string) {
  const db = new Database(path, { readonly: true });
  closers.push(() => db.close());
  return db;
}

describe("prefetch at concurrency 1", () => {
  it("keeps publish order and settles many deliveries per claim", async () => {
    queue = tempQueue();
    const t = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    closers.push(() => t.close());
    const seen: number[] = [];
    await t.subscribe({
      subscriber: "w",
      types: ["JOB"],
      handler: async (d) => {
        seen.push(n(d.envelope));
      },
    });
    const total = 2_000;
    for (let i = 0; i < total; i += 500)
      await t.publish(Array.from({ length: 500 }, (_, k) => job(i + k)));
    await eventually(() => seen.length === total, "every delivery");
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i));
    const { claims } = (await t.stats()).poller;
    // One claim per delivery without prefetch; with it, a claim takes many at once.
    expect(claims).toBeLessThan(total / 4);
  });

  it("hands prefetched deliveries back the moment close() starts, while a handler still drains", async () => {
    queue = tempQueue();
    const slow = sqliteTransport({ path: queue.path, pruneIntervalMs: 0, drainTimeoutMs: 10_000 });
    const other = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    closers.push(
      () => other.close(),
      () => slow.close(),
    );
    let release!: () => void;
    const hung = new Promise<void>((resolve) => (release = resolve));
    const seen: number[] = [];
    const sub = await slow.subscribe({
      subscriber: "w",
      types: ["JOB"],
      handler: async (d) => {
        seen.push(n(d.envelope));
        // Fast at first (the subscription learns to prefetch), then one handler hangs.
        if (n(d.envelope) === 100) await hung;
      },
    });
    await slow.publish(Array.from({ length: 100 }, (_, i) => job(i)));
    await eventually(() => seen.length === 100, "the warm-up deliveries");
    await slow.publish(Array.from({ length: 50 }, (_, i) => job(100 + i)));
    await eventually(() => seen.includes(100), "the hanging delivery");
    const db = reader(queue.path);
    const leased = () =>
      db.prepare(`SELECT COUNT(*) FROM deliveries WHERE status = 'leased'`).pluck().get() as number;
    expect(leased()).toBeGreaterThan(1); // the hanging one and the prefetched ones behind it

    const closing = sub.close();
    // Only the hanging delivery stays leased: the others are pending again, with no attempt counted.
    await eventually(() => leased() === 1, "the prefetched deliveries handed back", 2_000);
    expect(
      db.prepare(`SELECT MAX(attempts) FROM deliveries WHERE status = 'pending'`).pluck().get(),
    ).toBe(0);
    const taken: number[] = [];
    await other.subscribe({
      subscriber: "w",
      types: ["JOB"],
      handler: async (d) => {
        taken.push(n(d.envelope));
      },
    });
    await eventually(() => taken.length === 49, "another worker taking them before the drain ends");
    expect(taken).toEqual(Array.from({ length: 49 }, (_, i) => 101 + i));
    release();
    await closing;
  });

  it("starts a prefetched delivery only with at least half its lease left, claiming it again otherwise", async () => {
    queue = tempQueue();
    const t = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    closers.push(() => t.close());
    const db = reader(queue.path);
    const leaseLeft = db.prepare(
      `SELECT lease_until FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE e.id = ?`,
    );
    const leaseMs = 400;
    const left: number[] = [];
    const seen: { n: number; attempt: number }[] = [];
    await t.subscribe({
      subscriber: "w",
      types: ["JOB"],
      leaseMs,
      handler: async (d) => {
        left.push((leaseLeft.pluck().get(d.envelope.id) as number) - Date.now());
        seen.push({ n: n(d.envelope), attempt: d.attempt });
        // Fast deliveries fill the prefetch; one slow handler outlasts half the lease of those waiting.
        if (n(d.envelope) === 30) await delay(300);
      },
    });
    await t.publish(Array.from({ length: 20 }, (_, i) => job(i)));
    await eventually(() => seen.length === 20, "the warm-up deliveries");
    await t.publish(Array.from({ length: 40 }, (_, i) => job(20 + i)));
    await eventually(() => seen.length === 60, "every delivery", 10_000);
    expect(seen.map((s) => s.n)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(seen.every((s) => s.attempt === 1)).toBe(true);
    // Checked at the start of each handler; a little slack for the read itself.
    expect(Math.min(...left)).toBeGreaterThanOrEqual(leaseMs / 2 - 20);
  });

  it("claims one delivery per free handler with prefetchMs 0", async () => {
    queue = tempQueue();
    const t = sqliteTransport({ path: queue.path, pruneIntervalMs: 0, prefetchMs: 0 });
    closers.push(() => t.close());
    let seen = 0;
    await t.subscribe({
      subscriber: "w",
      types: ["JOB"],
      handler: async () => {
        seen++;
      },
    });
    await t.publish(Array.from({ length: 50 }, (_, i) => job(i)));
    await eventually(() => seen === 50, "every delivery");
    expect((await t.stats()).poller.claims).toBeGreaterThanOrEqual(50);
  });
});
