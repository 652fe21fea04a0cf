// Envelopes at the server's max_payload: what counts against it is the message, headers included.
import { jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, connect } from "@nats-io/transport-node";
import { type Envelope, createEnvelope } from "@switchyard/event-schema";
import type { Logger } from "@switchyard/transport";
import { afterEach, beforeEach, expect, it } from "vitest";
import { NatsPayloadTooLargeError, type NatsTransport, natsTransport } from "./index";
import { envelopeJson, publishedBytes } from "./codec";
import {
  NATS_URL,
  deleteStreams,
  describeIf,
  eventually,
  natsAvailable,
  uniqueNames,
} from "./test/nats";

/** A JOB envelope whose JSON body is exactly `bytes` bytes long. */
function envelopeOfSize(bytes: number): Envelope {
  const bare = createEnvelope({ type: "JOB", source: "limit-test", data: { pad: "" } });
  const overhead = Buffer.byteLength(envelopeJson(bare));
  const envelope = { ...bare, data: { pad: "x".repeat(bytes - overhead) } };
  expect(Buffer.byteLength(envelopeJson(envelope))).toBe(bytes);
  return envelope;
}

describeIf(await natsAvailable(), "envelopes at the max_payload limit", {}, () => {
  let names: { stream: string; prefix: string };
  let admin: NatsConnection;
  let transport: NatsTransport;
  let maxPayload: number;

  beforeEach(async () => {
    names = uniqueNames("limit");
    admin = await connect({ servers: NATS_URL });
    maxPayload = admin.info?.max_payload ?? 1024 * 1024;
    transport = natsTransport({ servers: NATS_URL, ...names, publishDeadlineMs: 2_000 });
    await transport.ready();
  });
  afterEach(async () => {
    await transport.close();
    await admin.close();
    await deleteStreams(NATS_URL, names.stream);
  });

  const stored = async () =>
    (await (await jetstreamManager(admin)).streams.info(names.stream)).state.messages;

  it("refuses an envelope whose body fits but whose headers take it over max_payload, with NatsPayloadTooLargeError", async () => {
    for (const bytes of [maxPayload, maxPayload - 64]) {
      const error = await transport.publish([envelopeOfSize(bytes)]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NatsPayloadTooLargeError);
      expect((error as NatsPayloadTooLargeError).bytes).toBeGreaterThan(maxPayload);
      expect((error as NatsPayloadTooLargeError).maxBytes).toBe(maxPayload);
    }
    expect(await stored()).toBe(0);
  });

  it("stores nothing of a batch holding one envelope over the limit with its headers", async () => {
    const small = createEnvelope({ type: "JOB", source: "limit-test", data: { n: 1 } });
    await expect(
      transport.publish([small, envelopeOfSize(maxPayload - 64), small]),
    ).rejects.toBeInstanceOf(NatsPayloadTooLargeError);
    expect(await stored()).toBe(0);
  });

  it("stores and delivers whole an envelope that fits with its headers", async () => {
    const big = envelopeOfSize(maxPayload - 4_096);
    const got: Envelope[] = [];
    await transport.subscribe({
      subscriber: "big",
      types: ["JOB"],
      handler: async (d) => void got.push(d.envelope),
    });
    expect(await transport.publish([big])).toEqual({ published: 1, duplicates: 0 });
    await eventually(() => got.length === 1, "the delivery");
    expect(got[0]).toEqual(big);
  });

  it("stores an envelope whose message is exactly max_payload, and refuses one a byte larger", async () => {
    // The body size at which the message, headers included, is exactly max_payload.
    const probe = envelopeOfSize(maxPayload - 4_096);
    const headerBytes = publishedBytes(probe, maxPayload - 4_096) - (maxPayload - 4_096);
    const exact = envelopeOfSize(maxPayload - headerBytes);
    expect(await transport.publish([exact])).toEqual({ published: 1, duplicates: 0 });
    const over = envelopeOfSize(maxPayload - headerBytes + 1);
    await expect(transport.publish([over])).rejects.toBeInstanceOf(NatsPayloadTooLargeError);
    expect(await stored()).toBe(1);
  });

  // A copy on a subscriber's replay subject (requeue, hand-back on close) carries
  // `switchyard-replay` (and `switchyard-attempts`) instead of `Nats-Msg-Id`: with a long enough
  // subscriber name, an envelope that was published at the limit no longer fits.
  const subscriber = "an-evaluator-with-a-rather-long-subscriber-name";

  /** The largest envelope `publish` stores (its message exactly max_payload). */
  const largestPublishable = () => {
    const probe = envelopeOfSize(maxPayload - 4_096);
    const headerBytes = publishedBytes(probe, maxPayload - 4_096) - (maxPayload - 4_096);
    return envelopeOfSize(maxPayload - headerBytes);
  };

  it("refuses a requeue whose replay header takes the envelope over max_payload with NatsPayloadTooLargeError", async () => {
    await transport.register(subscriber, ["JOB"]);
    const exact = largestPublishable();
    expect(await transport.publish([exact])).toEqual({ published: 1, duplicates: 0 });
    const error = await transport.requeue(subscriber, exact).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NatsPayloadTooLargeError);
    expect((error as NatsPayloadTooLargeError).maxBytes).toBe(maxPayload);
    expect((error as NatsPayloadTooLargeError).bytes).toBe(
      publishedBytes(exact, Buffer.byteLength(envelopeJson(exact)), { subscriber }),
    );
    expect((error as NatsPayloadTooLargeError).bytes).toBeGreaterThan(maxPayload);
    expect(await stored()).toBe(1);
  });

  it("requeues an envelope whose copy, replay header included, is exactly max_payload", async () => {
    await transport.register(subscriber, ["JOB"]);
    const probe = envelopeOfSize(maxPayload - 4_096);
    const headerBytes =
      publishedBytes(probe, maxPayload - 4_096, { subscriber }) - (maxPayload - 4_096);
    const exact = envelopeOfSize(maxPayload - headerBytes);
    await transport.requeue(subscriber, exact);
    expect(await stored()).toBe(1);
    const over = envelopeOfSize(maxPayload - headerBytes + 1);
    await expect(transport.requeue(subscriber, over)).rejects.toBeInstanceOf(
      NatsPayloadTooLargeError,
    );
    expect(await stored()).toBe(1);
  });

  it("hands back with nak a delivery whose copy would exceed max_payload on close, and loses nothing", async () => {
    const warnings: string[] = [];
    const logger: Logger = {
      debug: () => {},
      info: () => {},
      warn: (_fields: unknown, message?: string) => void warnings.push(message ?? ""),
      error: () => {},
      child: () => logger,
    };
    const first = natsTransport({ servers: NATS_URL, ...names, drainTimeoutMs: 50, logger });
    const exact = largestPublishable();
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    await first.subscribe({
      subscriber,
      types: ["JOB"],
      handler: async (d) => {
        started();
        // Runs until close aborts it, so close hands the delivery back.
        await new Promise((resolve) => d.signal.addEventListener("abort", resolve));
        throw d.signal.reason;
      },
    });
    await transport.publish([exact]);
    await running;
    await first.close();
    expect(warnings.some((w) => w.includes("max_payload") && w.includes(exact.id))).toBe(true);

    // Not lost: the same subscriber gets it again, from the original message (a nak counts).
    const got: { id: string; attempt: number }[] = [];
    await transport.subscribe({
      subscriber,
      types: ["JOB"],
      handler: async (d) => void got.push({ id: d.envelope.id, attempt: d.attempt }),
    });
    await eventually(() => got.length === 1, "the handed-back delivery");
    expect(got).toEqual([{ id: exact.id, attempt: 2 }]);
  });
});
