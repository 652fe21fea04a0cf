import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InspectorQueryError } from "@switchyard/transport";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DeadLetterNotFoundError,
  DeadLetterStoreFileError,
  ReplayConflictError,
} from "./dead-letter-errors";
import { SqliteDeadLetterStore } from "./dead-letters";
import { QueueOptionsError } from "./errors";
import { deadLetterRecord as record, holdWriteLock } from "./test/fixtures";

let dir: string;
let path: string;
const stores: SqliteDeadLetterStore[] = [];
let immutable: string[] = [];
const open = (options: ConstructorParameters<typeof SqliteDeadLetterStore>[0] = {}) => {
  const store = new SqliteDeadLetterStore({ path, retryBackoff: { initialMs: 0 }, ...options });
  stores.push(store);
  return store;
};
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dlq-edges-"));
  path = join(dir, "coordination.db");
});
afterEach(() => {
  for (const p of immutable) execFileSync("chattr", ["-i", p]);
  immutable = [];
  for (const s of stores.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The longest the event loop went without running a 5 ms interval while `during` ran. */
async function longestStall(during: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let stall = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stall = Math.max(stall, now - last);
    last = now;
  }, 5);
  try {
    await during();
    return Math.max(stall, performance.now() - last);
  } finally {
    clearInterval(timer);
  }
}

function chattrAvailable(): boolean {
  const probe = mkdtempSync(join(tmpdir(), "dlq-chattr-"));
  try {
    execFileSync("chattr", ["+i", probe], { stdio: "ignore" });
    execFileSync("chattr", ["-i", probe], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

describe("the dead-letter path never blocks the event loop", () => {
  it("stores a dead letter while another connection holds the write lock for 300 ms, yielding meanwhile", async () => {
    const store = open();
    await store.deadLetter(record(0));
    const { released } = holdWriteLock(path, 300);
    // Before the fix the store waited in SQLite's busy handler (busy_timeout 5000), blocking the
    // thread: the lock holder's timer could not run until SQLite gave up.
    const stall = await longestStall(() => store.deadLetter(record(1)));
    await released;
    expect(stall).toBeLessThan(100);
    expect(store.list().map((d) => d.envelope?.data)).toEqual(
      expect.arrayContaining([{ n: 0 }, { n: 1 }]),
    );
  });
});

describe("the retry daemon's claims never block the event loop", () => {
  it("claims and releases while another connection holds the write lock, yielding meanwhile", async () => {
    const store = open();
    await store.deadLetter(record(1));
    const { released } = holdWriteLock(path, 300);
    let claimed: Awaited<ReturnType<SqliteDeadLetterStore["claim"]>> = [];
    const stall = await longestStall(async () => {
      claimed = await store.claim({ limit: 10 });
    });
    await released;
    expect(stall).toBeLessThan(100);
    expect(claimed).toHaveLength(1);
    await store.release(claimed[0]!, { status: "replayed" });
    expect(store.inspect(claimed[0]!.id)).toMatchObject({ status: "replayed", replays: 1 });
  });
});

describe("typed errors for unusable files", () => {
  it("throws DeadLetterStoreFileError (corrupt) for a file that is not a database", () => {
    const fd = openSync(path, "w");
    writeSync(fd, Buffer.alloc(8192, 0x5a));
    closeSync(fd);
    let error: unknown;
    try {
      open();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DeadLetterStoreFileError);
    expect(error).toMatchObject({ code: "DLQ_FILE_CORRUPT", path });
    expect((error as Error).cause).toMatchObject({ code: expect.stringMatching(/^SQLITE_NOTADB/) });
  });

  it("throws DeadLetterStoreFileError (corrupt) for a database corrupted mid-file", async () => {
    const store = open();
    for (let n = 0; n < 300; n++)
      await store.deadLetter(record(n, { error: { name: "Error", message: "x".repeat(2_000) } }));
    store.close();
    const { size } = statSync(path);
    const fd = openSync(path, "r+");
    const garbage = Buffer.alloc(size - 4096, 0xa5);
    writeSync(fd, garbage, 0, garbage.length, 4096);
    closeSync(fd);
    let error: unknown;
    try {
      const again = open();
      again.list();
      await again.deadLetter(record(1_000));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DeadLetterStoreFileError);
    expect(error).toMatchObject({ code: "DLQ_FILE_CORRUPT" });
    expect((error as Error).cause).toMatchObject({
      code: expect.stringMatching(/^SQLITE_(CORRUPT|NOTADB)/),
    });
  });

  it("throws DeadLetterStoreFileError (unopenable) for a path that is a directory", () => {
    mkdirSync(path);
    let error: unknown;
    try {
      open();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DeadLetterStoreFileError);
    expect(error).toMatchObject({ code: "DLQ_FILE_UNOPENABLE", path });
    expect((error as Error).cause).toMatchObject({
      code: expect.stringMatching(/^SQLITE_CANTOPEN/),
    });
  });

  it("maps a write refused as read-only to DeadLetterStoreFileError (readonly)", async () => {
    open().close();
    const readonly = new Database(path, { readonly: true });
    try {
      const store = new SqliteDeadLetterStore({ database: readonly });
      await expect(store.deadLetter(record(1))).rejects.toMatchObject({
        code: "DLQ_FILE_READONLY",
        cause: expect.objectContaining({ code: expect.stringMatching(/^SQLITE_READONLY/) }),
      });
    } finally {
      readonly.close();
    }
  });

  it.skipIf(!chattrAvailable())(
    "throws a typed error for a database in a directory nobody may write (chattr +i stops root too)",
    () => {
      open().close(); // the WAL and shm files are gone after a clean close
      execFileSync("chattr", ["+i", dir]);
      immutable.push(dir);
      let error: unknown;
      try {
        open();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(DeadLetterStoreFileError);
      expect((error as DeadLetterStoreFileError).code).toMatch(/^DLQ_FILE_(READONLY|UNOPENABLE)$/);
    },
  );
});

describe("one dead letter by id", () => {
  it("purges one record by id and leaves the others; an unknown id throws", async () => {
    const store = open();
    await store.deadLetter(record(1));
    await store.deadLetter(record(2));
    const [a, b] = store.list().map((d) => d.id) as [number, number];
    expect(store.purge({ id: a })).toEqual({ purged: 1, byStatus: { pending_retry: 1 } });
    expect(store.inspect(a)).toMatchObject({ status: "purged", envelope: undefined });
    expect(store.inspect(b)).toMatchObject({ status: "pending_retry" });
    expect(store.purge({ id: b, hard: true }).purged).toBe(1);
    expect(() => store.inspect(b)).toThrow(DeadLetterNotFoundError);
    expect(() => store.purge({ id: 999 })).toThrow(DeadLetterNotFoundError);
  });

  it("refuses to replay a record someone replayed since it was read", async () => {
    const store = open();
    await store.deadLetter(record(1));
    const [seen] = store.list();
    const handed: number[] = [];
    const to = { replay: async (r: { id: number }) => void handed.push(r.id) };
    // Another replayer (here: the same store) replays it first.
    await store.replay(seen!.id, { to });
    await expect(store.replay(seen!, { to })).rejects.toBeInstanceOf(ReplayConflictError);
    expect(handed).toEqual([seen!.id]);
    expect(store.inspect(seen!.id)).toMatchObject({ status: "replayed", replays: 1 });
  });

  it("lets a claim of a replayer that died be taken again once its lease expired", async () => {
    let now = 1_000_000;
    const store = open({ now: () => now });
    await store.deadLetter(record(1));
    const [dead] = store.claimDue({ leaseMs: 1_000 }); // this replayer dies here
    const to = { replay: async () => {} };
    const report = await store.replay({ subscriber: "evaluator" }, { to });
    expect(report).toMatchObject({ replayed: [], skipped: [{ id: dead!.id }] });
    now += 1_001;
    expect(await store.replay({ subscriber: "evaluator" }, { to })).toMatchObject({
      replayed: [dead!.id],
    });
  });
});

describe("damaged rows", () => {
  it("lists a record whose envelope is not JSON as damaged and never replays it", async () => {
    const store = open();
    await store.deadLetter(record(1));
    await store.deadLetter(record(2));
    const [a, b] = store.list().map((d) => d.id) as [number, number];
    const conn = new Database(path);
    conn.prepare("UPDATE dead_letters SET envelope = 'not json' WHERE id = ?").run(a);
    conn.close();
    // Before the fix: SyntaxError from list() and inspect().
    const listed = store.list();
    expect(listed.find((d) => d.id === a)).toMatchObject({
      envelope: undefined,
      damaged: expect.stringMatching(/^dead_letters.envelope is not JSON/),
    });
    expect(store.inspect(b).damaged).toBeUndefined();
    const report = await store.replay(
      { subscriber: "evaluator" },
      { to: { replay: async () => {} } },
    );
    expect(report.replayed).toEqual([b]);
    expect(report.skipped).toEqual([{ id: a, reason: expect.stringMatching(/^damaged/) }]);
    expect(store.claimDue({ ids: [a] })).toEqual([]);
  });
});

describe("replay with dryRun", () => {
  const target = { replay: () => Promise.resolve() };

  it("lists as would-replay only what the real replay hands back, and says why it skips the rest", async () => {
    const store = open();
    await store.deadLetter(record(1));
    await store.deadLetter(record(2));
    const [good, damaged] = store
      .list({ limit: 10 })
      .map((r) => r.id)
      .sort((a, b) => a - b) as [number, number];
    const raw = new Database(path);
    raw.prepare("UPDATE dead_letters SET envelope = '{not json' WHERE id = ?").run(damaged);
    raw.close();
    const dry = await store.replay({ subscriber: "evaluator" }, { to: target, dryRun: true });
    expect(dry.skipped.map((s) => s.id)).toEqual([damaged]);
    expect(dry.skipped[0]!.reason).toMatch(/^damaged: /);
    const real = await store.replay({ subscriber: "evaluator" }, { to: target });
    expect(real.replayed).toEqual([good]);
    expect(real.skipped.map((s) => s.id)).toEqual([damaged]);
    expect(dry.wouldReplay).toEqual(real.replayed);
    expect(dry.matched).toBe(real.matched);
  });

  it("does not list a purged record, given by id, as one it would replay", async () => {
    const store = open();
    await store.deadLetter(record(1));
    const id = store.list({ limit: 1 })[0]!.id;
    store.purge({ id });
    const dry = await store.replay(id, { to: target, dryRun: true });
    expect(dry.wouldReplay).toEqual([]);
    expect(dry.skipped).toEqual([{ id, reason: "purged: the envelope is gone" }]);
    await expect(store.replay(id, { to: target })).rejects.toThrow(/purged/);
  });
});

describe("scheduled retention", () => {
  it.each([
    ["intervalMs", { olderThanMs: 1_000, intervalMs: 0 }],
    ["intervalMs", { olderThanMs: 1_000, intervalMs: -5 }],
    ["intervalMs", { olderThanMs: 1_000, intervalMs: Number.NaN }],
    ["olderThanMs", { olderThanMs: Number.NaN }],
    ["olderThanMs", { olderThanMs: -1 }],
    ["olderThanMs", { olderThanMs: Number.POSITIVE_INFINITY }],
  ])(
    "refuses retention.%s that would purge every millisecond or never work",
    (option, retention) => {
      const error = (() => {
        try {
          open({ retention });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(error).toBeInstanceOf(QueueOptionsError);
      expect((error as QueueOptionsError).option).toBe(`retention.${option}`);
    },
  );

  it("purges on schedule without blocking the event loop while another connection holds the write lock", async () => {
    const store = open({ busyTimeoutMs: 1_000, retention: { olderThanMs: 0, intervalMs: 20 } });
    await store.deadLetter(record(1));
    const { released } = holdWriteLock(path, 200);
    // Before the fix the scheduled purge waited in SQLite's busy handler (busy_timeout), blocking
    // the thread until it gave up: the lock holder's timer could not run meanwhile.
    const stall = await longestStall(async () => {
      await released;
      for (let i = 0; i < 200 && store.stats().byStatus.purged === 0; i++)
        await new Promise((resolve) => setTimeout(resolve, 5));
    });
    expect(stall).toBeLessThan(100);
    expect(store.stats().byStatus.purged).toBe(1);
  });
});

describe("a claim's lease and limit", () => {
  it.each([
    ["leaseMs", { leaseMs: Number.NaN }],
    ["leaseMs", { leaseMs: -1_000 }],
    ["leaseMs", { leaseMs: Number.POSITIVE_INFINITY }],
    ["leaseMs", { leaseMs: 0.5 }],
    ["limit", { limit: Number.NaN }],
    ["limit", { limit: 0 }],
  ])(
    "refuses %s that is not an integer ≥ 1 and leaves the record claimable (a NaN lease left it retrying for good)",
    async (option, options) => {
      const store = open();
      await store.deadLetter(record(1));
      for (const attempt of [() => store.claim(options), async () => store.claimDue(options)]) {
        const error = await attempt().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(QueueOptionsError);
        expect((error as QueueOptionsError).option).toBe(option);
      }
      expect(store.list()[0]!.status).toBe("pending_retry");
      expect((await store.claim({ leaseMs: 1_000 })).length).toBe(1);
    },
  );

  it("refuses a replay lease that is not an integer ≥ 1 before claiming anything", async () => {
    const store = open();
    await store.deadLetter(record(1));
    const id = store.list()[0]!.id;
    const to = { replay: async () => {} };
    const error = await store.replay(id, { to, leaseMs: Number.NaN }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueueOptionsError);
    expect(store.inspect(id).status).toBe("pending_retry");
  });
});

describe("a list or purge time that is not a time", () => {
  it("is refused with InspectorQueryError naming it, not a bare RangeError, and purges nothing", async () => {
    const store = open();
    await store.deadLetter(record(1));
    const refused: [string, () => unknown][] = [
      ["since", () => store.list({ since: Number.NaN })],
      ["since", () => store.list({ since: new Date("not a date") })],
      ["since", () => store.list({ since: 9e15 })],
      ["olderThan", () => store.purge({ olderThan: Number.NaN })],
      ["olderThan", () => store.purge({ olderThan: -1 })],
      ["olderThan", () => store.purge({ olderThan: new Date(Number.NaN) })],
      ["olderThan", () => store.purge({ olderThan: 9e15 })],
    ];
    for (const [option, call] of refused) {
      let caught: unknown;
      try {
        call();
      } catch (error) {
        caught = error;
      }
      expect(caught, option).toBeInstanceOf(InspectorQueryError);
      expect(caught, option).toMatchObject({ option });
    }
    expect(store.list().map((r) => r.status)).toEqual(["pending_retry"]);
  });
});
