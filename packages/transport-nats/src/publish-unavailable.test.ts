import { JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import { connect, errors } from "@nats-io/transport-node";
import { SwitchyardError, createEnvelope } from "@switchyard/event-schema";
import type { Logger } from "@switchyard/transport";
import { describe, expect, it } from "vitest";
import {
  NatsClusterUnavailableError,
  NatsOptionsError,
  NatsPublishError,
  NatsPublishUnavailableError,
  NatsStreamConfigError,
  NatsStreamNotFoundError,
  defaultNatsTransportOptions,
  natsTransport,
} from "./index";
import { isApiUnavailable, isPublishUnavailable } from "./errors";
import {
  NATS_URL,
  deleteStream,
  describeIf,
  eventually,
  natsAvailable,
  uniqueNames,
} from "./test/nats";

/** nats.js's JetStreamNotEnabled (not exported by @nats-io/jetstream; errors are told apart by name). */
const jetStreamNotEnabled = (message: string, cause: unknown) =>
  Object.assign(new Error(message, { cause }), { name: "JetStreamNotEnabled" });
/** What nats.js throws for a publish nobody answers: no stream leader on the subject. */
const noResponders = () =>
  jetStreamNotEnabled(
    "jetstream is not enabled",
    new errors.RequestError("no responders", {
      cause: new errors.NoRespondersError("events.JOB"),
    }),
  );
const apiError = (status: number, err_code: number, description: string) =>
  new JetStreamApiError({ code: status, err_code, description });

describe("publishing while no stream leader answers", () => {
  it("retries a publish that got no responders, though nats.js calls it JetStreamNotEnabled", () => {
    expect(isPublishUnavailable(noResponders())).toBe(true);
  });

  it("retries a publish that got no ack in time, and cluster-unavailable API errors", () => {
    expect(isPublishUnavailable(new errors.TimeoutError())).toBe(true);
    expect(
      isPublishUnavailable(apiError(503, 10008, "JetStream system temporarily unavailable")),
    ).toBe(true);
    expect(
      isPublishUnavailable(apiError(500, 10009, "JetStream cluster can not handle request")),
    ).toBe(true);
    expect(isPublishUnavailable(apiError(500, 10118, "stream is offline"))).toBe(true);
  });

  it("does not retry what waiting cannot fix: no JetStream for the account, limits, a closed connection", () => {
    const noJetStream = jetStreamNotEnabled(
      "jetstream not enabled",
      apiError(503, 10039, "jetstream not enabled for account"),
    );
    expect(isPublishUnavailable(noJetStream)).toBe(false);
    expect(isPublishUnavailable(apiError(503, 10077, "maximum messages exceeded"))).toBe(false);
    expect(isPublishUnavailable(apiError(400, 10060, "expected stream does not match"))).toBe(
      false,
    );
    expect(isPublishUnavailable(new errors.ClosedConnectionError())).toBe(false);
    expect(isPublishUnavailable(new Error("boom"))).toBe(false);
  });

  it("reports an unavailable cluster as a retryable NatsPublishError with a stable code", () => {
    const cause = noResponders();
    const error = new NatsPublishUnavailableError("EVENTS", 2, 5, 30_000, { cause });
    expect(error).toBeInstanceOf(NatsPublishError);
    expect(error).toBeInstanceOf(SwitchyardError);
    expect(error).toMatchObject({
      name: "NatsPublishUnavailableError",
      code: "NATS_PUBLISH_UNAVAILABLE",
      retryable: true,
      stream: "EVENTS",
      stored: 2,
      total: 5,
      waitedMs: 30_000,
      cause,
    });
    expect(error.message).toContain("2 of 5 envelopes were stored");
    expect(error.message).toContain("30000 ms");
    expect(error.message).toContain("publishDeadlineMs");
    expect(error.message).toContain("nats stream info EVENTS");
    expect(new NatsPublishError(1, 2).retryable).toBe(false);
  });

  it("asks a JetStream API request again on a timeout or an election, but not on no responders (no JetStream)", () => {
    expect(isApiUnavailable(new errors.TimeoutError())).toBe(true);
    expect(isApiUnavailable(apiError(503, 10008, "JetStream system temporarily unavailable"))).toBe(
      true,
    );
    expect(isApiUnavailable(noResponders())).toBe(false);
    expect(isApiUnavailable(apiError(404, 10014, "consumer not found"))).toBe(false);
  });

  it("reports a cluster that stays without a leader for an API request as NatsClusterUnavailableError", () => {
    const cause = new errors.TimeoutError();
    const error = new NatsClusterUnavailableError(["nats://a:4222"], "create consumer c1", 30_000, {
      cause,
    });
    expect(error).toBeInstanceOf(SwitchyardError);
    expect(error).toMatchObject({
      code: "NATS_CLUSTER_UNAVAILABLE",
      retryable: true,
      operation: "create consumer c1",
      waitedMs: 30_000,
      cause,
    });
    expect(error.message).toContain('"create consumer c1"');
    expect(error.message).toContain("healthz");
  });

  it("documents a 30 s publish deadline and rejects a negative one by name", () => {
    expect(defaultNatsTransportOptions.publishDeadlineMs).toBe(30_000);
    expect(() => natsTransport({ publishDeadlineMs: -1 })).toThrow(NatsOptionsError);
    expect(() => natsTransport({ publishDeadlineMs: -1 })).toThrow(
      /publishDeadlineMs of the NATS transport is -1/,
    );
    expect(() => natsTransport({ publishDeadlineMs: 0 })).not.toThrow();
  });
});

/** Captures log lines (message and fields) at every level. */
function capturingLogger(lines: { level: string; message: string; fields: unknown }[]): Logger {
  const at = (level: string) => (fields: unknown, message?: string) =>
    void lines.push({ level, message: message ?? "", fields });
  const logger: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
  };
  return logger;
}

