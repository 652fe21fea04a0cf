import { JetStreamApiError } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";
import { SwitchyardError, createEnvelope } from "@switchyard/event-schema";
import { describe, expect, it } from "vitest";
import {
  NatsClusterUnavailableError,
  NatsOptionsError,
  NatsPublishError,
  NatsPublishUnavailableError,
  defaultNatsTransportOptions,
  natsTransport,
} from "./index";
import { isApiUnavailable, isPublishUnavailable } from "./errors";
import { NATS_URL, deleteStream, describeIf, natsAvailable, uniqueNames } from "./test/nats";

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

describeIf(await natsAvailable(), `publishing to a stream nobody serves (${NATS_URL})`, {}, () => {
  it("retries until publishDeadlineMs, then rejects with NatsPublishUnavailableError instead of claiming JetStream is off", async () => {
    const names = uniqueNames("unserved");
    const transport = natsTransport({ servers: NATS_URL, ...names, publishDeadlineMs: 600 });
    try {
      await transport.ready();
      // The stream goes away under a running transport: nobody answers its subjects any more.
      await deleteStream(NATS_URL, names.stream);
      const started = Date.now();
      const error = await transport
        .publish([createEnvelope({ type: "JOB", source: "test", data: {} })])
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(NatsPublishUnavailableError);
      expect(error).toMatchObject({ code: "NATS_PUBLISH_UNAVAILABLE", retryable: true });
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      expect(transport.publishRetries).toBeGreaterThan(0);
    } finally {
      await transport.close();
      await deleteStream(NATS_URL, names.stream);
    }
  });
});
