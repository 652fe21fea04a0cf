// A 3-node JetStream cluster of the test's own, the stream and consumers replicated R3: nodes are
// SIGKILLed and restarted under a stream of events, and a cluster without quorum must make
// publishes fail typed and retryable, not hang.
import { createEnvelope, defineCatalog, defineEvent } from "@switchyard/event-schema";
import { type Logger, type Router, createRouter } from "@switchyard/router";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import {
  type NatsTransport,
  NatsPublishError,
  NatsPublishUnavailableError,
  durableName,
  heartbeatStreamName,
  natsDeadLetterStore,
  natsHeartbeatSink,
  natsTransport,
} from "./index";
import { type OwnCluster, startOwnCluster } from "./test/cluster";
import { deleteStreams, describeIf, eventually, natsServerBinary, uniqueNames } from "./test/nats";

const Tick = defineEvent({
  type: "CLUSTER_TICK",
  description: "one numbered event of a cluster run",
  durable: true,
  data: z.object({ n: z.number().int() }),
});
const catalog = defineCatalog([Tick]);
const TYPE = "CLUSTER_TICK";

/** Counts the transport's warnings by message, to report what the run went through. */
function countingLogger(counts: Map<string, number>): Logger {
  const note = (_: unknown, message?: string) => {
    const key = (message ?? "").replace(/\d+/g, "#");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  };
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: note,
    error: note,
    child: () => logger,
  };
  return logger;
}

interface Handled {
  /** Handler runs per event number. */
  readonly runs: Map<number, number[]>;
  deliveries: number;
}

const handledBy = (): Handled => ({ runs: new Map(), deliveries: 0 });
const record = (h: Handled, n: number, attempt: number) => {
  h.deliveries++;
  const attempts = h.runs.get(n) ?? [];
  attempts.push(attempt);
  h.runs.set(n, attempts);
};

