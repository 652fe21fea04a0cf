import { type Driver, LeaseLostError } from "@switchyard/transport";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type DeadLetter, SqliteDeadLetterStore } from "./dead-letters";
import { sqliteDriver } from "./driver";
import {
  deadLetterRecord as record,
  delay,
  eventually,
  holdWriteLock,
  memoryLogger,
  tempQueue,
} from "./test/fixtures";

let queue: ReturnType<typeof tempQueue>;
const stores: SqliteDeadLetterStore[] = [];
const drivers: Driver[] = [];
/** A store on its own connection, as another process has it. */
const open = (options: ConstructorParameters<typeof SqliteDeadLetterStore>[0] = {}) => {
  const store = new SqliteDeadLetterStore({
    path: queue.path,
    retryBackoff: { initialMs: 0 },
    ...options,
  });
  stores.push(store);
  return store;
};
beforeEach(() => {
  queue = tempQueue();
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of stores.splice(0)) s.close();
  for (const d of drivers.splice(0)) await d.close();
  queue.cleanup();
});

/** Ids of the stored records, oldest first. */
const ids = (store: SqliteDeadLetterStore): number[] =>
  store
    .list({ limit: 100 })
    .map((d) => d.id)
    .sort((a, b) => a - b);

/**
 * A replay target that hands each record it gets to `handed` and keeps it until `finish()`:
 * `started` resolves with the record once the target holds one.
 */
function heldTarget(handed: number[]) {
  let finish: (() => void) | undefined;
  let started!: (record: DeadLetter) => void;
  const holding = new Promise<DeadLetter>((resolve) => (started = resolve));
  return {
    holding,
    finish: () => finish?.(),
    target: {
      replay: (r: DeadLetter) => {
        handed.push(r.id);
        if (finish !== undefined) return Promise.resolve();
        started(r);
        return new Promise<void>((resolve) => (finish = resolve));
      },
    },
  };
}

/** Another replayer, on a connection of its own, takes the claim of `id` (its lease had expired). */
function takeClaim(id: number): void {
  const other = new Database(queue.path);
  try {
    other
      .prepare(
        "UPDATE dead_letters SET lease_token = 'another-replayer', lease_until = ? WHERE id = ?",
      )
      .run(Date.now() + 600_000, id);
  } finally {
    other.close();
  }
}

/** The lease of record `id` as stored, read on a connection of its own. */
const leaseUntil = (id: number): number => {
  const other = new Database(queue.path, { readonly: true });
  try {
    return other
      .prepare("SELECT lease_until FROM dead_letters WHERE id = ?")
      .pluck()
      .get(id) as number;
  } finally {
    other.close();
  }
};

describe("a replay whose target runs longer than the lease", () => {
  it("keeps its claim: a concurrent replay of the same selection skips the record instead of replaying it again", async () => {
    const leaseMs = 200;
    const a = open();
    const b = open();
    await a.deadLetter(record(1));
    const [id] = ids(a) as [number];
    const handed: number[] = [];
    const slow = heldTarget(handed);
    const first = a.replay({ subscriber: "evaluator" }, { to: slow.target, leaseMs });
    await slow.holding;
    // The target still runs after several lease lengths: the claim must not expire meanwhile.
    await delay(4 * leaseMs);
    // Before the fix the lease was renewed only between records: it had expired, the second
    // replayer claimed the record and ran it again, and the first one's settle lost its lease.
    const second = await b.replay(
      { subscriber: "evaluator" },
      { to: { replay: async (r) => void handed.push(r.id) }, leaseMs },
    );
    expect(second).toMatchObject({
      replayed: [],
      skipped: [{ id, reason: "being replayed by someone else" }],
    });
    slow.finish();
    expect(await first).toMatchObject({ replayed: [id], failed: [], skipped: [] });
    expect(handed).toEqual([id]);
    expect(a.inspect(id)).toMatchObject({ status: "replayed", replays: 1 });
  });

  it("does not hand a later record to the target once another replayer took its claim", async () => {
    const a = open();
    await a.deadLetter(record(1));
    await a.deadLetter(record(2));
    const [one, two] = ids(a) as [number, number];
    const handed: number[] = [];
    const slow = heldTarget(handed);
    const running = a.replay({ subscriber: "evaluator" }, { to: slow.target, leaseMs: 300 });
    await slow.holding;
    const claimedUntil = leaseUntil(one);
    // As after a stall longer than the lease: another replayer took record 2 meanwhile.
    takeClaim(two);
    await eventually(() => leaseUntil(one) > claimedUntil, "a renewal of the claims");
    slow.finish();
    const report = await running;
    // Before the fix record 2 was replayed as well (a double run), then reported LeaseLostError.
    expect(handed).toEqual([one]);
    expect(report.replayed).toEqual([one]);
    expect(report.failed).toEqual([]);
    expect(report.skipped).toEqual([{ id: two, reason: expect.stringMatching(/^claim lost/) }]);
  });

  it("reports the record in progress as lost (LeaseLostError) when a renewal finds its claim gone", async () => {
    const logger = memoryLogger();
    const a = open({ logger });
    await a.deadLetter(record(1));
    await a.deadLetter(record(2));
    const [one, two] = ids(a) as [number, number];
    const handed: number[] = [];
    const slow = heldTarget(handed);
    const running = a.replay({ subscriber: "evaluator" }, { to: slow.target, leaseMs: 300 });
    const held = await slow.holding;
    expect(held.id).toBe(one);
    takeClaim(one);
    await eventually(
      () => logger.lines.some((l) => l.level === "warn" && /claim was lost/.test(l.msg ?? "")),
      "the renewal noticing the lost claim",
    );
    slow.finish();
    const report = await running;
    expect(report.replayed).toEqual([two]);
    expect(report.failed).toEqual([
      { id: one, error: expect.stringMatching(/^Lease lost for event/) },
    ]);

    // One record by id: the loss is thrown.
    await a.deadLetter(record(3));
    const three = ids(a).at(-1)!;
    const single = heldTarget([]);
    const alone = a.replay(three, { to: single.target, leaseMs: 300 });
    await single.holding;
    takeClaim(three);
    const warned = logger.lines.length;
    await eventually(() => logger.lines.length > warned, "the renewal noticing the lost claim");
    single.finish();
    await expect(alone).rejects.toBeInstanceOf(LeaseLostError);
  });
});

