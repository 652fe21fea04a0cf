import { readdirSync } from "node:fs";
import { join } from "node:path";
import { SqliteTransport, sqliteTransport } from "@switchyard/cross-process-queue";
import { SqliteDeadLetterStore } from "@switchyard/dlq";
import { createEnvelope } from "@switchyard/event-schema";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cli, cliAbortingOn, spawnCli, tempDir } from "./test/fixture";

let tmp: ReturnType<typeof tempDir>;
let db: string;
beforeEach(() => {
  tmp = tempDir();
  db = join(tmp.dir, "coordination.db");
});
afterEach(() => tmp.cleanup());

/** A queue file with subscriber `evaluator` registered and `count` of its dead letters (origin sqlite). */
async function deadLetters(count: number): Promise<string[]> {
  const transport = sqliteTransport({ path: db, pruneIntervalMs: 0 });
  const subscription = await transport.subscribe({
    subscriber: "evaluator",
    types: ["TRAINING_COMPLETED"],
    handler: async () => {},
  });
  await subscription.close();
  await transport.close();
  const store = new SqliteDeadLetterStore({ path: db });
  try {
    for (let n = 0; n < count; n++) {
      await store.deadLetter({
        envelope: createEnvelope({ type: "TRAINING_COMPLETED", source: "trainer", data: { n } }),
        subscriber: "evaluator",
        reason: "max_attempts",
        attempts: 5,
        error: { name: "Error", message: "GPU out of memory" },
        failedAt: new Date().toISOString(),
        origin: "sqlite",
      });
    }
    // Ids are strings on every transport (the CLI prints and takes them as such).
    return store.list({ limit: count }).map((d) => String(d.id));
  } finally {
    store.close();
  }
}

function rows<T>(sql: string): T[] {
  const conn = new Database(db, { readonly: true });
  try {
    return conn.prepare(sql).all() as T[];
  } finally {
    conn.close();
  }
}

describe("switchyard dlq replay twice at once", { tags: ["slow"] }, () => {
  it("replays each of 300 dead letters exactly once between the two processes", async () => {
    const ids = await deadLetters(300);
    const args = ["dlq", "replay", "--subscriber", "evaluator", "--db", db, "--json"];
    const [a, b] = await Promise.all([spawnCli(args).done, spawnCli(args).done]);
    expect([a.code, b.code], `${a.stderr}\n${b.stderr}`).toEqual([0, 0]);
    const replayed = [...a.json().replayed, ...b.json().replayed] as string[];
    // Before the fix each process listed the records, then replayed them one by one by id: a
    // record the other had replayed meanwhile was claimed and requeued again (293 of 300 seen).
    expect(new Set(replayed).size).toBe(replayed.length);
    expect(replayed.sort()).toEqual([...ids].sort());
    expect(
      rows<{ replays: number; n: number }>(
        "SELECT replays, COUNT(*) AS n FROM dead_letters GROUP BY replays",
      ),
    ).toEqual([{ replays: 1, n: 300 }]);
  });
});

