import { afterEach, describe, expect, it } from "vitest";
import { UnsupportedOperationError } from "@switchyard/transport";
import { MemoryTransport } from "@switchyard/transport";
import { type RouterOptions, createRouter, type Router } from "./router";
import type { Transport } from "@switchyard/transport";
import { eventually, memoryLogger, testCatalog, type TestCatalog } from "./test/fixtures";

const open: Router<TestCatalog>[] = [];
function make(options: Partial<RouterOptions<TestCatalog>> = {}): Router<TestCatalog> {
  const router = createRouter({
    catalog: testCatalog,
    transport: new MemoryTransport(),
    ...options,
  });
  open.push(router);
  return router;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.shutdown({ timeoutMs: 100 })));
});

/** Lets every callback already due run (microtasks, then one turn of the event loop). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("declaring subscribers before anything publishes", () => {
  it("keeps the events published before the subscriber first subscribed", async () => {
    const router = make();
    await router.declareSubscriber("evaluator", "MODEL_SAVED");
    await router.publish("MODEL_SAVED", { config_key: "k", n: 1 });
    await router.publish("MODEL_SAVED", { config_key: "k", n: 2 });
    const seen: number[] = [];
    await router.subscribe("MODEL_SAVED", (e) => void seen.push(e.data.n), { name: "evaluator" })
      .ready;
    await eventually(() => seen.length === 2);
    expect(seen).toEqual([1, 2]);
  });

  it("declares only the durable types a pattern matches", async () => {
    const transport = new MemoryTransport();
    const router = make({ transport });
    await router.declareSubscriber("everything", "*");
    await expect(transport.hasSubscribers("MODEL_LOADED")).resolves.toBe(true);
    await expect(transport.hasSubscribers("JOB_STARTED")).resolves.toBe(false);
  });

  it("rejects a pattern that matches no durable type", async () => {
    const router = make();
    await expect(router.declareSubscriber("jobs", "JOB_STARTED")).rejects.toThrow(
      /matches no durable type/,
    );
  });

  it("rejects with UnsupportedOperationError on a transport that cannot register", async () => {
    const inner = new MemoryTransport();
    const minimal: Transport = {
      name: "minimal",
      publish: (envelopes) => inner.publish(envelopes),
      subscribe: (options) => inner.subscribe(options),
      stats: () => inner.stats(),
      close: () => inner.close(),
    };
    const router = make({ transport: minimal });
    await expect(router.declareSubscriber("evaluator", "MODEL_SAVED")).rejects.toBeInstanceOf(
      UnsupportedOperationError,
    );
  });
});

describe("publishing a durable type nobody subscribed to", () => {
  const warnings = (logger: ReturnType<typeof memoryLogger>) =>
    logger.lines.filter((l) => l.level === "warn" && /no subscriber is registered/.test(l.msg!));

  it("logs a warning once per type", async () => {
    const logger = memoryLogger();
    const router = make({ logger });
    await router.publish("MODEL_SAVED", { config_key: "k", n: 1 });
    await router.publish("MODEL_SAVED", { config_key: "k", n: 2 });
    await router.publishBatch([{ type: "MODEL_LOADED", data: { config_key: "k" } }]);
    await eventually(() => warnings(logger).length === 2);
    await router.publish("MODEL_SAVED", { config_key: "k", n: 3 });
    await settle();
    expect(warnings(logger).map((l) => (l.obj as { eventType: string }).eventType)).toEqual([
      "MODEL_SAVED",
      "MODEL_LOADED",
    ]);
    expect(warnings(logger)[0]!.msg).toContain("declareSubscriber");
  });

  it("does not warn when a subscriber is registered, declared or subscribed", async () => {
    const logger = memoryLogger();
    const router = make({ logger });
    await router.declareSubscriber("evaluator", "MODEL_SAVED");
    await router.subscribe("MODEL_LOADED", () => {}, { name: "loader" }).ready;
    await router.publish("MODEL_SAVED", { config_key: "k", n: 1 });
    await router.publish("MODEL_LOADED", { config_key: "k" });
    await settle();
    await settle();
    expect(warnings(logger)).toEqual([]);
  });

  it("does not warn for in-process types", async () => {
    const logger = memoryLogger();
    const router = make({ logger });
    await router.publish("JOB_STARTED", { n: 1 });
    await settle();
    expect(warnings(logger)).toEqual([]);
  });
});
