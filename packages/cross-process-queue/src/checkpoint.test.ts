import { existsSync, readFileSync, renameSync, statSync, unlinkSync } from "node:fs";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { startCheckpointer } from "./checkpoint";
import {
  type SqliteTransport,
  type SqliteTransportOptions,
  openDatabase,
  sqliteTransport,
} from "./index";
import { delay, eventually, job, memoryLogger, tempQueue } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue>;
let open: SqliteTransport[] = [];

function connect(options: SqliteTransportOptions = {}): SqliteTransport {
  queue ??= tempQueue();
  const transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0, ...options });
  open.push(transport);
  return transport;
}
afterEach(async () => {
  await Promise.all(open.map((t) => t.close()));
  open = [];
  queue?.cleanup();
  queue = undefined!;
});

const walBytes = () => (existsSync(`${queue.path}-wal`) ? statSync(`${queue.path}-wal`).size : 0);

describe("WAL checkpoints", () => {
  it("keeps the WAL bounded under sustained publishing and consuming, checkpointing in the background", async () => {
    const maxWalPages = 200;
    const t = connect({ maxWalPages, checkpointIntervalMs: 10 });
    let handled = 0;
    await t.subscribe({
      subscriber: "steady",
      types: ["JOB"],
      concurrency: 64,
      handler: async () => void handled++,
    });
    // Bounded in count (400 batches of 50) and in time (the test's own timeout).
    let largest = 0;
    const total = 20_000;
    const pad = "x".repeat(300);
    for (let n = 0; n < total; n += 50) {
      await t.publish(Array.from({ length: 50 }, (_, i) => job(n + i, "JOB", { data: { pad } })));
      largest = Math.max(largest, walBytes());
      await new Promise((resolve) => setImmediate(resolve));
    }
    await eventually(() => handled === total, "every event handled", 30_000);
    const { checkpoints } = await t.stats();
    expect(checkpoints).toMatchObject({ mode: "background", errors: 0 });
    expect(checkpoints.passive).toBeGreaterThan(0);
    // The WAL reached maxWalPages under this load and was restarted instead of growing on.
    expect(checkpoints.restarts).toBeGreaterThan(0);
    // What is guaranteed, whenever the worker thread gets to run: a look that finds maxWalPages
    // or more restarts the WAL if the lock is free at that instant, one that finds twice as many
    // waits for the lock (a FULL checkpoint). How much arrives between two looks depends on the
    // OS's scheduling of the worker, so the size reached is not asserted against a tight bound
    // (it flaked at 1 578 pages against 1 200): only against what the same load writes with no
    // checkpoint at all (~28 MB, ~7 000 pages), which a working checkpointer stays far below.
    const pageBytes = 4096 + 24;
    expect(largest).toBeLessThan(3_500 * pageBytes);
    // And deterministically: once the load stops, the next commit starts the WAL over (everything
    // in it was copied), so the worker's next look finds it small again.
    await eventually(
      async () => {
        await t.publish([job(total + 1)]);
        return (await t.stats()).checkpoints.walPages < maxWalPages;
      },
      "the WAL to start over after the load",
      10_000,
    );
  }, 30_000);

  it("never checkpoints inside a commit, unlike checkpoint: inline", async () => {
    // A worker that would not look for an hour: whatever reaches the database file got there
    // through a commit's own checkpoint.
    const grownBy = async (options: SqliteTransportOptions) => {
      queue?.cleanup();
      queue = tempQueue();
      const t = connect({ checkpointIntervalMs: 3_600_000, ...options });
      const before = statSync(queue.path).size;
      const blob = "x".repeat(2_000);
      // ~5 000 pages of WAL, over SQLite's 4 000-page auto-checkpoint used by `inline`.
      for (let n = 0; n < 10_000; n += 100) {
        await t.publish(
          Array.from({ length: 100 }, (_, i) => job(n + i, "JOB", { data: { blob } })),
        );
      }
      const grown = statSync(queue.path).size - before;
      await t.close();
      return grown;
    };
    expect(await grownBy({})).toBe(0);
    expect(await grownBy({ checkpoint: "inline" })).toBeGreaterThan(1_000_000);
  });

  it("regression: an interval past the longest timer waits that long, not 1 ms (an overflowed timer ticked every millisecond)", async () => {
    const t = connect({ checkpointIntervalMs: 2 ** 31 });
    await t.publish([job(1)]);
    await t.publish([job(2)]);
    // An observation window: before the fix the worker's timer overflowed to 1 ms and had
    // checkpointed these commits within a few milliseconds.
    await delay(300);
    const { checkpoints } = await t.stats();
    expect(checkpoints.mode).toBe("background");
    expect(checkpoints.passive).toBe(0);
  });

  it("shares one checkpointer per file, stops it on close (idempotently) and leaves no WAL behind", async () => {
    const a = connect({ checkpointIntervalMs: 5 });
    const b = connect({ checkpointIntervalMs: 5 });
    await a.publish([job(1)]);
    await eventually(async () => (await b.stats()).checkpoints.passive > 0, "a checkpoint");
    expect((await a.stats()).checkpoints).toEqual((await b.stats()).checkpoints);
    const closing = a.close();
    expect(a.close()).toBe(closing);
    await closing;
    // The other transport's hold keeps the worker running.
    const before = (await b.stats()).checkpoints.passive;
    await b.publish([job(2)]);
    await eventually(
      async () => (await b.stats()).checkpoints.passive > before,
      "a checkpoint after the first transport closed",
    );
    await b.close();
    // The worker closed its connection first, so the last close checkpointed and removed the WAL.
    expect(existsSync(`${queue.path}-wal`)).toBe(false);
    const db = new Database(queue.path, { readonly: true });
    try {
      expect(db.prepare("SELECT COUNT(*) FROM events").pluck().get()).toBe(2);
    } finally {
      db.close();
    }
  });

  it("regression: restarts the WAL only when the restart has nothing to copy, never copying and fsyncing under the write lock", async () => {
    // A reader's open snapshot keeps the passive pass from copying the frames after it. A RESTART
    // now would take the write lock, fsync the WAL and fail (busy) at every look while every
    // writer waits on it; it waits until a passive pass copied everything instead.
    const maxWalPages = 200;
    const t = connect({ maxWalPages, checkpointIntervalMs: 5 });
    await t.publish([job(0)]);
    await eventually(async () => (await t.stats()).checkpoints.passive > 0, "a first checkpoint");
    const reader = new Database(queue.path, { readonly: true });
    try {
      reader.exec("BEGIN");
      reader.prepare("SELECT COUNT(*) FROM events").pluck().get();
      const blob = "x".repeat(500);
      for (let n = 1; (await t.stats()).checkpoints.walPages < maxWalPages + 20; n += 2) {
        await t.publish([job(n, "JOB", { data: { blob } }), job(n + 1, "JOB", { data: { blob } })]);
        const looks = (await t.stats()).checkpoints.passive;
        await eventually(async () => (await t.stats()).checkpoints.passive > looks, "a look");
      }
      const seen = (await t.stats()).checkpoints;
      expect(seen.walPages).toBeLessThan(2 * maxWalPages); // below the escalation to FULL
      await eventually(
        async () => (await t.stats()).checkpoints.passive > seen.passive + 10,
        "more looks at the grown WAL",
      );
      expect((await t.stats()).checkpoints).toMatchObject({ restarts: 0, busy: 0, errors: 0 });
      reader.exec("COMMIT");
    } finally {
      reader.close();
    }
    // With the reader gone, the next look copies everything, and the restart has nothing to copy.
    await eventually(async () => (await t.stats()).checkpoints.restarts > 0, "a restart");
    expect((await t.stats()).checkpoints).toMatchObject({ busy: 0, errors: 0 });
  });

  it("rejects an unknown checkpoint mode", () => {
    queue = tempQueue();
    expect(() =>
      sqliteTransport({ path: queue.path, checkpoint: "sometimes" as "inline" }),
    ).toThrow(/Option checkpoint of the SQLite transport is "sometimes"/);
  });
});