describe("switchyard dlq, one record by id", () => {
  it("replays one dead letter with --id and leaves the others", async () => {
    const [first, second] = (await deadLetters(2)) as [string, string];
    const run = await cli(["dlq", "replay", "--id", String(first), "--db", db, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json()).toMatchObject({ replayed: [first], failed: [] });
    expect(
      rows<{ id: string; status: string }>(
        "SELECT CAST(id AS TEXT) AS id, status FROM dead_letters ORDER BY id",
      ),
    ).toEqual(
      [
        { id: first, status: "replayed" },
        { id: second, status: "pending_retry" },
      ].sort((x, y) => Number(x.id) - Number(y.id)),
    );
  });

  it("purges one dead letter with --id --yes after a backup, and refuses without --yes", async () => {
    const [first, second] = (await deadLetters(2)) as [string, string];
    const refused = await cli(["dlq", "purge", "--id", String(first), "--db", db]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/without --yes/);
    const run = await cli(["dlq", "purge", "--id", String(first), "--yes", "--db", db, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json()).toMatchObject({ count: 1, dryRun: false, hard: false });
    expect(run.json().backup).toMatch(/\.bak$/);
    expect(
      rows<{ id: string; status: string }>(
        "SELECT CAST(id AS TEXT) AS id, status FROM dead_letters ORDER BY id",
      ),
    ).toEqual(
      [
        { id: first, status: "purged" },
        { id: second, status: "pending_retry" },
      ].sort((x, y) => Number(x.id) - Number(y.id)),
    );
    const missing = await cli(["dlq", "purge", "--id", "999", "--yes", "--db", db]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/No dead letter with id 999/);
  });
});

describe("switchyard dlq with a damaged row", () => {
  it("lists and inspects a dead letter whose envelope is not JSON as damaged, and carries on", async () => {
    const [first, second] = (await deadLetters(2)) as [string, string];
    const conn = new Database(db);
    conn.prepare("UPDATE dead_letters SET envelope = '{not json' WHERE id = ?").run(first);
    conn.close();
    const list = await cli(["dlq", "list", "--db", db]);
    // Before the fix: "unexpected failure", exit 1, nothing listed.
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/DAMAGED/);
    expect(list.stdout).toMatch(
      new RegExp(`dead letter ${first}: dead_letters.envelope is not JSON`),
    );
    const json = (await cli(["dlq", "list", "--db", db, "--json"])).json();
    expect(
      json.deadLetters.map((d: { id: string; damaged?: string }) => [
        d.id,
        d.damaged !== undefined,
      ]),
    ).toEqual(
      expect.arrayContaining([
        [first, true],
        [second, false],
      ]),
    );
    const inspect = await cli(["dlq", "inspect", String(first), "--db", db]);
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(inspect.stdout).toMatch(/DAMAGED: dead_letters.envelope is not JSON/);
    const replay = await cli(["dlq", "replay", "--subscriber", "evaluator", "--db", db, "--json"]);
    expect(replay.json()).toMatchObject({
      replayed: [second],
      skipped: [{ id: first, reason: expect.stringMatching(/damaged/) }],
    });
  });
});

describe("switchyard dlq replay --dry-run and the replay", () => {
  it("skip the same records for the same reasons (the contract's replaySkipReason)", async () => {
    const ids = (await deadLetters(4)).sort((x, y) => Number(x) - Number(y));
    const [replayed, purged, damaged, waiting] = ids as [string, string, string, string];
    expect((await cli(["dlq", "replay", replayed, "--db", db])).code).toBe(0);
    expect((await cli(["dlq", "purge", "--id", purged, "--yes", "--db", db])).code).toBe(0);
    const conn = new Database(db);
    conn.prepare("UPDATE dead_letters SET envelope = '{not json' WHERE id = ?").run(damaged);
    conn.close();
    const args = ["dlq", "replay", "--subscriber", "evaluator", "--db", db, "--json"];
    const status = ["--status", "pending_retry,permanently_failed,replayed,purged"];
    const byId = (skipped: { id: string; reason: string }[]) =>
      [...skipped].sort((x, y) => Number(x.id) - Number(y.id));

    // In text, the contract's "pass again" reads as this command's flag.
    const text = await cli([...args.filter((a) => a !== "--json"), ...status, "--dry-run"]);
    expect(text.stdout).toContain(
      `skipped ${replayed}: replayed before; add --again to replay it once more`,
    );
    expect(text.stdout).toContain(`skipped ${purged}: purged: the envelope is gone`);

    const preview = await cli([...args, ...status, "--dry-run"]);
    expect(preview.code, preview.stderr).toBe(0);
    expect(preview.json().wouldReplay).toEqual([waiting]);
    const previewed = byId(preview.json().skipped);
    expect(previewed).toEqual([
      { id: replayed, reason: "replayed before; pass again to replay it again" },
      { id: purged, reason: "purged: the envelope is gone" },
      {
        id: damaged,
        reason: expect.stringMatching(
          /^no envelope stored \(damaged: dead_letters\.envelope is not JSON/,
        ),
      },
    ]);

    const run = await cli([...args, ...status]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json().replayed).toEqual([waiting]);
    expect(byId(run.json().skipped)).toEqual(previewed);
  });
});

describe("switchyard dlq and a signal that aborts while it runs", () => {
  // The built-in catalog's note is written when --type is checked: after the target opened,
  // before the replay or purge starts.
  const catalogNote = /built-in pipeline catalog/;
  const statuses = () =>
    rows<{ status: string; replays: number }>("SELECT status, replays FROM dead_letters");
  const untouched = Array.from({ length: 3 }, () => ({ status: "pending_retry", replays: 0 }));

  it("regression: replay hands nothing back once its signal aborted, and exits 130", async () => {
    await deadLetters(3);
    const run = await cliAbortingOn(
      ["dlq", "replay", "--type", "TRAINING_COMPLETED", "--db", db, "--json"],
      catalogNote,
    );
    expect(run.aborted).toBe(true);
    // Before the fix the signal never reached the replay: every record was replayed, exit 0.
    expect(run.code, run.stderr).toBe(130);
    expect(run.json()).toMatchObject({ error: { code: "INTERRUPTED" } });
    expect(statuses()).toEqual(untouched);
  });

  it("regression: a replay its signal stops partway prints what it did and exits 130, not 0", async () => {
    await deadLetters(3);
    const controller = new AbortController();
    const requeue = SqliteTransport.prototype.requeue;
    // The stop comes while the first record is handed back: it is replayed, the others are not.
    const spy = vi.spyOn(SqliteTransport.prototype, "requeue").mockImplementation(function (
      this: SqliteTransport,
      ...args
    ) {
      controller.abort();
      return requeue.apply(this, args);
    });
    try {
      const run = await cli(
        ["dlq", "replay", "--type", "TRAINING_COMPLETED", "--db", db, "--json"],
        { signal: controller.signal },
      );
      // Before the fix: exit 0, as if the whole selection had been replayed.
      expect(run.code, run.stderr).toBe(130);
      const report = run.json() as { replayed: string[]; skipped: { reason: string }[] };
      expect(report.replayed).toHaveLength(1);
      expect(report.skipped.map((s) => s.reason)).toEqual([
        "not replayed: the replay was aborted",
        "not replayed: the replay was aborted",
      ]);
    } finally {
      spy.mockRestore();
    }
  });

  it("regression: purge removes nothing and takes no backup once its signal aborted, and exits 130", async () => {
    await deadLetters(3);
    const run = await cliAbortingOn(
      ["dlq", "purge", "--type", "TRAINING_COMPLETED", "--yes", "--db", db, "--json"],
      catalogNote,
    );
    expect(run.aborted).toBe(true);
    // Before the fix the purge went on: three tombstones and a backup, exit 0.
    expect(run.code, run.stderr).toBe(130);
    expect(run.json()).toMatchObject({ error: { code: "INTERRUPTED" } });
    expect(statuses()).toEqual(untouched);
    expect(readdirSync(tmp.dir).filter((f) => f.endsWith(".bak"))).toEqual([]);
  });
});
