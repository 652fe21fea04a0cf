import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type DeadLetterRecord, type Driver, replaySkipReason } from "@switchyard/transport";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { REPLAYED_BEFORE, UnboundedPurgeError, sqliteDriver } from "./index";
import { eventually, job, tempQueue } from "./test/fixtures";

const queues: ReturnType<typeof tempQueue>[] = [];
const drivers: Driver[] = [];
afterEach(async () => {
  for (const d of drivers.splice(0)) await d.close();
  for (const q of queues.splice(0)) q.cleanup();
});

async function setup(): Promise<{ q: ReturnType<typeof tempQueue>; driver: Driver }> {
  const q = tempQueue();
  queues.push(q);
  const driver = await sqliteDriver.open(
    { scheme: "sqlite", text: q.path, rest: q.path, params: {} },
    {},
  );
  drivers.push(driver);
  return { q, driver };
}

const record = (n: number, overrides: Partial<DeadLetterRecord> = {}): DeadLetterRecord => ({
  envelope: job(n),
  subscriber: "worker",
  reason: "max_attempts",
  attempts: 3,
  error: { name: "Error", message: `failed ${n}` },
  failedAt: new Date(Date.now() - n * 1_000).toISOString(),
  origin: "sqlite",
  ...overrides,
});

describe("SqliteAdmin", () => {
  it("replays dead letters to their subscriber through a transport, and skips replayed ones unless again", async () => {
    const { driver } = await setup();
    await driver.transport().register!("worker", ["JOB"]);
    const sink = driver.deadLetterSink()!;
    for (const n of [1, 2, 3]) await sink.deadLetter(record(n));
    await sink.deadLetter(record(4, { origin: "router" }));
    const admin = driver.admin();
    const inspector = driver.inspector();

    const dry = await admin.replay({ subscriber: "worker" }, { dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, matched: 4, replayed: [] });
    expect(dry.wouldReplay).toHaveLength(4);
    expect((await inspector.subscribers())[0]).toMatchObject({ pending: 0 });

    const first = await admin.replay({ subscriber: "worker" });
    expect(first.replayed).toHaveLength(3);
    expect(first.failed).toHaveLength(1);
    expect(first.failed[0]!.error).toMatch(/in-process handler.*DlqRetryDaemon/);
    expect((await inspector.subscribers())[0]).toMatchObject({
      subscriber: "worker",
      pending: 3,
      lag: 3,
    });
    expect((await inspector.deadLetterCounts()).byStatus).toMatchObject({
      replayed: 3,
      pending_retry: 1,
    });

    const second = await admin.replay({ subscriber: "worker", type: "JOB" });
    expect(second.replayed).toEqual([]);
    expect(second.skipped).toHaveLength(3);
    expect(second.skipped.every((s) => s.reason === REPLAYED_BEFORE)).toBe(true);

    const one = first.replayed[0]!;
    const again = await admin.replay({ id: one }, { again: true });
    expect(again.replayed).toEqual([one]);
    expect((await inspector.deadLetter(one))!.replays).toBe(2);
    // The requeued delivery is handled like any other.
    const got: number[] = [];
    const sub = await driver.transport().subscribe({
      subscriber: "worker",
      types: ["JOB"],
      handler: async ({ envelope }) => void got.push((envelope.data as { n: number }).n),
    });
    await eventually(() => got.length === 3, "the replayed events to be handled");
    await sub.close();
    expect(got.sort()).toEqual([1, 2, 3]);
  });

  it("skips a selected record that another admin replayed meanwhile, instead of replaying it twice", async () => {
    const { q, driver } = await setup();
    await driver.transport().register!("worker", ["JOB"]);
    const sink = driver.deadLetterSink()!;
    for (let n = 1; n <= 10; n++) await sink.deadLetter(record(n));
    const ids = (await driver.inspector().deadLetters({ limit: 100 })).deadLetters
      .map((d) => Number(d.id))
      .sort((x, y) => x - y);
    const other = await sqliteDriver.open(
      { scheme: "sqlite", text: q.path, rest: q.path, params: {} },
      {},
    );
    drivers.push(other);
    // The first admin selects all ten and works through them in id order; the second replays the
    // fifth alone and is done long before the first gets to it.
    const [all, one] = await Promise.all([
      driver.admin().replay({ subscriber: "worker" }),
      other.admin().replay({ id: String(ids[4]) }),
    ]);
    expect(one.replayed).toEqual([String(ids[4])]);
    expect(all.failed).toEqual([]);
    expect(all.replayed).toHaveLength(9);
    expect(all.skipped.map((s) => s.id)).toEqual([String(ids[4])]);
    const { deadLetters } = await driver.inspector().deadLetters({ limit: 100 });
    expect(deadLetters.map((d) => d.replays)).toEqual(Array(10).fill(1));
    expect((await driver.inspector().subscribers())[0]).toMatchObject({ pending: 10 });
  });

  it("skips in a dry run what the replay skips, for the contract's reason (replaySkipReason), a live claim included", async () => {
    const { q, driver } = await setup();
    await driver.transport().register!("worker", ["JOB"]);
    const sink = driver.deadLetterSink()!;
    for (const n of [1, 2, 3, 4, 5, 6]) await sink.deadLetter(record(n));
    const admin = driver.admin();
    const inspector = driver.inspector();
    const [replayed, purged, claimed, abandoned, damaged, waiting] = (
      await inspector.deadLetters({ limit: 100 })
    ).deadLetters
      .map((d) => d.id)
      .sort((x, y) => Number(x) - Number(y)) as [string, string, string, string, string, string];
    expect((await admin.replay({ id: replayed })).replayed).toEqual([replayed]);
    expect((await admin.purge({ id: purged })).count).toBe(1);
    const db = new Database(q.path);
    try {
      // Another replayer holds one under a live lease; one whose replayer died (lease expired).
      const hold = db.prepare(
        "UPDATE dead_letters SET status = 'retrying', lease_token = 'other', lease_until = ? WHERE id = ?",
      );
      hold.run(Date.now() + 600_000, Number(claimed));
      hold.run(Date.now() - 1_000, Number(abandoned));
      db.prepare("UPDATE dead_letters SET envelope = '{not json' WHERE id = ?").run(
        Number(damaged),
      );
    } finally {
      db.close();
    }
    const live = new Set([claimed]);
    const expected = async (id: string) => {
      const info = (await inspector.deadLetter(id))!;
      return replaySkipReason({
        status: info.status,
        hasEnvelope: info.envelope !== undefined,
        ...(info.damaged !== undefined ? { damaged: info.damaged } : {}),
        claimLive: live.has(id),
      });
    };
    const every = {
      status: ["pending_retry", "permanently_failed", "retrying", "replayed", "purged"] as const,
    };

    const dry = await admin.replay(every, { dryRun: true });
    expect(dry.wouldReplay).toEqual([abandoned, waiting]);
    const skipped = [replayed, purged, claimed, damaged];
    expect(dry.skipped).toEqual(
      await Promise.all(skipped.map(async (id) => ({ id, reason: await expected(id) }))),
    );
    expect(dry.skipped.map((s) => s.reason)).toEqual([
      "replayed before; pass again to replay it again",
      "purged: the envelope is gone",
      "being replayed right now by another replayer",
      expect.stringMatching(/^no envelope stored \(damaged: dead_letters\.envelope is not JSON/),
    ]);
    expect((await inspector.deadLetter(claimed))!.status).toBe("retrying");

    // The replay skips the same records for the same reasons, and hands back the rest.
    const real = await admin.replay(every);
    expect(real.failed).toEqual([]);
    expect(real.replayed).toEqual(dry.wouldReplay);
    expect(real.skipped).toEqual(dry.skipped);
    expect((await inspector.deadLetter(claimed))!.status).toBe("retrying");
  });

  it("purges after a backup, with a filter or all, and counts on a dry run", async () => {
    const { q, driver } = await setup();
    const sink = driver.deadLetterSink()!;
    for (const n of [1, 2, 3]) await sink.deadLetter(record(n));
    await sink.deadLetter(record(4, { subscriber: "other" }));
    const admin = driver.admin();
    await expect(admin.purge({})).rejects.toBeInstanceOf(UnboundedPurgeError);
    expect(await admin.purge({ subscriber: "worker" }, { dryRun: true })).toEqual({
      dryRun: true,
      count: 3,
    });
    const purged = await admin.purge({ subscriber: "worker" });
    expect(purged.count).toBe(3);
    expect(purged.backup).toBeDefined();
    expect(existsSync(purged.backup!)).toBe(true);
    // The backup holds the records as they were before.
    const copy = new Database(purged.backup, { readonly: true });
    expect(
      copy
        .prepare("SELECT COUNT(*) FROM dead_letters WHERE status = 'pending_retry'")
        .pluck()
        .get(),
    ).toBe(4);
    copy.close();
    expect((await driver.inspector().deadLetterCounts()).byStatus).toMatchObject({
      purged: 3,
      pending_retry: 1,
    });
    const hard = await admin.purge({}, { all: true, hard: true });
    expect(hard.count).toBe(1);
    expect((await driver.inspector().deadLetters()).deadLetters.map((d) => d.status)).toEqual([
      "purged",
      "purged",
      "purged",
    ]);
    expect(q.dir).toBeTruthy();
  });

  it("clears the pending backlog of one type, one subscriber or all, after a backup", async () => {
    const { driver } = await setup();
    const transport = driver.transport();
    await transport.register!("a", ["JOB", "OTHER"]);
    await transport.register!("b", ["JOB"]);
    await transport.publish([job(1), job(2), job(3, "OTHER")]);
    const admin = driver.admin();
    const inspector = driver.inspector();
    expect(await admin.clearPending({ type: "JOB" }, { dryRun: true })).toEqual({
      dryRun: true,
      count: 4,
    });
    const byType = await admin.clearPending({ subscriber: "a", type: "JOB" });
    expect(byType.count).toBe(2);
    expect(existsSync(byType.backup!)).toBe(true);
    const lags = async () =>
      Object.fromEntries((await inspector.subscribers()).map((s) => [s.subscriber, s.lag]));
    expect(await lags()).toEqual({ a: 1, b: 2 });
    // Events published after a clear are delivered as usual.
    await transport.publish([job(4)]);
    expect(await lags()).toEqual({ a: 2, b: 3 });
    const all = await admin.clearPending({});
    expect(all.count).toBe(5);
    expect(await lags()).toEqual({ a: 0, b: 0 });
  });

  it("rotates backups: keeps the last N of this database, and nothing else in the directory", async () => {
    const { q, driver } = await setup();
    const dir = join(q.dir, "backups");
    mkdirSync(dir);
    writeFileSync(join(dir, "other.db.20200101T000000000Z.bak"), "another database's backup");
    writeFileSync(join(dir, "notes.txt"), "keep me");
    const admin = driver.admin();
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      made.push(await admin.backup({ dir, keep: 3 }));
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(new Set(made).size).toBe(5);
    const left = readdirSync(dir).sort();
    expect(left).toEqual(
      [
        "notes.txt",
        "other.db.20200101T000000000Z.bak",
        ...made.slice(2).map((p) => p.slice(dir.length + 1)),
      ].sort(),
    );
    // The default keeps 10, next to the database.
    for (let i = 0; i < 12; i++) await admin.backup();
    expect(readdirSync(q.dir).filter((f) => f.endsWith(".bak"))).toHaveLength(10);
    await expect(admin.backup({ keep: 0 })).rejects.toMatchObject({ code: "INVALID_QUERY" });
  });
});