describeIf(await natsAvailable(), `publishing to a stream nobody serves (${NATS_URL})`, {}, () => {
  it("rejects a publish to a stream deleted under the running transport with NatsStreamNotFoundError naming it, without retrying", async () => {
    const names = uniqueNames("deleted");
    const transport = natsTransport({ servers: NATS_URL, ...names, publishDeadlineMs: 3_000 });
    try {
      await transport.ready();
      // The stream goes away under a running transport: nobody answers its subjects any more.
      await deleteStream(NATS_URL, names.stream);
      const error = await transport
        .publish([createEnvelope({ type: "JOB", source: "test", data: {} })])
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(NatsStreamNotFoundError);
      expect(error).toMatchObject({ code: "NATS_STREAM_NOT_FOUND", stream: names.stream });
      expect((error as Error).message).toContain(`no stream "${names.stream}"`);
      expect((error as Error).message).not.toMatch(/leader|quorum|election/);
      // Asked once, refused at once: the publish was not retried toward the deadline.
      expect(transport.publishRetries).toBe(0);
      // A batch is refused the same way (each envelope does not wait out the deadline).
      await expect(
        transport.publish(
          Array.from({ length: 3 }, () => createEnvelope({ type: "JOB", source: "t", data: {} })),
        ),
      ).rejects.toBeInstanceOf(NatsStreamNotFoundError);
      expect(transport.publishRetries).toBe(0);
    } finally {
      await transport.close();
      await deleteStream(NATS_URL, names.stream);
    }
  });

  it("rejects at once with NatsStreamConfigError naming the stream, its subjects and the subject when the stream's subjects no longer cover it", async () => {
    const names = uniqueNames("unserved");
    const transport = natsTransport({
      servers: NATS_URL,
      ...names,
      // Long enough that retrying toward it (the old behaviour) would show in publishRetries.
      publishDeadlineMs: 3_000,
    });
    const nc = await connect({ servers: NATS_URL });
    try {
      await transport.ready();
      // Someone edits the stream's subjects: it exists, but no longer stores the transport's
      // subjects. Nobody answers them, and waiting for a leader would not change that.
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(names.stream);
      const edited = [`${names.prefix}_other.>`, `${names.prefix}.*.x`];
      await jsm.streams.update(names.stream, { ...info.config, subjects: edited });
      const error = await transport
        .publish([createEnvelope({ type: "JOB", source: "test", data: {} })])
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(NatsStreamConfigError);
      expect(error).toMatchObject({
        code: "NATS_STREAM_CONFLICT",
        stream: names.stream,
        subjects: edited,
        subject: transport.subjectOf("JOB"),
      });
      const message = (error as Error).message;
      expect(message).toContain(names.stream);
      expect(message).toContain(transport.subjectOf("JOB"));
      for (const subject of edited) expect(message).toContain(subject);
      expect(message).not.toMatch(/leader|quorum|election/);
      // Asked once, refused at once: not retried toward the deadline.
      expect(transport.publishRetries).toBe(0);
      // A batch is refused the same way.
      await expect(
        transport.publish(
          Array.from({ length: 3 }, () => createEnvelope({ type: "JOB", source: "t", data: {} })),
        ),
      ).rejects.toBeInstanceOf(NatsStreamConfigError);
      expect(transport.publishRetries).toBe(0);

      // Subjects that cover it again (a wildcard over the type token): publishing works again.
      await jsm.streams.update(names.stream, {
        ...info.config,
        subjects: [...edited, `${names.prefix}.*`],
      });
      await expect(
        transport.publish([createEnvelope({ type: "JOB", source: "test", data: {} })]),
      ).resolves.toEqual({ published: 1, duplicates: 0 });
    } finally {
      await transport.close();
      await nc.close();
      await deleteStream(NATS_URL, names.stream);
    }
  });

  it("rejects a requeue to a stream deleted under the running transport with NatsStreamNotFoundError naming it", async () => {
    const names = uniqueNames("requeue-gone");
    const transport = natsTransport({ servers: NATS_URL, ...names });
    try {
      await transport.subscribe({ subscriber: "watcher", types: ["JOB"], handler: async () => {} });
      await deleteStream(NATS_URL, names.stream);
      const error = await transport
        .requeue("watcher", createEnvelope({ type: "JOB", source: "test", data: {} }))
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(NatsStreamNotFoundError);
      expect(error).toMatchObject({ code: "NATS_STREAM_NOT_FOUND", stream: names.stream });
      expect((error as Error).message).toContain(`no stream "${names.stream}", so requeue failed`);
    } finally {
      await transport.close();
      await deleteStream(NATS_URL, names.stream);
    }
  });

  it("says once per consumer that a running subscription's stream is gone, backs off, and resumes when it is re-created", async () => {
    const names = uniqueNames("gone");
    const lines: { level: string; message: string; fields: unknown }[] = [];
    const t = natsTransport({
      servers: NATS_URL,
      ...names,
      // A pull nobody answers is given up after its expiry (+2 s): the pace of the checks.
      pullExpiresMs: 1_000,
      logger: capturingLogger(lines),
    });
    const got: unknown[] = [];
    try {
      await t.subscribe({
        subscriber: "watcher",
        types: ["JOB"],
        handler: async (d) => void got.push(d.envelope.data),
      });
      await deleteStream(NATS_URL, names.stream);
      const gone = () =>
        lines.filter((l) => l.message.includes(`stream ${names.stream} no longer exists`));
      const checks = () =>
        lines.filter((l) => l.message === "checking or re-creating the consumer failed");
      await eventually(() => gone().length === 2, "word that the stream is gone", 15_000);
      // Said clearly, at warn, once per consumer (JOB and the replay consumer)...
      expect(gone().map((l) => l.level)).toEqual(["warn", "warn"]);
      // ...and not again on the next rounds of checking.
      await eventually(() => checks().length >= 2, "a second round of checks", 15_000);
      expect(gone()).toHaveLength(2);

      // Someone re-creates the stream (a transport creates it when it starts): pulling resumes.
      const creator = natsTransport({ servers: NATS_URL, ...names });
      try {
        await creator.ready();
        await eventually(
          async () => {
            await creator.publish([createEnvelope({ type: "JOB", source: "t", data: { n: 1 } })]);
            return got.length > 0;
          },
          "a delivery once the stream is back",
          20_000,
        );
      } finally {
        await creator.close();
      }
      expect(lines.some((l) => l.message.includes(`stream ${names.stream} is back`))).toBe(true);
    } finally {
      await t.close();
      await deleteStream(NATS_URL, names.stream);
    }
  }, 45_000);
});
