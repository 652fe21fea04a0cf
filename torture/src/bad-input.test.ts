import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import {
  PayloadTooLargeError,
  deadDeliveries,
  getEvent,
  openQueueReadOnly,
  sqliteTransport,
} from "@switchyard/cross-process-queue";
import { SqliteDeadLetterStore } from "@switchyard/dlq";
import {
  EventValidationError,
  type Envelope,
  createEnvelope,
  isEnvelope,
  pipelineCatalog,
} from "@switchyard/event-schema";
import { type Logger, type Transport, createRouter } from "@switchyard/router";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { anyValue, mutatedEnvelope, payloadFor } from "./harness/arbitraries";
import { printTable } from "./harness/ledger";
import {
  NATS_URL,
  deleteStream,
  describeNats,
  natsAvailability,
  uniqueStream,
} from "./harness/nats";
import { openTransport } from "./harness/transports";
import { eventually } from "./harness/wait";
import { size, testTimeoutMs } from "./size";

const { badInput } = size;

/**
 * A logger that keeps error lines. Warnings about rejected deliveries are expected, and so is the
 * router's error-level line for a handler failure that is unrecoverable by design (a bad row or
 * message is dead-lettered with a reason: what these suites want).
 */
function errorLogger(): Logger & { errors: string[] } {
  const errors: string[] = [];
  const none = () => {};
  const designed = (obj: unknown) =>
    (obj as { err?: { code?: unknown } } | null)?.err?.code === "UNRECOVERABLE";
  return {
    errors,
    debug: none,
    info: none,
    warn: none,
    error: (obj, msg) => {
      if (!designed(obj)) errors.push(`${msg ?? ""} ${JSON.stringify(obj)}`);
    },
  };
}

const schemas = pipelineCatalog.toJSONSchema() as Record<string, Parameters<typeof payloadFor>[0]>;
const catalogTypes = pipelineCatalog.types as readonly string[];

/** What one publish did. */
type Outcome = "accepted" | "EventValidationError" | "PayloadTooLargeError" | `other: ${string}`;

function outcomeOf(error: unknown): Outcome {
  if (error instanceof EventValidationError && error.code === "EVENT_VALIDATION_FAILED")
    return "EventValidationError";
  if (error instanceof PayloadTooLargeError && error.code === "PAYLOAD_TOO_LARGE")
    return "PayloadTooLargeError";
  const e = error as { name?: unknown; code?: unknown; message?: unknown } | null;
  const text = (v: unknown) => (typeof v === "string" ? v : "");
  const message = typeof e?.message === "string" ? e.message : typeof error;
  return `other: ${text(e?.name)} ${text(e?.code)} ${message.replaceAll("\n", " ").slice(0, 160)}`;
}

async function publishOutcome(publish: () => Promise<unknown>): Promise<Outcome> {
  try {
    await publish();
    return "accepted";
  } catch (error) {
    return outcomeOf(error);
  }
}

const tally = (outcomes: readonly Outcome[]) => {
  const counts = new Map<string, number>();
  for (const o of outcomes) counts.set(o, (counts.get(o) ?? 0) + 1);
  return [...counts.entries()] as [string, number][];
};

/** Non-envelopes every transport must refuse with a typed error, nothing of the batch stored. */
function nonEnvelopes(): [string, unknown][] {
  const valid = createEnvelope({
    type: "MODEL_PROMOTED",
    source: "torture",
    data: { config_key: "hex8_2p", model_path: "m.pt", elo: 1 },
  });
  const cyclic: Record<string, unknown> = { config_key: "c", model_path: "m", elo: 1 };
  cyclic.self = cyclic;
  return [
    ["null", null],
    ["undefined", undefined],
    ["a number", 42],
    ["a string", "MODEL_PROMOTED"],
    ["an array", [valid]],
    ["an empty object", {}],
    ["a numeric id", { ...valid, id: 5 }],
    ["an empty id", { ...valid, id: "" }],
    ["no type", { ...valid, type: undefined }],
    ["an empty source", { ...valid, source: "" }],
    ["a numeric time", { ...valid, time: 5 }],
    ["a numeric subject", { ...valid, subject: 7 }],
    ["a fractional dataversion", { ...valid, dataversion: 1.5 }],
    ["cyclic data", { ...valid, data: cyclic }],
    ["BigInt data", { ...valid, data: { ...valid.data, elo: 10n } }],
  ];
}

