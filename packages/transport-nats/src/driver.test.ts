import { type Server, type Socket, createServer } from "node:net";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { type Envelope, createEnvelope } from "@switchyard/event-schema";
import {
  type DaemonHeartbeat,
  type Driver,
  TransportClosedError,
  UnknownTargetError,
  UnrecoverableError,
  UnsupportedOperationError,
  openDriver,
  parseTarget,
} from "@switchyard/transport";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type NatsTransport,
  NatsConnectionError,
  NatsOptionsError,
  NatsStreamNotFoundError,
  natsDriver,
} from "./index";
import { parseNatsTarget } from "./driver";
import {
  NATS_URL,
  deleteStreams,
  streamFamily,
  describeIf,
  eventually,
  natsAvailable,
  uniqueNames,
} from "./test/nats";

const event = (type: string, n: number, extra: { subject?: string; causationid?: string } = {}) =>
  createEnvelope({ type, source: "driver-test", data: { n }, ...extra });

describe("nats targets", () => {
  it("parse servers, stream and prefix, with defaults, and hide credentials", () => {
    expect(parseNatsTarget(parseTarget("nats://127.0.0.1:4222"))).toEqual({
      servers: ["nats://127.0.0.1:4222"],
      stream: "SWITCHYARD",
      prefix: "switchyard.events",
      display: "nats://127.0.0.1:4222/SWITCHYARD",
    });
    expect(
      parseNatsTarget(parseTarget("nats://ops:secret@a:4222,b:4222/EVENTS?prefix=app.events")),
    ).toEqual({
      servers: ["nats://ops:secret@a:4222", "nats://b:4222"],
      stream: "EVENTS",
      prefix: "app.events",
      display: "nats://a:4222,b:4222/EVENTS?prefix=app.events",
    });
  });

  it("reject a malformed target with UnknownTargetError naming what is wrong", async () => {
    for (const [text, why] of [
      ["nats:127.0.0.1:4222", /nats:\/\/host/],
      ["nats://a:4222/BAD.NAME", /stream name/],
      ["nats://a:4222/S?prefix=a.*", /prefix/],
      ["nats://a:4222/S?stream=x", /unknown parameter stream/],
      ["nats://127.0.0.1:99999/S", /port 99999 is out of range/],
      ["nats://127.0.0.1:0/S", /port 0 is out of range/],
      ["nats://127.0.0.1:42x/S", /port "42x" is not a number/],
      ["nats://127.0.0.1:/S", /port "" is not a number/],
      ["nats://[::1/S", /server "\[::1" is not host:port/],
      ["nats://[zz]:4222/S", /"\[zz\]" is not a host name or IP address/],
      ["nats://:4222/S", /server ":4222" has no host name/],
      ["nats://a b:4222/S", /"a b" is not a host name/],
      ["nats://a:4222,/S", /no server/],
      ["nats:///S", /no server/],
      ["nats://127.0.0.1:4222/S%ZZ", /"S%ZZ" has a malformed %-escape/],
      ["nats://127.0.0.1:4222/A%20B", /"A B" is not a stream name/],
      ["nats://127.0.0.1:4222/A*", /"A\*" is not a stream name/],
      ["nats://127.0.0.1:4222/A>", /"A>" is not a stream name/],
      ["nats://127.0.0.1:4222/A/B", /"A\/B" is not a stream name/],
    ] as const) {
      const error = await natsDriver.open(parseTarget(text), {}).catch((e: unknown) => e);
      expect(error, text).toBeInstanceOf(UnknownTargetError);
      expect((error as Error).message, text).toMatch(why);
    }
    // A bracketed IPv6 address with a port is a server.
    expect(parseNatsTarget(parseTarget("nats://[::1]:4222/S")).servers).toEqual([
      "nats://[::1]:4222",
    ]);
  });

  it("keep a target's credentials out of the error about it", async () => {
    const error = await natsDriver
      .open(parseTarget("nats://ops:s3cret@a:99999,b:4222/S"), {})
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnknownTargetError);
    expect((error as Error).message).toMatch(/port 99999/);
    expect((error as Error).message).not.toMatch(/s3cret|ops/);
    expect((error as UnknownTargetError).target).toBe("nats://***@a:99999,b:4222/S");
  });

  it("refuse a credsFile that holds no credentials, naming it, before connecting", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nats-creds-"));
    try {
      const file = join(dir, "ops.creds");
      writeFileSync(file, "not a creds file\n");
      const error = await natsDriver
        .open(parseTarget("nats://127.0.0.1:1"), { options: { nats: { credsFile: file } } })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NatsOptionsError);
      expect((error as Error).message).toMatch(/ops\.creds.*user JWT and NKey seed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuse a credsFile that is not a path, and name it", async () => {
    for (const credsFile of [0, "", " ", {}]) {
      const error = await natsDriver
        .open(parseTarget("nats://127.0.0.1:1"), { options: { nats: { credsFile } } })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NatsOptionsError);
      expect((error as NatsOptionsError).option).toBe("options.nats.credsFile");
      // Checked before use: 0 is not read as file descriptor 0 (stdin, which may never end).
      expect((error as Error).message).toMatch(/expected the path of a \.creds file/);
    }
  });

  it("reject unknown driver options by name", async () => {
    await expect(
      natsDriver.open(parseTarget("nats://127.0.0.1:1"), { options: { nats: { usr: "x" } } }),
    ).rejects.toThrow(/options\.nats\.usr/);
    await expect(
      natsDriver.open(parseTarget("nats://127.0.0.1:1"), {
        options: { nats: { credsFile: "/nope" } },
      }),
    ).rejects.toBeInstanceOf(NatsOptionsError);
  });

  it("fail to open with NatsConnectionError when no server answers", async () => {
    await expect(
      natsDriver.open(parseTarget("nats://127.0.0.1:1"), {
        options: { nats: { connectionOptions: { timeout: 500 } } },
      }),
    ).rejects.toBeInstanceOf(NatsConnectionError);
  });
});

