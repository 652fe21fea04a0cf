import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import Database from "better-sqlite3";
import { TransportClosedError as ContractClosedError } from "@switchyard/transport";
import { afterEach, describe, expect, it } from "vitest";
import {
  QueueFileError,
  SCHEMA_VERSION,
  SchemaVersionError,
  TransportClosedError,
  migrate,
  migrations,
  openDatabase,
  sqliteDriver,
  schemaVersion,
  sqliteTransport,
} from "../index";
import { tempQueue } from "../test/fixtures";

let queue: ReturnType<typeof tempQueue>;
afterEach(() => queue?.cleanup());

describe("schema migrations", () => {
  it("creates the schema in an empty file, in WAL mode, and records the version", () => {
    queue = tempQueue();
    const db = openDatabase(`${queue.dir}/nested/dirs/q.db`);
    try {
      expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
      const tables = db
        .prepare(`SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') ORDER BY name`)
        .pluck()
        .all();
      expect(tables).toEqual(
        expect.arrayContaining([
          "backlog",
          "daemon_heartbeats",
          "deliveries",
          "events",
          "subscriber_types",
          "subscribers",
        ]),
      );
      expect(tables).not.toContain("dead_letters");
    } finally {
      db.close();
    }
  });

  it("applies nothing to a current file", () => {
    queue = tempQueue();
    openDatabase(queue.path).close();
    const db = new Database(queue.path);
    try {
      expect(migrate(db, queue.path)).toEqual([]);
    } finally {
      db.close();
    }
  });

  it("refuses a file written by a newer version and leaves it untouched", () => {
    queue = tempQueue();
    const raw = new Database(queue.path);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const before = readFileSync(queue.path);
    let error: unknown;
    try {
      sqliteTransport({ path: queue.path });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SchemaVersionError);
    expect(error).toMatchObject({
      code: "QUEUE_SCHEMA_TOO_NEW",
      found: SCHEMA_VERSION + 1,
      supported: SCHEMA_VERSION,
    });
    expect((error as Error).message).toMatch(/Upgrade the package/);
    expect(readFileSync(queue.path)).toEqual(before);
  });
});

describe("version 2", () => {
  /** A file as version 1 left it, with one heartbeat. */
  function versionOne(path: string): void {
    const db = new Database(path);
    db.pragma("journal_mode = WAL");
    migrations[0]!.up(db);
    db.pragma("user_version = 1");
    db.prepare(
      `INSERT INTO daemon_heartbeats (daemon, pid, host, status, updated_at) VALUES ('d', 1, 'h', 'running', ?)`,
    ).run(Date.now());
    db.close();
  }

  it("is read as it is, read-only: heartbeats of version 1 have 0 restarts", async () => {
    queue = tempQueue();
    versionOne(queue.path);
    await using driver = await sqliteDriver.open(
      { scheme: "sqlite", text: queue.path, rest: queue.path, params: {} },
      { readOnly: true },
    );
    expect(await driver.inspector().heartbeats()).toMatchObject([{ daemon: "d", restarts: 0 }]);
    const raw = new Database(queue.path, { readonly: true });
    expect(schemaVersion(raw)).toBe(1);
    raw.close();
  });

  it("adds daemon_heartbeats.restarts and the backlog view with retrying and lag", () => {
    queue = tempQueue();
    versionOne(queue.path);
    const db = openDatabase(queue.path);
    try {
      expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
      expect(db.prepare("SELECT restarts FROM daemon_heartbeats").pluck().all()).toEqual([0]);
      expect(db.prepare(`SELECT name FROM pragma_table_info('backlog')`).pluck().all()).toEqual([
        "subscriber",
        "pending",
        "in_flight",
        "retrying",
        "dead",
        "lag",
        "oldest_pending_at",
      ]);
    } finally {
      db.close();
    }
  });
});

describe("unusable files", () => {
  it("rejects a file that is not a SQLite database, saying what to do", () => {
    queue = tempQueue();
    writeFileSync(queue.path, "this is a text file, not a database ".repeat(200));
    let error: unknown;
    try {
      sqliteTransport({ path: queue.path });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(QueueFileError);
    expect(error).toMatchObject({ code: "QUEUE_FILE_CORRUPT", path: queue.path });
    expect((error as Error).message).toMatch(/Restore it from a backup/);
    expect((error as Error).cause).toBeDefined();
  });

  it("rejects a path that is a directory", () => {
    queue = tempQueue();
    mkdirSync(queue.path);
    expect(() => sqliteTransport({ path: queue.path })).toThrow(
      expect.objectContaining({ code: "QUEUE_FILE_UNOPENABLE" }),
    );
  });
});

describe("a closed transport", () => {
  it("rejects publish, subscribe and stats with TransportClosedError, and closes idempotently", async () => {
    queue = tempQueue();
    const transport = sqliteTransport({ path: queue.path });
    const closing = transport.close();
    expect(transport.close()).toBe(closing);
    await closing;
    const error = await transport.publish([]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportClosedError);
    // One closed-error class for every transport: the contract's, code "CLOSED".
    expect(TransportClosedError).toBe(ContractClosedError);
    expect((error as ContractClosedError).code).toBe("CLOSED");
    expect(error).toMatchObject({ code: "CLOSED" });
    expect((error as Error).message).toContain(queue.path);
    await expect(
      transport.subscribe({ subscriber: "s", types: ["JOB"], handler: async () => {} }),
    ).rejects.toBeInstanceOf(TransportClosedError);
    await expect(transport.stats()).rejects.toBeInstanceOf(TransportClosedError);
  });
});
