import { execFileSync } from "node:child_process";
import { closeSync, openSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import type { Admin } from "@switchyard/transport";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { Writer } from "./database";
import {
  QueueFileError,
  QueueFileMissingError,
  QueueFileReplacedError,
  QueueOptionsError,
  SqliteHeartbeatSink,
  TransportClosedError,
  type SqliteTransport,
  type SqliteTransportOptions,
  SqliteAdmin,
  SqliteDeadLetterStore,
  type SqliteDriver,
  openDatabase,
  sqliteDriver,
  sqliteTransport,
} from "./index";
import { eventually, holdWriteLock, job, memoryLogger, tempQueue } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue> | undefined;
let open: SqliteTransport[] = [];
let immutable: string[] = [];
const closers: (() => Promise<unknown>)[] = [];

function connect(options: SqliteTransportOptions = {}): SqliteTransport {
  queue ??= tempQueue();
  const transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0, ...options });
  open.push(transport);
  return transport;
}

afterEach(async () => {
  for (const path of immutable) execFileSync("chattr", ["-i", path]);
  immutable = [];
  await Promise.all(open.map((t) => t.close().catch(() => undefined)));
  open = [];
  for (const close of closers.splice(0)) await close();
  queue?.cleanup();
  queue = undefined;
});

/**
 * The longest the event loop went without running a 5 ms interval while `during` ran: a call that
 * blocks the thread (SQLite's busy handler, `Atomics.wait`) shows up here as a gap of its length.
 */
async function longestStall<T>(during: () => Promise<T>): Promise<{ result: T; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 5);
  try {
    const result = await during();
    stallMs = Math.max(stallMs, performance.now() - last);
    return { result, stallMs };
  } finally {
    clearInterval(timer);
  }
}

