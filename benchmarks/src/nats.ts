// NATS JetStream: our transport next to raw @nats-io/jetstream doing the same work — the same
// message count, the same number of publishes (and unacknowledged deliveries) in flight, a stream
// with the same settings — on the NATS server at NATS_URL (default 127.0.0.1:4222), loopback only.
// Raw runs twice: with a plain JSON body (the client's own cost) and with Switchyard's exact wire
// format (`encodeEnvelope()`: the same bytes and CloudEvents headers), which separates what the
// client costs from what the wire format costs.
import { randomBytes } from "node:crypto";
import { connect as tcpConnect } from "node:net";
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamClient,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { type NatsConnection, connect, nanos } from "@nats-io/transport-node";
import { createEnvelope } from "@switchyard/event-schema";
import type { Transport } from "@switchyard/router";
import type * as NatsModule from "@switchyard/transport-nats";
// Not exported by the package: the benchmark needs the exact bytes and headers our transport sends.
import { encodeEnvelope } from "../../packages/transport-nats/src/codec";
import {
  type Figure,
  type GroupResult,
  type Ratio,
  type RunOptions,
  type Target,
  find,
  fromRuns,
} from "./harness";
import { payload } from "./sqlite-libs";

const group = "nats: JetStream (messages/s)";
/** Publishes awaiting their ack at once, and deliveries handed out at once: ours and raw alike. */
const IN_FLIGHT = 64;
const RUNS_FULL = 3;
const COUNT = { full: 10_000, quick: 1_000 };
const SINGLE_COUNT = { full: 2_000, quick: 200 };
const LEASE_MS = 30_000;
const MAX_ACK_PENDING = 10_000;
const DUPLICATE_WINDOW_MS = 120_000;

const OURS = "switchyard natsTransport";
const RAW = "raw @nats-io/jetstream, JSON body";
const WIRE = "raw @nats-io/jetstream, Switchyard's wire format";
const names = {
  publish: (who: string) => `${who}: publish, ${IN_FLIGHT} in flight`,
  single: (who: string) => `${who}: publish, awaited one by one`,
  consume: (who: string) => `${who}: consume + ack, ${IN_FLIGHT} outstanding`,
  consume1: (who: string) => `${who}: consume + ack, 1 outstanding`,
};
type Who = typeof OURS | typeof RAW | typeof WIRE;

const notMeasured = (reason: string): GroupResult => ({
  figures: [],
  targets: [
    {
      group: "nats",
      description: "NATS: every row ≥ 90 % of raw @nats-io/jetstream at the same settings",
      met: undefined,
      detail: `not measured: ${reason}`,
    },
  ],
  notMeasured: [`NATS (our transport and raw @nats-io/jetstream): not measured: ${reason}`],
});