/** Envelopes with one attribute wrong in a way only `isEnvelope()` notices. */
function notQuiteEnvelopes(): [string, unknown][] {
  const mutate = (
    what: string,
    change: (e: Record<string, unknown>) => void,
  ): [string, unknown] => {
    const e: Record<string, unknown> = {
      ...createEnvelope({
        type: "MODEL_PROMOTED",
        source: "torture",
        data: { config_key: "k", model_path: "m", elo: 1 },
      }),
    };
    change(e);
    return [what, e];
  };
  return [
    mutate("no data", (e) => delete e.data),
    mutate("no specversion", (e) => delete e.specversion),
    mutate('specversion "0.3"', (e) => (e.specversion = "0.3")),
    mutate('time "yesterday"', (e) => (e.time = "yesterday")),
    mutate("no datacontenttype", (e) => delete e.datacontenttype),
    mutate('datacontenttype "text/xml"', (e) => (e.datacontenttype = "text/xml")),
    mutate("no dataversion", (e) => delete e.dataversion),
    mutate("dataversion 0", (e) => (e.dataversion = 0)),
    mutate("traceparent 5", (e) => (e.traceparent = 5)),
    mutate("correlationid {}", (e) => (e.correlationid = {})),
  ];
}

describe("bad input: publishing", { tags: ["slow"] }, () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "torture-bad-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it(
    `router.publish of fuzzed payloads is accepted or an EventValidationError, and what is accepted is delivered (${badInput.fuzzRuns} runs)`,
    async () => {
      const path = join(dir, "coordination.db");
      const store = new SqliteDeadLetterStore({ path });
      const log = errorLogger();
      const producer = createRouter({
        catalog: pipelineCatalog,
        transport: sqliteTransport({ path, pruneIntervalMs: 0, logger: log }),
      });
      const consumer = createRouter({
        catalog: pipelineCatalog,
        transport: sqliteTransport({ path, pruneIntervalMs: 0, deadLetter: store, logger: log }),
        logger: log,
      });
      const handled = new Set<string>();
      await consumer.subscribe("*", (event) => void handled.add(event.id), {
        name: "fuzz-reader",
        concurrency: 16,
      }).ready;
      const accepted = new Set<string>();
      const outcomes: Outcome[] = [];
      try {
        const typeArb = fc.oneof(
          { weight: 8, arbitrary: fc.constantFrom(...catalogTypes) },
          { weight: 1, arbitrary: fc.string({ maxLength: 24 }) },
          {
            weight: 1,
            arbitrary: fc.constantFrom(
              "",
              "__proto__",
              "constructor",
              "toString",
              "model_promoted",
              "MODEL_PROMOTED ",
            ),
          },
        );
        const input = typeArb.chain((type) =>
          fc.record({
            type: fc.constant(type),
            data: schemas[type]
              ? fc.oneof(
                  { weight: 4, arbitrary: payloadFor(schemas[type]) },
                  { weight: 1, arbitrary: anyValue },
                )
              : anyValue,
            options: fc.record(
              {
                id: fc.oneof(fc.string({ maxLength: 40 }), fc.uuid()),
                subject: fc.string({ maxLength: 40 }),
                source: fc.string({ maxLength: 40 }),
                correlationid: fc.string({ maxLength: 40 }),
              },
              { requiredKeys: [] },
            ),
          }),
        );
        await fc.assert(
          fc.asyncProperty(input, async ({ type, data, options }) => {
            let envelope: Envelope | undefined;
            const outcome = await publishOutcome(async () => {
              envelope = await producer.publish(type as never, data as never, options);
            });
            outcomes.push(outcome);
            if (outcome === "accepted" && envelope) accepted.add(envelope.id);
            expect(outcome === "accepted" || outcome === "EventValidationError", outcome).toBe(
              true,
            );
          }),
          { numRuns: badInput.fuzzRuns, endOnFailure: true },
        );
        // What was accepted validates on the way out too: every accepted event handled, none dead-lettered.
        const dead = () => store.list({ limit: 100_000 });
        await eventually(
          () => [...accepted].every((id) => handled.has(id)) || dead().length > 0,
          "every accepted event to be delivered",
          30_000,
        ).catch(() => {});
        const deadLetters = dead().map(
          (d) => `${d.eventType} ${d.eventId}: ${d.reason}: ${d.error.message.slice(0, 200)}`,
        );
        const undelivered = [...accepted].filter((id) => !handled.has(id));
        printTable(`bad input · router.publish fuzz · ${size.mode}`, [
          ...tally(outcomes),
          ["accepted (unique ids)", accepted.size],
          ["delivered", [...accepted].filter((id) => handled.has(id)).length],
          ["dead-lettered on delivery", deadLetters.length],
          ["errors logged", log.errors.length],
        ]);
        expect(deadLetters).toEqual([]);
        expect(undelivered).toEqual([]);
        expect(log.errors).toEqual([]);
      } finally {
        await producer.shutdown();
        await consumer.shutdown();
        store.close();
      }
    },
    testTimeoutMs,
  );

  it("SQLite transport.publish refuses non-envelopes and oversized events with typed errors, storing nothing of the batch", async () => {
    const path = join(dir, "coordination.db");
    const transport = sqliteTransport({ path, pruneIntervalMs: 0, maxPayloadBytes: 64 * 1024 });
    try {
      const valid = () =>
        createEnvelope({
          type: "MODEL_PROMOTED",
          source: "torture",
          data: { config_key: "k", model_path: "m", elo: 1 },
        });
      const rows: [string, string | number][] = [];
      for (const [what, value] of nonEnvelopes()) {
        const companion = valid();
        const outcome = await publishOutcome(() =>
          transport.publish([companion, value as Envelope]),
        );
        rows.push([what, outcome]);
        expect(outcome, what).toBe("EventValidationError");
        const db = openQueueReadOnly(path);
        expect(
          getEvent(db, companion.id),
          `${what}: the valid companion must not be stored`,
        ).toBeUndefined();
        db.close();
      }
      const big = valid();
      const oversized = { ...valid(), data: { ...big.data, blob: "x".repeat(70 * 1024) } };
      const outcome = await publishOutcome(() => transport.publish([big, oversized]));
      rows.push(["70 KiB over a 64 KiB limit", outcome]);
      expect(outcome).toBe("PayloadTooLargeError");
      const db = openQueueReadOnly(path);
      expect(getEvent(db, big.id)).toBeUndefined();
      db.close();
      printTable("bad input · sqlite transport.publish of non-envelopes", rows);
    } finally {
      await transport.close();
    }
  });

  it(
    `SQLite transport.publish of fuzzed values is accepted or a typed error (${badInput.transportFuzzRuns} runs)`,
    async () => {
      const transport = sqliteTransport({
        path: join(dir, "coordination.db"),
        pruneIntervalMs: 0,
        maxPayloadBytes: 4_096,
      });
      const outcomes: Outcome[] = [];
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.oneof(anyValue, mutatedEnvelope, mutatedEnvelope), {
              minLength: 1,
              maxLength: 3,
            }),
            async (values) => {
              const outcome = await publishOutcome(() => transport.publish(values as Envelope[]));
              outcomes.push(outcome);
              expect(outcome.startsWith("other"), outcome).toBe(false);
            },
          ),
          { numRuns: badInput.transportFuzzRuns, endOnFailure: true },
        );
      } finally {
        printTable("bad input · sqlite transport.publish fuzz", tally(outcomes));
        await transport.close();
      }
    },
    testTimeoutMs,
  );

  // Regression (fixed): SQLite transport.publish checked only id, type, source, subject and the
  // types of time and dataversion, so values isEnvelope() rejects were stored and delivered. It
  // now calls assertEnvelope() from @switchyard/event-schema.
  it("SQLite transport.publish refuses every value isEnvelope() rejects", async () => {
    const transport = sqliteTransport({ path: join(dir, "coordination.db"), pruneIntervalMs: 0 });
    try {
      const rows: [string, string][] = [];
      for (const [what, value] of notQuiteEnvelopes()) {
        expect(isEnvelope(value), what).toBe(false);
        rows.push([what, await publishOutcome(() => transport.publish([value as Envelope]))]);
      }
      printTable("bad input · sqlite transport.publish of values isEnvelope() rejects", rows);
      expect(rows.filter(([, outcome]) => outcome !== "EventValidationError")).toEqual([]);
    } finally {
      await transport.close();
    }
  });
});

