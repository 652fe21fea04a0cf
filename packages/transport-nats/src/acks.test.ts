import { DiscardPolicy, RetentionPolicy, StorageType, jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, connect, headers, nanos } from "@nats-io/transport-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { AckWaiter } from "./acks";
import { isPublishUnavailable } from "./errors";
import { NATS_URL, deleteStream, describeIf, natsAvailable, uniqueNames } from "./test/nats";

const encoder = new TextEncoder();
const withId = (id: string) => {
  const h = headers();
  h.set("Nats-Msg-Id", id);
  return h;
};

describeIf(await natsAvailable(), "AckWaiter (publish and wait for the stream's ack)", {}, () => {
  const { stream, prefix } = uniqueNames("acks");
  let nc: NatsConnection;

  beforeAll(async () => {
    nc = await connect({ servers: NATS_URL });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: stream,
      subjects: [`${prefix}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.Memory,
      duplicate_window: nanos(60_000),
      max_msgs: 3,
      discard: DiscardPolicy.New,
    });
  });

  afterAll(async () => {
    await nc.close();
    await deleteStream(NATS_URL, stream);
  });

  it("resolves with the stream's ack, and tells a repeated Nats-Msg-Id as a duplicate", async () => {
    const acks = new AckWaiter(nc, undefined);
    const [a, b] = await Promise.all([
      acks.publish(`${prefix}.A`, encoder.encode("1"), withId("a"), 2_000),
      acks.publish(`${prefix}.A`, encoder.encode("2"), withId("b"), 2_000),
    ]);
    expect(a).toEqual({ stream, seq: 1, duplicate: false });
    expect(b).toEqual({ stream, seq: 2, duplicate: false });
    expect(await acks.publish(`${prefix}.A`, encoder.encode("1"), withId("a"), 2_000)).toEqual({
      stream,
      seq: 1,
      duplicate: true,
    });
    expect(acks.waiting).toBe(0);
    acks.close();
  });

  it("rejects with the stream's API error (a full stream that discards new messages)", async () => {
    const acks = new AckWaiter(nc, undefined);
    await acks.publish(`${prefix}.A`, encoder.encode("3"), withId("c"), 2_000);
    const error = await acks
      .publish(`${prefix}.A`, encoder.encode("4"), withId("d"), 2_000)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "JetStreamApiError", code: 10077 });
    expect(isPublishUnavailable(error)).toBe(false);
    acks.close();
  });

  it("rejects a subject no stream takes as no responders, which publish retries", async () => {
    const acks = new AckWaiter(nc, undefined);
    const error = await acks
      .publish("nobody.listens.here", encoder.encode("x"), withId("e"), 2_000)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "JetStreamNotEnabled" });
    expect(isPublishUnavailable(error)).toBe(true);
    acks.close();
  });

  it("rejects with TimeoutError when nobody answers in time, and forgets the wait", async () => {
    // A core subscriber that never answers: the server has a responder, so no 503.
    const silent = nc.subscribe("silent.subject");
    const acks = new AckWaiter(nc, undefined);
    const started = Date.now();
    const error = await acks
      .publish("silent.subject", encoder.encode("x"), withId("f"), 100)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "TimeoutError" });
    expect(isPublishUnavailable(error)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(acks.waiting).toBe(0);
    silent.unsubscribe();
    acks.close();
  });

  it("rejects what waits when the connection closes, and anything published afterwards", async () => {
    const own = await connect({ servers: NATS_URL });
    const silent = own.subscribe("silent.closing");
    const acks = new AckWaiter(own, undefined);
    const pending = acks
      .publish("silent.closing", encoder.encode("x"), withId("g"), 10_000)
      .catch((e: unknown) => e);
    await own.flush();
    silent.unsubscribe();
    await own.close();
    expect(await pending).toMatchObject({ name: "ClosedConnectionError" });
    expect(
      await acks
        .publish(`${prefix}.A`, encoder.encode("y"), withId("h"), 1_000)
        .catch((e: unknown) => e),
    ).toMatchObject({ name: "ClosedConnectionError" });
  });
});
