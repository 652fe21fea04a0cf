import Database from "better-sqlite3";
import type { DeliveryInfo, DeliveryStep } from "@switchyard/transport";
import { afterEach, describe, expect, it } from "vitest";
import { HISTORY_LIMIT } from "./claim";
import { SqliteInspector } from "./inspector";
import { migrations } from "./schema/migrations";
import { sqliteTransport } from "./queue";
import { eventually, exchangeRequest, job, tempQueue, workerStore } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue>;
const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  queue?.cleanup();
});

const store = (path: string) => workerStore(path, closers);
const request = exchangeRequest;

async function deliveryOf(path: string, eventId: string, subscriber = "w"): Promise<DeliveryInfo> {
  const db = new Database(path, { readonly: true });
  closers.push(() => db.close());
  const inspector = new SqliteInspector(db);
  const info = (await inspector.deliveries(eventId)).find((d) => d.subscriber === subscriber);
  expect(info).toBeDefined();
  return info!;
}

const kinds = (steps: readonly DeliveryStep[] | undefined) => (steps ?? []).map((s) => s.kind);

describe("the delivery timeline on SQLite", () => {
  it("records an expired lease when another worker reclaims the delivery, then its second attempt", async () => {
    queue = tempQueue();
    const one = store(queue.path);
    const two = store(queue.path);
    one.register("w", ["JOB"], false);
    const event = job(1);
    one.publish([event]);
    const t0 = Date.now();
    const first = one.exchange(request([], 1), t0).claimed[0]!;
    expect(first.attempt).toBe(1);
    // The first worker hangs; its lease (1 s) runs out and the second worker takes over.
    const second = two.exchange(request([], 1), t0 + 1_500).claimed[0]!;
    expect(second).toMatchObject({ seq: first.seq, attempt: 2 });
    two.exchange(
      request(
        [
          {
            kind: "ack",
            seq: second.seq,
            token: second.token,
            attempt: 2,
            journaled: second.journaled,
          },
        ],
        0,
      ),
      t0 + 1_600,
    );

    const { history } = await deliveryOf(queue.path, event.id);
    expect(kinds(history)).toEqual(["lease_expired", "claimed", "acked"]);
    expect(history![0]).toMatchObject({ attempt: 1, at: new Date(t0 + 1_000).toISOString() });
    expect(history![0]!.detail).toMatch(/ran out/);
    expect(history![1]).toMatchObject({ attempt: 2, at: new Date(t0 + 1_500).toISOString() });
    expect(history![1]!.by).toMatch(new RegExp(`:${process.pid}$`));
    expect(history![2]).toMatchObject({ attempt: 2 });
  });

  it("records a subscription's lease running out, the takeover, and the late outcome it discarded", async () => {
    queue = tempQueue();
    const slow = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    const fast = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    closers.push(
      () => fast.close(),
      () => slow.close(),
    );
    let release!: () => void;
    const hung = new Promise<void>((resolve) => (release = resolve));
    let started = false;
    await slow.subscribe({
      subscriber: "w",
      types: ["JOB"],
      leaseMs: 200,
      handler: async () => {
        started = true;
        await hung;
      },
    });
    const event = job(1);
    await slow.publish([event]);
    await eventually(() => started, "the first attempt");
    const attempts: number[] = [];
    await fast.subscribe({
      subscriber: "w",
      types: ["JOB"],
      handler: async (d) => {
        attempts.push(d.attempt);
      },
    });
    await eventually(() => attempts.length === 1, "the takeover after the lease ran out");
    await eventually(
      async () => (await deliveryOf(queue.path, event.id)).state === "acked",
      "the takeover's ack",
    );
    release();
    await eventually(
      async () => kinds((await deliveryOf(queue.path, event.id)).history).includes("fenced"),
      "the discarded outcome's step",
    );
    const { history } = await deliveryOf(queue.path, event.id);
    expect(kinds(history)).toEqual(["lease_expired", "claimed", "acked", "fenced"]);
    expect(history!.map((s) => s.attempt)).toEqual([1, 2, 2, 1]);
    // The worker's watchdog saw its lease run out (discarded there), or, when the takeover came
    // first on a loaded machine, its ack reached the store and was fenced off there.
    expect(history![3]!.detail).toMatch(
      /success of an attempt whose lease .* had run out|an ack under lease token \d+, which no longer held/,
    );
  });

  it("records the attempt of a worker's ack fenced off before the worker saw its lease run out", async () => {
    queue = tempQueue();
    // The slow worker's lease is long: its own watchdog never calls it expired, so its success
    // goes to the store as an ack, which fencing rejects there (the race a loaded machine hits
    // when the takeover comes before the watchdog's next look).
    const slow = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    const fast = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    closers.push(
      () => fast.close(),
      () => slow.close(),
    );
    let release!: () => void;
    const hung = new Promise<void>((resolve) => (release = resolve));
    let started = false;
    await slow.subscribe({
      subscriber: "w",
      types: ["JOB"],
      leaseMs: 60_000,
      handler: async () => {
        started = true;
        await hung;
      },
    });
    const event = job(1);
    await slow.publish([event]);
    await eventually(() => started, "the first attempt");
    // The lease runs out in the file (as another process sees it), not in the slow worker's memory.
    const raw = new Database(queue.path);
    closers.push(() => raw.close());
    raw
      .prepare("UPDATE deliveries SET lease_until = @at, available_at = @at WHERE subscriber = 'w'")
      .run({ at: Date.now() - 1 });
    const attempts: number[] = [];
    await fast.subscribe({
      subscriber: "w",
      types: ["JOB"],
      handler: async (d) => {
        attempts.push(d.attempt);
      },
    });
    await eventually(
      async () => (await deliveryOf(queue.path, event.id)).state === "acked",
      "the takeover's ack",
    );
    release();
    await eventually(
      async () => kinds((await deliveryOf(queue.path, event.id)).history).includes("fenced"),
      "the rejected ack's step",
    );
    const { history } = await deliveryOf(queue.path, event.id);
    expect(attempts).toEqual([2]);
    expect(kinds(history)).toEqual(["lease_expired", "claimed", "acked", "fenced"]);
    expect(history!.map((s) => s.attempt)).toEqual([1, 2, 2, 1]);
    expect(history![3]!.detail).toMatch(/an ack under lease token \d+, which no longer held/);
  });

  it("records a stale worker's ack, rejected by fencing", async () => {
    queue = tempQueue();
    const one = store(queue.path);
    const two = store(queue.path);
    one.register("w", ["JOB"], false);
    const event = job(1);
    one.publish([event]);
    const t0 = Date.now();
    const stale = one.exchange(request([], 1), t0).claimed[0]!;
    two.exchange(request([], 1), t0 + 1_500);
    // The first worker wakes up and acks under its old lease token: discarded, and recorded.
    const { lost } = one.exchange(
      request([{ kind: "ack", seq: stale.seq, token: stale.token, attempt: 1 }], 0),
      t0 + 1_700,
    );
    expect(lost).toHaveLength(1);

    const info = await deliveryOf(queue.path, event.id);
    expect(info.state).toBe("in_flight");
    expect(kinds(info.history)).toEqual(["lease_expired", "claimed", "fenced"]);
    expect(info.history![2]).toMatchObject({ attempt: 1 });
    expect(info.history![2]!.detail).toContain(`lease token ${stale.token}`);
  });

  it("writes no step on the happy path, and derives the claim of an attempt in flight from its row", async () => {
    queue = tempQueue();
    const one = store(queue.path);
    one.register("w", ["JOB"], false);
    const [a, b] = [job(1), job(2)];
    one.publish([a, b]);
    const claimed = one.exchange(request([], 2)).claimed;
    one.exchange(request([{ kind: "ack", seq: claimed[0]!.seq, token: claimed[0]!.token }], 0));
    expect(one.db.prepare(`SELECT COUNT(*) FROM delivery_steps`).pluck().get()).toBe(0);
    expect((await deliveryOf(queue.path, a.id)).history).toEqual([]);
    expect(kinds((await deliveryOf(queue.path, b.id)).history)).toEqual(["claimed"]);
  });

  it(`keeps the last ${HISTORY_LIMIT} steps of a delivery and says that older ones were dropped`, async () => {
    queue = tempQueue();
    const one = store(queue.path);
    one.register("w", ["JOB"], false);
    const event = job(1);
    one.publish([event]);
    let now = Date.now();
    for (let i = 0; i < HISTORY_LIMIT; i++) {
      const c = one.exchange(request([], 1), now).claimed[0]!;
      one.exchange(
        request([{ kind: "retry", seq: c.seq, token: c.token, availableAt: now, error: "{}" }], 0),
        now,
      );
      now += 1;
    }
    const info = await deliveryOf(queue.path, event.id);
    expect(info.history).toHaveLength(HISTORY_LIMIT);
    expect(info.historyTruncated).toBe(true);
    expect(info.history!.at(-1)).toMatchObject({ kind: "retry_scheduled", attempt: HISTORY_LIMIT });
  });

  it("prunes the steps of a delivery with it once the event is past the retention", async () => {
    queue = tempQueue();
    const transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0, retentionMs: 1 });
    closers.push(() => transport.close());
    let runs = 0;
    const sub = await transport.subscribe({
      subscriber: "w",
      types: ["JOB"],
      backoff: { initialMs: 1, maxMs: 1, jitter: 0 },
      handler: async () => {
        if (++runs === 1) throw new Error("once");
      },
    });
    const event = job(1);
    await transport.publish([event, job(2)]);
    await eventually(() => runs === 3, "the retry and the second event");
    await sub.close();
    const count = () =>
      new Database(queue.path, { readonly: true })
        .prepare(`SELECT COUNT(*) FROM delivery_steps`)
        .pluck()
        .get() as number;
    await eventually(() => count() > 0, "the retry's steps");
    await transport.prune({ now: Date.now() + 1_000 });
    expect(count()).toBe(0);
  });

  it("reads a file of schema version 3 read-only: deliveries come with an empty timeline", async () => {
    queue = tempQueue();
    const raw = new Database(queue.path);
    raw.pragma("journal_mode = WAL");
    for (const step of migrations.filter((m) => m.version <= 3)) step.up(raw);
    raw.pragma("user_version = 3");
    const now = Date.now();
    raw
      .prepare(
        `INSERT INTO events (id, type, source, time, payload, created_at) VALUES ('e1', 'JOB', 's', ?, '{}', ?)`,
      )
      .run(new Date(now).toISOString(), now);
    raw
      .prepare(
        `INSERT INTO subscribers (name, types, cursor_seq, created_at, last_seen) VALUES ('w', '["JOB"]', 1, ?, ?)`,
      )
      .run(now, now);
    raw
      .prepare(
        `INSERT INTO deliveries (subscriber, event_seq, type, status, attempts, available_at, last_error, updated_at)
         VALUES ('w', 1, 'JOB', 'pending', 1, ?, '{"name":"Error","message":"x"}', ?)`,
      )
      .run(now, now);
    raw.close();
    const info = await deliveryOf(queue.path, "e1");
    expect(info).toMatchObject({ state: "retrying", history: [] });
  });
});
