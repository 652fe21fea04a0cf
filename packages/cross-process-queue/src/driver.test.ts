import { execFile } from "node:child_process";
import { chmodSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  type DaemonHeartbeat,
  type Driver,
  TransportClosedError,
  UnrecoverableError,
  UnsupportedOperationError,
  openDriver,
  parseTarget,
} from "@switchyard/transport";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import {
  QueueFileError,
  QueueFileNotFoundError,
  QueueNotInitialisedError,
  SCHEMA_VERSION,
  SchemaVersionError,
  SqliteDriver,
  type SqliteInspector,
  sqliteDriver,
} from "./index";
import { eventually, job, tempQueue } from "./test/fixtures";

const run = promisify(execFile);
const queues: ReturnType<typeof tempQueue>[] = [];
const drivers: Driver[] = [];
afterEach(async () => {
  for (const d of drivers.splice(0)) await d.close();
  for (const q of queues.splice(0)) {
    chmodSync(q.dir, 0o755);
    q.cleanup();
  }
});

function queue(): ReturnType<typeof tempQueue> {
  const q = tempQueue();
  queues.push(q);
  return q;
}

async function open(path: string, readOnly = false): Promise<Driver> {
  const driver = await openDriver(path, { drivers: [sqliteDriver], readOnly });
  drivers.push(driver);
  return driver;
}

