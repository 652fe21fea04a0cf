// NATS JetStream: our transport next to raw @nats-io/jetstream doing the same work — the same
// message count, the same number of publishes (and unacknowledged deliveries) in flight, a stream
// with the same settings — on the NATS server at NATS_URL (default 127.0.0.1:4222), loopback only.
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
const COUNT = { full: 10_000, quick: 300 };
const SINGLE_COUNT = { full: 2_000, quick: 50 };
const LEASE_MS = 30_000;
const MAX_ACK_PENDING = 10_000;
const DUPLICATE_WINDOW_MS = 120_000;

const names = {
  publish: (who: string) => `${who} publish, ${IN_FLIGHT} in flight`,
  single: (who: string) => `${who} publish, 1 in flight (awaited one by one)`,
  consume: (who: string) => `${who} consume + ack, ${IN_FLIGHT} in flight`,
};
const OURS = "switchyard natsTransport";
const RAW = "raw @nats-io/jetstream";

const notMeasured = (reason: string): GroupResult => ({
  figures: [],
  targets: [
    {
      group: "nats",
      description: "NATS consume+ack ≥ 80 % of raw jetstream",
      met: undefined,
      detail: `not measured: ${reason}`,
    },
    {
      group: "nats",
      description: "NATS publish ≥ 80 % of raw jetstream",
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
  const oursPrefix = `bench.ours.${run.toLowerCase()}`;
  const rawPrefix = `bench.raw.${run.toLowerCase()}`;
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
    // The raw stream and consumer get what our transport sets up for its own.
    await jsm.streams.add({
      name: rawStream,
      subjects: [`${rawPrefix}.>`],
      retention: RetentionPolicy.Interest,
      storage: StorageType.File,
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
      num_replicas: 1,
    });
    await jsm.consumers.add(rawStream, {
      durable_name: "bench",
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(LEASE_MS),
      deliver_policy: DeliverPolicy.New,
      filter_subject: `${rawPrefix}.X`,
      max_deliver: -1,
      max_ack_pending: MAX_ACK_PENDING,
    });
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
    for (let r = 0; r < (quick ? 1 : RUNS_FULL); r++) {
      // Alternate who goes first, so neither always meets a warmer (or busier) server.
      const order = r % 2 === 0 ? ["ours", "raw"] : ["raw", "ours"];
      for (const who of order) {
        if (who === "ours") {
          add(names.publish(OURS), await publishOurs(ours, count, IN_FLIGHT));
          add(names.consume(OURS), await consumeOurs(ours, oursNc, count));
          add(names.single(OURS), await publishOurs(ours, single, 1));
          add(names.consume(OURS) + " (drain)", await consumeOurs(ours, oursNc, single));
        } else {
          add(names.publish(RAW), await publishRaw(js, `${rawPrefix}.X`, count, IN_FLIGHT));
          add(names.consume(RAW), await consumeRaw(js, nc, rawStream, count));
          add(names.single(RAW), await publishRaw(js, `${rawPrefix}.X`, single, 1));
          add(names.consume(RAW) + " (drain)", await consumeRaw(js, nc, rawStream, single));
        }
      }
    }
    const figures: Figure[] = Object.entries(rates)
      .filter(([name]) => !name.endsWith("(drain)"))
      .map(([name, runs]) => fromRuns(group, name, runs));
    const v = (name: string) => find(figures, name).value;
    const ratios: Ratio[] = [];
    const ratio = (what: (who: string) => string) => {
      const value = v(what(OURS)) / v(what(RAW));
      ratios.push({ group: "nats", description: `${what(OURS)} / ${what(RAW)}`, value });
      return value;
    };
    const consume = ratio(names.consume);
    const publish = ratio(names.publish);
    ratio(names.single);
    const targets: Target[] = [
      {
        group: "nats",
        description: `NATS consume+ack ≥ 80 % of raw jetstream (${IN_FLIGHT} in flight)`,
        met: consume >= 0.8,
        detail: `${(consume * 100).toFixed(0)} %`,
      },
      {
        group: "nats",
        description: `NATS publish ≥ 80 % of raw jetstream (${IN_FLIGHT} in flight)`,
        met: publish >= 0.8,
        detail: `${(publish * 100).toFixed(0)} %`,
      },
    ];
    const settings = [
      `NATS: nats-server ${nc.info?.version ?? "?"} at ${url} (loopback), JetStream file storage, interest retention, 1 replica, duplicate window ${DUPLICATE_WINDOW_MS / 1000} s; ` +
        `one stream each for ours and raw, one durable pull consumer each (explicit ack, AckWait ${LEASE_MS / 1000} s, max_ack_pending ${MAX_ACK_PENDING}). ` +
        `Per run: ${count} messages published with ${IN_FLIGHT} publish acks in flight (ours: one \`publish()\` of ${count} envelopes, \`publishConcurrency\` ${IN_FLIGHT}; raw: ${IN_FLIGHT} loops of awaited \`js.publish()\` with \`msgID\`), ` +
        `then the same ${count} consumed and acked (ours: a subscription with \`concurrency\` ${IN_FLIGHT}; raw: \`consumer.consume({ max_messages: ${IN_FLIGHT} })\`, \`ack()\` each), ` +
        `timed until the last handler ran and the connection was flushed; then ${single} awaited one by one. Every message is built in the loop with \`createEnvelope()\`; raw publishes the same body (the envelope as JSON, \`msgID\` = its id) without our CloudEvents headers and envelope check, and its consumer parses the JSON before a no-op handler. ` +
        `${quick ? 1 : RUNS_FULL} runs, alternating who goes first; median (range).`,
    ];
    return { figures, targets, ratios, settings };
  } finally {
    await ours.close().catch(() => {});
    await jsm.streams.delete(oursStream).catch(() => {});
    await jsm.streams.delete(rawStream).catch(() => {});
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
): Promise<number> {
  const encoder = new TextEncoder();
  const start = performance.now();
  let next = 0;
  const loop = async () => {
    while (next < count) {
      next++;
      // The same body as ours (the envelope as JSON), without our headers and checks.
      const envelope = createEnvelope({ type: "X", source: "bench", data: payload });
      const ack = await js.publish(subject, encoder.encode(JSON.stringify(envelope)), {
        msgID: envelope.id,
      });
      if (ack.duplicate) throw new Error("raw publish: unexpected duplicate");
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
  return (count / (performance.now() - start)) * 1000;
}

/** Run until `count` deliveries were handled (bounded: 60 s), then flush the acks. */
async function consumeOurs(t: Transport, nc: NatsConnection, count: number): Promise<number> {
  let handled = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const start = performance.now();
  const sub = await t.subscribe({
    subscriber: "bench",
    types: ["X"],
    concurrency: IN_FLIGHT,
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
): Promise<number> {
  const start = performance.now();
  const consumer = await js.consumers.get(stream, "bench");
  const messages = await consumer.consume({ max_messages: IN_FLIGHT });
  const decoder = new TextDecoder();
  let handled = 0;
  const loop = (async () => {
    for await (const m of messages) {
      await handle(JSON.parse(decoder.decode(m.data)));
      m.ack();
      if (++handled === count) break;
    }
  })();
  try {
    await bounded(loop, 60_000, () => `raw: ${handled} of ${count} delivered`);
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
