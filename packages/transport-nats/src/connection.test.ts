import { createEnvelope } from "@switchyard/event-schema";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  JetStreamUnavailableError,
  NatsAuthError,
  NatsConnectionError,
  natsTransport,
} from "./index";
import {
  type OwnServer,
  describeIf,
  eventually,
  natsServerBinary,
  startOwnServer,
} from "./test/nats";

const job = (n: number) => createEnvelope({ type: "JOB", source: "auth-test", data: { n } });

// Servers of its own: one requiring user/password, one without JetStream.
describeIf(natsServerBinary(), "connecting to secured and misconfigured servers", {}, () => {
  let secured: OwnServer;

  beforeAll(async () => {
    secured = await startOwnServer({
      config: [
        "listen: 127.0.0.1:{{port}}",
        'jetstream { store_dir: "{{store}}" }',
        "authorization {",
        '  users = [ { user: "pipeline", password: "s3cret-pass" } ]',
        "}",
      ].join("\n"),
    });
  });
  afterAll(async () => {
    await secured?.dispose();
  });

  it("publishes and consumes with the right user and password", async () => {
    const transport = natsTransport({
      servers: secured.url,
      user: "pipeline",
      pass: "s3cret-pass",
      stream: "SECURED",
      prefix: "secured.events",
    });
    try {
      const got: number[] = [];
      await transport.subscribe({
        subscriber: "reader",
        types: ["JOB"],
        handler: async (d) => void got.push((d.envelope.data as { n: number }).n),
      });
      await transport.publish([job(1)]);
      await eventually(() => got.length === 1, "the delivery");
    } finally {
      await transport.close();
    }
  });

  it("fails fast with NatsAuthError on a wrong password", async () => {
    const transport = natsTransport({ servers: secured.url, user: "pipeline", pass: "wrong" });
    const started = Date.now();
    const error = await transport.ready().catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(error).toBeInstanceOf(NatsAuthError);
    expect(error).toMatchObject({ code: "NATS_AUTH_FAILED", servers: [secured.url] });
    expect((error as Error).message).toContain(secured.url);
    expect((error as Error).cause).toBeDefined();
    await transport.close();
  });

  it("fails fast with NatsAuthError without credentials", async () => {
    const transport = natsTransport({ servers: secured.url });
    await expect(transport.publish([job(1)])).rejects.toBeInstanceOf(NatsAuthError);
    await transport.close();
  });

  it("fails fast with NatsConnectionError naming the URL when nothing listens", async () => {
    const dead = await startOwnServer();
    const url = dead.url;
    await dead.dispose();
    const transport = natsTransport({ servers: url });
    const started = Date.now();
    const error = await transport.ready().catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(error).toBeInstanceOf(NatsConnectionError);
    expect((error as Error).message).toContain(url);
    expect((error as Error).message).toMatch(/nats-server -js/);
    // A later call tries again instead of caching the failure.
    await expect(transport.ready()).rejects.toBeInstanceOf(NatsConnectionError);
    await transport.close();
  });

  it("fails with JetStreamUnavailableError when the server runs without JetStream", async () => {
    const plain = await startOwnServer({ jetstream: false });
    try {
      const transport = natsTransport({ servers: plain.url, requestTimeoutMs: 2_000 });
      const error = await transport.ready().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(JetStreamUnavailableError);
      expect((error as Error).message).toContain("-js");
      await transport.close();
    } finally {
      await plain.dispose();
    }
  });
});