describeIf(natsServerBinary(), "a 3-node JetStream cluster (R3)", { tags: ["slow"] }, () => {
  let cluster: OwnCluster;
  let open: NatsTransport[] = [];
  let routers: Router<typeof catalog>[] = [];
  const warnings = new Map<string, number>();

  const transport = (
    names: { stream: string; prefix: string },
    extra: {
      publishDeadlineMs?: number;
      replicas?: number;
      servers?: string[];
      logger?: Logger;
    } = {},
  ) => {
    const t = natsTransport({
      servers: [...cluster.urls],
      ...names,
      replicas: 3,
      drainTimeoutMs: 1_000,
      pullExpiresMs: 2_000,
      logger: countingLogger(warnings),
      connectionOptions: { reconnectTimeWait: 100 },
      ...extra,
    });
    open.push(t);
    return t;
  };

  beforeAll(async () => {
    cluster = await startOwnCluster();
  }, 60_000);
  afterAll(async () => {
    await cluster?.dispose();
  });
  afterEach(async () => {
    await Promise.allSettled(routers.map((r) => r.shutdown()));
    await Promise.allSettled(open.map((t) => t.close()));
    routers = [];
    open = [];
    // Every node up again for the next test.
    for (const node of cluster.nodes) if (!node.running) await cluster.start(node.name);
    await cluster.waitForMetaLeader();
  });

  it("loses no event when a follower, the stream leader and the consumer leader are SIGKILLed and restarted mid-stream", async () => {
    const names = uniqueNames("cluster");
    const total = 2_000;
    const lanes = 4;
    const pubTransport = transport(names);
    const publisher = createRouter({ catalog, transport: pubTransport });
    routers.push(publisher);

    // Two subscribers: "workers" with two competing processes, "auditor" with one.
    const workers = handledBy();
    const auditor = handledBy();
    const subscribe = (t: NatsTransport, subscriber: string, into: Handled) =>
      t.subscribe({
        subscriber,
        types: [TYPE],
        concurrency: 4,
        leaseMs: 2_000,
        handler: async (d) => {
          await new Promise((r) => setTimeout(r, 1));
          record(into, (d.envelope.data as { n: number }).n, d.attempt);
        },
      });
    await subscribe(transport(names), "workers", workers);
    await subscribe(transport(names), "workers", workers);
    await subscribe(transport(names), "auditor", auditor);
    const workersConsumer = durableName(names.prefix, "workers", TYPE);
    await cluster.waitForStreamLeader(names.stream, { current: true });
    await cluster.waitForConsumerLeader(names.stream, workersConsumer, { current: true });

    // Publish through the router, 4 lanes, paced: the publisher must only ever see success.
    let next = 0;
    let published = 0;
    let slowestMs = 0;
    const lane = async () => {
      for (let n = next++; n < total; n = next++) {
        const started = Date.now();
        await publisher.publish(TYPE, { n });
        slowestMs = Math.max(slowestMs, Date.now() - started);
        published++;
        await new Promise((r) => setTimeout(r, 8));
      }
    };
    const publishing = Promise.all(Array.from({ length: lanes }, lane));
    const reachedPublished = (count: number) =>
      Promise.race([
        eventually(() => published >= count, `${count} events published`, 60_000),
        publishing.then(() => {
          if (published < count) throw new Error(`publishing ended at ${published} < ${count}`);
        }),
      ]);

    const events: string[] = [];
    const elections: { what: string; ms: number }[] = [];
    const chaos = async () => {
      // 1. A follower: neither the stream's nor the workers consumer's leader.
      await reachedPublished(300);
      const streamLeader = await cluster.waitForStreamLeader(names.stream);
      const consumerLeader = await cluster.waitForConsumerLeader(names.stream, workersConsumer);
      const follower =
        cluster.nodes.find((n) => n.name !== streamLeader && n.name !== consumerLeader)?.name ??
        cluster.nodes.find((n) => n.name !== streamLeader)!.name;
      await cluster.kill(follower);
      events.push(`SIGKILL follower ${follower} at #${published}`);
      await reachedPublished(500);
      await cluster.start(follower);
      await cluster.waitForStreamLeader(names.stream, { current: true });
      events.push(`restarted ${follower} at #${published}; its replica caught up`);

      // 2. The stream leader.
      await reachedPublished(800);
      const leader = await cluster.waitForStreamLeader(names.stream);
      let killedAt = Date.now();
      await cluster.kill(leader);
      events.push(`SIGKILL stream leader ${leader} at #${published}`);
      const newLeader = await cluster.waitForStreamLeader(names.stream, { not: leader });
      elections.push({ what: `stream leader ${leader} → ${newLeader}`, ms: Date.now() - killedAt });
      await cluster.start(leader);
      await cluster.waitForStreamLeader(names.stream, { current: true });
      events.push(`restarted ${leader} at #${published}; its replica caught up`);

      // 3. The workers consumer's leader, moved off the stream leader first if they coincide,
      // so this kill is of a consumer leader alone.
      await reachedPublished(1_300);
      const streamLeaderNow = await cluster.waitForStreamLeader(names.stream);
      for (let tries = 0; tries < 5; tries++) {
        const current = await cluster.waitForConsumerLeader(names.stream, workersConsumer, {
          current: true,
        });
        if (current !== streamLeaderNow) break;
        await cluster.stepDownConsumer(names.stream, workersConsumer);
        await cluster.waitForConsumerLeader(names.stream, workersConsumer, { not: current });
      }
      const cLeader = await cluster.waitForConsumerLeader(names.stream, workersConsumer);
      killedAt = Date.now();
      await cluster.kill(cLeader);
      events.push(
        `SIGKILL consumer leader ${cLeader}${cLeader === streamLeaderNow ? " (also stream leader)" : ""} at #${published}`,
      );
      const newCLeader = await cluster.waitForConsumerLeader(names.stream, workersConsumer, {
        not: cLeader,
      });
      elections.push({
        what: `consumer leader ${cLeader} → ${newCLeader}`,
        ms: Date.now() - killedAt,
      });
      await cluster.start(cLeader);
      await cluster.waitForConsumerLeader(names.stream, workersConsumer, { current: true });
      events.push(`restarted ${cLeader} at #${published}`);
    };
    try {
      await Promise.all([chaos(), publishing]);
    } catch (error) {
      const logs = cluster.nodes.map((n) => `--- ${n.name} ---\n${cluster.logTail(n.name, 10)}`);
      throw new Error(
        `${(error as Error).message}\nevents: ${events.join("; ")}\n${logs.join("\n")}`,
        {
          cause: error,
        },
      );
    }
    expect(published).toBe(total);

    const done = (h: Handled) => h.runs.size === total;
    await eventually(
      () => done(workers) && done(auditor),
      "every event at both subscribers",
      60_000,
    );
    // Let redeliveries of acks lost in the failovers arrive before counting duplicates.
    await eventually(
      async () => (await pubTransport.stats()).subscribers.every((s) => s.lag === 0),
      "both subscribers to have acknowledged everything",
      30_000,
      // Just after the restarts, a JetStream API request (the consumer list) can time out while
      // the cluster settles: that is the cluster recovering, not an event lost. Ask again.
      { retryErrors: true },
    );
    const info = await cluster.streamInfo(names.stream);
    const lastSeq = info.state.last_seq;

    const rows = [
      ["workers (2 processes)", workers],
      ["auditor (1 process)", auditor],
    ] as const;
    const table = rows.map(([name, h]) => {
      const lost = [...Array(total).keys()].filter((n) => !h.runs.has(n)).length;
      const duplicates = h.deliveries - h.runs.size;
      // Runs in handling order: every run after an event's first is a duplicate.
      const extra = [...h.runs.values()].flatMap((attempts) => attempts.slice(1));
      const lateFirst = [...h.runs.values()].filter((attempts) => attempts[0]! > 1).length;
      return {
        subscriber: name,
        published: total,
        handled: h.runs.size,
        deliveries: h.deliveries,
        lost,
        duplicates,
        "dup: redelivered": extra.filter((a) => a > 1).length,
        "dup: attempt 1 again": extra.filter((a) => a === 1).length,
        "first run at attempt > 1": lateFirst,
      };
    });
    console.log(
      [
        `cluster run: ${total} events, 3 nodes, stream and consumers R3, ${lanes} publishing lanes`,
        ...events.map((e) => `  ${e}`),
        ...elections.map((e) => `  election observed: ${e.what} in ${e.ms} ms`),
        `  publisher: ${published} published, 0 errors seen, ${pubTransport.publishRetries} publish attempts retried inside the transport, slowest publish ${slowestMs} ms`,
        `  stream: ${lastSeq} messages stored for ${total} events (leader now ${info.cluster?.leader})`,
        `  transport warnings: ${JSON.stringify(Object.fromEntries(warnings))}`,
      ].join("\n"),
    );
    console.table(table);
    console.log(
      "  why: 'dup: redelivered' = handled, but the ack went to a consumer leader that was killed (or " +
        "the lease ran out while none was elected), so the event came again after its lease — " +
        "at-least-once; 'dup: attempt 1 again' = a new consumer leader that had not yet replicated " +
        "the last delivered state sent a delivery again as new; 'first run at attempt > 1' = the " +
        "first delivery was lost in flight with a killed leader and came back after its lease " +
        "(not a duplicate). No event is stored twice (stream count above).",
    );

    for (const row of table) expect(row.lost).toBe(0);
    // Publish retries reuse the envelope id, so no event is stored twice.
    expect(lastSeq).toBe(total);
    // Duplicates are redeliveries around the kills: a handful per failover, never a replay of
    // the stream (that would be hundreds).
    for (const row of table) expect(row.duplicates).toBeLessThan(total / 10);
  }, 150_000);

  it("keeps dead letters, the attempt journal and heartbeats at the event stream's replicas", async () => {
    const names = uniqueNames("companions");
    const t = transport(names);
    await t.ready();
    const servers = [...cluster.urls];
    // Told nothing of replicas: the streams beside the R3 event stream are R3 too.
    const store = natsDeadLetterStore({ servers, ...names });
    const sink = natsHeartbeatSink({ servers, ...names });
    const nc = await connect({ servers });
    try {
      await store.ready();
      const at = new Date().toISOString();
      await sink.write({
        daemon: "d",
        pid: 1,
        host: "h",
        status: "running",
        health: { healthy: true, status: "healthy", message: "ok", details: {} },
        stats: {},
        restarts: 0,
        startedAt: at,
        at,
      });
      const jsm = await jetstreamManager(nc);
      const replicas = async (stream: string) =>
        (await jsm.streams.info(stream)).config.num_replicas;
      expect(await replicas(names.stream)).toBe(3);
      expect(await replicas(store.stream)).toBe(3);
      expect(await replicas(store.attemptStream)).toBe(3);
      expect(await replicas(heartbeatStreamName(names.stream))).toBe(3);
    } finally {
      await Promise.allSettled([store.close(), sink.close(), nc.close()]);
      await deleteStreams(servers.join(","), names.stream);
    }
  }, 60_000);

  it("subscribes and connects while the meta leader is being re-elected, instead of failing", async () => {
    const names = uniqueNames("meta");
    const t = transport(names);
    await t.ready();
    const metaLeader = await cluster.waitForMetaLeader();
    await cluster.kill(metaLeader);
    // Creating consumers (and a stream) needs the meta leader, which is being elected now.
    const got: number[] = [];
    const started = Date.now();
    await t.subscribe({
      subscriber: "latecomer",
      types: [TYPE],
      handler: async (d) => void got.push((d.envelope.data as { n: number }).n),
    });
    const second = transport(uniqueNames("meta2"));
    await second.ready();
    const waited = Date.now() - started;
    await t.publish([envelopeOf(1)]);
    await eventually(() => got.length === 1, "the delivery to the new subscriber", 30_000);
    console.log(
      `meta leader ${metaLeader} killed: subscribe and a new stream waited ${waited} ms for its successor`,
    );
  }, 60_000);

  it("rejects a publish with the retryable NatsPublishUnavailableError once two of three nodes are down past the deadline", async () => {
    const names = uniqueNames("quorum");
    const deadlineMs = 3_000;
    const t = transport(names, { publishDeadlineMs: deadlineMs });
    const publisher = createRouter({ catalog, transport: t });
    routers.push(publisher);
    await publisher.publish(TYPE, { n: 0 });
    const leader = await cluster.waitForStreamLeader(names.stream, { current: true });
    const down = cluster.nodes.filter((n) => n.name !== leader).map((n) => n.name);
    await Promise.all(down.map((name) => cluster.kill(name)));

    const started = Date.now();
    const error = await publisher.publish(TYPE, { n: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const tookMs = Date.now() - started;
    expect(error).toBeInstanceOf(NatsPublishUnavailableError);
    expect(error).toBeInstanceOf(NatsPublishError);
    expect(error).toMatchObject({
      code: "NATS_PUBLISH_UNAVAILABLE",
      retryable: true,
      stream: names.stream,
      stored: 0,
      total: 1,
    });
    expect((error as Error).message).toContain("publishDeadlineMs");
    // Not before the deadline, and not long after it (one attempt's timeout at most).
    expect(tookMs).toBeGreaterThanOrEqual(deadlineMs - 100);
    expect(tookMs).toBeLessThan(deadlineMs + 3_000);
    console.log(
      `quorum lost (${down.join(", ")} down): publish rejected after ${tookMs} ms with ${(error as Error).name}`,
    );

    // `{ signal }` ends the retrying at once.
    const abortStarted = Date.now();
    const aborted = await t.publish([envelopeOf(2)], { signal: AbortSignal.timeout(300) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((aborted as Error).name).toBe("TimeoutError");
    expect(Date.now() - abortStarted).toBeLessThan(1_500);
  }, 60_000);

  /** A logger keeping every line (debug included), for the lines a test looks for. */
  const linesLogger = (lines: string[]): Logger => {
    const note = (_: unknown, message?: string) => void lines.push(message ?? "");
    const logger: Logger = {
      debug: note,
      info: note,
      warn: note,
      error: note,
      child: () => logger,
    };
    return logger;
  };

  it("retries a publish through a stream leader election (asking whether the stream exists) instead of calling it gone", async () => {
    const names = uniqueNames("election");
    const creator = transport(names);
    await creator.publish([envelopeOf(0)]);
    const leader = await cluster.waitForStreamLeader(names.stream, { current: true });
    // Connected to the followers only: once the leader dies, the subject has no responders
    // until one of them is elected (no reconnect in between).
    const lines: string[] = [];
    const t = transport(names, {
      servers: cluster.nodes.filter((n) => n.name !== leader).map((n) => n.url),
      logger: linesLogger(lines),
    });
    await t.ready();
    await cluster.kill(leader);
    const result = await t.publish([envelopeOf(1)]);
    expect(result).toEqual({ published: 1, duplicates: 0 });
    expect(t.publishRetries).toBeGreaterThan(0);
    const probes = lines.filter((l) => l.startsWith("no responders for an event"));
    expect(probes.length).toBeGreaterThan(0);
    expect(probes.every((l) => !l.includes("not found"))).toBe(true);
    console.log(
      `stream leader ${leader} killed: ${probes.join("; ")}; published after ${t.publishRetries} retries`,
    );
  }, 60_000);

  it("keeps retrying a publish to an R1 stream whose node is down, then rejects it as unavailable, not as a missing stream", async () => {
    const names = uniqueNames("offline");
    const creator = transport(names, { replicas: 1 });
    await creator.publish([envelopeOf(0)]);
    const host = await cluster.waitForStreamLeader(names.stream);
    const lines: string[] = [];
    const t = transport(names, {
      replicas: 1,
      publishDeadlineMs: 3_000,
      servers: cluster.nodes.filter((n) => n.name !== host).map((n) => n.url),
      logger: linesLogger(lines),
    });
    await t.ready();
    await cluster.kill(host);
    const error = await t.publish([envelopeOf(1)]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(NatsPublishUnavailableError);
    expect(t.publishRetries).toBeGreaterThan(0);
    const probes = lines.filter((l) => l.startsWith("no responders for an event"));
    expect(probes.length).toBe(1);
    console.log(
      `R1 stream's node ${host} down: ${probes[0]}; rejected with ${(error as Error).name}`,
    );
  }, 60_000);

  it("rides out a quorum loss shorter than the deadline: the publish resolves once the nodes are back", async () => {
    const names = uniqueNames("back");
    const t = transport(names, { publishDeadlineMs: 30_000 });
    const publisher = createRouter({ catalog, transport: t });
    routers.push(publisher);
    await publisher.publish(TYPE, { n: 0 });
    const leader = await cluster.waitForStreamLeader(names.stream, { current: true });
    const down = cluster.nodes.filter((n) => n.name !== leader).map((n) => n.name);
    await Promise.all(down.map((name) => cluster.kill(name)));
    const started = Date.now();
    let settled = false;
    const publishing = publisher.publish(TYPE, { n: 1 }).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 1_000));
    expect(settled).toBe(false);
    for (const name of down) await cluster.start(name);
    await publishing;
    console.log(
      `quorum back: a publish waiting ${Date.now() - started} ms resolved (${t.publishRetries} retries)`,
    );
    expect(t.publishRetries).toBeGreaterThan(0);
  }, 60_000);
});

const envelopeOf = (n: number) =>
  createEnvelope({ type: TYPE, source: "cluster-test", data: { n } });
