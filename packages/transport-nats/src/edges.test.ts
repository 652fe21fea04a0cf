// Edge cases: hostile messages on the stream, oversized records, waits that must honour
// `{ signal }`, and out-of-range numbers in store and inspector calls.
import { createServer, type Server, type Socket } from "node:net";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, connect, headers as natsHeaders } from "@nats-io/transport-node";
import { type Envelope, createEnvelope } from "@switchyard/event-schema";
import { openDriver } from "@switchyard/transport";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type NatsDeadLetterStore,
  type NatsTransport,
  NatsOptionsError,
  natsDeadLetterStore,
  natsDriver,
  natsTransport,
} from "./index";
import { replaySubject } from "./names";
import {
  NATS_URL,
  deleteStreams,
  describeIf,
  eventually,
  natsAvailable,
  uniqueNames,
} from "./test/nats";

const job = (n: number): Envelope =>
  createEnvelope({ type: "JOB", source: "edges-test", data: { n } });

describe("a transport whose server never answers", () => {
  let server: Server;
  const sockets: Socket[] = [];

  beforeEach(async () => {
    // Accepts TCP connections and never says a word (no INFO): a connect hangs until its timeout.
    server = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  });
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("rejects a publish with the signal's reason when the signal aborts while connecting", async () => {
    const port = (server.address() as { port: number }).port;
    const t = natsTransport({
      servers: `nats://127.0.0.1:${port}`,
      connectionOptions: { timeout: 3_000 },
    });
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    setTimeout(() => controller.abort(reason), 50);
    await expect(t.publish([job(1)], { signal: controller.signal })).rejects.toBe(reason);
    await t.close();
  });
});