describe("sqliteDriver", () => {
  it("answers the sqlite scheme and bare paths, each part created once", async () => {
    const q = queue();
    const driver = await open(`sqlite:${q.path}`);
    expect(driver).toBeInstanceOf(SqliteDriver);
    expect(driver.scheme).toBe("sqlite");
    expect(driver.target).toBe(`sqlite:${q.path}`);
    // Every flag on but the ack-floor audit (each delivery is a row of its own); the one stated
    // behaviour: an expired lease counts as retrying.
    const { expiredLeases, audit, ...flags } = driver.capabilities;
    expect(Object.values(flags).every((v) => v === true)).toBe(true);
    expect(audit).toBe(false);
    expect(expiredLeases).toBe("retrying");
    expect(driver.transport()).toBe(driver.transport({ logger: undefined }));
    expect(driver.heartbeatSink()).toBe(driver.heartbeatSink());
    expect(driver.deadLetterSink()).toBe(driver.deadLetterSink());
    expect(driver.inspector()).toBe(driver.inspector());
    expect(driver.admin()).toBe(driver.admin());
    expect(driver.transport().name).toBe("sqlite");
    const bare = await sqliteDriver.open(parseTarget(q.path), {});
    drivers.push(bare);
    expect((bare as SqliteDriver).path).toBe(q.path);
  });

  it("gives its dead-letter store options.sqlite.retryBackoff", async () => {
    const q = queue();
    const driver = await openDriver(q.path, {
      drivers: [sqliteDriver],
      options: { sqlite: { retryBackoff: { initialMs: 60_000 } } },
    });
    drivers.push(driver);
    const before = Date.now();
    await driver.deadLetterSink()!.deadLetter({
      envelope: job(1),
      subscriber: "w",
      reason: "max_attempts",
      attempts: 1,
      error: { name: "Error", message: "no" },
      failedAt: new Date().toISOString(),
      origin: "sqlite",
    });
    const [record] = (await driver.inspector().deadLetters()).deadLetters;
    const due = Date.parse(record!.nextRetryAt!) - before;
    expect(due).toBeGreaterThanOrEqual(60_000);
    expect(due).toBeLessThan(61_000);
  });

  it("closes every part once; a second close returns the same promise", async () => {
    const q = queue();
    const driver = await open(q.path);
    const transport = driver.transport();
    driver.heartbeatSink();
    driver.deadLetterSink();
    const inspector = driver.inspector();
    const closing = driver.close();
    expect(driver.close()).toBe(closing);
    await closing;
    await expect(transport.publish([job(1)])).rejects.toBeInstanceOf(TransportClosedError);
    await expect(inspector.subscribers()).rejects.toBeInstanceOf(TransportClosedError);
    expect(() => driver.inspector()).toThrow(TransportClosedError);
  });

  it("reports what the test did: published N, handled K, dead D, retrying R, and an idle subscriber's backlog", async () => {
    const q = queue();
    const driver = await open(q.path);
    const transport = driver.transport();
    await transport.register!("idle", ["JOB"]);
    const handled: number[] = [];
    const sub = await transport.subscribe({
      subscriber: "worker",
      types: ["JOB"],
      maxAttempts: 5,
      backoff: { initialMs: 600_000, maxMs: 600_000, jitter: 0 },
      handler: async ({ envelope }) => {
        const n = (envelope.data as { n: number }).n;
        if (n >= 8) throw new Error(`no ${n} yet`); // retrying: a long backoff
        if (n >= 6) throw new UnrecoverableError(`bad ${n}`); // dead: to the driver's store
        handled.push(n);
      },
    });
    const N = 10;
    await transport.publish(Array.from({ length: N }, (_, n) => job(n)));
    const inspector = driver.inspector();
    await eventually(async () => {
      const w = (await inspector.subscribers()).find((s) => s.subscriber === "worker");
      return handled.length === 6 && w?.dead === 2 && w.retrying === 2;
    }, "the worker to settle");
    await sub.close();
    const backlog = await inspector.subscribers();
    expect(backlog.map((s) => s.subscriber)).toEqual(["idle", "worker"]);
    expect(backlog[0]).toMatchObject({
      types: ["JOB"],
      ephemeral: false,
      pending: N,
      inFlight: 0,
      retrying: 0,
      dead: 0,
      lag: N,
    });
    expect(backlog[0]!.oldestPendingMs).toBeGreaterThanOrEqual(0);
    expect(backlog[1]).toMatchObject({ pending: 0, inFlight: 0, retrying: 2, dead: 2, lag: 2 });
    const counts = await inspector.deadLetterCounts();
    expect(counts).toMatchObject({
      depth: 2,
      byStatus: { pending_retry: 2 },
      byReason: { unrecoverable: 2 },
      byType: { JOB: 2 },
      bySubscriber: { worker: 2 },
    });
    const page = await inspector.deadLetters();
    expect(page.deadLetters).toHaveLength(2);
    expect(
      page.deadLetters.every((d) => typeof d.id === "string" && d.envelope?.type === "JOB"),
    ).toBe(true);
    const one = await inspector.deadLetter(page.deadLetters[0]!.id);
    expect(one).toEqual(page.deadLetters[0]);
    expect(await inspector.deadLetter("999")).toBeUndefined();
    expect(await inspector.deadLetter("not-an-id")).toBeUndefined();
    const events = await inspector.events({ limit: 100 });
    expect(events.events).toHaveLength(N);
    expect(events.next).toBeUndefined();
  });

  it("stores a heartbeat's restarts and reads it back with its age", async () => {
    const q = queue();
    const driver = await open(q.path);
    const at = new Date(Date.now() - 1_000).toISOString();
    const beat: DaemonHeartbeat = {
      daemon: "trainer",
      pid: 42,
      host: "gpu-1",
      status: "running",
      health: { healthy: true, status: "healthy", message: "ok", details: {} } as never,
      stats: { eventsProcessed: 3 } as never,
      restarts: 4,
      startedAt: at,
      at,
    };
    await driver.heartbeatSink().write(beat);
    const [read] = await driver.inspector().heartbeats();
    expect(read).toMatchObject({
      daemon: "trainer",
      pid: 42,
      host: "gpu-1",
      status: "running",
      restarts: 4,
      startedAt: at,
      at,
      health: beat.health,
      stats: beat.stats,
    });
    expect(read!.ageMs).toBeGreaterThanOrEqual(1_000);
    expect(read!.damaged).toBeUndefined();
  });
});

