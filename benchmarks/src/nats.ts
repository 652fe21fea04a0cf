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
// The package's own 3-node cluster harness (own nats-server processes on free loopback ports,
// temp store dirs, killed on dispose and on process exit).
import { type OwnCluster, startOwnCluster } from "../../packages/transport-nats/src/test/cluster";
import { natsServerBinary } from "../../packages/transport-nats/src/test/process";
import {
  type Figure,
  type GroupResult,
  type Ratio,
  type RunOptions,
  type Scaling,
  type Target,
  fmtRate,
  fromRuns,
  median,
  pairedRatio,
  percentile,
  percentNear,
  sleep,
} from "./harness";
import { payload } from "./sqlite-libs";

/**
 * Connection options of every connection, ours and raw alike: `noAsyncTraces` spares
 * `@nats-io/nats-core` an `Error` with a stack trace per request (the fastest the client goes).
 */
const CONNECT = { timeout: 5_000, noAsyncTraces: true } as const;

const group = "nats: JetStream (messages/s)";
/** Publishes awaiting their ack at once, and deliveries handed out at once: ours and raw alike. */
const IN_FLIGHT = 64;
/**
 * Runs of the JetStream and R3 rows, and messages per run. Per-run ratios of the same code swung
 * ±10 % with 7 runs of 30,000 (rounds of ~0.7 s at 64 outstanding): longer rounds and more of them
 * for a median that holds from one full run to the next.
 */
const RUNS_FULL = 9;
const COUNT = { full: 45_000, quick: 1_000 };
/** Messages per run on the R3 cluster (its rate is about half of one server's). */
const R3_COUNT = { full: 22_500, quick: 500 };
const SINGLE_COUNT = { full: 5_000, quick: 200 };
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
  const nc = await connect({ servers, ...CONNECT, name: "switchyard-bench-raw" });
  const oursNc = await connect({ servers, ...CONNECT, name: "switchyard-bench-ours" });
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
              ? `subscription \`concurrency\` ${IN_FLIGHT} (keeps ${IN_FLIGHT} asked for, re-pulled as they arrive; holds at most ${IN_FLIGHT} + a prefetch of ~50 ms of handler work, ≤ ${IN_FLIGHT}), ack each, ${count} messages`
              : `\`consumer.consume({ max_messages: ${IN_FLIGHT}, callback })\`, \`ack()\` each after the handler, JSON.parse + no-op async handler, ${count} messages (the callback does not wait for the handler: raw's handlers are not limited to ${IN_FLIGHT} at a time; it re-pulls at 75 % of \`max_messages\`)`
            : who === OURS
              ? `subscription \`concurrency\` 1 (pulls 1 at a time), ack each, ${single} messages`
              : `\`consumer.consume({ max_messages: 1, callback })\`, \`ack()\` each after the handler, JSON.parse + no-op async handler, ${single} messages (handlers not limited to 1 at a time; a re-pull on every arrival)`;
      return `${how}; ${body(who)}; durable pull consumer, explicit ack, AckWait ${LEASE_MS / 1000} s; ${server}; 1 process, 1 connection (\`noAsyncTraces\`)`;
    };
    const figures: Figure[] = Object.entries(rates).map(([name, runs]) => ({
      ...fromRuns(group, name, runs),
      settings: settingsOf(name),
    }));
    const ratios: Ratio[] = [];
    const worst: { name: string; value: number }[] = [];
    const paired = (a: string, b: string) => pairedRatio(rates[a] ?? [], rates[b] ?? []);
    for (const what of [names.single, names.publish, names.consume1, names.consume]) {
      const vsRaw = paired(what(OURS), what(RAW));
      const vsWire = paired(what(OURS), what(WIRE));
      const wireCost = paired(what(WIRE), what(RAW));
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
        detail: percentNear(value, 0.9),
      })),
    ];
    // Fan-out against durable-consumer count, on the server at NATS_URL.
    const fanout = await consumerScaling(mod.natsTransport, servers, nc, run, quick);
    // Scale-out: a 3-node cluster of our own, R3.
    const r3 = await clusterRun(mod.natsTransport, run, quick);
    figures.push(...r3.figures);
    targets.push(...r3.targets);
    ratios.push(...r3.ratios);
    const settings = [
      `NATS: nats-server ${nc.info?.version ?? "?"} at ${url} (loopback), JetStream file storage, interest retention, 1 replica, duplicate window ${DUPLICATE_WINDOW_MS / 1000} s; ` +
        `one stream each for ours, raw (JSON body) and raw (wire format), with unique names deleted afterwards; one durable pull consumer each (explicit ack, AckWait ${LEASE_MS / 1000} s, max_ack_pending ${MAX_ACK_PENDING}). ` +
        `Per run, for each of the three: ${count} messages published with ${IN_FLIGHT} publish acks in flight, then consumed with ${IN_FLIGHT} outstanding; then ${single} published awaited one by one, then consumed with 1 outstanding. ` +
        "Consume is timed until the last handler ran and the connection was flushed (the acks are out). Every message is built in the loop with `createEnvelope()`; raw (JSON body) publishes the envelope as JSON with `msgID` = its id; raw (wire format) publishes `encodeEnvelope()`'s bytes and headers (packages/transport-nats/src/codec.ts), exactly what our transport sends. " +
        `${quick ? 1 : RUNS_FULL} runs, rotating who goes first; median (range). Ratios and goals: the median of the per-run ratios (the rows compared ran back to back in each run), not the ratio of the medians.`,
    ];
    settings.push(...r3.settings);
    return {
      figures,
      targets,
      ratios,
      settings,
      scaling: [fanout.scaling],
      notMeasured: [...fanout.notMeasured, ...r3.notMeasured],
    };
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

