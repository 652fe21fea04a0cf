import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEnvelope, type Envelope } from "@switchyard/event-schema";
import {
  type DeadLetterRecord,
  MemoryTransport,
  type Transport,
  UnknownSubscriptionError,
} from "@switchyard/transport";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DeadLetterNotFoundError,
  DeadLetterSchemaError,
  UnboundedPurgeError,
} from "./dead-letter-errors";
import { type ReplayTarget, SqliteDeadLetterStore } from "./dead-letters";
import { QueueOptionsError } from "./errors";

/** Hand a record back to the transport subscriber that failed it (what dlq's `replayTo` does for a transport). */
const requeueTo = (transport: Transport): ReplayTarget => ({
  replay: (record) => transport.requeue!(record.subscriber, record.envelope),
});

let dir: string;
let path: string;
const stores: SqliteDeadLetterStore[] = [];
const open = (options: ConstructorParameters<typeof SqliteDeadLetterStore>[0] = {}) => {
  const store = new SqliteDeadLetterStore({ path, retryBackoff: { initialMs: 0 }, ...options });
  stores.push(store);
  return store;
};
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dlq-"));
  path = join(dir, "coordination.db");
});
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

const envelope = (n: number, type = "TRAINING_COMPLETED"): Envelope =>
  createEnvelope({
    type,
    source: "trainer",
    data: { config_key: "hex8_2p", model_path: `m${n}.pt`, loss: 0.1 },
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  });
const record = (e: Envelope, overrides: Partial<DeadLetterRecord> = {}): DeadLetterRecord => ({
  envelope: e,
  subscriber: "evaluator",
  reason: "max_attempts",
  attempts: 5,
  error: {
    name: "Error",
    message: "GPU out of memory",
    stack: "Error: GPU out of memory\n    at train (train.ts:1:1)",
  },
  failedAt: new Date().toISOString(),
  origin: "sqlite",
  ...overrides,
});

describe("SqliteDeadLetterStore", () => {
  it("keeps the whole envelope, the subscriber, the error and the attempts", async () => {
    const store = open();
    const e = envelope(1);
    await store.deadLetter(record(e));
    const [listed] = store.list();
    expect(listed).toMatchObject({
      eventId: e.id,
      eventType: "TRAINING_COMPLETED",
      subscriber: "evaluator",
      origin: "sqlite",
      reason: "max_attempts",
      attempts: 5,
      replays: 0,
      status: "pending_retry",
      error: { name: "Error", message: "GPU out of memory" },
    });
    expect(store.inspect(listed!.id).envelope).toEqual(e);
    expect(store.inspect(listed!.id).error.stack).toContain("at train");
  });

  it("adds up attempts when the same event fails again for the same subscriber", async () => {
    const store = open();
    const e = envelope(1);
    await store.deadLetter(record(e, { attempts: 3 }));
    await store.deadLetter(
      record(e, { attempts: 2, error: { name: "Error", message: "second failure" } }),
    );
    await store.deadLetter(record(e, { subscriber: "promoter" }));
    const rows = store.list();
    expect(rows).toHaveLength(2);
    expect(rows.find((r) => r.subscriber === "evaluator")).toMatchObject({
      attempts: 5,
      error: { message: "second failure" },
    });
  });

  it("waits exponentially longer before retrying a record that keeps failing after replays", async () => {
    let now = 1_000_000;
    const store = open({ now: () => now, retryBackoff: { initialMs: 100, maxMs: 1000 } });
    const e = envelope(1);
    await store.deadLetter(record(e));
    const due = () => store.list()[0]!.nextRetryAt! - now;
    expect(due()).toBe(100);
    for (const expected of [200, 400, 800, 1000]) {
      now += 10_000;
      const [claimed] = store.claimDue();
      store.settle(claimed!, { status: "replayed" });
      await store.deadLetter(record(e)); // the replayed delivery failed again
      expect(due()).toBe(expected);
    }
  });

  it("refuses a bad retry backoff with a typed error, before opening anything", () => {
    for (const retryBackoff of [{ initialMs: -1 }, { maxMs: Number.NaN }])
      expect(() => open({ retryBackoff })).toThrow(QueueOptionsError);
    expect(existsSync(path)).toBe(false);
  });

  it("caps stored error messages and stacks", async () => {
    const store = open({ maxErrorChars: 20, maxStackChars: 30 });
    await store.deadLetter(
      record(envelope(1), {
        error: { name: "Error", message: "x".repeat(100), stack: "y".repeat(100) },
      }),
    );
    const { error } = store.list()[0]!;
    expect(error.message).toBe(`${"x".repeat(20)}…[truncated 80 chars]`);
    expect(error.stack).toBe(`${"y".repeat(30)}…[truncated 70 chars]`);
  });

  it("filters the list by type, subscriber, status, since and limit", async () => {
    const store = open();
    await store.deadLetter(record(envelope(1), { failedAt: "2026-01-01T00:00:00.000Z" }));
    await store.deadLetter(record(envelope(2, "MODEL_PROMOTED"), { subscriber: "distributor" }));
    await store.deadLetter(record(envelope(3)));
    expect(store.list({ type: "MODEL_PROMOTED" }).map((r) => r.subscriber)).toEqual([
      "distributor",
    ]);
    expect(store.list({ subscriber: "evaluator" })).toHaveLength(2);
    expect(store.list({ since: new Date("2026-06-01") })).toHaveLength(2);
    expect(store.list({ status: "replayed" })).toHaveLength(0);
    expect(store.list({ limit: 1 })).toHaveLength(1);
  });

  it("reports depth by type and subscriber and the oldest age", async () => {
    let now = 1_000_000;
    const store = open({ now: () => now });
    await store.deadLetter(record(envelope(1)));
    now += 5000;
    await store.deadLetter(record(envelope(2, "MODEL_PROMOTED"), { subscriber: "distributor" }));
    await store.deadLetter(record(envelope(3)));
    expect(store.stats()).toMatchObject({
      depth: 3,
      byStatus: { pending_retry: 3, replayed: 0 },
      byType: { TRAINING_COMPLETED: 2, MODEL_PROMOTED: 1 },
      bySubscriber: { evaluator: 2, distributor: 1 },
      oldestAgeMs: 5000,
    });
  });

  it("purges by age, type and status, returning counts, and refuses an unbounded purge", async () => {
    const store = open();
    await store.deadLetter(record(envelope(1), { failedAt: "2026-01-01T00:00:00.000Z" }));
    await store.deadLetter(record(envelope(2), { failedAt: "2026-01-02T00:00:00.000Z" }));
    await store.deadLetter(record(envelope(3, "MODEL_PROMOTED")));
    expect(() => store.purge({})).toThrow(UnboundedPurgeError);
    expect(store.purge({ olderThan: new Date("2026-06-01") })).toEqual({
      purged: 2,
      byStatus: { pending_retry: 2 },
    });
    expect(store.purge({ olderThan: new Date("2026-06-01") }).purged).toBe(0); // already purged
    const tombstone = store.list({ status: "purged" })[0]!;
    expect(tombstone.envelope).toBeUndefined();
    expect(tombstone.error.stack).toBeUndefined();
    expect(store.purge({ type: "MODEL_PROMOTED", hard: true }).purged).toBe(1);
    expect(store.stats().depth).toBe(0);
    expect(store.list({ status: "purged" })).toHaveLength(2);
  });

  it("claims due records atomically, so two stores on one file never claim the same one", async () => {
    const a = open();
    const b = open();
    for (let n = 0; n < 20; n++) await a.deadLetter(record(envelope(n)));
    const first = a.claimDue({ limit: 15 });
    const second = b.claimDue({ limit: 15 });
    expect(first).toHaveLength(15);
    expect(second).toHaveLength(5);
    const ids = [...first, ...second].map((r) => r.id);
    expect(new Set(ids).size).toBe(20);
  });

  it("re-claims a record whose replayer's lease expired, and fences the stale replayer", async () => {
    let now = 1_000_000;
    const store = open({ now: () => now });
    await store.deadLetter(record(envelope(1)));
    const [stale] = store.claimDue({ leaseMs: 1000 });
    expect(store.claimDue()).toHaveLength(0);
    now += 1001;
    const [fresh] = store.claimDue({ leaseMs: 1000 });
    expect(fresh?.id).toBe(stale!.id);
    expect(() => store.settle(stale!, { status: "replayed" })).toThrow(/Lease lost/);
    store.settle(fresh!, { status: "replayed" });
    expect(store.inspect(fresh!.id)).toMatchObject({ status: "replayed", replays: 1 });
  });

  it("throws a clear error for an unknown id", async () => {
    expect(() => open().inspect(42)).toThrow(DeadLetterNotFoundError);
  });

  it("refuses a dead-letter schema newer than it understands", async () => {
    open().close();
    const db = new Database(path);
    db.prepare("UPDATE switchyard_schema SET version = 99 WHERE component = 'dlq'").run();
    db.close();
    expect(() => open()).toThrow(DeadLetterSchemaError);
  });
});