describe("opening read-only", () => {
  async function filled(): Promise<ReturnType<typeof tempQueue>> {
    const q = queue();
    const driver = await open(q.path);
    await driver.transport().register!("worker", ["JOB"]);
    await driver.transport().publish([job(1), job(2), job(3)]);
    await driver.close();
    return q;
  }

  const listing = (dir: string) =>
    readdirSync(dir)
      .sort()
      .map((name) => {
        const s = statSync(join(dir, name));
        return `${name}:${s.size}:${s.mtimeMs}`;
      });

  it("reads a file in a read-only directory and writes nothing there", async () => {
    const q = await filled();
    const before = listing(q.dir);
    const bytes = readFileSync(q.path);
    chmodSync(q.dir, 0o555);
    const driver = await open(q.path, true);
    const inspector = driver.inspector();
    expect((await inspector.subscribers())[0]).toMatchObject({ subscriber: "worker", pending: 3 });
    expect((await inspector.events()).events).toHaveLength(3);
    expect(await inspector.heartbeats()).toEqual([]);
    expect((await inspector.deadLetters()).deadLetters).toEqual([]);
    expect(await inspector.deadLetterCounts()).toMatchObject({ depth: 0 });
    await driver.close();
    // As root, chmod does not stop writes: what proves "nothing written" is the listing itself.
    expect(listing(q.dir)).toEqual(before);
    expect(readFileSync(q.path).equals(bytes)).toBe(true);
  });

  // As root, chmod stops nothing: a child process of an unprivileged user meets the real refusal.
  const asNobody = process.getuid?.() === 0 && existsSync("/usr/bin/setpriv") ? it : it.skip;
  asNobody("reads it as an unprivileged user for whom the directory is read-only", async () => {
    const q = await filled();
    chmodSync(q.path, 0o644);
    chmodSync(q.dir, 0o555);
    const before = listing(q.dir);
    const root = join(import.meta.dirname, "../../..");
    const { stdout } = await run(
      "/usr/bin/setpriv",
      [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        process.execPath,
        "--import",
        "tsx",
        "packages/cross-process-queue/src/test/read-only-reader.ts",
        q.path,
      ],
      { cwd: root, env: { ...process.env, TSX_TSCONFIG_PATH: join(root, "tsconfig.base.json") } },
    );
    const report = JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(report).toMatchObject({
      subscribers: [{ subscriber: "worker", pending: 3, lag: 3 }],
      events: 3,
      snapshot: true,
    });
    expect(listing(q.dir)).toEqual(before);
  });

  it("refuses the transport, the sinks and the admin's actions", async () => {
    const q = await filled();
    const driver = await open(q.path, true);
    expect(() => driver.transport()).toThrow(UnsupportedOperationError);
    expect(() => driver.heartbeatSink()).toThrow(UnsupportedOperationError);
    expect(() => driver.deadLetterSink()).toThrow(UnsupportedOperationError);
    await expect(driver.admin().backup()).rejects.toBeInstanceOf(UnsupportedOperationError);
    await expect(driver.admin().purge({}, { all: true })).rejects.toBeInstanceOf(
      UnsupportedOperationError,
    );
  });

  it("says what is wrong with a missing file, a foreign file, an empty database and a newer schema", async () => {
    const q = queue();
    await expect(open(join(q.dir, "nope.db"), true)).rejects.toBeInstanceOf(QueueFileNotFoundError);
    const missing = join(q.dir, "missing", "nope.db");
    await expect(
      sqliteDriver.open(parseTarget(missing), { options: { sqlite: { create: false } } }),
    ).rejects.toBeInstanceOf(QueueFileNotFoundError);
    expect(readdirSync(q.dir)).toEqual([]);
    await expect(open("sqlite:", true)).rejects.toMatchObject({ code: "UNKNOWN_TARGET" });
    await expect(open(q.dir, true)).rejects.toMatchObject({ code: "QUEUE_FILE_UNOPENABLE" });
    writeFileSync(q.path, "not a database ".repeat(300));
    const foreign = await open(q.path, true).catch((e: unknown) => e);
    expect(foreign).toBeInstanceOf(QueueFileError);
    expect(foreign).toMatchObject({ code: "QUEUE_FILE_CORRUPT" });
    const empty = join(q.dir, "empty.db");
    new Database(empty).exec("CREATE TABLE other (x)");
    await expect(open(empty, true)).rejects.toBeInstanceOf(QueueNotInitialisedError);
    const newer = join(q.dir, "newer.db");
    const raw = new Database(newer);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const bytes = readFileSync(newer);
    await expect(open(newer, true)).rejects.toBeInstanceOf(SchemaVersionError);
    await expect(open(newer)).rejects.toBeInstanceOf(SchemaVersionError);
    expect(readFileSync(newer).equals(bytes)).toBe(true);
  });

  it("reads a file another process is writing, in place, seeing its new events", async () => {
    const q = await filled();
    const writer = await open(q.path);
    const reader = await open(q.path, true);
    const inspector = reader.inspector() as SqliteInspector;
    expect(inspector.snapshot).toBeUndefined();
    await writer.transport().publish([job(4)]);
    expect((await inspector.events()).events).toHaveLength(4);
  });
});