describe("opening against a server that accepts the connection but never answers", () => {
  let server: Server;
  let accepted: Socket[];
  let target: string;

  beforeEach(async () => {
    accepted = [];
    server = createServer((socket) => accepted.push(socket));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    target = `nats://127.0.0.1:${(server.address() as { port: number }).port}/S`;
  });
  afterEach(async () => {
    for (const socket of accepted) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it("rejects at once with the signal's reason when the signal aborts", async () => {
    const controller = new AbortController();
    const opening = natsDriver.open(parseTarget(target), {
      signal: controller.signal,
      // Longer than the test waits: only the abort can end this open in time. (nats.js cannot
      // cancel its dial: it goes on in the background until this timeout.)
      options: { nats: { connectionOptions: { timeout: 3_000 } } },
    });
    const settled = opening.catch((e: unknown) => e);
    await once(server, "connection");
    const reason = new Error("operator pressed Ctrl-C");
    const abortedAt = performance.now();
    controller.abort(reason);
    expect(await settled).toBe(reason);
    expect(performance.now() - abortedAt).toBeLessThan(1_000);
  });

  it("rejects with the reason of a signal aborted already, without connecting", async () => {
    const reason = new Error("too late");
    await expect(
      natsDriver.open(parseTarget(target), { signal: AbortSignal.abort(reason) }),
    ).rejects.toBe(reason);
    expect(accepted).toEqual([]);
  });

  it("fails with NatsConnectionError at the connect timeout", async () => {
    await expect(
      natsDriver.open(parseTarget(target), {
        options: { nats: { connectionOptions: { timeout: 200 } } },
      }),
    ).rejects.toBeInstanceOf(NatsConnectionError);
  });
});

describeIf(await natsAvailable(), "natsDriver", {}, () => {
  let names: { stream: string; prefix: string };
  let target: string;
  let drivers: Driver[] = [];

  const open = async (
    options: { readOnly?: boolean; options?: Record<string, Record<string, unknown>> } = {},
  ) => {
    const driver = await openDriver(target, { drivers: [natsDriver], ...options });
    drivers.push(driver);
    return driver;
  };

  beforeEach(() => {
    names = uniqueNames("driver");
    target = `${NATS_URL}/${names.stream}?prefix=${names.prefix}`;
  });
  afterEach(async () => {
    await Promise.allSettled(drivers.map((d) => d.close()));
    drivers = [];
    await deleteStreams(NATS_URL, names.stream);
  });

  async function consumers(stream: string): Promise<string[]> {
    const nc = await connect({ servers: NATS_URL });
    try {
      const jsm = await jetstreamManager(nc);
      const found: string[] = [];
      for await (const c of jsm.consumers.list(stream)) found.push(c.name);
      return found;
    } catch {
      return [];
    } finally {
      await nc.close();
    }
  }

  async function streams(): Promise<string[]> {
    const nc = await connect({ servers: NATS_URL });
    try {
      const found: string[] = [];
      for await (const name of (await jetstreamManager(nc)).streams.names()) found.push(name);
      return found;
    } finally {
      await nc.close();
    }
  }

  async function addStream(name: string, subjects: string[]): Promise<void> {
    const nc = await connect({ servers: NATS_URL });
    try {
      await (await jetstreamManager(nc)).streams.add({ name, subjects });
    } finally {
      await nc.close();
    }
  }

  it("refuses a stream that does not exist when read-only or told not to create, naming the streams there are", async () => {
    await addStream(names.stream, [`${names.prefix}.>`]);
    const misspelt = `${names.stream}X`;
    const missing = `${NATS_URL}/${misspelt}?prefix=${names.prefix}`;
    for (const options of [{ readOnly: true }, { options: { nats: { create: false } } }]) {
      const error = await openDriver(missing, { drivers: [natsDriver], ...options }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(NatsStreamNotFoundError);
      expect(error).toMatchObject({ code: "NATS_STREAM_NOT_FOUND", stream: misspelt });
      expect((error as NatsStreamNotFoundError).message).toContain(`no stream "${misspelt}"`);
      expect((error as NatsStreamNotFoundError).existing).toContain(names.stream);
    }
    expect(await streams()).not.toContain(misspelt);
    // Opened to write, the driver's transport creates the stream, as daemons do.
    await deleteStreams(NATS_URL, names.stream);
    const writer = await open();
    await writer.transport().publish([event("A", 1)]);
    expect(await streams()).toContain(names.stream);
    await expect(
      natsDriver.open(parseTarget(target), { options: { nats: { create: "no" } } }),
    ).rejects.toMatchObject({ option: "options.nats.create" });
  });

  it("reads an empty stream as empty and creates nothing when read-only", async () => {
    await addStream(names.stream, [`${names.prefix}.>`]);
    const driver = await open({ readOnly: true });
    const inspector = driver.inspector();
    expect(await inspector.subscribers()).toEqual([]);
    expect(await inspector.events()).toEqual({ events: [] });
    expect(await inspector.event("nope")).toBeUndefined();
    expect(await inspector.deliveries("nope")).toEqual([]);
    expect(await inspector.causation("nope")).toBeUndefined();
    expect((await inspector.counts({ since: Date.now() - 60_000 })).totals).toEqual({});
    expect(await inspector.heartbeats()).toEqual([]);
    expect(await inspector.deadLetters()).toEqual({ deadLetters: [] });
    expect((await inspector.deadLetterCounts()).depth).toBe(0);
    const aborted = AbortSignal.abort(new Error("stop"));
    await expect(inspector.subscribers({ signal: aborted })).rejects.toThrow("stop");
    await expect(inspector.events({ signal: aborted })).rejects.toThrow("stop");
    await expect(inspector.deadLetters({ signal: aborted })).rejects.toThrow("stop");
    expect(() => driver.transport()).toThrow(UnsupportedOperationError);
    expect(() => driver.heartbeatSink()).toThrow(UnsupportedOperationError);
    await expect(driver.admin().replay({})).rejects.toBeInstanceOf(UnsupportedOperationError);
    await expect(driver.admin().clearPending({})).rejects.toBeInstanceOf(UnsupportedOperationError);
    await expect(driver.admin().backup()).rejects.toBeInstanceOf(UnsupportedOperationError);
    // The audit goes through a transport, which a read-only driver never opens.
    await expect(driver.admin().audit()).rejects.toBeInstanceOf(UnsupportedOperationError);
    const all = await streams();
    for (const stream of streamFamily(names.stream).slice(1)) expect(all).not.toContain(stream);
    expect(driver.capabilities).toMatchObject({
      replay: true,
      purge: true,
      clearPending: false,
      backup: false,
      audit: true,
    });
    expect(driver.target).toBe(`${NATS_URL}/${names.stream}?prefix=${names.prefix}`);
  });

  it("reports the backlog, events, deliveries, dead letters and counts the test produced", async () => {
    const writer = await open();
    const transport = writer.transport({
      drainTimeoutMs: 1_000,
      pullExpiresMs: 2_000,
    }) as NatsTransport;
    await transport.register("worker", ["A", "B"]);
    const started = Date.now();
    const as = Array.from({ length: 7 }, (_, i) =>
      event("A", i, { subject: i % 2 ? "odd" : "even" }),
    );
    const bs = Array.from({ length: 5 }, (_, i) => event("B", i));
    for (const e of as) await transport.publish([e]);
    await transport.publish(bs);

    // Read-only, from a second driver: nothing handled yet, so all 12 are pending.
    const reader = await open({ readOnly: true });
    const inspector = reader.inspector();
    expect(await inspector.subscribers()).toEqual([
      expect.objectContaining({
        subscriber: "worker",
        types: ["A", "B"],
        ephemeral: false,
        pending: 12,
        inFlight: 0,
        retrying: 0,
        dead: 0,
        lag: 12,
        oldestPendingMs: expect.any(Number),
      }),
    ]);

    // Pages of events, newest first and oldest first, each event once.
    const newest: Envelope[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10; page++) {
      const result = await inspector.events({ limit: 5, ...(cursor ? { cursor } : {}) });
      newest.push(...result.events.map((e) => e.envelope!));
      cursor = result.next;
      if (!cursor) break;
    }
    expect(newest.map((e) => e.id)).toEqual([...as, ...bs].map((e) => e.id).reverse());
    const oldest = await inspector.events({ order: "oldest", limit: 100 });
    expect(oldest.events.map((e) => e.id)).toEqual([...as, ...bs].map((e) => e.id));
    expect(oldest.next).toBeUndefined();
    expect((await inspector.events({ types: ["A"], subject: "odd" })).events).toHaveLength(3);
    expect((await inspector.events({ types: ["A", "B"], limit: 100 })).events).toHaveLength(12);
    expect((await inspector.events({ until: started - 1 })).events).toEqual([]);
    const one = await inspector.event(as[3]!.id);
    expect(one).toMatchObject({ id: as[3]!.id, type: "A", subject: "odd", envelope: as[3] });

    const counts = await inspector.counts({ since: started - 1_000, bucketMs: 3_600_000 });
    expect(counts.totals).toEqual({ A: 7, B: 5 });
    expect(counts.buckets.reduce((n, b) => n + (b.counts.A ?? 0), 0)).toBe(7);
    expect((await inspector.counts({ since: started - 1_000, types: ["B"] })).totals).toEqual({
      B: 5,
    });

    // Handle: A events with an odd n fail for good (dead letters), the rest succeed.
    const handled = new Set<string>();
    await transport.subscribe({
      subscriber: "worker",
      types: ["A", "B"],
      handler: async (d) => {
        if (d.envelope.type === "A" && (d.envelope.data as { n: number }).n % 2)
          throw new UnrecoverableError("odd");
        handled.add(d.envelope.id);
      },
    });
    await eventually(
      async () => handled.size === 9 && (await inspector.deadLetterCounts()).depth === 3,
      "9 handled, 3 dead letters",
    );
    await eventually(async () => (await inspector.subscribers())[0]?.lag === 0, "lag 0");
    expect(await inspector.subscribers()).toEqual([
      expect.objectContaining({
        subscriber: "worker",
        pending: 0,
        inFlight: 0,
        retrying: 0,
        dead: 3,
        lag: 0,
      }),
    ]);
    const deadCounts = await inspector.deadLetterCounts();
    expect(deadCounts).toMatchObject({
      depth: 3,
      byReason: { unrecoverable: 3 },
      byType: { A: 3 },
      bySubscriber: { worker: 3 },
    });
    const deliveries = await inspector.deliveries(as[1]!.id);
    expect(deliveries).toEqual([
      expect.objectContaining({
        subscriber: "worker",
        state: "dead",
        attempts: 1,
        deadReason: "unrecoverable",
      }),
    ]);
    expect(deliveries[0]?.lastError?.message).toBe("odd");
    expect(await inspector.deliveries(as[0]!.id)).toEqual([
      expect.objectContaining({ subscriber: "worker", state: "acked" }),
    ]);
    const page = await inspector.deadLetters({ limit: 2 });
    expect(page.deadLetters).toHaveLength(2);
    const rest = await inspector.deadLetters({ limit: 2, cursor: page.next! });
    expect(rest.deadLetters).toHaveLength(1);
    const dead = page.deadLetters[0]!;
    expect(await inspector.deadLetter(dead.id)).toEqual(dead);

    // Read-only reads left no consumer behind: only the transport's own.
    const left = await consumers(names.stream);
    expect(left).toHaveLength(3); // A, B and the replay consumer of "worker"
  });

  it("splits the unacknowledged into in flight (running) and retrying (waiting for its backoff)", async () => {
    const driver = await open();
    const transport = driver.transport({ drainTimeoutMs: 200, pullExpiresMs: 2_000 });
    const inspector = driver.inspector();
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    let failures = 0;
    // "slow" holds its first delivery; "flaky" fails, then waits a minute for its retry.
    await transport.subscribe({ subscriber: "slow", types: ["A"], handler: () => blocked });
    await transport.subscribe({
      subscriber: "flaky",
      types: ["B"],
      backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 },
      handler: async () => {
        failures++;
        throw new Error("again");
      },
    });
    const a = [event("A", 1), event("A", 2), event("A", 3)];
    const b = event("B", 1);
    await transport.publish(a);
    await transport.publish([b]);
    try {
      await eventually(() => failures === 1, "flaky failed once");
      await eventually(async () => {
        const s = await inspector.subscribers();
        return (
          s.find((x) => x.subscriber === "slow")?.inFlight === 1 &&
          s.find((x) => x.subscriber === "flaky")?.retrying === 1
        );
      }, "slow: 1 in flight; flaky: 1 retrying");
      const all = await inspector.subscribers();
      expect(all.find((x) => x.subscriber === "flaky")).toMatchObject({
        pending: 0,
        inFlight: 0,
        retrying: 1,
        lag: 1,
        dead: 0,
      });
      const slow = all.find((x) => x.subscriber === "slow");
      expect(slow).toMatchObject({ pending: 2, inFlight: 1, retrying: 0, lag: 3 });
      expect(slow?.lastSeen).toEqual(expect.any(String));
      const [retry] = await inspector.deliveries(b.id);
      expect(retry).toMatchObject({ subscriber: "flaky", state: "retrying", attempts: 1 });
      expect(retry?.lastError?.message).toBe("again");
      expect(Date.parse(retry!.availableAt!)).toBeGreaterThan(Date.now() + 50_000);
      expect(await inspector.deliveries(a[0]!.id)).toEqual([
        expect.objectContaining({
          state: "in_flight",
          attempts: 1,
          leaseUntil: expect.any(String),
        }),
      ]);
      expect(await inspector.deliveries(a[1]!.id)).toEqual([
        expect.objectContaining({ state: "pending", attempts: 0 }),
      ]);
    } finally {
      release();
    }
  });

  it("replays dead letters through the transport, each once even with two drivers at once", async () => {
    const writer = await open();
    const transport = writer.transport({ drainTimeoutMs: 1_000, pullExpiresMs: 2_000 });
    const failing = new Set<string>();
    const seen: string[] = [];
    await transport.subscribe({
      subscriber: "worker",
      types: ["A"],
      handler: async (d) => {
        seen.push(d.envelope.id);
        if (!failing.has(d.envelope.id)) {
          failing.add(d.envelope.id);
          throw new UnrecoverableError("first time");
        }
      },
    });
    const events = Array.from({ length: 6 }, (_, i) => event("A", i));
    await transport.publish(events);
    const inspector = writer.inspector();
    await eventually(
      async () => (await inspector.deadLetterCounts()).depth === 6,
      "6 dead letters",
    );

    const other = await open();
    const dry = await other.admin().replay({}, { dryRun: true });
    expect(dry.wouldReplay).toHaveLength(6);
    const [a, b] = await Promise.all([writer.admin().replay({}), other.admin().replay({})]);
    expect(a.replayed.length + b.replayed.length).toBe(6);
    expect(new Set([...a.replayed, ...b.replayed]).size).toBe(6);
    await eventually(() => seen.length === 12, "every event handled a second time");
    await new Promise((r) => setTimeout(r, 300));
    expect(seen).toHaveLength(12);
    expect((await inspector.deadLetterCounts()).byStatus).toEqual({ replayed: 6 });
    const again = await writer.admin().replay({});
    expect(again.replayed).toEqual([]);
    expect(again.skipped).toHaveLength(6);
    expect(again.skipped[0]?.reason).toMatch(/again/);

    expect(await writer.admin().purge({ subscriber: "worker" })).toEqual({
      dryRun: false,
      count: 6,
    });
    expect((await inspector.deadLetterCounts()).byStatus).toEqual({ purged: 6 });
  });

  it("reads heartbeats written through the driver's sink, and the causation of events", async () => {
    const driver = await open();
    const beat: DaemonHeartbeat = {
      daemon: "trainer",
      pid: 42,
      host: "gpu-1",
      status: "running",
      health: {
        healthy: true,
        status: "healthy",
        message: "ok",
        details: {},
      },
      stats: {} as DaemonHeartbeat["stats"],
      restarts: 2,
      startedAt: new Date(Date.now() - 5_000).toISOString(),
      at: new Date().toISOString(),
    };
    await driver.heartbeatSink().write(beat);
    const [info] = await driver.inspector().heartbeats();
    expect(info).toMatchObject({
      daemon: "trainer",
      pid: 42,
      host: "gpu-1",
      status: "running",
      restarts: 2,
      startedAt: beat.startedAt,
      at: beat.at,
    });
    expect(info!.ageMs).toBeGreaterThanOrEqual(0);

    const transport = driver.transport();
    const root = event("A", 0);
    const child = event("B", 1, { causationid: root.id });
    const grandchild = event("C", 2, { causationid: child.id });
    const sibling = event("B", 3, { causationid: root.id });
    await transport.publish([root]);
    await transport.publish([child]);
    await transport.publish([event("A", 9)]);
    await transport.publish([grandchild]);
    await transport.publish([sibling]);
    const tree = await driver.inspector().causation(child.id);
    expect(tree?.causes.map((e) => e.id)).toEqual([root.id]);
    expect(tree?.root.event.id).toBe(child.id);
    expect(tree?.root.caused.map((n) => n.event.id)).toEqual([grandchild.id]);
    expect(tree?.truncated).toBe(false);
    const top = await driver.inspector().causation(root.id, { depth: 1 });
    expect(top?.root.caused.map((n) => n.event.id)).toEqual([child.id, sibling.id]);
    expect(top?.truncated).toBe(true);
  });

  it("gives its dead-letter store options.nats.retryBackoff", async () => {
    const driver = await open({ options: { nats: { retryBackoff: { initialMs: 60_000 } } } });
    const before = Date.now();
    await driver.deadLetterSink()!.deadLetter({
      envelope: event("JOB", 1),
      subscriber: "w",
      reason: "max_attempts",
      attempts: 1,
      error: { name: "Error", message: "no" },
      failedAt: new Date().toISOString(),
      origin: "nats",
    });
    const [record] = (await driver.inspector().deadLetters()).deadLetters;
    const due = Date.parse(record!.nextRetryAt!) - before;
    expect(due).toBeGreaterThanOrEqual(60_000);
    expect(due).toBeLessThan(61_000);
  });

  it("closes idempotently, and refuses parts after close", async () => {
    const driver = await open();
    const closing = driver.close();
    expect(driver.close()).toBe(closing);
    await closing;
    expect(await driver.close()).toBeUndefined();
    for (const part of [
      () => driver.inspector(),
      () => driver.transport(),
      () => driver.heartbeatSink(),
      () => driver.admin(),
    ])
      expect(part).toThrow(TransportClosedError);
  });
});
