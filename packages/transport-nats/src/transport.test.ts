import { RetentionPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, connect } from "@nats-io/transport-node";
import { createEnvelope, type Envelope } from "@switchyard/event-schema";
import { type DeadLetterRecord, type Delivery, UnknownSubscriptionError } from "@switchyard/router";
import { collectingSink } from "@switchyard/transport-testkit";
import { afterEach, beforeEach, expect, it } from "vitest";
import {
  type NatsTransport,
  type NatsTransportOptions,
  NatsOptionsError,
  NatsPayloadTooLargeError,
  NatsStreamConfigError,
  TransportClosedError,
  durableName,
  natsTransport,
  parseConsumerTag,
} from "./index";
import {
  NATS_URL,
  deleteStream,
  describeIf,
  eventually,
  natsAvailable,
  uniqueNames,
} from "./test/nats";

const job = (n: number, extra: Partial<Envelope> = {}): Envelope => ({
  ...createEnvelope({ type: "JOB", source: "transport-nats-test", data: { n } }),
  ...extra,
});
const nOf = (d: Delivery) => (d.envelope.data as { n: number }).n;

describeIf(await natsAvailable(), "NatsTransport", {}, () => {
  let names: { stream: string; prefix: string };
  let open: NatsTransport[] = [];
  let admin: NatsConnection;

  const transport = (options: NatsTransportOptions = {}) => {
    const t = natsTransport({
      servers: NATS_URL,
      ...names,
      drainTimeoutMs: 1_000,
      pullExpiresMs: 2_000,
      ...options,
    });
    open.push(t);
    return t;
  };

  const maxPayload = async () => admin.info?.max_payload ?? 1024 * 1024;

  beforeEach(async () => {
    names = uniqueNames("unit");
    admin = await connect({ servers: NATS_URL });
  });
  afterEach(async () => {
    await Promise.allSettled(open.map((t) => t.close()));
    open = [];
    await deleteStream(NATS_URL, names.stream);
    await admin.close();
  });

  it("stores each envelope on prefix.TYPE with its id as Nats-Msg-Id and routing headers", async () => {
    const t = transport();
    // A subscriber that is registered but not running keeps the event in the (interest) stream.
    const sub = await t.subscribe({
      subscriber: "keeper",
      types: ["JOB"],
      handler: async () => {},
    });
    await sub.close();
    const e = job(1, {
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      tracestate: "vendor=opaque-1,other=2",
    });
    await t.publish([e]);
    const jsm = await jetstreamManager(admin);
    const stored = await jsm.streams.getMessage(names.stream, {
      last_by_subj: `${names.prefix}.JOB`,
    });
    expect(stored?.header.get("Nats-Msg-Id")).toBe(e.id);
    expect(stored?.header.get("ce-type")).toBe("JOB");
    expect(stored?.header.get("ce-id")).toBe(e.id);
    expect(stored?.header.get("traceparent")).toBe(e.traceparent);
    expect(stored?.header.get("tracestate")).toBe(e.tracestate);
    expect(stored?.json()).toEqual(e);
  });

  it("rejects a batch holding an envelope over max_payload before sending any of it", async () => {
    const t = transport();
    await t.register("keeper", ["JOB"]);
    const max = await maxPayload();
    // Multi-byte text: the size that counts is the UTF-8 body, not the string length.
    const big = job(2, { data: { text: "é".repeat(Math.ceil(max / 2)) } });
    const error = await t.publish([job(1), big, job(3)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NatsPayloadTooLargeError);
    expect((error as Error).message).toContain(big.id);
    const jsm = await jetstreamManager(admin);
    expect((await jsm.streams.info(names.stream)).state.messages).toBe(0);
  });

  it("creates one durable consumer per subscriber and type, tagged with the subscriber", async () => {
    const t = transport();
    await t.subscribe({
      subscriber: "quality.monitor",
      types: ["JOB", "OTHER"],
      handler: async () => {},
    });
    const jsm = await jetstreamManager(admin);
    const consumers = [];
    for await (const ci of jsm.consumers.list(names.stream)) consumers.push(ci);
    const tags = consumers.map((c) => parseConsumerTag(c.config.description));
    expect(tags.filter((tag) => tag?.subscriber === "quality.monitor")).toHaveLength(3);
    const job = consumers.find(
      (c) => c.name === durableName(names.prefix, "quality.monitor", "JOB"),
    );
    expect(job?.config).toMatchObject({
      filter_subject: `${names.prefix}.JOB`,
      ack_policy: "explicit",
      deliver_policy: "new",
      max_deliver: -1,
      ack_wait: 30_000_000_000,
    });
  });

  it("replays a dead letter to one subscriber only, keeping its id", async () => {
    const t = transport();
    const a: Delivery[] = [];
    const b: Delivery[] = [];
    await t.subscribe({ subscriber: "a", types: ["JOB"], handler: async (d) => void a.push(d) });
    await t.subscribe({ subscriber: "b", types: ["JOB"], handler: async (d) => void b.push(d) });
    const e = job(1);
    await t.publish([e]);
    await eventually(() => a.length === 1 && b.length === 1, "the first deliveries");
    await t.requeue("a", e);
    await eventually(() => a.length === 2, "the replay");
    await new Promise((r) => setTimeout(r, 200));
    expect(b).toHaveLength(1);
    expect(a[1]!.envelope).toEqual(e);
    expect(a[1]!.attempt).toBe(1);
  });

  it("refuses to replay to a subscriber that does not take the type", async () => {
    const t = transport();
    await t.subscribe({ subscriber: "a", types: ["JOB"], handler: async () => {} });
    await expect(t.requeue("nobody", job(1))).rejects.toBeInstanceOf(UnknownSubscriptionError);
    await expect(t.requeue("a", { ...job(1), type: "OTHER" })).rejects.toThrow(/known: a/);
  });

  it("dead-letters a message that is not an envelope as invalid_payload, then terms it", async () => {
    const sink = collectingSink();
    const t = transport({ deadLetter: sink });
    let calls = 0;
    await t.subscribe({ subscriber: "strict", types: ["JOB"], handler: async () => void calls++ });
    await jetstream(admin).publish(`${names.prefix}.JOB`, "not json at all", {
      msgID: "foreign-1",
    });
    await eventually(() => sink.records.length === 1, "the dead letter");
    const record = sink.records[0]!;
    expect(calls).toBe(0);
    expect(record).toMatchObject({ reason: "invalid_payload", attempts: 1, origin: "nats" });
    expect(record.envelope).toMatchObject({
      id: "foreign-1",
      type: "JOB",
      data: "not json at all",
    });
    await eventually(async () => {
      const s = (await t.stats()).subscribers.find((x) => x.subscriber === "strict");
      return s?.lag === 0 && s.deadLettered === 1;
    }, "the message to be terminated");
  });

  it("keeps dead letters in memory (and logs them) when no sink is given", async () => {
    const errors: unknown[] = [];
    const logger = { debug() {}, info() {}, warn() {}, error: (o: unknown) => void errors.push(o) };
    const t = transport({ logger });
    await t.subscribe({
      subscriber: "no-sink",
      types: ["JOB"],
      maxAttempts: 1,
      handler: async () => {
        throw new Error("nope");
      },
    });
    await t.publish([job(1)]);
    await eventually(() => t.deadLetters.length === 1, "the in-memory dead letter");
    expect((t.deadLetters[0] as DeadLetterRecord).reason).toBe("max_attempts");
    expect(errors.length).toBeGreaterThan(0);
  });

  it("reports the age of the oldest pending delivery", async () => {
    const t = transport();
    const sub = await t.subscribe({ subscriber: "idle", types: ["JOB"], handler: async () => {} });
    await sub.close();
    await t.publish([job(1), job(2)]);
    await new Promise((r) => setTimeout(r, 50));
    const stats = await t.stats();
    const idle = stats.subscribers.find((s) => s.subscriber === "idle");
    expect(idle).toMatchObject({ pending: 2, inFlight: 0, lag: 2 });
    expect(idle?.oldestPendingMs).toBeGreaterThanOrEqual(40);
    expect(stats.stream.name).toBe(names.stream);
  });

  it("gives a new durable subscriber only events published after it was first created", async () => {
    const t = transport();
    await t.publish([job(1)]);
    const got: number[] = [];
    const sub = await t.subscribe({
      subscriber: "late",
      types: ["JOB"],
      handler: async (d) => void got.push(nOf(d)),
    });
    await t.publish([job(2)]);
    await eventually(() => got.length === 1, "the new event");
    await sub.close();
    await t.publish([job(3)]);
    await t.subscribe({
      subscriber: "late",
      types: ["JOB"],
      handler: async (d) => void got.push(nOf(d)),
    });
    await eventually(() => got.length === 2, "the event published while it was away");
    expect(got).toEqual([2, 3]);
  });

  it("refuses a stream whose retention differs from the one given explicitly, saying what to do", async () => {
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({
      name: names.stream,
      subjects: [`${names.prefix}.>`],
      retention: RetentionPolicy.Interest,
    });
    const t = transport({ retention: "limits" });
    const error = await t.ready().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NatsStreamConfigError);
    expect((error as Error).message).toContain('retention: "interest"');
    // Without the option, the stream is used as it is (with a warning about crash safety).
    await expect(transport().ready()).resolves.toBeUndefined();
  });

  it("adds its subjects to an existing stream instead of failing", async () => {
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({
      name: names.stream,
      subjects: [`${names.prefix}-other.>`],
      retention: RetentionPolicy.Interest,
      duplicate_window: 120_000_000_000,
    });
    await transport().ready();
    const info = await jsm.streams.info(names.stream);
    expect(info.config.subjects).toEqual([`${names.prefix}-other.>`, `${names.prefix}.>`]);
  });

  it("changes an existing stream's settings only when they are given explicitly", async () => {
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({
      name: names.stream,
      subjects: [`${names.prefix}.>`],
      retention: RetentionPolicy.Interest,
      duplicate_window: 60_000_000_000,
    });
    await transport().ready();
    expect((await jsm.streams.info(names.stream)).config.duplicate_window).toBe(60_000_000_000);
    await transport({ duplicateWindowMs: 30_000 }).ready();
    expect((await jsm.streams.info(names.stream)).config.duplicate_window).toBe(30_000_000_000);
  });

  it(
    "re-creates a consumer deleted under a running subscription",
    { timeout: 30_000 },
    async () => {
      const warnings: string[] = [];
      const logger = {
        debug() {},
        info() {},
        warn: (_: unknown, msg?: string) => void warnings.push(msg ?? ""),
        error() {},
      };
      const t = transport({ logger });
      const got: number[] = [];
      await t.subscribe({
        subscriber: "resilient",
        types: ["JOB"],
        handler: async (d) => void got.push(nOf(d)),
      });
      await t.publish([job(1)]);
      await eventually(() => got.length === 1, "the first delivery");
      const jsm = await jetstreamManager(admin);
      // nats-server 2.9 can fail a delete that races its own state write ("directory not empty").
      await eventually(
        () =>
          jsm.consumers
            .delete(names.stream, durableName(names.prefix, "resilient", "JOB"))
            .catch(() => false),
        "the consumer to be deleted",
      );
      await eventually(
        () => warnings.some((w) => w.includes("re-created")),
        "the re-creation",
        15_000,
      );
      const name = durableName(names.prefix, "resilient", "JOB");
      await eventually(
        () =>
          jsm.consumers.info(names.stream, name).then(
            () => true,
            () => false,
          ),
        "the consumer to exist again",
      );
      // Events published while it was gone are not its (a new consumer starts with new events).
      await t.publish([job(2)]);
      await eventually(() => got.length === 2, "a delivery through the new consumer", 15_000);
      expect(got).toEqual([1, 2]);
    },
  );

  it("rejects event types that cannot be one subject token", async () => {
    const t = transport();
    await expect(t.publish([{ ...job(1), type: "A.B" }])).rejects.toBeInstanceOf(NatsOptionsError);
    await expect(
      t.subscribe({ subscriber: "x", types: ["A>"], handler: async () => {} }),
    ).rejects.toBeInstanceOf(NatsOptionsError);
  });

  it("uses a connection it is given and leaves it open on close", async () => {
    const nc = await connect({ servers: NATS_URL });
    try {
      const t = transport({ connection: nc });
      await t.publish([job(1)]);
      await t.close();
      expect(nc.isClosed()).toBe(false);
      await expect(t.publish([job(2)])).rejects.toBeInstanceOf(TransportClosedError);
      await expect(t.stats()).rejects.toBeInstanceOf(TransportClosedError);
      await expect(
        t.subscribe({ subscriber: "x", types: ["JOB"], handler: async () => {} }),
      ).rejects.toBeInstanceOf(TransportClosedError);
    } finally {
      await nc.close();
    }
  });

  it("hands back deliveries still running after the drain timeout, aborting their signal", async () => {
    const first = transport({ drainTimeoutMs: 100 });
    let signal: AbortSignal | undefined;
    await first.subscribe({
      subscriber: "slowpoke",
      types: ["JOB"],
      leaseMs: 20_000,
      handler: async (d) => {
        signal = d.signal;
        await new Promise(() => {});
      },
    });
    await first.publish([job(1)]);
    await eventually(() => signal !== undefined, "the first delivery");
    const started = Date.now();
    await first.close();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(signal?.aborted).toBe(true);
    // Handed back at once, not after the 20 s lease; a hand-back is not an attempt.
    const second = transport();
    const attempts: number[] = [];
    await second.subscribe({
      subscriber: "slowpoke",
      types: ["JOB"],
      handler: async (d) => void attempts.push(d.attempt),
    });
    await eventually(() => attempts.length === 1, "the handed-back delivery", 5_000);
    expect(attempts).toEqual([1]);
  });

  it("waits for a running handler when the drain timeout is beyond what setTimeout takes", async () => {
    // Unclamped, a delay over 2^31 - 1 ms fires after 1 ms: close() aborted every handler at once.
    const t = transport({ drainTimeoutMs: 3_000_000_000 });
    let signal: AbortSignal | undefined;
    let finished = false;
    await t.subscribe({
      subscriber: "patient",
      types: ["JOB"],
      handler: async (d) => {
        signal = d.signal;
        await new Promise((resolve) => setTimeout(resolve, 300));
        finished = true;
      },
    });
    await t.publish([job(1)]);
    await eventually(() => signal !== undefined, "the delivery");
    await t.close();
    expect(finished).toBe(true);
    expect(signal?.aborted).toBe(false);
  });

  it("does not count hand-backs on close toward maxAttempts (issue 13 item 3)", async () => {
    const dead: string[] = [];
    const sink = { deadLetter: async (r: DeadLetterRecord) => void dead.push(r.reason) };
    const seen: number[] = [];
    for (let round = 1; round <= 3; round++) {
      const t = transport({ drainTimeoutMs: 50, deadLetter: sink });
      let started = false;
      await t.subscribe({
        subscriber: "rolling",
        types: ["JOB"],
        maxAttempts: 2,
        leaseMs: 20_000,
        handler: async (d) => {
          seen.push(d.attempt);
          started = true;
          await new Promise((resolve) => d.signal.addEventListener("abort", resolve));
          throw d.signal.reason;
        },
      });
      if (round === 1) await t.publish([job(1)]);
      await eventually(() => started, `the delivery in round ${round}`, 5_000);
      await t.close();
    }
    const last = transport({ deadLetter: sink });
    await last.subscribe({
      subscriber: "rolling",
      types: ["JOB"],
      maxAttempts: 2,
      handler: async (d) => void seen.push(d.attempt),
    });
    await eventually(() => seen.length === 4, "the fourth delivery", 5_000);
    expect(seen).toEqual([1, 1, 1, 1]);
    expect(dead).toEqual([]);
  });

  it(
    "hands messages a pull already delivered back on close, so another process gets them before AckWait",
    { timeout: 30_000 },
    async () => {
      const total = 300;
      const leaseMs = 30_000;
      // The durable consumer exists first, so the whole backlog waits for the next pull.
      await (
        await transport().subscribe({
          subscriber: "handover",
          types: ["JOB"],
          handler: async () => {},
        })
      ).close();
      await transport().publish(Array.from({ length: total }, (_, i) => job(i)));

      const first = transport({ drainTimeoutMs: 5_000 });
      const started = new Set<number>();
      const finished = new Set<number>();
      let closing: Promise<void> | undefined;
      await first.subscribe({
        subscriber: "handover",
        types: ["JOB"],
        concurrency: total,
        leaseMs,
        handler: async (d) => {
          started.add(nOf(d));
          // Close while the rest of the pull is still arriving: it was delivered but never started.
          closing ??= first.close();
          await new Promise((r) => setTimeout(r, 100));
          finished.add(nOf(d));
        },
      });
      await eventually(() => closing !== undefined, "the first delivery");
      await closing;
      // Handlers that had started were let finish (and acked), not cut short.
      expect([...started].sort()).toEqual([...finished].sort());

      const second = transport();
      const redelivered = new Set<number>();
      const handedOver = Date.now();
      await second.subscribe({
        subscriber: "handover",
        types: ["JOB"],
        concurrency: 16,
        leaseMs,
        handler: async (d) => void redelivered.add(nOf(d)),
      });
      // Everything the first process did not finish arrives at once, not after the 30 s AckWait.
      await eventually(
        () => finished.size + redelivered.size >= total,
        `all ${total} events (finished ${finished.size}, handed over ${redelivered.size})`,
        10_000,
      );
      expect(Date.now() - handedOver).toBeLessThan(leaseMs / 3);
      for (const n of finished) expect(redelivered.has(n)).toBe(false);
    },
  );

  it("keeps the lease of a delivery buffered for a slot, so it is not redelivered meanwhile", async () => {
    const t = transport();
    const seen: { type: string; attempt: number }[] = [];
    await t.subscribe({
      subscriber: "one-slot",
      types: ["JOB", "OTHER"],
      concurrency: 1,
      leaseMs: 300,
      handler: async (d) => {
        seen.push({ type: d.envelope.type, attempt: d.attempt });
        if (d.envelope.type !== "JOB") return;
        // Holds the only slot for 3 leases, extending its own.
        for (let i = 0; i < 6; i++) {
          await new Promise((r) => setTimeout(r, 150));
          await d.extendLease();
        }
      },
    });
    await t.publish([job(1)]);
    await eventually(() => seen.length === 1, "the first delivery");
    // Both consumers pull: OTHER arrives while JOB holds the slot, and waits in the buffer.
    await t.publish([{ ...job(2), type: "OTHER" }]);
    await eventually(() => seen.length === 2, "the buffered delivery", 5_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(seen).toEqual([
      { type: "JOB", attempt: 1 },
      { type: "OTHER", attempt: 1 },
    ]);
  });

  it("works with concurrency: runs up to that many handlers at once", async () => {
    const t = transport();
    let running = 0;
    let peak = 0;
    let done = 0;
    await t.subscribe({
      subscriber: "parallel",
      types: ["JOB"],
      concurrency: 5,
      handler: async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 30));
        running--;
        done++;
      },
    });
    await t.publish(Array.from({ length: 30 }, (_, i) => job(i)));
    await eventually(() => done === 30, "30 deliveries");
    expect(peak).toBe(5);
  });
});