/** One row another program writes straight into `events`. */
interface RawCase {
  readonly name: string;
  readonly type: string;
  readonly payload: string | Buffer | null;
  readonly extensions?: string | null;
  readonly time?: string;
  readonly dataversion?: unknown;
  /**
   * The transport cannot rebuild an envelope from it: its dead letter must carry the row's raw
   * columns as `data` (BLOBs as base64) and an `UndecodableEventError` naming the column.
   */
  readonly undecodable?: "payload" | "extensions";
  /** What must become of it. */
  readonly expect:
    "handled" | "dead-letter store" | "dead delivery row" | "not delivered" | "insert refused";
}

const promoted = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ config_key: "hex8_2p", model_path: "m.pt", elo: 1500, ...extra });

const rawCases: RawCase[] = [
  {
    name: "malformed JSON payload",
    type: "MODEL_PROMOTED",
    payload: '{"config_key": "hex8_2p", "model_path": ',
    undecodable: "payload",
    expect: "dead-letter store",
  },
  {
    name: "JSON null payload",
    type: "MODEL_PROMOTED",
    payload: "null",
    expect: "dead-letter store",
  },
  {
    name: "payload violating the catalog",
    type: "MODEL_PROMOTED",
    payload: promoted({ elo: "high", config_key: 42 }),
    expect: "dead-letter store",
  },
  {
    name: "type not in the catalog",
    type: "NOT_IN_THE_CATALOG",
    payload: promoted(),
    expect: "not delivered",
  },
  {
    name: "catalog type nobody subscribes to",
    type: "DATA_SYNC_FAILED",
    payload: JSON.stringify({ error: "x" }),
    expect: "not delivered",
  },
  {
    name: "oversized payload (2 MiB, over the publish limit)",
    type: "MODEL_PROMOTED",
    payload: promoted({ blob: "x".repeat(2 * 1024 * 1024) }),
    expect: "handled",
  },
  {
    name: "non-UTF-8 bytes as a BLOB",
    type: "MODEL_PROMOTED",
    payload: Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0xa0, 0xa1]),
    undecodable: "payload",
    expect: "dead-letter store",
  },
  {
    name: "JSON BLOB with invalid UTF-8 inside a string",
    type: "MODEL_PROMOTED",
    payload: Buffer.concat([
      Buffer.from('{"config_key":"hex8_2p","model_path":"m'),
      Buffer.from([0xff, 0xc3]),
      Buffer.from('.pt","elo":1}'),
    ]),
    expect: "handled",
  },
  {
    name: "malformed JSON extensions",
    type: "MODEL_PROMOTED",
    payload: promoted(),
    extensions: "{not json",
    undecodable: "extensions",
    expect: "dead-letter store",
  },
  {
    name: "extensions that are JSON but not an object",
    type: "MODEL_PROMOTED",
    payload: promoted(),
    extensions: '"traceparent"',
    undecodable: "extensions",
    expect: "dead-letter store",
  },
  {
    name: "extensions overriding id, type and data",
    type: "MODEL_PROMOTED",
    payload: promoted(),
    extensions: JSON.stringify({ id: 7, type: "NOT_IN_THE_CATALOG", data: null }),
    // Regression (fixed): extensions were applied over the row's columns, so the dead letter
    // carried id 7 and the foreign type. Attributes with a column of their own are refused now:
    // the dead letter is filed under the row's id, with its raw columns.
    undecodable: "extensions",
    expect: "dead-letter store",
  },
  {
    name: "time that is not a time",
    type: "MODEL_PROMOTED",
    payload: promoted(),
    time: "yesterday",
    expect: "handled",
  },
  { name: "NULL payload", type: "MODEL_PROMOTED", payload: null, expect: "insert refused" },
];

