import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, connect, nanos } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  JetStreamUnavailableError,
  type NatsHeartbeat,
  type NatsHeartbeatSink,
  type NatsHeartbeatSinkOptions,
  NatsOptionsError,
  TransportClosedError,
  heartbeatPrefix,
  heartbeatStreamName,
  heartbeatSubject,
  isInternalSubject,
  listNatsHeartbeats,
  natsHeartbeatSink,
  natsTransport,
  subjectCovers,
} from "./index";
import {
  NATS_URL,
  type OwnServer,
  deleteStreams,
  describeIf,
  natsAvailable,
  natsServerBinary,
  startOwnServer,
  uniqueNames,
} from "./test/nats";

const T0 = Date.parse("2025-01-15T10:00:00.000Z");

const beat = (daemon: string, n: number, extra: Partial<NatsHeartbeat> = {}): NatsHeartbeat => ({
  daemon,
  pid: 1000 + n,
  host: `gpu-${n}`,
  status: "running",
  health: { healthy: true, status: "healthy", message: `${daemon} beat ${n}`, details: {} },
  stats: { eventsProcessed: n },
  restarts: 0,
  startedAt: new Date(T0).toISOString(),
  at: new Date(T0 + n * 1_000).toISOString(),
  ...extra,
});

describe("heartbeat names", () => {
  it("derive a stream and subjects beside the event stream's, never under its prefix", () => {
    const prefix = "switchyard.events";
    expect(heartbeatStreamName("SWITCHYARD")).toBe("SWITCHYARD_HEARTBEATS");
    expect(heartbeatPrefix(prefix)).toBe("switchyard.events_heartbeats");
    const subject = heartbeatSubject(prefix, "quality.monitor");
    expect(subject).toMatch(/^switchyard\.events_heartbeats\.quality_monitor-[0-9a-f]{10}$/);
    expect(subjectCovers(`${prefix}.>`, heartbeatPrefix(prefix))).toBe(false);
    expect(isInternalSubject(prefix, subject)).toBe(false);
    expect(heartbeatSubject(prefix, "a.b")).not.toBe(heartbeatSubject(prefix, "a_b"));
  });

  it("refuses an unusable maxAgeMs with the option's name", () => {
    expect(() => natsHeartbeatSink({ maxAgeMs: 500 })).toThrow(NatsOptionsError);
    expect(() => natsHeartbeatSink({ maxAgeMs: 500 })).toThrow(/maxAgeMs/);
    expect(() => natsHeartbeatSink({ stream: "a.b" })).toThrow(NatsOptionsError);
  });
});

