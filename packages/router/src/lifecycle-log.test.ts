import { MemoryTransport } from "@switchyard/transport";
import { describe, expect, it } from "vitest";
import { createRouter } from "./router";
import { eventually, memoryLogger, testCatalog } from "./test/fixtures";

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
    await router.shutdown();
  });
});
