import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Driver, Inspector, StoredEvent } from "@switchyard/transport";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InspectorQueryError, sqliteDriver, subscriberStats } from "./index";
import { delay, job, tempQueue } from "./test/fixtures";

const docs = join(import.meta.dirname, "../../../docs/operations.md");

/** The backlog query of docs/operations.md, as written there. */
function documentedBacklogSql(): string {
  const text = readFileSync(docs, "utf8");
  const start = text.indexOf("-- backlog per subscriber");
  expect(start, "docs/operations.md shows the backlog query").toBeGreaterThan(0);
  return text.slice(start, text.indexOf(";", start) + 1);
}

describe("SqliteInspector over a file with every delivery state", () => {
  const q = tempQueue();
  let driver: Driver;
  let inspector: Inspector;
  let raw: Database.Database;
  let seqs: Record<number, string>; // seq → event id
  let now: number;

  beforeAll(async () => {
    driver = await sqliteDriver.open(
      { scheme: "sqlite", text: q.path, rest: q.path, params: {} },
      {},
    );
    const transport = driver.transport();
    await transport.register!("a", ["JOB"]);
    await transport.register!("b", ["JOB"]);
    await transport.register!("c", ["OTHER"]);
    const jobs = Array.from({ length: 12 }, (_, n) =>
      job(n, "JOB", { subject: n % 2 ? "odd" : "even" }),
    );
    await transport.publish(jobs);
    inspector = driver.inspector();
    raw = new Database(q.path);
    seqs = Object.fromEntries(
      (raw.prepare("SELECT seq, id FROM events").all() as { seq: number; id: string }[]).map(
        (r) => [r.seq, r.id],
      ),
    );
    now = Date.now();
    // Subscriber "a" took events 1..10 into deliveries (11 and 12 wait after its cursor).
    raw.prepare("UPDATE subscribers SET cursor_seq = 10 WHERE name = 'a'").run();
    const row = raw.prepare(
      `INSERT INTO deliveries (subscriber, event_seq, type, status, attempts, available_at, lease_token,
                               lease_until, last_error, dead_reason, handed_off, updated_at)
       VALUES ('a', @seq, 'JOB', @status, @attempts, @available, @token, @until, @error, @reason, 0, @now)`,
    );
    const error = JSON.stringify({ name: "Error", message: "GPU out of memory" });
    const rows = [
      { seq: 1, status: "pending", attempts: 0, available: now, until: null }, // pending
      { seq: 2, status: "pending", attempts: 2, available: now + 600_000, until: null, error }, // retrying (backoff)
      { seq: 3, status: "leased", attempts: 1, available: now + 60_000, until: now + 60_000 }, // in flight
      { seq: 4, status: "leased", attempts: 1, available: now - 1_000, until: now - 1_000 }, // retrying (lease expired)
      { seq: 5, status: "leased", attempts: 3, available: now - 5_000, until: now - 5_000 }, // retrying (lease expired)
      {
        seq: 6,
        status: "dead",
        attempts: 5,
        available: now,
        until: null,
        error,
        reason: "max_attempts",
      }, // dead
    ];
    for (const r of rows)
      row.run({
        token: r.until === null ? null : 7,
        error: null,
        reason: null,
        ...r,
        now,
      });
  });

  afterAll(async () => {
    raw.close();
    await driver.close();
    q.cleanup();
  });

  it("counts an expired lease as retrying, never in flight", async () => {
    const [a, b, c] = await inspector.subscribers();
    expect(a).toMatchObject({
      subscriber: "a",
      types: ["JOB"],
      pending: 3, // seq 1, and 11 and 12 after the cursor
      inFlight: 1, // seq 3
      retrying: 3, // seq 2 (backoff), 4 and 5 (expired leases)
      dead: 1,
      lag: 7,
    });
    expect(b).toMatchObject({
      subscriber: "b",
      pending: 12,
      inFlight: 0,
      retrying: 0,
      dead: 0,
      lag: 12,
    });
    expect(c).toMatchObject({ subscriber: "c", pending: 0, lag: 0 });
    expect(c!.oldestPendingMs).toBeUndefined();
    // The transport's stats() words it as the Transport contract does: pending = waiting to be
    // claimed (retries and expired leases included), lag = pending + inFlight — the same total.
    const stats = (await driver.transport().stats()).subscribers.find((s) => s.subscriber === "a");
    expect(stats).toMatchObject({ pending: 6, inFlight: 1, lag: 7, deadLettered: 1 });
    expect(stats).not.toHaveProperty("retrying");
  });

  it("gives the same backlog as the backlog view and the SQL of docs/operations.md", async () => {
    const fromInspector = (await inspector.subscribers()).map((s) => ({
      subscriber: s.subscriber,
      pending: s.pending,
      in_flight: s.inFlight,
      retrying: s.retrying,
      dead: s.dead,
      lag: s.lag,
    }));
    const columns = "subscriber, pending, in_flight, retrying, dead, lag";
    const fromView = raw.prepare(`SELECT ${columns} FROM backlog ORDER BY subscriber`).all();
    const documented = raw.prepare(documentedBacklogSql()).all() as Record<string, unknown>[];
    expect(fromView).toEqual(fromInspector);
    // The old typed function says the same (until the CLI stops using it).
    expect(
      subscriberStats(raw).map((s) => ({
        subscriber: s.subscriber,
        pending: s.pending,
        in_flight: s.inFlight,
        retrying: s.retrying,
        dead: s.deadLettered,
        lag: s.lag,
      })),
    ).toEqual(fromInspector);
    expect(documented.map(({ oldest_pending_ms: _, ...rest }) => rest)).toEqual(fromInspector);
    const ages = (await inspector.subscribers()).map((s) => s.oldestPendingMs);
    documented.forEach((row, i) => {
      if (ages[i] === undefined) expect(row.oldest_pending_ms).toBeNull();
      else expect(Math.abs((row.oldest_pending_ms as number) - ages[i])).toBeLessThan(1_000);
    });
  });

  it("tells where one event is for every subscriber", async () => {
    const of = async (seq: number) =>
      Object.fromEntries((await inspector.deliveries(seqs[seq]!)).map((d) => [d.subscriber, d]));
    expect(await of(1)).toMatchObject({
      a: { state: "pending", attempts: 0 },
      b: { state: "pending" },
    });
    const inFlight = await of(3);
    expect(inFlight.a).toMatchObject({
      state: "in_flight",
      attempts: 1,
      leaseUntil: new Date(now + 60_000).toISOString(),
    });
    expect(await of(4)).toMatchObject({
      a: { state: "retrying", availableAt: new Date(now - 1_000).toISOString() },
    });
    expect((await of(2)).a).toMatchObject({
      state: "retrying",
      lastError: { message: "GPU out of memory" },
    });
    expect((await of(6)).a).toMatchObject({
      state: "dead",
      attempts: 5,
      deadReason: "max_attempts",
    });
    expect((await of(8)).a).toMatchObject({ state: "acked" }); // behind the cursor, no row: acked
    expect((await of(12)).a).toMatchObject({ state: "pending", attempts: 0 });
    expect(Object.keys(await of(1))).toEqual(["a", "b"]); // "c" is not registered for JOB
    expect(await inspector.deliveries("no-such-event")).toEqual([]);
  });

  it("pages events newest first with an opaque cursor, and filters by type and subject", async () => {
    const seen: StoredEvent[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await inspector.events({ limit: 5, ...(cursor ? { cursor } : {}) });
      seen.push(...page.events);
      cursor = page.next;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen.map((e) => e.seq)).toEqual([12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    const oldest = await inspector.events({ order: "oldest", limit: 4 });
    expect(oldest.events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    const odd = await inspector.events({ subject: "odd", types: ["JOB"] });
    expect(odd.events).toHaveLength(6);
    expect(odd.events.every((e) => e.subject === "odd" && e.envelope?.subject === "odd")).toBe(
      true,
    );
    expect((await inspector.events({ types: ["OTHER"] })).events).toEqual([]);
    await expect(inspector.events({ cursor: "not a cursor" })).rejects.toBeInstanceOf(
      InspectorQueryError,
    );
    const one = await inspector.event(seqs[3]!);
    expect(one).toMatchObject({ seq: 3, id: seqs[3], type: "JOB", source: "cpq-test" });
    expect(one!.envelope!.data).toEqual({ n: 2 });
    expect(await inspector.event("nope")).toBeUndefined();
  });
});

describe("SqliteInspector: time windows, causation, damaged rows", () => {
  const q = tempQueue();
  let driver: Driver;
  let inspector: Inspector;

  beforeAll(async () => {
    driver = await sqliteDriver.open(
      { scheme: "sqlite", text: q.path, rest: q.path, params: {} },
      {},
    );
    inspector = driver.inspector();
  });
  afterAll(async () => {
    await driver.close();
    q.cleanup();
  });

  it("filters events by time and counts them per type per bucket, empty buckets included", async () => {
    const transport = driver.transport();
    await transport.publish([job(1, "A"), job(2, "A"), job(3, "B")]);
    await delay(30);
    const middle = Date.now();
    await delay(30);
    await transport.publish([job(4, "A"), job(5, "C")]);
    expect((await inspector.events({ since: middle })).events.map((e) => e.type)).toEqual([
      "C",
      "A",
    ]);
    expect((await inspector.events({ until: new Date(middle) })).events).toHaveLength(3);
    const since = middle - 60_000 * 2;
    const counts = await inspector.counts({
      since,
      until: since + 60_000 * 4,
      bucketMs: 60_000,
      types: ["A", "B", "D"],
    });
    expect(counts.bucketMs).toBe(60_000);
    expect(counts.buckets).toHaveLength(4);
    expect(counts.totals).toEqual({ A: 3, B: 1, D: 0 });
    expect(counts.buckets.map((b) => b.start)).toEqual(
      [0, 1, 2, 3].map((i) => new Date(since + i * 60_000).toISOString()),
    );
    expect(counts.buckets[0]!.counts).toEqual({ A: 0, B: 0, D: 0 });
    const sum = counts.buckets.reduce((n, b) => n + (b.counts.A ?? 0), 0);
    expect(sum).toBe(3);
    const all = await inspector.counts({ since });
    expect(all.totals).toEqual({ A: 3, B: 1, C: 1 });
    await expect(inspector.counts({ since: "yesterday-ish" })).rejects.toBeInstanceOf(
      InspectorQueryError,
    );
    await expect(inspector.counts({ since: 0, bucketMs: 1 })).rejects.toBeInstanceOf(
      InspectorQueryError,
    );
  });

  it("follows causes up and effects down, cut at depth and limit", async () => {
    const root = job(1, "ROOT");
    const c1 = job(2, "CHILD", { causationid: root.id });
    const c2 = job(3, "CHILD", { causationid: root.id });
    const g = job(4, "GRANDCHILD", { causationid: c1.id });
    await driver.transport().publish([root, c1, c2, g]);
    const tree = await inspector.causation(c1.id);
    expect(tree!.causes.map((e) => e.id)).toEqual([root.id]);
    expect(tree!.root.event.id).toBe(c1.id);
    expect(tree!.root.caused.map((n) => n.event.id)).toEqual([g.id]);
    expect(tree!.truncated).toBe(false);
    const full = await inspector.causation(root.id);
    expect(full!.causes).toEqual([]);
    expect(full!.root.caused.map((n) => [n.event.id, n.caused.map((m) => m.event.id)])).toEqual([
      [c1.id, [g.id]],
      [c2.id, []],
    ]);
    expect((await inspector.causation(g.id))!.causes.map((e) => e.id)).toEqual([root.id, c1.id]);
    expect((await inspector.causation(g.id))!.root.event.causedBy).toBe(c1.id);
    const shallow = await inspector.causation(root.id, { depth: 1 });
    expect(shallow!.root.caused.map((n) => n.caused.length)).toEqual([0, 0]);
    expect(shallow!.truncated).toBe(true);
    const few = await inspector.causation(root.id, { limit: 2 });
    expect(few!.truncated).toBe(true);
    expect(await inspector.causation("nope")).toBeUndefined();
  });

  it("finds rare events and effects thousands of events away, window by window", async () => {
    const transport = driver.transport();
    const cause = job(1, "RARE");
    await transport.publish([cause]);
    for (let n = 0; n < 12_000; n += 2_000)
      await transport.publish(Array.from({ length: 2_000 }, (_, i) => job(n + i, "FILLER")));
    const effect = job(2, "RARE_EFFECT", { causationid: cause.id });
    await transport.publish([effect]);
    const newest = await inspector.events({ types: ["RARE", "RARE_EFFECT"], limit: 1 });
    expect(newest.events.map((e) => e.id)).toEqual([effect.id]);
    const older = await inspector.events({
      types: ["RARE", "RARE_EFFECT"],
      limit: 1,
      cursor: newest.next!,
    });
    expect(older.events.map((e) => e.id)).toEqual([cause.id]);
    expect(older.next).toBeUndefined();
    const oldest = await inspector.events({ types: ["RARE_EFFECT"], order: "oldest" });
    expect(oldest.events.map((e) => e.id)).toEqual([effect.id]);
    const tree = await inspector.causation(cause.id);
    expect(tree!.root.caused.map((n) => n.event.id)).toEqual([effect.id]);
  });

  it("returns damaged rows with why, never throws", async () => {
    const transport = driver.transport();
    const e = job(99, "BROKEN");
    await transport.publish([e]);
    await driver.heartbeatSink().write({
      daemon: "d",
      pid: 1,
      host: "h",
      status: "running",
      health: {} as never,
      stats: {} as never,
      restarts: 0,
      startedAt: null,
      at: new Date().toISOString(),
    });
    await driver.deadLetterSink()!.deadLetter({
      envelope: e,
      subscriber: "s",
      reason: "max_attempts",
      attempts: 3,
      error: { name: "Error", message: "x" },
      failedAt: new Date().toISOString(),
      origin: "sqlite",
    });
    const raw = new Database(q.path);
    raw.prepare("UPDATE events SET payload = '{oops' WHERE id = ?").run(e.id);
    raw.prepare("UPDATE daemon_heartbeats SET health = 'not json' WHERE daemon = 'd'").run();
    raw.prepare("UPDATE dead_letters SET envelope = '[[[' WHERE event_id = ?").run(e.id);
    raw.close();
    const stored = await inspector.event(e.id);
    expect(stored).toMatchObject({ id: e.id, type: "BROKEN" });
    expect(stored!.damaged).toMatch(/payload/);
    expect(stored!.envelope).toBeUndefined();
    const [beat] = await inspector.heartbeats();
    expect(beat!.damaged).toMatch(/daemon_heartbeats.health/);
    expect(beat!.health).toBeNull();
    const [dead] = (await inspector.deadLetters()).deadLetters;
    expect(dead!.damaged).toMatch(/dead_letters.envelope/);
    expect(dead!.envelope).toBeUndefined();
  });
});

describe("SqliteInspector: events after a cursor, per type since it was subscribed", () => {
  const q = tempQueue();
  afterAll(() => q.cleanup());

  it("counts a type added later only from when it was added, for each subscriber's own cursor", async () => {
    const driver = await sqliteDriver.open(
      { scheme: "sqlite", text: q.path, rest: q.path, params: {} },
      {},
    );
    try {
      const transport = driver.transport();
      await transport.register!("early", ["JOB", "OTHER"]);
      await transport.register!("widened", ["JOB"]);
      await transport.register!("late", ["OTHER"]);
      await transport.publish([job(1, "OTHER"), job(2, "OTHER"), job(3, "JOB"), job(4, "JOB")]);
      // "widened" takes OTHER from now on: the two OTHER events above are not its backlog.
      await transport.register!("widened", ["JOB", "OTHER"]);
      await transport.publish([job(5, "OTHER"), job(6, "JOB"), job(7, "OTHER")]);
      const raw = new Database(q.path);
      try {
        // "late" has already taken the first three events into deliveries (its cursor moved).
        raw.prepare("UPDATE subscribers SET cursor_seq = 3 WHERE name = 'late'").run();
        // Event n was published n minutes after an hour ago: ages tell the events apart.
        const base = Date.now() - 3_600_000;
        raw.prepare("UPDATE events SET created_at = @base + seq * 60000").run({ base });
        const oldest = (seq: number) => base + seq * 60_000;
        const before = Date.now();
        const backlog = Object.fromEntries(
          (await driver.inspector().subscribers()).map((s) => [s.subscriber, s]),
        );
        const after = Date.now();
        expect(backlog.early).toMatchObject({ pending: 7, lag: 7 });
        expect(backlog.widened).toMatchObject({ pending: 5, lag: 5 });
        expect(backlog.late).toMatchObject({ pending: 2, lag: 2 });
        // The oldest waiting event: seq 1 for "early", the first JOB (3) for "widened", and the
        // first OTHER after its cursor (5) for "late".
        for (const [name, seq] of [
          ["early", 1],
          ["widened", 3],
          ["late", 5],
        ] as const) {
          expect(backlog[name]!.oldestPendingMs).toBeGreaterThanOrEqual(before - oldest(seq));
          expect(backlog[name]!.oldestPendingMs).toBeLessThanOrEqual(after - oldest(seq));
        }
        const view = raw
          .prepare(
            "SELECT subscriber, pending, lag, oldest_pending_at FROM backlog ORDER BY subscriber",
          )
          .all() as {
          subscriber: string;
          pending: number;
          lag: number;
          oldest_pending_at: number;
        }[];
        expect(view.map(({ subscriber, pending, lag }) => ({ subscriber, pending, lag }))).toEqual([
          { subscriber: "early", pending: 7, lag: 7 },
          { subscriber: "late", pending: 2, lag: 2 },
          { subscriber: "widened", pending: 5, lag: 5 },
        ]);
        expect(view.find((r) => r.subscriber === "late")!.oldest_pending_at).toBe(oldest(5));
        expect(view.find((r) => r.subscriber === "widened")!.oldest_pending_at).toBe(oldest(3));
      } finally {
        raw.close();
      }
    } finally {
      await driver.close();
    }
  });
});