function chattrAvailable(): boolean {
  const probe = tempQueue();
  try {
    closeSync(openSync(probe.path, "w"));
    execFileSync("chattr", ["+i", probe.path], { stdio: "ignore" });
    execFileSync("chattr", ["-i", probe.path], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  } finally {
    probe.cleanup();
  }
}

function makeImmutable(path: string): void {
  execFileSync("chattr", ["+i", path]);
  immutable.push(path);
}

describe("nothing blocks the event loop on another connection's lock", () => {
  it("retries a publish asynchronously while another connection holds the write lock", async () => {
    const t = connect();
    await t.publish([job(0)]);
    const lock = holdWriteLock(queue!.path, 300);
    const { result, stallMs } = await longestStall(() => t.publish([job(1)]));
    await lock.released;
    expect(result.published).toBe(1);
    // Before the fix the connection waited in SQLite's busy handler (busy_timeout 5000): the
    // lock holder's timer could not even run until SQLite gave up, 5 s later.
    expect(stallMs).toBeLessThan(100);
  });

  it("runs the transport's connection with busy_timeout 0 from the start", () => {
    queue = tempQueue();
    const t = connect();
    // The transport's connection is private: the same Writer on a connection of our own.
    const db = openDatabase(queue.path, { busyTimeoutMs: 5_000 });
    try {
      new Writer(db, queue.path, 5_000).stopWaiting();
      expect(db.pragma("busy_timeout", { simple: true })).toBe(0);
    } finally {
      db.close();
    }
    expect(t.path).toBe(queue.path);
  });

  const beat = {
    daemon: "trainer",
    pid: 1,
    host: "h",
    status: "running",
    health: null,
    stats: null,
    startedAt: null,
    at: new Date().toISOString(),
  };

  it("regression: close() waits for a heartbeat still being retried, so a daemon's last beat is not lost at exit", async () => {
    queue = tempQueue();
    const sink = new SqliteHeartbeatSink({ path: queue.path });
    const lock = holdWriteLock(queue.path, 200);
    sink.write({ ...beat, status: "stopped" });
    await sink.close();
    await lock.released;
    const db = new Database(queue.path, { readonly: true });
    try {
      expect(db.prepare("SELECT daemon, status FROM daemon_heartbeats").all()).toEqual([
        { daemon: "trainer", status: "stopped" },
      ]);
    } finally {
      db.close();
    }
  });

  it("refuses a heartbeat written after close() with TransportClosedError, not a driver TypeError", async () => {
    queue = tempQueue();
    const sink = new SqliteHeartbeatSink({ path: queue.path });
    sink.write(beat);
    await sink.close();
    expect(() => sink.write(beat)).toThrow(TransportClosedError);
  });

  it("writes a heartbeat without blocking while another connection holds the write lock", async () => {
    queue = tempQueue();
    const sink = new SqliteHeartbeatSink({ path: queue.path });
    try {
      const lock = holdWriteLock(queue.path, 300);
      const { stallMs } = await longestStall(async () => {
        sink.write(beat);
        sink.write({ ...beat, status: "stopping" });
        await sink.flush();
      });
      await lock.released;
      // Before the fix write() waited in Atomics.wait and SQLite's busy handler: the lock holder's
      // timer could not run, so it blocked for 30 s and then threw.
      expect(stallMs).toBeLessThan(100);
      expect(sink.missed).toBe(0);
      const db = new Database(queue.path, { readonly: true });
      try {
        expect(db.prepare("SELECT daemon, status FROM daemon_heartbeats").all()).toEqual([
          { daemon: "trainer", status: "stopping" },
        ]);
      } finally {
        db.close();
      }
    } finally {
      await sink.close();
    }
  });

  it("gives heartbeats up after busyTimeoutMs, counted and logged, without blocking", async () => {
    queue = tempQueue();
    const logger = memoryLogger();
    const sink = new SqliteHeartbeatSink({ path: queue.path, busyTimeoutMs: 100, logger });
    try {
      const lock = holdWriteLock(queue.path, 400);
      const { stallMs } = await longestStall(async () => {
        sink.write(beat);
        await sink.flush();
      });
      expect(stallMs).toBeLessThan(100);
      expect(sink.missed).toBe(1);
      expect(logger.lines).toContainEqual(
        expect.objectContaining({
          level: "warn",
          obj: expect.objectContaining({ err: expect.objectContaining({ code: "QUEUE_BUSY" }) }),
        }),
      );
      await lock.released;
      sink.write(beat);
      await sink.flush();
      expect(sink.missed).toBe(1);
    } finally {
      await sink.close();
    }
  });
});

describe("the driver's admin actions while another connection holds the write lock", () => {
  async function adminWithDeadLetter() {
    queue ??= tempQueue();
    const driver = await sqliteDriver.open(
      { scheme: "sqlite", text: queue.path, rest: queue.path, params: {} },
      {},
    );
    closers.push(() => driver.close());
    await (driver as SqliteDriver).deadLetterSink().deadLetter({
      envelope: job(1),
      subscriber: "w",
      reason: "max_attempts",
      attempts: 3,
      error: { name: "Error", message: "failed" },
      failedAt: new Date().toISOString(),
      origin: "sqlite",
    });
    return driver.admin();
  }
  const deadLetterStatus = () => {
    const db = new Database(queue!.path, { readonly: true });
    try {
      return db.prepare("SELECT status FROM dead_letters").pluck().all();
    } finally {
      db.close();
    }
  };

  it.each([
    ["purge", (a: Admin) => a.purge({ subscriber: "w" })],
    ["clearPending", (a: Admin) => a.clearPending({})],
  ] as const)(
    "regression: %s waits for the lock without blocking the event loop",
    async (_, action) => {
      const admin = await adminWithDeadLetter();
      // The lock is let go by a timer of this thread: the action can only succeed if the event
      // loop keeps turning while it waits.
      const lock = holdWriteLock(queue!.path, 300);
      const result = await action(admin);
      await lock.released;
      // Before: the driver's connection waited in SQLite's busy handler (busy_timeout 5000), so
      // the lock holder's timer could not run: 5 s blocked, then a bare "database is locked".
      expect(result.dryRun).toBe(false);
    },
  );

  it("regression: a purge's signal ends its wait for the lock, and nothing is purged", async () => {
    queue = tempQueue();
    const store = new SqliteDeadLetterStore({ path: queue.path });
    closers.push(async () => store.close());
    await store.deadLetter({
      envelope: job(1),
      subscriber: "w",
      reason: "max_attempts",
      attempts: 3,
      error: { name: "Error", message: "failed" },
      failedAt: new Date().toISOString(),
      origin: "sqlite",
    });
    // The admin over a connection of our own, counting its write attempts.
    const db = openDatabase(queue.path);
    closers.push(async () => db.close());
    let attempts = 0;
    const transaction = db.transaction.bind(db);
    db.transaction = ((fn: Parameters<typeof transaction>[0]) => {
      attempts++;
      return transaction(fn);
    }) as typeof db.transaction;
    const admin = new SqliteAdmin({
      path: queue.path,
      database: () => db,
      deadLetters: () => store,
      requeueTransport: () => {
        throw new Error("not used");
      },
    });
    const lock = holdWriteLock(queue.path, 30_000);
    const controller = new AbortController();
    const purging = admin.purge({ subscriber: "w" }, { signal: controller.signal });
    purging.catch(() => {});
    // Aborted once it has found the lock taken and tries again (before: one attempt, in which the
    // thread waited 5 s and then failed with "database is locked").
    await eventually(() => attempts >= 2, "the purge retrying the locked write");
    controller.abort(new Error("operator gave up"));
    await expect(purging).rejects.toThrow("operator gave up");
    await lock.release();
    expect(deadLetterStatus()).toEqual(["pending_retry"]);
  });
});

describe("the queue file deleted or replaced while a transport has it open", () => {
  it("rejects publishes, reports unhealthy and stops claiming once the file is deleted", async () => {
    const logger = memoryLogger();
    const t = connect({ logger });
    let handled = 0;
    await t.subscribe({ subscriber: "s", types: ["JOB"], handler: async () => void handled++ });
    await t.publish([job(1)]);
    await eventually(() => handled === 1, "the first event handled");
    unlinkSync(queue!.path);
    unlinkSync(`${queue!.path}-wal`);
    unlinkSync(`${queue!.path}-shm`);
    // At most one stat a second: within a second (plus slack) publish must refuse.
    await eventually(
      () =>
        t.publish([job(2)]).then(
          () => false,
          (error: unknown) => error instanceof QueueFileMissingError,
        ),
      "publish to reject with QueueFileMissingError",
      3_000,
    );
    await expect(t.publish([job(3)])).rejects.toMatchObject({
      code: "QUEUE_FILE_MISSING",
      path: queue!.path,
    });
    expect(await t.health()).toMatchObject({ healthy: false, status: "unhealthy" });
    expect((await t.health()).message).toMatch(/was deleted/);
    await eventually(
      () =>
        logger.lines.some(
          (l) =>
            l.level === "error" &&
            (l.obj as { err?: unknown }).err instanceof QueueFileMissingError,
        ),
      "the subscription to log that it cannot claim",
      3_000,
    );
    await expect(t.stats()).rejects.toBeInstanceOf(QueueFileMissingError);
  });

  it("rejects publishes and reports unhealthy once another file takes the path", async () => {
    const t = connect();
    await t.publish([job(1)]);
    const other = tempQueue();
    try {
      const replacement = sqliteTransport({ path: other.path, pruneIntervalMs: 0 });
      await replacement.close();
      expect(statSync(other.path).ino).not.toBe(statSync(queue!.path).ino);
      renameSync(other.path, queue!.path);
      await eventually(
        () =>
          t.publish([job(2)]).then(
            () => false,
            (error: unknown) => error instanceof QueueFileReplacedError,
          ),
        "publish to reject with QueueFileReplacedError",
        3_000,
      );
      const health = await t.health();
      expect(health).toMatchObject({ healthy: false, status: "unhealthy" });
      expect(health.message).toMatch(/replaced by another file/);
    } finally {
      other.cleanup();
    }
  });
});

describe("SQLite's low-level failures as typed errors", () => {
  it("rejects a publish into a file corrupted mid-way with QueueFileError (corrupt)", async () => {
    const t = connect({ checkpoint: "inline" });
    // The pages of the empty schema (sqlite_master may overflow page 1) stay readable, so it opens.
    const probe = new Database(queue!.path, { readonly: true });
    const schemaBytes =
      (probe.pragma("page_count", { simple: true }) as number) *
      (probe.pragma("page_size", { simple: true }) as number);
    probe.close();
    const pad = "x".repeat(2_000);
    for (let n = 0; n < 2_000; n += 100)
      await t.publish(Array.from({ length: 100 }, (_, i) => job(n + i, "JOB", { data: { pad } })));
    await t.close();
    const { size } = statSync(queue!.path);
    // Garbage over every page after the schema's (the header and schema stay readable, so it opens).
    const fd = openSync(queue!.path, "r+");
    try {
      const garbage = Buffer.alloc(size - schemaBytes, 0xa5);
      writeSync(fd, garbage, 0, garbage.length, schemaBytes);
    } finally {
      closeSync(fd);
    }
    const reopened = connect();
    const error = await reopened.publish([job(9_999)]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(QueueFileError);
    expect(error).toMatchObject({ code: "QUEUE_FILE_CORRUPT", path: queue!.path });
    expect((error as Error).cause).toMatchObject({
      code: expect.stringMatching(/^SQLITE_CORRUPT/),
    });
  });

  it("maps a write on a read-only connection to QueueFileError (readonly)", () => {
    queue = tempQueue();
    openDatabase(queue.path).close();
    const db = new Database(queue.path, { readonly: true });
    try {
      const writer = new Writer(db, queue.path, 0);
      let error: unknown;
      try {
        writer.attempt(() => db.prepare("DELETE FROM events").run());
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(QueueFileError);
      expect(error).toMatchObject({ code: "QUEUE_FILE_READONLY", problem: "readonly" });
      expect((error as Error).cause).toMatchObject({
        code: expect.stringMatching(/^SQLITE_READONLY/),
      });
    } finally {
      db.close();
    }
  });

  const withChattr = chattrAvailable();
  it.skipIf(!withChattr)(
    "rejects a publish into an immutable file with a typed error (chattr +i stops root too)",
    async () => {
      const t = connect();
      await t.publish([job(1)]);
      await t.close();
      makeImmutable(queue!.path);
      let error: unknown;
      try {
        const again = connect();
        await again.publish([job(2)]);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(QueueFileError);
      expect((error as QueueFileError).code).toMatch(/^QUEUE_FILE_(READONLY|UNOPENABLE)$/);
    },
  );

  it.skipIf(!withChattr)(
    "refuses to open a queue in an immutable directory with a typed error",
    async () => {
      const t = connect();
      await t.publish([job(1)]);
      await t.close();
      makeImmutable(queue!.dir);
      let error: unknown;
      try {
        const again = connect();
        await again.publish([job(2)]);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(QueueFileError);
      expect((error as QueueFileError).code).toMatch(/^QUEUE_FILE_(READONLY|UNOPENABLE)$/);
    },
  );
});

describe("a subscription's signal aborted while its registration waits for the lock", () => {
  it("rejects with the abort reason and starts no subscription that nothing could stop", async () => {
    const t = connect();
    const { released } = holdWriteLock(queue!.path, 100);
    const controller = new AbortController();
    let handled = 0;
    const subscribing = t
      .subscribe({
        subscriber: "aborted",
        types: ["JOB"],
        handler: async () => void handled++,
        signal: controller.signal,
      })
      .catch((e: unknown) => e);
    const reason = new Error("the caller gave up");
    setTimeout(() => controller.abort(reason), 20);
    await released;
    // Before the fix it resolved once the lock came free, with a live subscription whose signal
    // had fired its `abort` before anyone listened: nothing could stop it.
    expect(await subscribing).toBe(reason);
    expect((await t.health()).details).toMatchObject({ subscriptions: 0 });
    await t.publish([job(1)]);
    await t.close();
    expect(handled).toBe(0);
  });
});

describe("close() while writes still wait for another connection's lock", () => {
  it("rejects the waiting publish, subscribe and register with TransportClosedError, not a driver TypeError", async () => {
    const t = connect();
    await t.publish([job(0)]);
    // Held until close() is done (close takes a while: it stops the checkpoint worker thread; a
    // lock let go after a fixed 150 ms let the publish commit first on a slow machine).
    const lock = holdWriteLock(queue!.path, 30_000);
    const publishing = t.publish([job(1), job(2)]).catch((e: unknown) => e);
    const subscribing = t
      .subscribe({ subscriber: "late", types: ["JOB"], handler: async () => {} })
      .catch((e: unknown) => e);
    const registering = t.register("later", ["JOB"]).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await t.close();
    await lock.release();
    for (const outcome of await Promise.all([publishing, subscribing, registering])) {
      expect(outcome).toBeInstanceOf(TransportClosedError);
    }
  });
});

describe("a subscription's backoff", () => {
  it.each([
    ["initialMs", { initialMs: Number.NaN }],
    ["initialMs", { initialMs: -1 }],
    ["maxMs", { maxMs: Number.POSITIVE_INFINITY }],
    ["maxMs", { maxMs: 2 ** 31 }],
    ["multiplier", { multiplier: 0 }],
    ["jitter", { jitter: 2 }],
  ])(
    "is refused with QueueOptionsError naming backoff.%s before anything is registered",
    async (field, backoff) => {
      const t = connect();
      const error = await t
        .subscribe({ subscriber: "s", types: ["JOB"], backoff, handler: async () => {} })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(QueueOptionsError);
      expect((error as QueueOptionsError).option).toBe(`backoff.${field}`);
      expect((await t.stats()).subscribers).toEqual([]);
    },
  );
});
