import { MemoryTransport } from "@switchyard/transport";
import { describe, expect, it } from "vitest";
import { deadLetter } from "./middleware/dead-letter";
import { retry } from "./middleware/retry";
import { createRouter } from "./router";
import { traceIdOf } from "./trace";
import { delay, eventually, memoryLogger, testCatalog } from "./test/fixtures";

describe("lifecycle logs", () => {
  it("logs subscribed, published and handled at debug, with the trace id on the delivery's lines", async () => {
    const logger = memoryLogger();
    const router = createRouter({
      catalog: testCatalog,
      logger,
      transport: new MemoryTransport({ logger }),
    });
    router.subscribe("JOB_STARTED", () => {}, { name: "local" });
    router.subscribe("JOB_STARTED", async () => {}, { name: "local-async" }); // settles later
    router.subscribe("MODEL_SAVED", () => {}, { name: "durable" });
    const local = await router.publish("JOB_STARTED", { n: 1 });
    const durable = await router.publish("MODEL_SAVED", { config_key: "k", n: 1 });
    await eventually(() =>
      logger.lines.some((l) => l.msg === `handled MODEL_SAVED ${durable.id}: ok`),
    );
    await router.drain();
    const debug = logger.lines.filter((l) => l.level === "debug").map((l) => l.msg);
    expect(debug).toEqual(
      expect.arrayContaining([
        "subscribed local to JOB_STARTED",
        "subscribed durable to MODEL_SAVED",
        `publishing JOB_STARTED ${local.id}`,
        `publishing MODEL_SAVED ${durable.id}`,
        `handled JOB_STARTED ${local.id}: ok`,
        `handled MODEL_SAVED ${durable.id}: ok`,
        // The transport's side, written by every transport through logDelivery:
        `claimed MODEL_SAVED ${durable.id} for durable (attempt 1)`,
        `settled MODEL_SAVED ${durable.id} for durable: ack`,
      ]),
    );
    const handledLocally = logger.lines.filter(
      (l) => l.msg === `handled JOB_STARTED ${local.id}: ok`,
    );
    expect(handledLocally.map((l) => l.obj)).toEqual([
      expect.objectContaining({ origin: "local", attempt: 1, subscription: "local" }),
      expect.objectContaining({ origin: "local", attempt: 1, subscription: "local-async" }),
    ]);
    const handled = logger.lines.find((l) => l.msg === `handled MODEL_SAVED ${durable.id}: ok`);
    expect(handled?.obj).toMatchObject({
      origin: "transport",
      attempt: 1,
      subscription: "durable",
    });
    // Every line about a delivery, the router's and the transport's, carries its trace id.
    for (const event of [local, durable]) {
      const lines = logger.lines.filter(
        (l) => (l.obj as { eventId?: string }).eventId === event.id,
      );
      expect(lines.map((l) => l.msg)).toContain(`publishing ${event.type} ${event.id}`);
      expect(lines.map((l) => [l.msg, (l.obj as { traceId?: string }).traceId])).toEqual(
        lines.map((l) => [l.msg, traceIdOf(event.traceparent)]),
      );
    }
    await router.shutdown();
  });

  it("puts the trace id on every warn and error line about a delivery: slow handler, retry, transport retry, dead letter, failure", async () => {
    const logger = memoryLogger();
    const router = createRouter({
      catalog: testCatalog,
      logger,
      transport: new MemoryTransport(),
      slowHandlerMs: 20,
      subscriptionDefaults: { maxAttempts: 2, backoff: { initialMs: 1, maxMs: 1 } },
    });
    router.subscribe("JOB_FINISHED", () => delay(40), { name: "slow" });
    router.subscribe(
      "JOB_STARTED",
      () => {
        throw new Error("flaky");
      },
      { name: "flaky", middleware: [retry({ attempts: 2, backoff: { initialMs: 1, jitter: 0 } })] },
    );
    router.subscribe(
      "JOB_FAILED",
      () => {
        throw new Error("bad");
      },
      {
        name: "sinkless",
        middleware: [
          deadLetter({
            sink: {
              deadLetter: () => {
                throw new Error("sink down");
              },
            },
          }),
        ],
      },
    );
    router.subscribe(
      "MODEL_SAVED",
      () => {
        throw new Error("disk full");
      },
      { name: "saver" },
    );
    const events = [
      await router.publish("JOB_FINISHED", { n: 1 }),
      await router.publish("JOB_STARTED", { n: 2 }),
      await router.publish("JOB_FAILED", { n: 3, error: "x" }),
      await router.publish("MODEL_SAVED", { config_key: "k", n: 4 }),
    ];
    await eventually(() =>
      logger.lines.some((l) => l.msg?.includes("the transport dead-letters it")),
    );
    await router.drain();
    const about = (line: { obj: unknown }) =>
      events.find((e) => e.id === (line.obj as { eventId?: string }).eventId);
    const problems = logger.lines.filter((l) => l.level === "warn" || l.level === "error");
    expect(problems.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^handler slow took \d+ ms for JOB_FINISHED$/),
        "handler flaky failed on JOB_STARTED",
        "dead-letter sink failed for JOB_FAILED; the delivery is reported as failed",
        "handler sinkless failed on JOB_FAILED",
        "handler saver failed on MODEL_SAVED (attempt 1 of 2); the transport will retry it",
        "handler saver failed on MODEL_SAVED (attempt 2 of 2); the transport dead-letters it",
      ]),
    );
    const retrying = logger.lines.filter((l) => l.msg?.startsWith("retrying JOB_STARTED in flaky"));
    const publishing = logger.lines.filter((l) => l.msg?.startsWith("publishing "));
    expect(retrying).toHaveLength(1);
    expect(publishing).toHaveLength(4);
    for (const line of [...problems, ...retrying, ...publishing]) {
      const event = about(line);
      expect(event, line.msg).toBeDefined();
      expect((line.obj as { traceId?: string }).traceId, line.msg).toBe(
        traceIdOf(event!.traceparent),
      );
    }
    await router.shutdown();
  });
});
