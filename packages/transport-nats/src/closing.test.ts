// Closing while something is still under way: a connect that hangs (a server that accepts and
// never answers, a server that is not there), and a connection that completes after the close.
import { once } from "node:events";
import { type Server, type Socket, connect as tcpConnect, createServer } from "node:net";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as natsConnect } from "@nats-io/transport-node";
import { createEnvelope } from "@switchyard/event-schema";
import { TransportClosedError, openDriver } from "@switchyard/transport";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { natsDeadLetterStore, natsDriver, natsHeartbeatSink, natsTransport } from "./index";
import { freePort } from "./test/process";
import { NATS_URL, deleteStreams, describeIf, natsAvailable, uniqueNames } from "./test/nats";

const job = (n: number) => createEnvelope({ type: "JOB", source: "closing-test", data: { n } });

// Far longer than any test here may take: only close() can end these waits in time, so a close
// that waits for the connect timeout fails the test by its own timeout.
const HANGING = { connectionOptions: { timeout: 120_000 } };
const TEST_MS = 10_000;

/** What a NATS server says first; the client answers CONNECT + PING and waits for PONG. */
const INFO =
  'INFO {"server_id":"FAKE","server_name":"fake","version":"2.9.10","proto":1,' +
  '"host":"127.0.0.1","port":4222,"headers":true,"max_payload":1048576}\r\n';

describe("closing while the connect hangs on a server that never answers", () => {
  let server: Server;
  let url: string;
  const sockets: Socket[] = [];

  beforeEach(async () => {
    server = createServer((socket) => void sockets.push(socket));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    url = `nats://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it(
    "ends a transport's close() without waiting for the connect, and the pending ready() rejects as closed",
    async () => {
      const t = natsTransport({ servers: url, ...HANGING });
      const ready = t.ready().catch((e: unknown) => e);
      const publishing = t.publish([job(1)]).catch((e: unknown) => e);
      await once(server, "connection");
      const closing = t.close();
      expect(t.close()).toBe(closing);
      await closing;
      expect(await ready).toBeInstanceOf(TransportClosedError);
      expect(await publishing).toBeInstanceOf(TransportClosedError);
      await expect(t.ready()).rejects.toBeInstanceOf(TransportClosedError);
    },
    TEST_MS,
  );

  it(
    "ends a heartbeat sink's close() without waiting for the connect, failing the pending write as closed",
    async () => {
      const sink = natsHeartbeatSink({ servers: url, ...HANGING });
      const writing = sink
        .write({
          daemon: "d",
          status: "healthy",
          pid: 1,
          host: "h",
          startedAt: new Date().toISOString(),
          at: new Date().toISOString(),
        } as never)
        .catch((e: unknown) => e);
      await once(server, "connection");
      await sink.close();
      expect(await writing).toBeInstanceOf(TransportClosedError);
    },
    TEST_MS,
  );

  it(
    "ends a dead-letter store's close() without waiting for the connect, failing the pending read as closed",
    async () => {
      const store = natsDeadLetterStore({ servers: url, ...HANGING });
      const listing = store.list().catch((e: unknown) => e);
      await once(server, "connection");
      await store.close();
      expect(await listing).toBeInstanceOf(TransportClosedError);
    },
    TEST_MS,
  );

  it(
    "closes a connection that completes after the transport was closed",
    async () => {
      const t = natsTransport({ servers: url, ...HANGING });
      const ready = t.ready().catch((e: unknown) => e);
      const [socket] = (await once(server, "connection")) as [Socket];
      await t.close();
      // The server answers only now: the client finishes its handshake, then must hang up.
      const hungUp = once(socket, "close");
      socket.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("PING")) socket.write("PONG\r\n");
      });
      socket.write(INFO);
      await hungUp;
      expect(await ready).toBeInstanceOf(TransportClosedError);
    },
    TEST_MS,
  );
});

describe("closing while the connect waits for a server that is not there", () => {
  it(
    "ends a transport's close() that waits on first connect for a port nothing listens on",
    async () => {
      const port = await freePort();
      const t = natsTransport({
        servers: `nats://127.0.0.1:${port}`,
        // Keep dialling until a server comes: without close() stopping the wait, forever.
        connectionOptions: { waitOnFirstConnect: true, reconnectTimeWait: 50, timeout: 120_000 },
      });
      const ready = t.ready().catch((e: unknown) => e);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await t.close();
      expect(await ready).toBeInstanceOf(TransportClosedError);
    },
    TEST_MS,
  );
});

describeIf(
  await natsAvailable(),
  "closing a driver whose transport is still connecting",
  {},
  () => {
    let names: { stream: string; prefix: string };
    let proxy: Server;
    let proxyUrl: string;
    const sockets: Socket[] = [];

    beforeEach(async () => {
      names = uniqueNames("closing");
      const upstream = new URL(NATS_URL);
      let first = true;
      // The driver's own connection goes through to the server; every later one (its transport's)
      // is accepted and never answered.
      proxy = createServer((socket) => {
        sockets.push(socket);
        if (!first) return;
        first = false;
        const server = tcpConnect(Number(upstream.port || 4222), upstream.hostname);
        sockets.push(server);
        socket.pipe(server).pipe(socket);
        socket.on("error", () => server.destroy());
        server.on("error", () => socket.destroy());
      });
      proxy.listen(0, "127.0.0.1");
      await once(proxy, "listening");
      proxyUrl = `nats://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    });
    afterEach(async () => {
      for (const socket of sockets.splice(0)) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
      await deleteStreams(NATS_URL, names.stream);
    });

    it(
      "ends close() at once and rejects the transport's pending publish as closed",
      async () => {
        const driver = await openDriver(`${proxyUrl}/${names.stream}?prefix=${names.prefix}`, {
          drivers: [natsDriver],
          options: { nats: HANGING },
        });
        const publishing = driver
          .transport()
          .publish([job(1)])
          .catch((e: unknown) => e);
        await once(proxy, "connection");
        await driver.close();
        expect(await publishing).toBeInstanceOf(TransportClosedError);
      },
      TEST_MS,
    );
  },
);

describeIf(await natsAvailable(), "closing a transport while it publishes", {}, () => {
  let names: { stream: string; prefix: string };

  beforeEach(() => {
    names = uniqueNames("closing");
  });
  afterEach(async () => {
    await deleteStreams(NATS_URL, names.stream);
  });

  it("lets a publish in flight finish before it closes the connection", async () => {
    const t = natsTransport({ servers: NATS_URL, ...names });
    await t.ready();
    const batch = Array.from({ length: 300 }, (_, n) => job(n));
    const publishing = t.publish(batch);
    // The batch is on its way (its first acks are back) when the close comes.
    const first = t.publish([job(-1)]);
    await first;
    await t.close();
    await expect(publishing).resolves.toEqual({ published: 300, duplicates: 0 });
    const nc = await natsConnect({ servers: NATS_URL });
    try {
      const info = await (await jetstreamManager(nc)).streams.info(names.stream);
      expect(info.state.messages).toBe(301);
    } finally {
      await nc.close();
    }
  });
});