/**
 * Deliveries per subscriber of a fan-out run: `all` resolves once every one of the `n` subscribers
 * handled `events` (a redelivery to one cannot stand in for a delivery another never made).
 */
function fanOutTally(n: number, events: number) {
  const counts = new Array<number>(n).fill(0);
  let complete = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  return {
    all,
    handled(i: number) {
      if (++counts[i]! === events && ++complete === n) done();
    },
    report: () =>
      `${complete} of ${n} subscribers have all ${events} events; fewest handled ${Math.min(...counts)}`,
  };
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
  durable = "bench",
): Promise<number> {
  const start = performance.now();
  const consumer = await js.consumers.get(stream, durable);
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

type NatsTransportFactory = typeof NatsModule.natsTransport;

/** Publish `count` envelopes with Switchyard's wire format through raw js.publish, `inFlight` loops. */
async function publishWire(js: JetStreamClient, subject: string, count: number, inFlight: number) {
  let next = 0;
  const loop = async () => {
    while (next < count) {
      next++;
      const envelope = createEnvelope({ type: "X", source: "bench", data: payload });
      const ack = await js.publish(subject, ...encodeOurs(envelope));
      if (ack.duplicate) throw new Error("raw publish: unexpected duplicate");
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
}

/**
 * NATS fan-out: publish and consume+ack against the number of durable consumers on one stream
 * (1, 10, 100; quick: 1, 10), ours next to raw @nats-io/jetstream (wire format) on the server at
 * NATS_URL. Every consumer gets every event (one subscriber each); all consume at once, in one
 * process on one connection per side. Bounded: each consume at most 60 s.
 */
async function consumerScaling(
  natsTransport: NatsTransportFactory,
  servers: string,
  nc: NatsConnection,
  run: string,
  quick: boolean,
): Promise<{ scaling: Scaling; notMeasured: string[] }> {
  const counts = quick ? [1, 10] : [1, 10, 100];
  const deliveries = quick ? 2_000 : 20_000;
  // At least this many events per point, so the publish timing is not a few ms of start-up.
  const minEvents = quick ? 500 : 2_000;
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const rows: string[][] = [];
  const notMeasured: string[] = [];
  const series = {
    oursPublish: [] as [number, number][],
    rawPublish: [] as [number, number][],
    oursConsume: [] as [number, number][],
    rawConsume: [] as [number, number][],
    oursP99: [] as [number, number][],
    rawP99: [] as [number, number][],
  };
  const latencyMs = FAN_OUT_LATENCY_MS[quick ? "quick" : "full"];
  for (const n of counts) {
    const events = Math.max(minEvents, Math.ceil(deliveries / n));
    const tag = `${run}_F${n}`;
    const oursNc = await connect({ servers, ...CONNECT, name: "switchyard-bench-fanout" });
    const ours = natsTransport({
      connection: oursNc,
      stream: `BENCH_FAN_OURS_${tag}`,
      prefix: `bench.fan.ours.${tag.toLowerCase()}`,
      storage: "file",
      retention: "interest",
      duplicateWindowMs: DUPLICATE_WINDOW_MS,
      publishConcurrency: IN_FLIGHT,
      maxAckPending: MAX_ACK_PENDING,
    });
    const rawStream = `BENCH_FAN_RAW_${tag}`;
    const rawSubject = `bench.fan.raw.${tag.toLowerCase()}.X`;
    try {
      await ours.ready();
      const subscribers = Array.from({ length: n }, (_, i) => `s${i}`);
      for (const s of subscribers) await ours.register(s, ["X"]);
      await jsm.streams.add({
        name: rawStream,
        subjects: [rawSubject],
        retention: RetentionPolicy.Interest,
        storage: StorageType.File,
        duplicate_window: nanos(DUPLICATE_WINDOW_MS),
        num_replicas: 1,
      });
      for (const s of subscribers)
        await jsm.consumers.add(rawStream, {
          durable_name: s,
          ack_policy: AckPolicy.Explicit,
          ack_wait: nanos(LEASE_MS),
          deliver_policy: DeliverPolicy.New,
          filter_subject: rawSubject,
          max_deliver: -1,
          max_ack_pending: MAX_ACK_PENDING,
        });
      // Alternate who goes first with the point, so no side always meets the warmer server.
      const measureOurs = async () => {
        const envelopes = Array.from({ length: events }, () =>
          createEnvelope({ type: "X", source: "bench", data: payload }),
        );
        let start = performance.now();
        const result = await ours.publish(envelopes);
        if (result.published !== events)
          throw new Error(`ours fan-out ${n}: published ${result.published} of ${events}`);
        const publish = (events / (performance.now() - start)) * 1000;
        const tally = fanOutTally(n, events);
        start = performance.now();
        const subs = [];
        for (const [i, subscriber] of subscribers.entries())
          subs.push(
            await ours.subscribe({
              subscriber,
              types: ["X"],
              concurrency: IN_FLIGHT,
              leaseMs: LEASE_MS,
              handler: async () => tally.handled(i),
            }),
          );
        const subscribeMs = performance.now() - start;
        try {
          await bounded(tally.all, 60_000, () => `ours fan-out ${n}: ${tally.report()}`);
          await new Promise((resolve) => setImmediate(resolve));
          await oursNc.flush();
          const consume = ((events * n) / (performance.now() - start)) * 1000;
          return { publish, consume, subscribeMs };
        } finally {
          await Promise.all(subs.map((sub) => sub.close()));
        }
      };
      const measureRaw = async () => {
        let start = performance.now();
        await publishWire(js, rawSubject, events, IN_FLIGHT);
        const publish = (events / (performance.now() - start)) * 1000;
        const decoder = new TextDecoder();
        const tally = fanOutTally(n, events);
        start = performance.now();
        const consumers = [];
        for (const [i, s] of subscribers.entries()) {
          const consumer = await js.consumers.get(rawStream, s);
          consumers.push(
            await consumer.consume({
              max_messages: IN_FLIGHT,
              callback: (m) => {
                void handle(JSON.parse(decoder.decode(m.data))).then(() => {
                  m.ack();
                  tally.handled(i);
                });
              },
            }),
          );
        }
        const subscribeMs = performance.now() - start;
        try {
          await bounded(tally.all, 60_000, () => `raw fan-out ${n}: ${tally.report()}`);
          await nc.flush();
          const consume = ((events * n) / (performance.now() - start)) * 1000;
          return { publish, consume, subscribeMs };
        } finally {
          await Promise.all(consumers.map((c) => c.close()));
        }
      };
      const oursFirst = counts.indexOf(n) % 2 === 0;
      const first = await (oursFirst ? measureOurs() : measureRaw());
      const second = await (oursFirst ? measureRaw() : measureOurs());
      const o = oursFirst ? first : second;
      const r = oursFirst ? second : first;
      // Latency at a steady rate with the N consumers already subscribed (the queues are empty).
      const latencyOurs = () =>
        fanOutLatency(
          n,
          quick,
          async (record) => {
            const closers: (() => Promise<unknown>)[] = [];
            for (const subscriber of subscribers) {
              const sub = await ours.subscribe({
                subscriber,
                types: ["X"],
                concurrency: IN_FLIGHT,
                leaseMs: LEASE_MS,
                handler: async (d) => record((d.envelope.data as { t: number }).t),
              });
              closers.push(() => sub.close());
            }
            return () => Promise.all(closers.map((close) => close()));
          },
          async (t) => {
            await ours.publish([
              createEnvelope({ type: "X", source: "bench", data: { ...payload, t } }),
            ]);
          },
        );
      const latencyRaw = () =>
        fanOutLatency(
          n,
          quick,
          async (record) => {
            const decoder = new TextDecoder();
            const closers: (() => Promise<unknown>)[] = [];
            for (const s of subscribers) {
              const consumer = await js.consumers.get(rawStream, s);
              const messages = await consumer.consume({
                max_messages: IN_FLIGHT,
                callback: (m) => {
                  const envelope = JSON.parse(decoder.decode(m.data)) as { data: { t: number } };
                  record(envelope.data.t);
                  void handle(envelope).then(() => m.ack());
                },
              });
              closers.push(() => messages.close());
            }
            return () => Promise.all(closers.map((close) => close()));
          },
          async (t) => {
            const envelope = createEnvelope({
              type: "X",
              source: "bench",
              data: { ...payload, t },
            });
            const ack = await js.publish(rawSubject, ...encodeOurs(envelope));
            if (ack.duplicate) throw new Error("raw publish: unexpected duplicate");
          },
        );
      const latency = async (run: () => Promise<number[]>) => {
        try {
          const latencies = await run();
          return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
        } catch (error) {
          notMeasured.push(`NATS latency at ${n} durable consumers: ${(error as Error).message}`);
          return { p50: Number.NaN, p99: Number.NaN };
        }
      };
      // In the same order as the throughput runs of this point.
      const firstLatency = await latency(oursFirst ? latencyOurs : latencyRaw);
      const secondLatency = await latency(oursFirst ? latencyRaw : latencyOurs);
      const l = oursFirst ? firstLatency : secondLatency;
      const lr = oursFirst ? secondLatency : firstLatency;
      if (Number.isFinite(l.p99)) series.oursP99.push([n, l.p99]);
      if (Number.isFinite(lr.p99)) series.rawP99.push([n, lr.p99]);
      series.oursPublish.push([n, o.publish]);
      series.rawPublish.push([n, r.publish]);
      series.oursConsume.push([n, o.consume]);
      series.rawConsume.push([n, r.consume]);
      rows.push([
        String(n),
        events.toLocaleString("en"),
        (events * n).toLocaleString("en"),
        fmtRate(o.publish),
        fmtRate(r.publish),
        fmtRate(o.consume),
        fmtRate(r.consume),
        `${(o.consume / r.consume).toFixed(2)}×`,
        `${o.subscribeMs.toFixed(0)} ms / ${r.subscribeMs.toFixed(0)} ms`,
        `${fmtMs(l.p50)} / ${fmtMs(l.p99)}`,
        `${fmtMs(lr.p50)} / ${fmtMs(lr.p99)}`,
      ]);
    } catch (error) {
      notMeasured.push(
        `NATS fan-out at ${n} durable consumers: not measured: ${(error as Error).message}`,
      );
    } finally {
      await ours.close().catch(() => {});
      await jsm.streams.delete(`BENCH_FAN_OURS_${tag}`).catch(() => {});
      await jsm.streams.delete(rawStream).catch(() => {});
      await oursNc.close().catch(() => {});
    }
  }
  const ratio = (s: [number, number][]) =>
    s.length > 1 ? `${(s.at(-1)![1] / s[0]![1]).toFixed(2)}×` : "—";
  const last = counts.at(-1);
  const scaling: Scaling = {
    title: "NATS: fan-out against durable-consumer count (one stream)",
    settings:
      `N subscribers of one event type on one stream, each with its own durable pull consumer (ours: \`natsTransport()\`, \`register()\` per subscriber, so each also has its replay consumer; raw: \`jsm.consumers.add\` per subscriber); ` +
      `nats-server at NATS_URL (loopback), file storage, interest retention, R1, explicit ack, AckWait ${LEASE_MS / 1000} s; body 282 B + 6 CloudEvents headers on both sides (raw publishes \`encodeEnvelope()\`'s bytes and headers); ` +
      `publish: max(${minEvents.toLocaleString("en")}, ${deliveries.toLocaleString("en")} / N) events with ${IN_FLIGHT} publish acks in flight (ours: one \`publish()\`, \`publishConcurrency\` ${IN_FLIGHT}; raw: ${IN_FLIGHT} loops of awaited \`js.publish()\`); ` +
      `consume+ack: every subscriber consumes every event at once, ${IN_FLIGHT} outstanding each (ours: subscription \`concurrency\` ${IN_FLIGHT}; raw: \`consume({ max_messages: ${IN_FLIGHT}, callback })\`, JSON.parse + no-op async handler, \`ack()\`), timed from the first subscribe until every delivery was handled and the acks flushed (at most 60 s), so it includes subscribing the N one after another (its own column: the time until the last subscribe resolved, deliveries already flowing to the first); ` +
      `latency: with the N subscribed as above and nothing waiting, ${FAN_OUT_RATE} events/s published one per call (awaited, paced by timers) for ${latencyMs / 1000} s from the same process on the other connection, each carrying \`performance.now()\`; every delivery's handler start − that time counted (N × ${FAN_OUT_RATE} deliveries/s; a point whose last deliveries have not arrived 10 s after the last publish is reported as not keeping up); ` +
      `1 process, 1 connection per side (\`noAsyncTraces\`), 1 run per point, who goes first alternates with the point.`,
    columns: [
      "durable consumers (subscribers)",
      "events",
      "deliveries",
      "ours publish (events/s)",
      "raw publish (events/s)",
      "ours consume+ack (deliveries/s)",
      "raw consume+ack (deliveries/s)",
      "ours / raw consume",
      "subscribing the N, ours / raw",
      "ours latency p50 / p99 (ms)",
      "raw latency p50 / p99 (ms)",
    ],
    rows,
    chart: {
      title: "NATS fan-out vs durable consumers",
      x: "durable consumers",
      y: "per second",
      series: [
        { name: "ours consume+ack deliveries/s", points: series.oursConsume },
        { name: "raw consume+ack deliveries/s", points: series.rawConsume },
        { name: "ours publish events/s", points: series.oursPublish },
        { name: "raw publish events/s", points: series.rawPublish },
      ],
    },
    reading:
      `${last} consumers / 1: ours publish ${ratio(series.oursPublish)}, raw publish ${ratio(series.rawPublish)} ` +
      `(interest retention: every message waits for every consumer's ack, and the server matches each publish against every consumer); ` +
      `consume+ack deliveries/s ours ${ratio(series.oursConsume)}, raw ${ratio(series.rawConsume)}; ` +
      `latency p99 ours ${ratio(series.oursP99)}, raw ${ratio(series.rawP99)} (each event is N deliveries: N messages sent by the server and N acks back, all on one connection and one event loop per side).`,
  };
  return { scaling, notMeasured };
}

/** Events per second and run length of the fan-out latency runs. */
const FAN_OUT_RATE = 500;
const FAN_OUT_LATENCY_MS = { full: 4_000, quick: 500 };

const fmtMs = (ms: number) => (Number.isFinite(ms) ? ms.toFixed(2) : "—");

/**
 * Publish → handler latency at {@link FAN_OUT_RATE} events/s with `n` consumers: `subscribeAll`
 * starts them (each delivery calls `record` with the time its event carries) and returns their
 * close; `publishOne` publishes one event carrying `t`. Every delivery's latency, bounded: throws
 * when the last deliveries have not arrived 10 s after the last publish.
 */
async function fanOutLatency(
  n: number,
  quick: boolean,
  subscribeAll: (record: (t: number) => void) => Promise<() => Promise<unknown>>,
  publishOne: (t: number) => Promise<void>,
): Promise<number[]> {
  const latencies: number[] = [];
  const close = await subscribeAll((t) => latencies.push(performance.now() - t));
  try {
    await sleep(200);
    const count = (FAN_OUT_LATENCY_MS[quick ? "quick" : "full"] * FAN_OUT_RATE) / 1000;
    const interval = 1000 / FAN_OUT_RATE;
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const wait = start + i * interval - performance.now();
      if (wait > 0.5) await sleep(wait);
      await publishOne(performance.now());
    }
    const until = performance.now() + 10_000;
    while (latencies.length < count * n && performance.now() < until) await sleep(5);
    if (latencies.length < count * n)
      throw new Error(
        `not keeping up: ${latencies.length} of ${count * n} deliveries arrived within 10 s of the last publish`,
      );
    return latencies;
  } finally {
    await close();
  }
}

/** What the cluster run adds to the group. */
interface ClusterResult {
  figures: Figure[];
  targets: Target[];
  ratios: Ratio[];
  settings: string[];
  notMeasured: string[];
}

const R3_TARGET =
  "NATS scale-out: publish and consume on a 3-node JetStream cluster (R3), next to raw";

/**
 * Scale-out: a 3-node JetStream cluster of our own on free loopback ports (temp store dirs, always
 * torn down), one R3 stream created by our transport; ours publishes type X, raw publishes
 * Switchyard's wire format on other subjects of the same stream (so every side meets the same
 * stream leader), each with its own R3 durable consumer. Every client connects to node n1.
 */
async function clusterRun(
  natsTransport: NatsTransportFactory,
  run: string,
  quick: boolean,
): Promise<ClusterResult> {
  const none = (reason: string): ClusterResult => ({
    figures: [],
    ratios: [],
    settings: [],
    targets: [
      { group: "nats", description: R3_TARGET, met: undefined, detail: `not measured: ${reason}` },
    ],
    notMeasured: [`NATS on a 3-node JetStream cluster (R3): not measured: ${reason}`],
  });
  const binary = natsServerBinary();
  if (!binary.ok) return none(binary.reason);
  const count = R3_COUNT[quick ? "quick" : "full"];
  const runs = quick ? 1 : RUNS_FULL;
  let cluster: OwnCluster | undefined;
  const conns: NatsConnection[] = [];
  try {
    cluster = await startOwnCluster({ size: 3, timeoutMs: 30_000 });
    const url = cluster.urls[0]!;
    const connectTo = async (name: string) => {
      const c = await connect({ servers: url, ...CONNECT, name });
      conns.push(c);
      return c;
    };
    const rawNc = await connectTo("switchyard-bench-r3-raw");
    const oursNc = await connectTo("switchyard-bench-r3-ours");
    const stream = `BENCH_R3_${run}`;
    const prefix = `bench.r3.${run.toLowerCase()}`;
    const ours = natsTransport({
      connection: oursNc,
      stream,
      prefix,
      storage: "file",
      retention: "interest",
      replicas: 3,
      duplicateWindowMs: DUPLICATE_WINDOW_MS,
      publishConcurrency: IN_FLIGHT,
      maxAckPending: MAX_ACK_PENDING,
    });
    try {
      await ours.ready();
      await ours.register("bench", ["X"]);
      const jsm = await jetstreamManager(rawNc);
      const js = jetstream(rawNc);
      for (const [name, subject] of [
        ["raw", `${prefix}.RAW`],
        ["wire", `${prefix}.WIRE`],
      ] as const)
        await jsm.consumers.add(stream, {
          durable_name: name,
          ack_policy: AckPolicy.Explicit,
          ack_wait: nanos(LEASE_MS),
          deliver_policy: DeliverPolicy.New,
          filter_subject: subject,
          max_deliver: -1,
          max_ack_pending: MAX_ACK_PENDING,
          num_replicas: 3,
        });
      const streamLeader = await cluster.waitForStreamLeader(stream, {
        current: true,
        timeoutMs: 15_000,
      });
      // Every consumer's leader on the stream leader's node: where the meta leader places each
      // consumer's leader is chance, and a consumer led from another node costs its messages and
      // acks an extra hop (R3 consume ratios swung 56–97 % between runs of the same code). Step
      // each down until it lands there (each stepdown picks another replica).
      const placement: string[] = [];
      for (const consumer of await cluster.consumers(stream)) {
        let leader = await cluster.waitForConsumerLeader(stream, consumer, { current: true });
        for (let tries = 0; leader !== streamLeader && tries < 12; tries++) {
          await cluster.stepDownConsumer(stream, consumer);
          leader = await cluster.waitForConsumerLeader(stream, consumer, {
            not: leader,
            current: true,
          });
        }
        placement.push(`${consumer}: ${leader}`);
      }
      const rates: Record<string, number[]> = {};
      const add = (name: string, value: number) => (rates[name] ??= []).push(value);
      const r3 = (what: string) => `${what} (3-node cluster, R3)`;
      const whos: Who[] = [OURS, RAW, WIRE];
      for (let r = 0; r < runs; r++) {
        for (const who of [...whos.slice(r % 3), ...whos.slice(0, r % 3)]) {
          if (who === OURS) {
            add(r3(names.publish(OURS)), await publishOurs(ours, count, IN_FLIGHT));
            add(r3(names.consume(OURS)), await consumeOurs(ours, oursNc, count, IN_FLIGHT));
          } else {
            const subject = `${prefix}.${who === RAW ? "RAW" : "WIRE"}`;
            add(
              r3(names.publish(who)),
              await publishRaw(js, subject, count, IN_FLIGHT, who === WIRE),
            );
            add(
              r3(names.consume(who)),
              await consumeRaw(js, rawNc, stream, count, IN_FLIGHT, who === RAW ? "raw" : "wire"),
            );
          }
        }
      }
      const leader = await cluster.streamLeader(stream);
      const server = `3 × nats-server ${rawNc.info?.version ?? "?"} (own cluster on loopback), file storage, R3 stream and consumers, every client on node n1 (stream leader: ${leader ?? "?"}; consumer leaders moved to the stream leader's node before the runs: ${placement.join(", ")})`;
      const figures: Figure[] = Object.entries(rates).map(([name, values]) => ({
        ...fromRuns(group, name, values),
        settings: name.includes("publish")
          ? `${name.startsWith(OURS) ? `one \`publish()\` of ${count} envelopes, \`publishConcurrency\` ${IN_FLIGHT}` : `${IN_FLIGHT} loops of awaited \`js.publish()\`, ${count} messages`}; ${name.startsWith(RAW) ? "JSON body, `msgID` only" : "body + 6 CloudEvents headers, `msgID`"}; ${server}; 1 process, 1 connection (\`noAsyncTraces\`)`
          : `${name.startsWith(OURS) ? `subscription \`concurrency\` ${IN_FLIGHT} (keeps ${IN_FLIGHT} asked for; holds at most ${IN_FLIGHT} + a measured prefetch)` : `\`consume({ max_messages: ${IN_FLIGHT}, callback })\`, JSON.parse + no-op async handler`}, ack each, ${count} messages; ${server}; 1 process, 1 connection (\`noAsyncTraces\`)`,
      }));
      const v = (name: string) => median(rates[name] ?? []);
      const paired = (a: string, b: string) => pairedRatio(rates[a] ?? [], rates[b] ?? []);
      const ratios: Ratio[] = [];
      const worst: number[] = [];
      for (const what of [names.publish, names.consume]) {
        const vsRaw = paired(r3(what(OURS)), r3(what(RAW)));
        const vsWire = paired(r3(what(OURS)), r3(what(WIRE)));
        ratios.push(
          {
            group: "nats",
            description: `R3 cluster, same concurrency and body: ${r3(what(OURS))} / ${r3(what(RAW))}`,
            value: vsRaw,
          },
          {
            group: "nats",
            description: `R3 cluster, same bytes and headers: ${r3(what(OURS))} / ${r3(what(WIRE))}`,
            value: vsWire,
          },
        );
        worst.push(Math.min(vsRaw, vsWire));
      }
      const worstAll = Math.min(...worst);
      return {
        figures,
        ratios,
        targets: [
          {
            group: "nats",
            description: `${R3_TARGET}: ours ≥ 90 % of raw (the lower of JSON-body raw and wire-format raw)`,
            met: worstAll >= 0.9,
            detail: `publish ${percentNear(worst[0]!, 0.9)}, consume+ack ${percentNear(worst[1]!, 0.9)}; ours publish ${fmtRate(v(r3(names.publish(OURS))))}/s, consume+ack ${fmtRate(v(r3(names.consume(OURS))))}/s`,
          },
        ],
        settings: [
          `NATS R3: a 3-node JetStream cluster started by the benchmark (${binary.path}, free loopback ports, temp store dirs, removed afterwards); one R3 stream (file storage, interest retention) created by our transport; ` +
            `ours publishes type X, raw on other subjects of the same stream, so all meet the same stream leader; one R3 durable pull consumer each; every client connects to node n1. ` +
            `Per run, for each of the three: ${count} messages published with ${IN_FLIGHT} acks in flight, then consumed with ${IN_FLIGHT} outstanding. ${runs} runs, rotating who goes first; median (range); ratios and the goal: the median of the per-run ratios.`,
        ],
        notMeasured: [],
      };
    } finally {
      await ours.close().catch(() => {});
    }
  } catch (error) {
    return none(`the cluster run failed: ${(error as Error).message}`);
  } finally {
    await Promise.all(conns.map((c) => c.close().catch(() => {})));
    await cluster?.dispose();
  }
}
