import Database from "better-sqlite3";
import type { DeadLetterRecord, DeadLetterSink } from "@switchyard/router";
import { afterEach, describe, expect, it } from "vitest";
import {
  type SqliteTransport,
  type SqliteTransportOptions,
  UndecodableEventError,
  deadDeliveries,
  getEvent,
  sqliteTransport,
} from "./index";
import { eventually, job, memoryLogger, tempQueue } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue>;
let open: SqliteTransport[] = [];
const raw: Database.Database[] = [];

function connect(options: SqliteTransportOptions = {}): SqliteTransport {
  queue ??= tempQueue();
  const transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0, ...options });
  open.push(transport);
  return transport;
}
function database(readonly = false): Database.Database {
  const db = new Database(queue.path, readonly ? { readonly } : {});
  db.pragma("busy_timeout = 5000");
  raw.push(db);
  return db;
}
afterEach(async () => {
  await Promise.all(open.map((t) => t.close()));
  for (const db of raw.splice(0)) db.close();
  open = [];
  queue?.cleanup();
  queue = undefined!;
});

/** A dead-letter sink that keeps what it is given, failing the first `failures` calls. */
function memorySink(failures = 0): DeadLetterSink & { records: DeadLetterRecord[] } {
  const records: DeadLetterRecord[] = [];
  let calls = 0;
  return {
    records,
    deadLetter(record) {
      if (calls++ < failures) throw new Error("the dead-letter store is down");
      records.push(record);
    },
  };
}

/** A row as another program would write it, bypassing publish()'s validation. */
interface RawRow {
  readonly id: string | Buffer;
  readonly payload: string | Buffer;
  readonly extensions?: string | Buffer | null;
}

function insertRaw(db: Database.Database, row: RawRow): void {
  db.prepare(
    `INSERT INTO events (id, type, source, subject, time, dataversion, payload, extensions, created_at)
     VALUES (?, 'JOB', 'raw-writer', NULL, ?, 1, ?, ?, ?)`,
  ).run(row.id, new Date().toISOString(), row.payload, row.extensions ?? null, Date.now());
}

const notUtf8 = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0xa0, 0xa1]);