describe(
  "bad input: raw rows written into the queue by another program",
  { tags: ["slow"] },
  () => {
    it(
      "end in a dead letter with a reason, never a crashed consumer or a silent drop; valid events around them still flow",
      async () => {
        const dir = mkdtempSync(join(tmpdir(), "torture-raw-"));
        const path = join(dir, "coordination.db");
        const log = errorLogger();
        const store = new SqliteDeadLetterStore({ path });
        const producer = createRouter({
          catalog: pipelineCatalog,
          transport: sqliteTransport({ path, pruneIntervalMs: 0 }),
        });
        const consumer = createRouter({
          catalog: pipelineCatalog,
          transport: sqliteTransport({ path, pruneIntervalMs: 0, deadLetter: store, logger: log }),
          deadLetter: store,
          logger: log,
        });
        const handled = new Map<string, Envelope>();
        const subscription = consumer.subscribe(
          ["MODEL_PROMOTED", "EVALUATION_COMPLETED"],
          (event) => void handled.set(String(event.id), event),
          {
            name: "raw-reader",
            concurrency: 4,
            maxAttempts: 3,
            backoff: { initialMs: 20, maxMs: 100 },
          },
        );
        await subscription.ready;
        // The other program: a second connection writing rows the transport never validated.
        const other = new Database(path);
        other.pragma("busy_timeout = 5000");
        const insert = other.prepare(
          `INSERT INTO events (id, type, source, subject, time, dataversion, payload, extensions, created_at)
         VALUES (?, ?, 'raw-writer', NULL, ?, ?, ?, ?, ?)`,
        );
        const valid: string[] = [];
        const publishValid = async (n: number) => {
          for (let i = 0; i < n; i++) {
            const e = await producer.publish("MODEL_PROMOTED", {
              config_key: "hex8_2p",
              model_path: `v${valid.length}.pt`,
              elo: i,
            });
            valid.push(e.id);
          }
        };
        const ids = new Map<RawCase, string>();
        const insertErrors = new Map<RawCase, string>();
        try {
          await publishValid(10);
          for (const c of rawCases) {
            const id = `raw-${ids.size}-${c.name.replaceAll(" ", "-")}`;
            ids.set(c, id);
            try {
              insert.run(
                id,
                c.type,
                c.time ?? new Date().toISOString(),
                c.dataversion ?? 1,
                c.payload,
                c.extensions ?? null,
                Date.now(),
              );
            } catch (error) {
              insertErrors.set(c, `${(error as { code?: string }).code}`);
            }
            await publishValid(3);
          }
          await publishValid(10);

          const db = openQueueReadOnly(path);
          const letterOf = (c: RawCase) =>
            store.list({ limit: 1_000 }).find((d) => d.eventId === ids.get(c));
          /** What an undecodable row's dead letter lacks (raw columns, typed error), if anything. */
          const undecodableProblems = (c: RawCase): string[] => {
            const letter = letterOf(c);
            if (!c.undecodable || !letter) return [];
            const problems: string[] = [];
            if (letter.reason !== "invalid_payload") problems.push(`reason ${letter.reason}`);
            if (letter.error.name !== "UndecodableEventError")
              problems.push(`error ${letter.error.name}`);
            if (!letter.error.message.includes(c.undecodable))
              problems.push(`message does not name ${c.undecodable}: ${letter.error.message}`);
            const data = letter.envelope?.data as Record<string, unknown> | undefined;
            const stored = (v: string | Buffer | null | undefined) =>
              Buffer.isBuffer(v) ? { base64: v.toString("base64") } : (v ?? null);
            if (JSON.stringify(data?.payload) !== JSON.stringify(stored(c.payload)))
              problems.push("raw payload not kept");
            if (JSON.stringify(data?.extensions) !== JSON.stringify(stored(c.extensions)))
              problems.push("raw extensions not kept");
            return problems;
          };
          const outcome = (c: RawCase): string | undefined => {
            if (insertErrors.has(c)) return `insert refused (${insertErrors.get(c)})`;
            const id = ids.get(c)!;
            const event = getEvent(db, id);
            if (!event) return "event row missing";
            if (handled.has(id)) return "handled";
            const letter = letterOf(c);
            if (letter)
              return `dead-letter store (${letter.reason}: ${letter.error.message.slice(0, 80)})`;
            const row = deadDeliveries(db, { subscriber: "raw-reader", limit: 1_000 }).find(
              (d) => d.eventSeq === event.seq,
            );
            if (row) return `dead delivery row (${row.deadReason}, handed off: ${row.handedOff})`;
            return undefined;
          };
          const allValid = () => valid.every((id) => handled.has(id));
          try {
            await eventually(
              () =>
                allValid() &&
                rawCases.every((c) => c.expect === "not delivered" || outcome(c) !== undefined),
              "valid events and every raw row to reach an outcome",
              30_000,
              100,
            ).catch(() => {});
            const rows: [string, string][] = rawCases.map((c) => [
              c.name,
              outcome(c) ?? (c.expect === "not delivered" ? "not delivered" : "NO OUTCOME"),
            ]);
            rows.push([
              "valid events around them (handled / published)",
              `${valid.filter((id) => handled.has(id)).length} / ${valid.length}`,
            ]);
            rows.push(["consumer errors logged", String(log.errors.length)]);
            // Reconciliation: no raw row is left only as a dead delivery row when a sink exists.
            const orphans = deadDeliveries(db, { subscriber: "raw-reader", limit: 1_000 }).filter(
              (d) => !d.handedOff,
            );
            rows.push(["dead delivery rows not in the dead-letter store", String(orphans.length)]);
            printTable("bad input · raw rows", rows);
            for (const c of rawCases)
              expect(outcome(c) ?? "not delivered", c.name).toMatch(new RegExp(`^${c.expect}`));
            for (const c of rawCases) expect(undecodableProblems(c), c.name).toEqual([]);
            expect(orphans).toEqual([]);
            // Undeliverable types are kept, visible to operators, not silently removed.
            for (const c of rawCases.filter((c) => c.expect === "not delivered"))
              expect(getEvent(db, ids.get(c)!), c.name).toBeDefined();
            expect(valid.filter((id) => !handled.has(id))).toEqual([]);
            expect(log.errors).toEqual([]);
            const health = consumer.health();
            expect(health.status, JSON.stringify(health)).not.toBe("unhealthy");
          } finally {
            db.close();
          }
        } finally {
          other.close();
          await producer.shutdown();
          await consumer.shutdown();
          store.close();
          rmSync(dir, { recursive: true, force: true });
        }
      },
      testTimeoutMs,
    );
  },
);

