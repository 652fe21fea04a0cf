import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  SqliteHeartbeatSink,
  countPending,
  deadDeliveries,
  depthByHour,
  eventsPerMinute,
  failuresByType,
  getEvent,
  lastSeqBefore,
  listHeartbeats,
  listSubscribers,
  oldestPendingAge,
  openQueueReadOnly,
  recentEvents,
  sqliteTransport,
  subscriberStats,
  traceEvent,
} from "./index";
import { eventually, job, tempQueue } from "./test/fixtures";

const HOUR = 3_600_000;
const T0 = Date.UTC(2025, 0, 15, 10, 0, 0);

// One filled queue file: events spread over three hours, three subscribers in different states.
describe("introspection of a filled queue", () => {
  const queue = tempQueue();
  let db: Database.Database;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    const t = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    for (const [subscriber, types] of [
      ["trainer", ["NEW_GAMES"]],
      ["monitor", ["NEW_GAMES", "TRAINING_FAILED"]],
      ["flaky", ["TRAINING_FAILED"]],
    ] as const) {
      await (await t.subscribe({ subscriber, types: [...types], handler: async () => {} })).close();
    }
    const games = Array.from({ length: 6 }, (_, i) =>
      job(i, "NEW_GAMES", { subject: i % 2 ? "hex8_2p" : "sq8_4p" }),
    );
    const failures = [
      job(100, "TRAINING_FAILED", { subject: "hex8_2p" }),
      job(101, "TRAINING_FAILED"),
    ];
    ids.firstGame = games[0]!.id;
    ids.failure = failures[0]!.id;
    await t.publish(games);
    await t.publish(failures);
    // "trainer" handles all its events; "flaky" dead-letters both failures (no sink: kept as dead).
    let handled = 0;
    const trainer = await t.subscribe({
      subscriber: "trainer",
      types: ["NEW_GAMES"],
      concurrency: 4,
      handler: async () => void handled++,
    });
    await eventually(() => handled === 6, "trainer to finish");
    await trainer.close();
    const flaky = await t.subscribe({
      subscriber: "flaky",
      types: ["TRAINING_FAILED"],
      handler: async () => {
        throw new Error("cannot parse");
      },
      maxAttempts: 1,
    });
    await eventually(
      async () =>
        (await t.stats()).subscribers.find((s) => s.subscriber === "flaky")?.deadLettered === 2,
      "dead letters",
    );
    await flaky.close();
    await t.close();
    // Spread the events over hours, as if published over time.
    const rw = new Database(queue.path);
    const seqs = rw.prepare("SELECT seq FROM events ORDER BY seq").pluck().all() as number[];
    const at = rw.prepare("UPDATE events SET created_at = ? WHERE seq = ?");
    seqs.forEach((seq, i) => at.run(T0 + Math.floor(i / 3) * HOUR + i * 60_000, seq));
    rw.prepare("UPDATE deliveries SET updated_at = ? WHERE status = 'dead'").run(T0 + 3 * HOUR);
    rw.close();
    const sink = new SqliteHeartbeatSink({ path: queue.path });
    sink.write({
      daemon: "training_daemon",
      pid: 4242,
      host: "node-1",
      status: "running",
      health: { healthy: true },
      stats: { cycles: 3 },
      startedAt: new Date(T0).toISOString(),
      at: new Date(T0 + HOUR).toISOString(),
    });
    await sink.close();
    db = openQueueReadOnly(queue.path);
  });
  afterAll(() => {
    db?.close();
    queue.cleanup();
  });

  it("counts deliveries not acked yet, per subscriber and in total", () => {
    // monitor never ran: 6 games + 2 failures pending; trainer done; flaky's are dead.
    expect(countPending(db, { subscriber: "monitor" })).toBe(8);
    expect(countPending(db, { subscriber: "trainer" })).toBe(0);
    expect(countPending(db, { subscriber: "flaky" })).toBe(0);
    expect(countPending(db)).toBe(8);
  });

  it("reports pending, in flight, lag, dead and the oldest pending age per subscriber", () => {
    const stats = subscriberStats(db, T0 + 4 * HOUR);
    expect(stats).toEqual([
      { subscriber: "flaky", pending: 0, inFlight: 0, retrying: 0, lag: 0, deadLettered: 2 },
      {
        subscriber: "monitor",
        pending: 8,
        inFlight: 0,
        retrying: 0,
        lag: 8,
        deadLettered: 0,
        oldestPendingMs: 4 * HOUR,
      },
      { subscriber: "trainer", pending: 0, inFlight: 0, retrying: 0, lag: 0, deadLettered: 0 },
    ]);
    expect(oldestPendingAge(db, T0 + 4 * HOUR)).toBe(4 * HOUR);
  });

  it("lists subscribers with their types", () => {
    expect(listSubscribers(db).map((s) => [s.name, s.types, s.ephemeral])).toEqual([
      ["flaky", ["TRAINING_FAILED"], false],
      ["monitor", ["NEW_GAMES", "TRAINING_FAILED"], false],
      ["trainer", ["NEW_GAMES"], false],
    ]);
  });

  it("counts events per minute within a window", () => {
    const perMinute = eventsPerMinute(db, { now: T0 + HOUR + 30 * 60_000, windowMs: HOUR });
    expect(perMinute).toEqual([
      { minute: "2025-01-15 11:03", count: 1 },
      { minute: "2025-01-15 11:04", count: 1 },
      { minute: "2025-01-15 11:05", count: 1 },
    ]);
  });

  it("lists failing types: dead in the window and retrying now", () => {
    expect(failuresByType(db, { now: T0 + 4 * HOUR })).toEqual([
      { type: "TRAINING_FAILED", dead: 2, retrying: 0 },
    ]);
    expect(failuresByType(db, { now: T0 + 30 * HOUR })).toEqual([]);
    expect(deadDeliveries(db, { subscriber: "flaky" })).toHaveLength(2);
  });

  it("shows queue depth by the hour events were published", () => {
    expect(depthByHour(db)).toEqual([
      { hour: "2025-01-15 10:00", pending: 3 },
      { hour: "2025-01-15 11:00", pending: 3 },
      { hour: "2025-01-15 12:00", pending: 2 },
    ]);
    expect(depthByHour(db, { subscriber: "trainer" })).toEqual([]);
  });

  it("lists recent events by type, subject and time", () => {
    expect(recentEvents(db, { limit: 3 }).map((e) => e.seq)).toEqual([8, 7, 6]);
    expect(
      recentEvents(db, { type: "NEW_GAMES", subject: "hex8_2p" }).map((e) => e.envelope.data),
    ).toEqual([{ n: 5 }, { n: 3 }, { n: 1 }]);
    expect(recentEvents(db, { since: T0 + 2 * HOUR }).map((e) => e.type)).toEqual([
      "TRAINING_FAILED",
      "TRAINING_FAILED",
    ]);
    expect(getEvent(db, ids.firstGame!)?.createdAt).toBe(new Date(T0).toISOString());
    expect(lastSeqBefore(db, T0 + HOUR)).toBe(3);
  });

  it("traces one event through every subscriber", () => {
    const trace = traceEvent(db, ids.failure!)!;
    expect(trace.event.type).toBe("TRAINING_FAILED");
    expect(trace.deliveries.map((d) => [d.subscriber, d.status, d.fromCursor ?? false])).toEqual([
      ["flaky", "dead", false],
      ["monitor", "pending", true],
    ]);
    expect(trace.deliveries[0]).toMatchObject({
      deadReason: "max_attempts",
      attempts: 1,
      lastError: { message: "cannot parse" },
    });
    const game = traceEvent(db, ids.firstGame!)!;
    expect(game.deliveries.map((d) => [d.subscriber, d.status])).toEqual([
      ["monitor", "pending"],
      ["trainer", "acked"],
    ]);
    expect(traceEvent(db, "no-such-id")).toBeUndefined();
  });

  it("lists daemon heartbeats", () => {
    expect(listHeartbeats(db, T0 + 2 * HOUR)).toEqual([
      {
        daemon: "training_daemon",
        pid: 4242,
        host: "node-1",
        status: "running",
        health: { healthy: true },
        stats: { cycles: 3 },
        startedAt: new Date(T0).toISOString(),
        updatedAt: new Date(T0 + HOUR).toISOString(),
        ageMs: HOUR,
      },
    ]);
  });

  it("answers the backlog view the runbook's one-liners use", () => {
    expect(
      db
        .prepare(
          "SELECT subscriber, pending, in_flight, retrying, dead, lag FROM backlog ORDER BY subscriber",
        )
        .all(),
    ).toEqual([
      { subscriber: "flaky", pending: 0, in_flight: 0, retrying: 0, dead: 2, lag: 0 },
      { subscriber: "monitor", pending: 8, in_flight: 0, retrying: 0, dead: 0, lag: 8 },
      { subscriber: "trainer", pending: 0, in_flight: 0, retrying: 0, dead: 0, lag: 0 },
    ]);
  });

  it("never writes through the read-only connection", () => {
    expect(() => db.prepare("DELETE FROM events").run()).toThrow(/readonly/);
  });
});