describe("a checkpointer whose path names another file by now", () => {
  const options = { intervalMs: 5, maxWalPages: 1_000 };

  it("regression: a worker that starts after the file was replaced does not open the other file with this one's WAL", async () => {
    queue = tempQueue();
    // Commits in the WAL of the file, as when the transport's worker thread is slow to start.
    const writer = connect({ checkpoint: "inline" });
    await writer.publish(Array.from({ length: 200 }, (_, i) => job(i)));
    const db = openDatabase(queue.path, { walAutocheckpoint: 0 });
    const other = tempQueue();
    try {
      openDatabase(other.path).close();
      const replacement = readFileSync(other.path);
      renameSync(other.path, queue.path);
      const logger = memoryLogger();
      const handle = startCheckpointer(db, queue.path, options, logger);
      try {
        await eventually(
          () => handle.stats().mode === "inline" || handle.stats().passive > 0,
          "the worker to checkpoint or give up",
        );
        // Before the fix the worker opened the file now at the path, paired it with the -wal and
        // -shm of the transport's file (truncating the -shm the transport's connection has
        // mapped) and checkpointed that WAL into it.
        expect(handle.stats()).toMatchObject({ mode: "inline", passive: 0 });
        expect(logger.lines).toContainEqual(
          expect.objectContaining({
            level: "warn",
            msg: expect.stringMatching(/no longer names the file the transport opened/),
          }),
        );
      } finally {
        await handle.release();
      }
      expect(readFileSync(queue.path).equals(replacement)).toBe(true);
      expect(db.prepare("SELECT COUNT(*) FROM events").pluck().get()).toBe(200);
    } finally {
      db.close();
      other.cleanup();
    }
  });

  it("gives a connection to a file created anew at the path its own checkpointer", async () => {
    queue = tempQueue();
    const first = openDatabase(queue.path, { walAutocheckpoint: 0 });
    const a = startCheckpointer(first, queue.path, options, memoryLogger());
    try {
      await eventually(() => a.stats().passive > 0, "a checkpoint of the first file");
      // Deleted with its -wal and -shm (so that no connection of this process pairs a file with
      // the -shm of another), then created anew while the first connection still has it open.
      for (const suffix of ["", "-wal", "-shm"]) unlinkSync(`${queue.path}${suffix}`);
      const second = openDatabase(queue.path, { walAutocheckpoint: 0 });
      const b = startCheckpointer(second, queue.path, options, memoryLogger());
      try {
        // Before the fix it shared the first file's worker: nothing checkpointed the new file.
        expect(b.stats().passive).toBe(0);
        await eventually(() => b.stats().passive > 0, "a checkpoint of the new file");
        expect(b.stats().mode).toBe("background");
      } finally {
        await b.release();
        // Before the first connection: the last connection to a file deletes the -wal and -shm
        // at its path, which are the new file's by now.
        second.close();
      }
    } finally {
      await a.release();
      first.close();
    }
  });
});