export async function benchNats(options: RunOptions): Promise<GroupResult> {
  const url = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
  const mod = (await import("@switchyard/transport-nats").catch(() => undefined)) as
    Partial<typeof NatsModule> | undefined;
  if (typeof mod?.natsTransport !== "function")
    return notMeasured("packages/transport-nats/src/index.ts does not export natsTransport");
  const { hostname, port } = new URL(
    url
      .split(",")[0]!
      .trim()
      .replace(/^nats:/, "http:"),
  );
  const host = hostname.replace(/^\[|\]$/g, "");
  if (!/^(127\.\d+\.\d+\.\d+|localhost|::1)$/.test(host))
    return notMeasured(
      `NATS_URL (${url}) is not a loopback address; benchmarks send loopback traffic only`,
    );
  if (!(await reachable(host, Number(port || 4222))))
    return notMeasured(`no NATS server answers at ${url}`);

  const servers = url;
  const run = `${Date.now().toString(36)}${randomBytes(3).toString("hex")}`.toUpperCase();
  const oursStream = `BENCH_OURS_${run}`;
  const rawStream = `BENCH_RAW_${run}`;
  const wireStream = `BENCH_WIRE_${run}`;
  const oursPrefix = `bench.ours.${run.toLowerCase()}`;
  const rawPrefix = `bench.raw.${run.toLowerCase()}`;
  const wirePrefix = `bench.wire.${run.toLowerCase()}`;
  const nc = await connect({ servers, timeout: 5_000, name: "switchyard-bench-raw" });
  const oursNc = await connect({ servers, timeout: 5_000, name: "switchyard-bench-ours" });
  const jsm = await jetstreamManager(nc);
  let jetstreamOn = true;
  await jsm.getAccountInfo().catch(() => (jetstreamOn = false));
  if (!jetstreamOn) {
    await Promise.all([nc.close(), oursNc.close()]);
    return notMeasured(`the NATS server at ${url} has no JetStream`);
  }
  const ours = mod.natsTransport({
    connection: oursNc,
    stream: oursStream,
    prefix: oursPrefix,
    storage: "file",
    retention: "interest",
    duplicateWindowMs: DUPLICATE_WINDOW_MS,
    publishConcurrency: IN_FLIGHT,
    maxAckPending: MAX_ACK_PENDING,
  });
  try {
    await ours.ready();
    // The raw streams and consumers get what our transport sets up for its own.
    for (const [stream, prefix] of [
      [rawStream, rawPrefix],
      [wireStream, wirePrefix],
    ] as const) {
      await jsm.streams.add({
        name: stream,
        subjects: [`${prefix}.>`],
        retention: RetentionPolicy.Interest,
        storage: StorageType.File,
        duplicate_window: nanos(DUPLICATE_WINDOW_MS),
        num_replicas: 1,
      });
      await jsm.consumers.add(stream, {
        durable_name: "bench",
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(LEASE_MS),
        deliver_policy: DeliverPolicy.New,
        filter_subject: `${prefix}.X`,
        max_deliver: -1,
        max_ack_pending: MAX_ACK_PENDING,
      });
    }
    // Our subscriber's durable consumer exists from here on; later subscriptions reuse it.
    await (
      await ours.subscribe({ subscriber: "bench", types: ["X"], handler: async () => {} })
    ).close();

    const js = jetstream(nc);
    const quick = options.quick;
    const count = COUNT[quick ? "quick" : "full"];
    const single = SINGLE_COUNT[quick ? "quick" : "full"];
    const rates: Record<string, number[]> = {};
    const add = (name: string, perSec: number) => (rates[name] ??= []).push(perSec);
    const raws = {
      [RAW]: { stream: rawStream, subject: `${rawPrefix}.X`, wire: false },
      [WIRE]: { stream: wireStream, subject: `${wirePrefix}.X`, wire: true },
    };
    const whos: Who[] = [OURS, RAW, WIRE];
    for (let r = 0; r < (quick ? 1 : RUNS_FULL); r++) {
      // Rotate who goes first, so no one always meets a warmer (or busier) server.
      for (const who of [...whos.slice(r % 3), ...whos.slice(0, r % 3)]) {
        if (who === OURS) {
          add(names.publish(OURS), await publishOurs(ours, count, IN_FLIGHT));
          add(names.consume(OURS), await consumeOurs(ours, oursNc, count, IN_FLIGHT));
          add(names.single(OURS), await publishOurs(ours, single, 1));
          add(names.consume1(OURS), await consumeOurs(ours, oursNc, single, 1));
        } else {
          const { stream, subject, wire } = raws[who];
          add(names.publish(who), await publishRaw(js, subject, count, IN_FLIGHT, wire));
          add(names.consume(who), await consumeRaw(js, nc, stream, count, IN_FLIGHT));
          add(names.single(who), await publishRaw(js, subject, single, 1, wire));
          add(names.consume1(who), await consumeRaw(js, nc, stream, single, 1));
        }
      }
    }
    const sample = createEnvelope({ type: "X", source: "bench", data: payload });
    const bodyBytes = JSON.stringify(sample).length;
    const { headers: sampleHeaders } = encodeEnvelope(sample);
    const headerBytes = [...sampleHeaders.keys()].reduce(
      (n, k) => n + k.length + 2 + sampleHeaders.get(k).length + 2,
      0,
    );
    const server = `nats-server ${nc.info?.version ?? "?"}, file storage, R1, loopback`;
    const body = (who: Who) =>
      who === RAW
        ? `body ${bodyBytes} B (the envelope as JSON), \`msgID\` only`
        : `body ${bodyBytes} B + ${sampleHeaders.keys().length} CloudEvents headers (~${headerBytes} B), \`msgID\``;
    const settingsOf = (name: string): string => {
      const who = whos.find((w) => name.startsWith(`${w}:`))!;
      const how = name.endsWith(names.publish(who).slice(who.length))
        ? who === OURS
          ? `one \`publish()\` of ${count} envelopes, \`publishConcurrency\` ${IN_FLIGHT}`
          : `${IN_FLIGHT} loops of awaited \`js.publish()\`, ${count} messages`
        : name.endsWith(names.single(who).slice(who.length))
          ? who === OURS
            ? `\`publish([envelope])\` awaited one by one, ${single} messages`
            : `\`js.publish()\` awaited one by one, ${single} messages`
          : name.endsWith(names.consume(who).slice(who.length))
            ? who === OURS
              ? `subscription \`concurrency\` ${IN_FLIGHT} (pulls as many as free slots), ack each, ${count} messages`
              : `\`consumer.consume({ max_messages: ${IN_FLIGHT}, callback })\`, \`ack()\` each after the handler, JSON.parse + no-op async handler, ${count} messages`
            : who === OURS
              ? `subscription \`concurrency\` 1 (pulls 1 at a time), ack each, ${single} messages`
              : `\`consumer.consume({ max_messages: 1, callback })\`, \`ack()\` each after the handler, JSON.parse + no-op async handler, ${single} messages`;
      return `${how}; ${body(who)}; durable pull consumer, explicit ack, AckWait ${LEASE_MS / 1000} s; ${server}; 1 process, 1 connection`;
    };
    const figures: Figure[] = Object.entries(rates).map(([name, runs]) => ({
      ...fromRuns(group, name, runs),
      settings: settingsOf(name),
    }));
    const v = (name: string) => find(figures, name).value;
    const ratios: Ratio[] = [];
    const worst: { name: string; value: number }[] = [];
    for (const what of [names.single, names.publish, names.consume1, names.consume]) {
      const vsRaw = v(what(OURS)) / v(what(RAW));
      const vsWire = v(what(OURS)) / v(what(WIRE));
      const wireCost = v(what(WIRE)) / v(what(RAW));
      ratios.push(
        {
          group: "nats",
          description: `same concurrency and body, raw sends no headers: ${what(OURS)} / ${what(RAW)}`,
          value: vsRaw,
        },
        {
          group: "nats",
          description: `same settings, same bytes and headers: ${what(OURS)} / ${what(WIRE)}`,
          value: vsWire,
        },
        {
          group: "nats",
          description: `cost of the wire format alone: ${what(WIRE)} / ${what(RAW)}`,
          value: wireCost,
        },
      );
      worst.push({ name: what(OURS), value: Math.min(vsRaw, vsWire) });
    }
    const targets: Target[] = [
      ...worst.map(({ name, value }) => ({
        group: "nats",
        description: `${name} ≥ 90 % of raw @nats-io/jetstream at the same settings (the lower of JSON-body raw and wire-format raw)`,
        met: value >= 0.9,
        detail: `${(value * 100).toFixed(0)} %`,
      })),
      {
        group: "nats",
        description:
          "NATS scale-out: publish and consume on a 3-node JetStream cluster (R3), next to raw",
        met: undefined,
        detail:
          "not measured: this harness uses the one shared nats-server at NATS_URL; no cluster is started",
      },
    ];
    const settings = [
      `NATS: nats-server ${nc.info?.version ?? "?"} at ${url} (loopback), JetStream file storage, interest retention, 1 replica, duplicate window ${DUPLICATE_WINDOW_MS / 1000} s; ` +
        `one stream each for ours, raw (JSON body) and raw (wire format), with unique names deleted afterwards; one durable pull consumer each (explicit ack, AckWait ${LEASE_MS / 1000} s, max_ack_pending ${MAX_ACK_PENDING}). ` +
        `Per run, for each of the three: ${count} messages published with ${IN_FLIGHT} publish acks in flight, then consumed with ${IN_FLIGHT} outstanding; then ${single} published awaited one by one, then consumed with 1 outstanding. ` +
        "Consume is timed until the last handler ran and the connection was flushed (the acks are out). Every message is built in the loop with `createEnvelope()`; raw (JSON body) publishes the envelope as JSON with `msgID` = its id; raw (wire format) publishes `encodeEnvelope()`'s bytes and headers (packages/transport-nats/src/codec.ts), exactly what our transport sends. " +
        `${quick ? 1 : RUNS_FULL} runs, rotating who goes first; median (range).`,
    ];
    const missing = [
      "NATS throughput against durable-consumer count (1, 10, 100 on one stream): not measured yet.",
      "NATS on a 3-node JetStream cluster (R3): not measured; this harness uses the one shared nats-server.",
    ];
    return { figures, targets, ratios, settings, notMeasured: missing };
  } finally {
    await ours.close().catch(() => {});
    await jsm.streams.delete(oursStream).catch(() => {});
    await jsm.streams.delete(rawStream).catch(() => {});
    await jsm.streams.delete(wireStream).catch(() => {});
    await Promise.all([nc.close(), oursNc.close()]);
  }
}

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port, timeout: 1_000 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("timeout", () => done(false));
    socket.once("error", () => done(false));
  });
}