describeIf(await natsAvailable(), "NATS transport edges", {}, () => {
  let names: { stream: string; prefix: string };
  let open: { close(): Promise<void> }[] = [];
  let admin: NatsConnection;

  const transport = (store: NatsDeadLetterStore, options: { receipts?: boolean } = {}) => {
    const t: NatsTransport = natsTransport({
      servers: NATS_URL,
      ...names,
      drainTimeoutMs: 500,
      pullExpiresMs: 2_000,
      deadLetter: store,
      ...options,
    });
    open.push(t);
    return t;
  };
  const store = () => {
    const s = natsDeadLetterStore({ servers: NATS_URL, ...names, retryBackoff: { initialMs: 0 } });
    open.push(s);
    return s;
  };

  beforeEach(async () => {
    names = uniqueNames("edges");
    admin = await connect({ servers: NATS_URL });
  });
  afterEach(async () => {
    await Promise.allSettled(open.map((o) => o.close()));
    open = [];
    await admin.close();
    await deleteStreams(NATS_URL, names.stream);
  });

  it("dead-letters a foreign message too large to keep whole in its record, instead of redelivering it forever", async () => {
    const s = store();
    const t = transport(s);
    await t.subscribe({
      subscriber: "strict",
      types: ["JOB"],
      handler: async () => {},
      maxAttempts: 2,
      backoff: { initialMs: 10, maxMs: 10 },
    });
    // Quotes and backslashes double in size once the raw body is escaped into the record.
    const maxPayload = admin.info?.max_payload ?? 1024 * 1024;
    const body = '"\\'.repeat(Math.floor((maxPayload - 4_096) / 2));
    await jetstream(admin).publish(`${names.prefix}.JOB`, body, { msgID: "foreign-huge" });
    await eventually(
      async () => (await s.list()).deadLetters.length === 1,
      "the dead letter to be stored",
    );
    const [dead] = (await s.list()).deadLetters;
    expect(dead).toMatchObject({ eventId: "foreign-huge", reason: "invalid_payload" });
    expect(dead?.envelope).toBeUndefined();
    expect(dead?.damaged).toMatch(/too large/);
    await eventually(async () => {
      const stats = (await t.stats()).subscribers.find((x) => x.subscriber === "strict");
      return stats?.lag === 0;
    }, "the message to be terminated");
  }, 15_000);

  it("keeps the envelope of a dead letter whose error alone is too large, cutting the error short", async () => {
    const s = store();
    const envelope = job(7);
    const maxPayload = admin.info?.max_payload ?? 1024 * 1024;
    await s.deadLetter({
      envelope,
      subscriber: "worker",
      reason: "max_attempts",
      attempts: 1,
      error: { name: "Error", message: "x".repeat(maxPayload), stack: "y".repeat(maxPayload) },
      failedAt: new Date().toISOString(),
      origin: "nats",
    });
    const [dead] = (await s.list()).deadLetters;
    expect(dead?.envelope).toEqual(envelope);
    expect(dead?.damaged).toBeUndefined();
    expect(dead?.error.stack).toBeUndefined();
    expect(dead?.error.message.length).toBeLessThan(5_000);
  });

  it("dead-letters a replay copy of a type no process of the subscriber handles once it has bounced maxAttempts times", async () => {
    const s = store();
    const t = transport(s);
    let calls = 0;
    await t.subscribe({
      subscriber: "narrow",
      types: ["JOB"],
      handler: async () => void calls++,
      maxAttempts: 2,
    });
    const stray = createEnvelope({ type: "OTHER", source: "edges-test", data: {} });
    // Another program (or an older deployment that handled OTHER) put it on the replay subject.
    await jetstream(admin).publish(
      replaySubject(names.prefix, "narrow", "OTHER"),
      JSON.stringify(stray),
    );
    await eventually(
      async () => (await s.list()).deadLetters.length === 1,
      "the stray copy to be dead-lettered",
      8_000,
    );
    const [dead] = (await s.list()).deadLetters;
    expect(dead).toMatchObject({
      eventId: stray.id,
      subscriber: "narrow",
      reason: "unrecoverable",
    });
    expect(dead?.error.message).toMatch(/OTHER/);
    expect(calls).toBe(0);
    await eventually(async () => {
      const stats = (await t.stats()).subscribers.find((x) => x.subscriber === "narrow");
      return stats?.lag === 0;
    }, "the copy to be terminated");
  }, 15_000);

  it("audits an event whose Nats-Msg-Id differs from its envelope id as handled once it was handled", async () => {
    const t = transport(store(), { receipts: true });
    let handled = 0;
    await t.subscribe({
      subscriber: "audited",
      types: ["JOB"],
      handler: async () => void handled++,
    });
    const envelope = job(1);
    const h = natsHeaders();
    h.set("ce-id", envelope.id);
    // Another program published it with a Nats-Msg-Id of its own.
    await jetstream(admin).publish(`${names.prefix}.JOB`, JSON.stringify(envelope), {
      msgID: "foreign-id-1",
      headers: h,
    });
    await t.publish([job(2)]);
    await eventually(async () => {
      const stats = (await t.stats()).subscribers.find((x) => x.subscriber === "audited");
      return handled === 2 && stats?.lag === 0;
    }, "both events to be handled and acknowledged");
    const report = await t.audit();
    expect(report.consumers.flatMap((c) => c.unhandled ?? [])).toEqual([]);
    expect(report.gaps).toBe(0);
  }, 20_000);

  it("refuses a claim lease or retry time beyond what a date can hold with a typed error", async () => {
    const s = store();
    const envelope = job(1);
    await s.deadLetter({
      envelope,
      subscriber: "worker",
      reason: "max_attempts",
      attempts: 3,
      error: { name: "Error", message: "failed" },
      failedAt: new Date(Date.now() - 3_600_000).toISOString(),
      origin: "nats",
    });
    await expect(s.claim({ leaseMs: Number.MAX_SAFE_INTEGER })).rejects.toBeInstanceOf(
      NatsOptionsError,
    );
    const [claimed] = await s.claim({ leaseMs: 60_000 });
    expect(claimed?.eventId).toBe(envelope.id);
    await expect(
      s.release(claimed!, { status: "pending_retry", nextRetryAt: 1e20 }),
    ).rejects.toBeInstanceOf(NatsOptionsError);
    // The claim still holds: a valid settle goes through.
    await s.release(claimed!, { status: "permanently_failed" });
  });

  it("refuses counts whose window holds too many buckets instead of building them all", async () => {
    // A read-only driver opens an existing stream only.
    await (
      await jetstreamManager(admin)
    ).streams.add({ name: names.stream, subjects: [`${names.prefix}.>`] });
    const driver = await openDriver(`${NATS_URL}/${names.stream}?prefix=${names.prefix}`, {
      drivers: [natsDriver],
      readOnly: true,
    });
    open.push(driver);
    await expect(
      driver.inspector().counts({ since: 0, until: Date.now(), bucketMs: 1 }),
    ).rejects.toMatchObject({ name: "InspectorQueryError", option: "bucketMs" });
  });
});