const nats = await natsAvailability();

describeNats(nats, "bad input on NATS JetStream", { tags: ["slow"] }, () => {
  // Regression (fixed): NATS publish did not validate envelopes (bare TypeErrors, "publish the
  // same batch again" for batches that can never succeed, empty ids stored). It now calls
  // assertEnvelope(), rejects non-JSON data with EventValidationError and events over the
  // server's max_payload with NatsPayloadTooLargeError.
  it("NATS transport.publish refuses non-envelopes and oversized events with typed errors", async () => {
    const names = uniqueStream("badpub");
    const transport = await openTransport({ kind: "nats", url: NATS_URL, ...names });
    try {
      const valid = createEnvelope({
        type: "MODEL_PROMOTED",
        source: "torture",
        data: { config_key: "k", model_path: "m", elo: 1 },
      });
      const cases: [string, unknown, Outcome][] = [
        ...nonEnvelopes().map(([what, value]): [string, unknown, Outcome] => [
          what,
          value,
          "EventValidationError",
        ]),
        ...notQuiteEnvelopes().map(([what, value]): [string, unknown, Outcome] => [
          what,
          value,
          "EventValidationError",
        ]),
        [
          "2 MiB event (over the server's max_payload)",
          { ...valid, data: { ...valid.data, blob: "x".repeat(2 * 1024 * 1024) } },
          "PayloadTooLargeError",
        ],
      ];
      const rows: [string, string][] = [];
      const wrong: string[] = [];
      for (const [what, value, wanted] of cases) {
        const outcome = await publishOutcome(() => transport.publish([value as Envelope]));
        rows.push([what, outcome]);
        const typedTooLarge = wanted === "PayloadTooLargeError" && outcome.includes("TOO_LARGE");
        if (outcome !== wanted && !typedTooLarge) wrong.push(`${what}: ${outcome}`);
      }
      printTable("bad input · nats transport.publish of non-envelopes", rows);
      expect(wrong).toEqual([]);
    } finally {
      await transport.close();
      await deleteStream(NATS_URL, names.stream).catch(() => {});
    }
  });

  it(
    "raw messages from a foreign publisher end in the dead-letter store with a reason; valid events still flow",
    async () => {
      const names = uniqueStream("raw");
      const dir = mkdtempSync(join(tmpdir(), "torture-natsraw-"));
      const log = errorLogger();
      const store = new SqliteDeadLetterStore({ path: join(dir, "dead-letters.db") });
      const spec = { kind: "nats" as const, url: NATS_URL, ...names };
      const producer = createRouter({
        catalog: pipelineCatalog,
        transport: await openTransport(spec),
      });
      const consumerTransport: Transport = await openTransport(spec, {
        deadLetter: store,
        logger: log,
      });
      const consumer = createRouter({
        catalog: pipelineCatalog,
        transport: consumerTransport,
        deadLetter: store,
        logger: log,
      });
      const handled = new Set<string>();
      const { connect } = await import("@nats-io/transport-node");
      const { jetstream } = await import("@nats-io/jetstream");
      const nc = await connect({ servers: NATS_URL, timeout: 2_000 });
      try {
        await consumer.subscribe("MODEL_PROMOTED", (e) => void handled.add(e.id), {
          name: "raw-reader",
          maxAttempts: 3,
          backoff: { initialMs: 20, maxMs: 100 },
        }).ready;
        const js = jetstream(nc);
        const subject = `${names.prefix}.MODEL_PROMOTED`;
        const envelopeOf = (data: unknown, id: string) => ({
          ...createEnvelope({ type: "MODEL_PROMOTED", source: "raw-writer", data: {} }),
          id,
          data,
        });
        const raw: [string, string, Uint8Array][] = [
          ["malformed JSON", "raw-json", new TextEncoder().encode('{"specversion": "1.0", "id": ')],
          ["non-UTF-8 bytes", "raw-bytes", Uint8Array.from([0xff, 0xfe, 0x00, 0xc3, 0x28])],
          [
            "JSON that is not an envelope",
            "raw-notenv",
            new TextEncoder().encode(JSON.stringify({ config_key: "k" })),
          ],
          [
            "envelope violating the catalog",
            "raw-invalid",
            new TextEncoder().encode(JSON.stringify(envelopeOf({ config_key: 42 }, "raw-invalid"))),
          ],
        ];
        const valid: string[] = [];
        for (const [, id, bytes] of raw) {
          valid.push(
            (
              await producer.publish("MODEL_PROMOTED", {
                config_key: "k",
                model_path: "m",
                elo: valid.length,
              })
            ).id,
          );
          await js.publish(subject, bytes, { msgID: id });
        }
        valid.push(
          (await producer.publish("MODEL_PROMOTED", { config_key: "k", model_path: "m", elo: -1 }))
            .id,
        );
        // A subject no type of the catalog maps to: nobody subscribes, the stream keeps it.
        await js
          .publish(`${names.prefix}.NOT_IN_THE_CATALOG`, new TextEncoder().encode("{}"), {
            msgID: "raw-unknown",
          })
          .catch(
            (error: unknown) =>
              void log.errors.push(`publishing to an unknown type's subject: ${String(error)}`),
          );
        const letters = () => store.list({ limit: 100 });
        await eventually(
          () => valid.every((id) => handled.has(id)) && letters().length >= raw.length,
          "valid events handled and every raw message dead-lettered",
          30_000,
          100,
        ).catch(() => {});
        const byId = new Map(letters().map((d) => [String(d.eventId), d]));
        const rows: [string, string][] = raw.map(([what, id]) => {
          const d = byId.get(id);
          return [what, d ? `dead-letter store (${d.reason})` : "NO OUTCOME"];
        });
        rows.push([
          "valid events around them (handled / published)",
          `${valid.filter((id) => handled.has(id)).length} / ${valid.length}`,
        ]);
        rows.push(["consumer errors logged", String(log.errors.length)]);
        printTable("bad input · raw NATS messages", rows);
        for (const [what, id] of raw) expect(byId.get(id)?.reason, what).toBe("invalid_payload");
        expect(valid.filter((id) => !handled.has(id))).toEqual([]);
        expect(log.errors).toEqual([]);
      } finally {
        await nc.close();
        await producer.shutdown();
        await consumer.shutdown();
        store.close();
        await deleteStream(NATS_URL, names.stream).catch(() => {});
        rmSync(dir, { recursive: true, force: true });
      }
    },
    testTimeoutMs,
  );
});