describeIf(await natsAvailable(), "NatsHeartbeatSink", { tags: ["slow"] }, () => {
  let names: { stream: string; prefix: string };
  let admin: NatsConnection;
  let open: NatsHeartbeatSink[] = [];

  const sink = (options: NatsHeartbeatSinkOptions = {}) => {
    const s = natsHeartbeatSink({ servers: NATS_URL, ...names, ...options });
    open.push(s);
    return s;
  };
  const list = (now = T0 + 60_000) => listNatsHeartbeats({ servers: NATS_URL, ...names, now });

  beforeEach(async () => {
    names = uniqueNames("heartbeats");
    admin = await connect({ servers: NATS_URL });
  });
  afterEach(async () => {
    await Promise.allSettled(open.map((s) => s.close()));
    open = [];
    await deleteStreams(NATS_URL, names.stream);
    await admin.close();
  });

  it("keeps only the latest heartbeat of each daemon, and the reader returns those", async () => {
    const heartbeats = sink();
    for (let n = 1; n <= 4; n++) {
      await heartbeats.write(beat("trainer", n));
      await heartbeats.write(beat("evaluator", n, { status: n === 4 ? "stopped" : "running" }));
    }
    const beats = await list();
    expect(beats).toEqual([
      {
        daemon: "evaluator",
        pid: 1004,
        host: "gpu-4",
        status: "stopped",
        health: { healthy: true, status: "healthy", message: "evaluator beat 4", details: {} },
        stats: { eventsProcessed: 4 },
        restarts: 0,
        startedAt: new Date(T0).toISOString(),
        updatedAt: new Date(T0 + 4_000).toISOString(),
        ageMs: 56_000,
      },
      expect.objectContaining({ daemon: "trainer", pid: 1004, status: "running", ageMs: 56_000 }),
    ]);
    const info = await (await jetstreamManager(admin)).streams.info(heartbeats.stream);
    expect(info.state.messages).toBe(2);
    expect(info.config).toMatchObject({
      subjects: [`${heartbeatPrefix(names.prefix)}.>`],
      retention: "limits",
      max_msgs_per_subject: 1,
      max_age: nanos(86_400_000),
    });
  });

  it("lives beside the transport's event stream without reaching its subscribers", async () => {
    const transport = natsTransport({ servers: NATS_URL, ...names });
    try {
      await transport.ready();
      const heartbeats = sink({ maxAgeMs: 60_000 });
      await heartbeats.write(beat("trainer", 1));
      const jsm = await jetstreamManager(admin);
      expect((await jsm.streams.info(names.stream)).state.messages).toBe(0);
      const info = await jsm.streams.info(heartbeatStreamName(names.stream));
      expect(info.state.messages).toBe(1);
      expect(info.config.max_age).toBe(nanos(60_000));
    } finally {
      await transport.close();
    }
  });

  it("returns no heartbeats when no sink has written, and leaves out foreign messages", async () => {
    expect(await list()).toEqual([]);
    const heartbeats = sink();
    await heartbeats.ready();
    await jetstream(admin).publish(
      heartbeatSubject(names.prefix, "garbage"),
      new TextEncoder().encode("not json"),
    );
    await heartbeats.write(beat("trainer", 1));
    expect((await list()).map((b) => b.daemon)).toEqual(["trainer"]);
  });

  it("re-creates a deleted stream on the next write, keeping that heartbeat", async () => {
    const heartbeats = sink();
    await heartbeats.write(beat("trainer", 1));
    await heartbeats.write(beat("evaluator", 1));
    await (await jetstreamManager(admin)).streams.delete(heartbeats.stream);
    expect(await list()).toEqual([]);
    // Two daemons' writes find it gone at once: one re-creation, both heartbeats stored.
    await Promise.all([heartbeats.write(beat("trainer", 2)), heartbeats.write(beat("other", 2))]);
    expect(await list()).toEqual([
      expect.objectContaining({ daemon: "other", pid: 1002 }),
      expect.objectContaining({ daemon: "trainer", pid: 1002 }),
    ]);
  });

  it("uses a connection it is given, and leaves it open on close", async () => {
    const heartbeats = sink({ connection: admin });
    await heartbeats.write(beat("trainer", 1));
    expect(await listNatsHeartbeats({ connection: admin, ...names, now: T0 })).toHaveLength(1);
    await heartbeats.close();
    expect(admin.isClosed()).toBe(false);
  });

  it("closes idempotently, after the writes in progress, and refuses writes afterwards", async () => {
    const heartbeats = sink();
    // Connected: a write still waiting for the connect is refused by close() (closing.test.ts).
    await heartbeats.ready();
    const writing = heartbeats.write(beat("trainer", 1));
    const first = heartbeats.close();
    expect(heartbeats.close()).toBe(first);
    await first;
    await writing;
    const error = await heartbeats.write(beat("trainer", 2)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportClosedError);
    expect((error as Error).message).toContain(`heartbeat sink on stream ${heartbeats.stream}`);
    expect(await list()).toEqual([expect.objectContaining({ pid: 1001 })]);
  });
});

describeIf(natsServerBinary(), "NatsHeartbeatSink without JetStream", { tags: ["slow"] }, () => {
  let plain: OwnServer | undefined;
  afterAll(async () => {
    await plain?.dispose();
  });

  it("rejects writes and reads with JetStreamUnavailableError", async () => {
    plain = await startOwnServer({ jetstream: false });
    const heartbeats = natsHeartbeatSink({ servers: plain.url, requestTimeoutMs: 2_000 });
    try {
      await expect(heartbeats.write(beat("trainer", 1))).rejects.toBeInstanceOf(
        JetStreamUnavailableError,
      );
    } finally {
      await heartbeats.close();
    }
    await expect(
      listNatsHeartbeats({ servers: plain.url, requestTimeoutMs: 2_000 }),
    ).rejects.toBeInstanceOf(JetStreamUnavailableError);
  });
});