describe("rows nobody can decode", () => {
  it("dead-letters them with their raw columns and the decode error, and keeps delivering the rest", async () => {
    const sink = memorySink();
    const logger = memoryLogger();
    const t = connect({ deadLetter: sink, logger });
    const got: number[] = [];
    await t.subscribe({
      subscriber: "robust",
      types: ["JOB"],
      concurrency: 4,
      handler: async (d) => void got.push((d.envelope.data as { n: number }).n),
    });
    const other = database();
    const cases: [name: string, row: RawRow, column: string][] = [
      ["malformed JSON", { id: "raw-json", payload: '{"n": ' }, "payload"],
      ["non-UTF-8 BLOB", { id: "raw-blob", payload: notUtf8 }, "payload"],
      [
        "malformed extensions",
        { id: "raw-ext", payload: "{}", extensions: "{not json" },
        "extensions",
      ],
      [
        "extensions not an object",
        { id: "raw-ext-array", payload: "{}", extensions: "[1, 2]" },
        "extensions",
      ],
      [
        "extensions overriding columns",
        { id: "raw-ext-id", payload: "{}", extensions: JSON.stringify({ id: 7, data: null }) },
        "extensions",
      ],
      ["a BLOB id", { id: Buffer.from("raw-blob-id"), payload: "{}" }, "id"],
    ];
    await t.publish([job(1)]);
    for (const [, row] of cases) {
      insertRaw(other, row);
      await t.publish([job(got.length + 100)]);
    }
    await t.publish([job(2)]);
    await eventually(
      () => sink.records.length === cases.length && got.length === cases.length + 2,
      "every row dead-lettered and every valid event handled",
    );

    const reader = database(true);
    for (const [name, row, column] of cases) {
      const id = typeof row.id === "string" ? row.id : undefined;
      const record = sink.records.find((r) =>
        id ? r.envelope.id === id : r.envelope.id.startsWith("seq-"),
      );
      expect(record, name).toBeDefined();
      expect(record, name).toMatchObject({
        subscriber: "robust",
        reason: "invalid_payload",
        attempts: 1,
        origin: "sqlite",
        envelope: { type: "JOB", source: "raw-writer" },
        error: { name: "UndecodableEventError", code: "EVENT_VALIDATION_FAILED" },
      });
      expect(record!.error.message, name).toContain(`cannot be decoded`);
      expect(record!.error.message, name).toContain(column);
      // The raw columns, exactly as stored: text as is, BLOBs as base64.
      const data = record!.envelope.data as Record<string, unknown>;
      expect(data.payload, name).toEqual(
        Buffer.isBuffer(row.payload) ? { base64: row.payload.toString("base64") } : row.payload,
      );
      expect(data.extensions, name).toEqual(row.extensions ?? null);
      if (column === "id") expect(data.id, name).toEqual({ base64: row.id.toString("base64") });
    }
    // The delivery rows agree: dead, and held by the sink. Their settle may be saved a moment
    // after the sink has the record (settles are batched with the subscription's next claim).
    await eventually(
      () => deadDeliveries(reader, { subscriber: "robust" }).length === cases.length,
      "every delivery row marked dead",
    );
    const dead = deadDeliveries(reader, { subscriber: "robust" });
    expect(dead).toHaveLength(cases.length);
    for (const d of dead)
      expect(d).toMatchObject({ deadReason: "invalid_payload", handedOff: true });
    // The rows themselves stay, for the operator to inspect and fix.
    expect(getEvent(reader, "raw-json")?.payloadError).toMatch(/payload is not JSON/);
    // Logged as warnings (an operator should know), never as errors.
    expect(logger.lines.filter((l) => l.level === "error")).toEqual([]);
    expect(logger.lines.filter((l) => l.level === "warn")).toHaveLength(cases.length);
  });

  it("decodes a BLOB holding JSON, invalid UTF-8 inside a string becoming U+FFFD", async () => {
    const sink = memorySink();
    const t = connect({ deadLetter: sink });
    const got: unknown[] = [];
    await t.subscribe({
      subscriber: "lenient",
      types: ["JOB"],
      handler: async (d) => void got.push(d.envelope.data),
    });
    insertRaw(database(), {
      id: "raw-json-blob",
      payload: Buffer.concat([Buffer.from('{"s":"a'), Buffer.from([0xff]), Buffer.from('b"}')]),
    });
    await t.publish([job(1)]);
    await eventually(() => got.length === 2, "both events");
    expect(got).toContainEqual({ s: "a\ufffdb" });
    expect(sink.records).toEqual([]);
  });

  it("keeps an undecodable delivery and retries it while the dead-letter sink fails", async () => {
    const sink = memorySink(2);
    const t = connect();
    await t.subscribe({
      subscriber: "patient",
      types: ["JOB"],
      deadLetter: sink,
      backoff: { initialMs: 10, maxMs: 20 },
      handler: async () => {},
    });
    insertRaw(database(), { id: "raw-retry", payload: "nope" });
    await t.publish([job(1)]);
    await eventually(() => sink.records.length === 1, "the dead letter once the sink recovers");
    expect(sink.records[0]).toMatchObject({
      envelope: { id: "raw-retry", data: { payload: "nope" } },
      reason: "invalid_payload",
      attempts: 3,
    });
    expect(sink.records[0]!.error.message).toMatch(/payload is not JSON/);
  });

  it("names the row, the column and the fix in UndecodableEventError", () => {
    const error = new UndecodableEventError({
      seq: 12,
      eventId: "raw-1",
      eventType: "JOB",
      column: "payload",
      problem: "its payload is not JSON (Unexpected end of JSON input)",
      receivedType: "text",
    });
    expect(error).toMatchObject({
      code: "EVENT_VALIDATION_FAILED",
      reason: "invalid_envelope",
      seq: 12,
      column: "payload",
      issues: [{ path: "payload", code: "undecodable", received: "text" }],
    });
    expect(error.message).toMatch(
      /^Stored event #12 \(id raw-1, type JOB\) cannot be decoded: its payload is not JSON/,
    );
  });
});