describe("replay", () => {
  it("requeues to the original transport subscriber only, keeping the event id", async () => {
    const store = open();
    const transport = new MemoryTransport();
    const got: Record<string, string[]> = { evaluator: [], other: [] };
    for (const name of ["evaluator", "other"]) {
      await transport.subscribe({
        subscriber: name,
        types: ["TRAINING_COMPLETED"],
        handler: async (d) => void got[name]!.push(d.envelope.id),
      });
    }
    const e = envelope(1);
    await store.deadLetter(record(e, { origin: "memory" }));
    const id = store.list()[0]!.id;
    const report = await store.replay(id, { to: requeueTo(transport) });
    expect(report).toMatchObject({ matched: 1, replayed: [id], failed: [], skipped: [] });
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual({ evaluator: [e.id], other: [] });
    expect(store.inspect(id)).toMatchObject({ status: "replayed", replays: 1 });
    await transport.close();
  });

  it("lists what it would replay on a dry run and changes nothing", async () => {
    const store = open();
    await store.deadLetter(record(envelope(1)));
    await store.deadLetter(record(envelope(2)));
    const report = await store.replay(
      { subscriber: "evaluator" },
      { to: { replay: async () => {} }, dryRun: true },
    );
    expect(report.wouldReplay).toHaveLength(2);
    expect(store.stats().byStatus.pending_retry).toBe(2);
  });

  it("is a clear error when the subscriber no longer exists, and leaves the record as it was", async () => {
    const store = open();
    const transport = new MemoryTransport();
    await store.deadLetter(record(envelope(1), { origin: "memory", subscriber: "retired_daemon" }));
    const id = store.list()[0]!.id;
    await expect(store.replay(id, { to: requeueTo(transport) })).rejects.toThrow(
      UnknownSubscriptionError,
    );
    expect(store.inspect(id)).toMatchObject({ status: "pending_retry", replays: 0 });
    await transport.close();
  });
});
