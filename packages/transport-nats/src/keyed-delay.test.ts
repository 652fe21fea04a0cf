// The retry delay a NATS subscription applies is the one outcome policy's, with the delivery's
// keyed jitter: the same number the router's trace states (`switchyard.retry.delay_ms`).
import { createEnvelope } from "@switchyard/event-schema";
import { type Driver, decideOutcome, openDriver } from "@switchyard/transport";
import { afterEach, beforeEach, expect, it } from "vitest";
import { natsDriver } from "./index";
import {
  NATS_URL,
  deleteStreams,
  describeIf,
  eventually,
  natsAvailable,
  uniqueNames,
} from "./test/nats";

describeIf(await natsAvailable(), "NATS retry delay", {}, () => {
  let names: { stream: string; prefix: string };
  let driver: Driver | undefined;
  beforeEach(() => {
    names = uniqueNames("keyed");
  });
  afterEach(async () => {
    await driver?.close();
    await deleteStreams(NATS_URL, names.stream);
  });

  it("is decideOutcome's delay keyed by the envelope id (what a trace reports)", async () => {
    driver = await openDriver(`${NATS_URL}/${names.stream}?prefix=${names.prefix}`, {
      drivers: [natsDriver],
    });
    const transport = driver.transport();
    const backoff = { initialMs: 40_000, maxMs: 120_000, jitter: 0.5 };
    let failedAt = 0;
    await transport.subscribe({
      subscriber: "keyed",
      types: ["KEYED"],
      maxAttempts: 5,
      backoff,
      handler: () => {
        failedAt = Date.now();
        throw new Error("once");
      },
    });
    const envelope = createEnvelope({ type: "KEYED", source: "test", data: { n: 1 } });
    await transport.publish([envelope]);
    const inspector = driver.inspector();
    let availableAt: string | undefined;
    await eventually(
      async () => {
        const [delivery] = await inspector.deliveries(envelope.id);
        availableAt = delivery?.state === "retrying" ? delivery.availableAt : undefined;
        return availableAt !== undefined;
      },
      "the delivery retrying",
      15_000,
    );
    const predicted = decideOutcome(
      { failed: true, error: new Error("once") },
      1,
      { maxAttempts: 5, backoff },
      envelope.id,
    );
    expect(predicted.kind).toBe("retry");
    const applied = Date.parse(availableAt!) - failedAt;
    // Unkeyed jitter would land anywhere in 20–60 s; keyed, it is the predicted delay (± the time
    // between the handler's throw and the journal entry).
    expect(Math.abs(applied - (predicted as { delayMs: number }).delayMs)).toBeLessThan(1_500);
  }, 30_000);
});
