import Database from "better-sqlite3";
import { EventValidationError } from "@switchyard/event-schema";
import { LeaseLostError, UnrecoverableError, type Delivery } from "@switchyard/router";
import { afterEach, describe, expect, it } from "vitest";
import {
  PayloadTooLargeError,
  QueueOptionsError,
  type SqliteTransport,
  type SqliteTransportOptions,
  countPending,
  sqliteTransport,
  traceEvent,
} from "./index";
import { delay, eventually, job, memoryLogger, tempQueue } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue>;
let open: SqliteTransport[] = [];
const raw: Database.Database[] = [];

function connect(options: SqliteTransportOptions = {}): SqliteTransport {
  queue ??= tempQueue();
  const transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0, ...options });
  open.push(transport);
  return transport;
}
function inspect(): Database.Database {
  const db = new Database(queue.path, { readonly: true });
  raw.push(db);
  return db;
}
afterEach(async () => {
  await Promise.all(open.map((t) => t.close()));
  for (const db of raw.splice(0)) db.close();
  open = [];
  queue?.cleanup();
  queue = undefined!;
});
const nOf = (d: Delivery) => (d.envelope.data as { n: number }).n;

describe("publishing", () => {
  it("stores a batch atomically and counts re-published ids as duplicates", async () => {
    const t = connect();
    const a = job(1);
    expect(await t.publish([a, job(2)])).toEqual({ published: 2, duplicates: 0 });
    expect(await t.publish([a])).toEqual({ published: 0, duplicates: 1 });
    expect(inspect().prepare("SELECT COUNT(*) FROM events").pluck().get()).toBe(2);
  });

  it("rejects an event over maxPayloadBytes and stores nothing of its batch", async () => {
    const t = connect({ maxPayloadBytes: 1_000 });
    const big = { ...job(2), data: { blob: "x".repeat(2_000) } };
    const error = await t.publish([job(1), big]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect(error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", eventId: big.id, limit: 1_000 });
    expect((error as Error).message).toMatch(/publish its path, or raise \{ maxPayloadBytes \}/);
    expect(inspect().prepare("SELECT COUNT(*) FROM events").pluck().get()).toBe(0);
  });

  it("counts payload size in UTF-8 bytes", async () => {
    const t = connect({ maxPayloadBytes: 1_000 });
    // 400 characters of 3 bytes each: 1 200 bytes of UTF-8.
    const error = await t
      .publish([{ ...job(1), data: { s: "€".repeat(400) } }])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect((error as PayloadTooLargeError).bytes).toBeGreaterThan(1_200);
  });

  it("rejects something that is not an envelope with the failing fields", async () => {
    const t = connect();
    const error = await t.publish([{ ...job(1), id: "" }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EventValidationError);
    expect(error).toMatchObject({ reason: "invalid_envelope" });
    expect((error as EventValidationError).issues.map((i) => i.path)).toContain("id");
  });

  it("rejects unusable options with the option's name", () => {
    queue = tempQueue();
    expect(() => sqliteTransport({ path: queue.path, claimBatchSize: 0 })).toThrow(
      QueueOptionsError,
    );
    expect(() => sqliteTransport({ path: queue.path, maxPollMs: 1, minPollMs: 10 })).toThrow(
      /maxPollMs/,
    );
  });

  it("waits out another process's write lock instead of failing", async () => {
    const t = connect({ busyTimeoutMs: 50 });
    await t.publish([job(0)]);
    const other = new Database(queue.path);
    raw.push(other);
    other.exec("BEGIN IMMEDIATE");
    setTimeout(() => other.exec("COMMIT"), 300);
    const started = Date.now();
    expect(await t.publish([job(1)])).toEqual({ published: 1, duplicates: 0 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });
});

describe("subscribing", () => {
  it("delivers events published after a durable subscriber registered, across restarts", async () => {
    const first = connect();
    await first.publish([job(0)]); // before registration: not for this subscriber
    const sub = await first.subscribe({
      subscriber: "auditor",
      types: ["JOB"],
      handler: async () => {},
    });
    await sub.close();
    await first.close();
    const publisher = connect();
    await publisher.publish([job(1), job(2)]);
    const got: number[] = [];
    const later = connect();
    await later.subscribe({
      subscriber: "auditor",
      types: ["JOB"],
      handler: async (d) => void got.push(nOf(d)),
    });
    await eventually(() => got.length === 2, "the backlog");
    await delay(50);
    expect(got).toEqual([1, 2]);
  });

  it("wakes a subscriber on another connection quickly, without waiting for the poll", async () => {
    const publisher = connect();
    const subscriber = connect({ minPollMs: 1_000, maxPollMs: 1_000 });
    const got: number[] = [];
    await subscriber.subscribe({
      subscriber: "fast",
      types: ["JOB"],
      handler: async (d) => void got.push(nOf(d)),
    });
    await delay(50);
    const started = Date.now();
    await publisher.publish([job(1)]);
    await eventually(() => got.length === 1, "the delivery", 900);
    expect(Date.now() - started).toBeLessThan(900);
  });

  it("lets a worker handling only some of a subscriber's types leave the rest to its siblings", async () => {
    const a = connect();
    const b = connect();
    const gotA: string[] = [];
    const gotB: string[] = [];
    await a.subscribe({
      subscriber: "split",
      types: ["JOB", "OTHER"],
      handler: async (d) => void gotA.push(d.envelope.type),
    });
    await b.subscribe({
      subscriber: "split",
      types: ["OTHER"],
      handler: async (d) => void gotB.push(d.envelope.type),
    });
    await a.close();
    await b.publish([job(1, "JOB"), job(2, "OTHER"), job(3, "JOB"), job(4, "OTHER")]);
    await eventually(() => gotB.length === 2, "the OTHER events");
    expect(gotB).toEqual(["OTHER", "OTHER"]);
    // The JOB events wait for a worker that handles them.
    await eventually(async () => {
      const split = (await b.stats()).subscribers.find((s) => s.subscriber === "split");
      return split?.pending === 2 && split.inFlight === 0;
    }, "the OTHER deliveries to be acked");
  });

  it("marks a delivery dead in the table when no dead-letter sink is configured", async () => {
    const t = connect();
    await t.subscribe({
      subscriber: "no-sink",
      types: ["JOB"],
      maxAttempts: 2,
      backoff: { initialMs: 5, jitter: 0 },
      handler: async () => {
        throw new Error("broken handler");
      },
    });
    const e = job(1);
    await t.publish([e]);
    await eventually(
      async () => (await t.stats()).subscribers[0]?.deadLettered === 1,
      "the dead delivery",
    );
    const trace = traceEvent(inspect(), e.id)!;
    expect(trace.deliveries).toEqual([
      expect.objectContaining({
        subscriber: "no-sink",
        status: "dead",
        attempts: 2,
        deadReason: "max_attempts",
        handedOff: false,
        lastError: expect.objectContaining({ message: "broken handler" }),
      }),
    ]);
  });

  it("hands an UnrecoverableError to the subscription's sink before marking it handed off", async () => {
    const records: unknown[] = [];
    const t = connect({ deadLetter: { deadLetter: () => void records.push("transport sink") } });
    await t.subscribe({
      subscriber: "poison",
      types: ["JOB"],
      deadLetter: { deadLetter: (r) => void records.push(r) },
      handler: async () => {
        throw new UnrecoverableError("cannot ever work");
      },
    });
    const e = job(1);
    await t.publish([e]);
    await eventually(() => records.length === 1, "the dead letter");
    expect(records[0]).toMatchObject({
      reason: "unrecoverable",
      attempts: 1,
      origin: "sqlite",
      subscriber: "poison",
    });
    await eventually(
      () => traceEvent(inspect(), e.id)?.deliveries[0]?.handedOff === true,
      "the delivery to be marked handed off",
    );
  });

  it("schedules retries with exponential backoff", async () => {
    const t = connect();
    const failedAt: number[] = [];
    await t.subscribe({
      subscriber: "backoff",
      types: ["JOB"],
      maxAttempts: 4,
      backoff: { initialMs: 100, multiplier: 3, jitter: 0 },
      handler: async (d) => {
        failedAt.push(Date.now());
        if (d.attempt < 3) throw new Error(`attempt ${d.attempt}`);
      },
    });
    const row = inspect().prepare(
      `SELECT status, attempts, available_at AS availableAt FROM deliveries WHERE subscriber = 'backoff'`,
    );
    const retryAfter = async (attempts: number) => {
      let r: { status: string; attempts: number; availableAt: number } | undefined;
      await eventually(() => {
        r = row.get() as typeof r;
        return r?.status === "pending" && r.attempts === attempts;
      }, `the retry after attempt ${attempts} to be scheduled`);
      return r!.availableAt - failedAt[attempts - 1]!;
    };
    await t.publish([job(1)]);
    // Scheduled from the failure: initialMs after attempt 1, initialMs × 3 after attempt 2.
    const first = await retryAfter(1);
    expect(first).toBeGreaterThanOrEqual(100);
    expect(first).toBeLessThan(200);
    const second = await retryAfter(2);
    expect(second).toBeGreaterThanOrEqual(300);
    expect(second).toBeLessThan(400);
    await eventually(() => failedAt.length === 3, "the third attempt", 2_000);
  });
});

describe("damaged rows", () => {
  it("sets aside an event whose stored JSON was damaged, and keeps delivering the others", async () => {
    const t = connect();
    await (
      await t.subscribe({ subscriber: "robust", types: ["JOB"], handler: async () => {} })
    ).close();
    const damaged = job(1);
    await t.publish([damaged, job(2)]);
    const rw = new Database(queue.path);
    raw.push(rw);
    rw.prepare("UPDATE events SET payload = '{not json' WHERE id = ?").run(damaged.id);
    const got: number[] = [];
    await t.subscribe({
      subscriber: "robust",
      types: ["JOB"],
      handler: async (d) => void got.push(nOf(d)),
    });
    await eventually(() => got.length === 1, "the intact event");
    expect(got).toEqual([2]);
    expect(traceEvent(inspect(), damaged.id)!.deliveries[0]).toMatchObject({
      status: "dead",
      deadReason: "invalid_payload",
    });
  });
});

describe("leases", () => {
  it("rejects a stale worker's ack, logs it and keeps the new holder's outcome", async () => {
    const logger = memoryLogger();
    const stale = connect({ logger });
    const fresh = connect();
    const outcomes: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await stale.subscribe({
      subscriber: "fenced",
      types: ["JOB"],
      leaseMs: 100,
      handler: async () => {
        await gate; // outlives its lease, ignoring its signal
        outcomes.push("stale ack");
      },
    });
    const e = job(1);
    await stale.publish([e]);
    await eventually(() => countPending(inspect(), { subscriber: "fenced" }) === 1, "the claim");
    let attemptSeen = 0;
    await fresh.subscribe({
      subscriber: "fenced",
      types: ["JOB"],
      leaseMs: 60_000,
      // The default backoff (100 ms) let a loaded machine claim the retry before the assertion.
      backoff: { initialMs: 60_000 },
      handler: async (d) => {
        attemptSeen = d.attempt;
        outcomes.push("fresh holder");
        await gate;
        throw new Error("the new holder fails");
      },
    });
    await eventually(() => attemptSeen === 2, "the redelivery");
    release();
    await eventually(
      () =>
        logger.lines.some(
          (l) => l.level === "warn" && (l.obj as { err?: unknown }).err instanceof LeaseLostError,
        ),
      "the discarded stale outcome to be logged",
    );
    await delay(50);
    // The stale ack was discarded: the delivery waits for a retry after the new holder's failure.
    const [delivery] = traceEvent(inspect(), e.id)!.deliveries;
    expect(delivery).toMatchObject({
      status: "pending",
      attempts: 2,
      lastError: { message: "the new holder fails" },
    });
  });

  it("keeps the lease of a handler that extends it, and rejects an extension after losing it", async () => {
    const a = connect();
    const b = connect();
    const attempts: number[] = [];
    let lateExtension: unknown;
    await a.subscribe({
      subscriber: "extender",
      types: ["JOB"],
      leaseMs: 400,
      handler: async (d) => {
        attempts.push(d.attempt);
        if (d.attempt > 1) return;
        // Runs 2.5 leases long, extending every quarter lease.
        for (let i = 0; i < 10; i++) {
          await delay(100);
          await d.extendLease(400);
        }
        await delay(1_000); // now let it lapse
        lateExtension = await d.extendLease().catch((e: unknown) => e);
      },
    });
    await b.subscribe({
      subscriber: "extender",
      types: ["JOB"],
      leaseMs: 400,
      handler: async (d) => void attempts.push(d.attempt),
    });
    await a.publish([job(1)]);
    await delay(1_000);
    expect(attempts).toEqual([1]);
    await eventually(() => lateExtension !== undefined, "the late extension", 5_000);
    expect(lateExtension).toBeInstanceOf(LeaseLostError);
    expect(attempts).toEqual([1, 2]);
  });

  // Hand-backs (drain timeout, rolling restarts beyond maxAttempts) and a crash-looping
  // handler are in the conformance suite (@switchyard/transport-testkit), run by
  // conformance.test.ts.
});

describe("ephemeral subscribers", () => {
  it("leave no rows behind when they close", async () => {
    const t = connect();
    const sub = await t.subscribe({
      subscriber: "tmp-1",
      types: ["JOB"],
      ephemeral: true,
      handler: async () => {},
    });
    await t.publish([job(1)]);
    await sub.close();
    const db = inspect();
    for (const table of ["subscribers", "subscriber_types", "deliveries"]) {
      expect(db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get()).toBe(0);
    }
  });
});

describe("keepAcked", () => {
  it("keeps acked deliveries as rows when asked to", async () => {
    const t = connect({ keepAcked: true });
    const got: number[] = [];
    await t.subscribe({
      subscriber: "audited",
      types: ["JOB"],
      handler: async (d) => void got.push(nOf(d)),
    });
    const e = job(1);
    await t.publish([e]);
    await eventually(() => got.length === 1, "the delivery");
    await eventually(
      () => traceEvent(inspect(), e.id)?.deliveries[0]?.status === "acked",
      "the acked row",
    );
  });

  it("deletes acked deliveries by default; tracing still shows them acked", async () => {
    const t = connect();
    const got: number[] = [];
    await t.subscribe({
      subscriber: "plain",
      types: ["JOB"],
      handler: async (d) => void got.push(nOf(d)),
    });
    const e = job(1);
    await t.publish([e]);
    await eventually(() => got.length === 1, "the delivery");
    await eventually(
      () => inspect().prepare("SELECT COUNT(*) FROM deliveries").pluck().get() === 0,
      "the row to go",
    );
    expect(traceEvent(inspect(), e.id)!.deliveries).toEqual([
      expect.objectContaining({ subscriber: "plain", status: "acked", fromCursor: true }),
    ]);
  });
});