describe("a replay's signal", () => {
  it("stops after the record in progress and releases the others back to their status, claimable at once", async () => {
    const a = open();
    const b = open();
    for (const n of [1, 2, 3]) await a.deadLetter(record(n));
    const [one, two, three] = ids(a) as [number, number, number];
    // Record 2 was given up before: it goes back to permanently_failed, not pending_retry.
    const [given] = a.claimDue({ ids: [two] });
    a.settle(given!, { status: "permanently_failed" });
    const before = a.inspect(three);
    const controller = new AbortController();
    const handed: number[] = [];
    const report = await a.replay(
      { subscriber: "evaluator" },
      {
        to: {
          replay: async (r) => {
            handed.push(r.id);
            controller.abort(); // while the first record is being replayed
          },
        },
        signal: controller.signal,
      },
    );
    // Before the fix `signal` was ignored: all three were replayed.
    expect(handed).toEqual([one]);
    expect(report).toMatchObject({ matched: 3, replayed: [one], failed: [] });
    expect(report.skipped).toEqual([
      { id: two, reason: "not replayed: the replay was aborted" },
      { id: three, reason: "not replayed: the replay was aborted" },
    ]);
    expect(a.inspect(one)).toMatchObject({ status: "replayed", replays: 1 });
    expect(a.inspect(two)).toMatchObject({ status: "permanently_failed", replays: 0 });
    expect(a.inspect(three)).toMatchObject({
      status: "pending_retry",
      replays: 0,
      nextRetryAt: before.nextRetryAt,
    });
    // Not left `retrying` until a lease runs out: another replayer takes them right away.
    const other: number[] = [];
    const next = await b.replay(
      { subscriber: "evaluator" },
      { to: { replay: async (r) => void other.push(r.id) } },
    );
    expect(next.replayed).toEqual([two, three]);
    expect(other).toEqual([two, three]);
  });

  it("rejects with the reason of a signal aborted before the call, claiming nothing", async () => {
    const a = open();
    await a.deadLetter(record(1));
    const [id] = ids(a) as [number];
    const reason = new Error("operator pressed ctrl-c");
    const to = { replay: vi.fn(async () => {}) };
    await expect(
      a.replay({ subscriber: "evaluator" }, { to, signal: AbortSignal.abort(reason) }),
    ).rejects.toBe(reason);
    await expect(a.replay(id, { to, signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(to.replay).not.toHaveBeenCalled();
    expect(a.inspect(id)).toMatchObject({ status: "pending_retry", replays: 0 });
  });

  it("ends the wait for another process's lock to claim with the signal's reason", async () => {
    const a = open({ busyTimeoutMs: 10_000 });
    await a.deadLetter(record(1));
    const [id] = ids(a) as [number];
    const lock = holdWriteLock(queue.path, 10_000);
    try {
      const controller = new AbortController();
      const to = { replay: vi.fn(async () => {}) };
      const running = a.replay({ subscriber: "evaluator" }, { to, signal: controller.signal });
      const reason = new Error("stop");
      controller.abort(reason);
      await expect(running).rejects.toBe(reason);
      expect(to.replay).not.toHaveBeenCalled();
    } finally {
      await lock.release();
    }
    expect(a.inspect(id)).toMatchObject({ status: "pending_retry" });
  });
});

describe("the lease renewal timer", () => {
  it("is cleared after every record, whether its replay succeeded or failed", async () => {
    const a = open();
    for (const n of [1, 2, 3]) await a.deadLetter(record(n));
    const [, two] = ids(a) as [number, number, number];
    const set = vi.spyOn(globalThis, "setInterval");
    const clear = vi.spyOn(globalThis, "clearInterval");
    const report = await a.replay(
      { subscriber: "evaluator" },
      {
        to: {
          replay: async (r) => {
            if (r.id === two) throw new Error("subscriber gone");
          },
        },
      },
    );
    expect(report.replayed).toHaveLength(2);
    expect(report.failed).toHaveLength(1);
    const timers = set.mock.results.map((r) => r.value as unknown);
    expect(timers).toHaveLength(3);
    for (const timer of timers) expect(clear.mock.calls.map((c) => c[0])).toContain(timer);
    // Unref'd as well: a replay left running never holds the process open.
    for (const timer of timers) expect((timer as NodeJS.Timeout).hasRef()).toBe(false);
  });
});

describe("SqliteAdmin.replay with a signal", () => {
  it("lists the records not replayed after an abort as skipped and leaves them claimable", async () => {
    const driver = await sqliteDriver.open(
      { scheme: "sqlite", text: queue.path, rest: queue.path, params: {} },
      {},
    );
    drivers.push(driver);
    const transport = driver.transport();
    await transport.register!("evaluator", ["TRAINING_COMPLETED"]);
    const sink = driver.deadLetterSink()!;
    for (const n of [1, 2, 3]) await sink.deadLetter(record(n));
    const controller = new AbortController();
    const requeue = transport.requeue!.bind(transport);
    vi.spyOn(transport, "requeue").mockImplementation(async (subscriber, envelope) => {
      await requeue(subscriber, envelope);
      controller.abort();
    });
    const result = await driver.admin().replay({}, { signal: controller.signal });
    expect(result.replayed).toHaveLength(1);
    expect(result.failed).toEqual([]);
    // Before the fix the other two were in no list at all.
    expect(result.skipped).toEqual([
      { id: expect.any(String), reason: "not replayed: the replay was aborted" },
      { id: expect.any(String), reason: "not replayed: the replay was aborted" },
    ]);
    const store = open();
    expect(store.stats().byStatus).toMatchObject({ replayed: 1, pending_retry: 2, retrying: 0 });
  });
});

describe("the signal a replay target is given", () => {
  /** A target that waits until its signal aborts, then gives up with the signal's reason. */
  const patient = (seen: AbortSignal[]) => ({
    replay: (_r: DeadLetter, options?: { readonly signal?: AbortSignal }) =>
      new Promise<void>((_resolve, reject) => {
        const signal = options?.signal;
        if (signal === undefined) return; // never settles: the old store gave none
        seen.push(signal);
        signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
      }),
  });

  it("aborts when the replay is aborted: a target that gives up leaves the record as it was", async () => {
    const a = open();
    await a.deadLetter(record(1));
    const [id] = ids(a) as [number];
    const before = a.inspect(id);
    const controller = new AbortController();
    const seen: AbortSignal[] = [];
    const running = a.replay(
      { subscriber: "evaluator" },
      { to: patient(seen), signal: controller.signal },
    );
    await eventually(() => seen.length === 1, "the target holding the record");
    controller.abort(new Error("operator stopped it"));
    // Before the fix the target got no signal: a target waiting (a full queue, a stuck consumer)
    // held the replay, and the operator's Ctrl-C, forever.
    const report = await running;
    expect(report).toMatchObject({ replayed: [], failed: [{ id, error: "operator stopped it" }] });
    expect(a.inspect(id)).toMatchObject({
      status: "pending_retry",
      replays: 0,
      nextRetryAt: before.nextRetryAt,
    });
  });

  it("aborts with LeaseLostError when the record's claim is lost, so the target does not run it besides its new holder", async () => {
    const a = open();
    await a.deadLetter(record(1));
    const [id] = ids(a) as [number];
    const seen: AbortSignal[] = [];
    const running = a.replay({ subscriber: "evaluator" }, { to: patient(seen), leaseMs: 300 });
    await eventually(() => seen.length === 1, "the target holding the record");
    takeClaim(id);
    await eventually(() => seen[0]!.aborted, "the renewal noticing the lost claim");
    expect(seen[0]!.reason).toBeInstanceOf(LeaseLostError);
    const report = await running;
    expect(report.failed).toEqual([{ id, error: expect.stringMatching(/^Lease lost for event/) }]);
  });
});
