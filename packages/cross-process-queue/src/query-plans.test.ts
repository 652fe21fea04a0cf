import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKLOG_SQL } from "./backlog";
import { QueueStore } from "./claim";
import { Writer } from "./database";
import { lastSeqBefore, sqliteTransport } from "./index";
import { prune } from "./retention";
import { exchangeRequest, job, tempQueue } from "./test/fixtures";

/**
 * The reads an operator's tools run often (the dashboard's overview, the Pipeline page, `/metrics`)
 * stay cheap on a big file: their query plans, not their timings, are checked here. A full scan
 * of `events` or an index SQLite builds for one statement costs time proportional to every event
 * kept, on every call.
 */
describe("query plans of the inspector's frequent reads", () => {
  const q = tempQueue();
  let db: Database.Database;

  beforeAll(async () => {
    const transport = sqliteTransport({ path: q.path });
    await transport.register("a", ["JOB", "OTHER"]);
    await transport.register("b", ["OTHER"]);
    await transport.publish(Array.from({ length: 200 }, (_, n) => job(n, n % 3 ? "JOB" : "OTHER")));
    await transport.close();
    db = new Database(q.path, { readonly: true });
  });
  afterAll(() => {
    db.close();
    q.cleanup();
  });

  const plan = (sql: string, params: object = {}): string[] =>
    (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as { detail: string }[]).map(
      (r) => r.detail,
    );

  it("counts the backlog without building an automatic index or scanning all of events", () => {
    const steps = plan(BACKLOG_SQL, { now: Date.now() });
    expect(steps.filter((s) => /AUTOMATIC/.test(s) && /\be\b|events/.test(s))).toEqual([]);
    expect(steps.filter((s) => /^SCAN (e|events)\b/.test(s))).toEqual([]);
  });

  it("finds the last event before a time from the ends of the primary key, never a full scan", () => {
    const statements: string[] = [];
    const traced = new Database(q.path, {
      readonly: true,
      verbose: (sql) => statements.push(String(sql)),
    });
    try {
      expect(lastSeqBefore(traced, Date.now() + 60_000)).toBe(200);
    } finally {
      traced.close();
    }
    expect(statements.length).toBeGreaterThan(0);
    for (const sql of statements)
      expect(
        plan(sql.replace(/\?/g, "1")).filter((s) => /^SCAN events\b/.test(s)),
        sql,
      ).toEqual([]);
  });

  it("finds the highest fencing token a subscriber's leases hold with one index seek per claim", () => {
    const statements: string[] = [];
    const traced = new Database(q.path, { verbose: (sql) => statements.push(String(sql)) });
    try {
      const store = new QueueStore(traced, new Writer(traced, q.path, 5_000), {
        maxPayloadBytes: 1_000_000,
        keepAcked: false,
      });
      store.register("w", ["JOB"], false);
      store.exchange(exchangeRequest([], 1));
    } finally {
      traced.close();
    }
    const state = statements.find((s) => /MAX\(lease_token\)/.test(s) && /cursor_seq/.test(s));
    expect(state, "the claim's one read of its state").toBeDefined();
    expect(plan(state!, { subscriber: "w" })).toContain(
      "SEARCH deliveries USING COVERING INDEX deliveries_leased (subscriber=? AND lease_token>? AND lease_token<?)",
    );
  });

  it("prunes without a full scan of events outside the window it prunes", async () => {
    const statements: string[] = [];
    const traced = new Database(q.path, { verbose: (sql) => statements.push(String(sql)) });
    try {
      await prune(traced, new Writer(traced, q.path, 5_000), {
        now: Date.now() + 2 * 3_600_000, // every event is past the retention
        retentionMs: 3_600_000,
        ephemeralTimeoutMs: 3_600_000,
      });
    } finally {
      traced.close();
    }
    expect(statements.length).toBeGreaterThan(0);
    for (const sql of statements.filter((s) => /\bevents\b/.test(s)))
      expect(
        plan(sql.replace(/\?/g, "1")).filter((s) => /^SCAN events\b/.test(s)),
        sql,
      ).toEqual([]);
  });
});