async function publishOurs(t: Transport, count: number, inFlight: number): Promise<number> {
  const start = performance.now();
  if (inFlight === 1) {
    for (let i = 0; i < count; i++)
      await t.publish([createEnvelope({ type: "X", source: "bench", data: payload })]);
  } else {
    const envelopes = Array.from({ length: count }, () =>
      createEnvelope({ type: "X", source: "bench", data: payload }),
    );
    const result = await t.publish(envelopes);
    if (result.published !== count) throw new Error(`published ${result.published} of ${count}`);
  }
  return (count / (performance.now() - start)) * 1000;
}

async function publishRaw(
  js: JetStreamClient,
  subject: string,
  count: number,
  inFlight: number,
  wire: boolean,
): Promise<number> {
  const encoder = new TextEncoder();
  const start = performance.now();
  let next = 0;
  const loop = async () => {
    while (next < count) {
      next++;
      const envelope = createEnvelope({ type: "X", source: "bench", data: payload });
      // wire: our exact bytes and headers; otherwise the same body without our headers.
      const ack = wire
        ? await js.publish(subject, ...encodeOurs(envelope))
        : await js.publish(subject, encoder.encode(JSON.stringify(envelope)), {
            msgID: envelope.id,
          });
      if (ack.duplicate) throw new Error("raw publish: unexpected duplicate");
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
  return (count / (performance.now() - start)) * 1000;
}

const encodeOurs = (envelope: ReturnType<typeof createEnvelope>) => {
  const { data, headers } = encodeEnvelope(envelope);
  return [data, { msgID: envelope.id, headers }] as const;
};

/** Run until `count` deliveries were handled (bounded: 60 s), then flush the acks. */
async function consumeOurs(
  t: Transport,
  nc: NatsConnection,
  count: number,
  outstanding: number,
): Promise<number> {
  let handled = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const start = performance.now();
  const sub = await t.subscribe({
    subscriber: "bench",
    types: ["X"],
    concurrency: outstanding,
    leaseMs: LEASE_MS,
    handler: async () => {
      if (++handled === count) done();
    },
  });
  try {
    await bounded(all, 60_000, () => `ours: ${handled} of ${count} delivered`);
    // The last handler's ack is sent right after it returns: let it go out, then flush.
    await new Promise((resolve) => setImmediate(resolve));
    await nc.flush();
    return (count / (performance.now() - start)) * 1000;
  } finally {
    await sub.close();
  }
}

async function consumeRaw(
  js: JetStreamClient,
  nc: NatsConnection,
  stream: string,
  count: number,
  outstanding: number,
): Promise<number> {
  const start = performance.now();
  const consumer = await js.consumers.get(stream, "bench");
  const decoder = new TextDecoder();
  let handled = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  // The callback form: the faster of the client's two (its async iterator measured 2–4× slower
  // here), so the baseline is the best the client does. Each message: parse, handler, then ack.
  const messages = await consumer.consume({
    max_messages: outstanding,
    callback: (m) => {
      void handle(JSON.parse(decoder.decode(m.data))).then(() => {
        m.ack();
        if (++handled === count) done();
      });
    },
  });
  try {
    await bounded(all, 60_000, () => `raw: ${handled} of ${count} delivered`);
    await nc.flush();
    return (count / (performance.now() - start)) * 1000;
  } finally {
    await messages.close();
  }
}

const handle = async (_envelope: unknown) => {};

async function bounded(work: Promise<void>, ms: number, what: () => string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
