import { afterEach, describe, expect, it } from "vitest";
import { MemoryTransport } from "@switchyard/transport";
import { createRouter, type Router } from "./router";
import type { Transport, TransportSubscribeOptions } from "@switchyard/transport";
import { delay, testCatalog, type TestCatalog } from "./test/fixtures";

const open: Router<TestCatalog>[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.shutdown({ timeoutMs: 100 })));
});

/**
 * The memory transport, but `subscribe()` becomes active only `ms` later, as a NATS consumer
 * created asynchronously does: an event published in between is not delivered to it.
 */
function lateSubscribing(ms: number, fail?: Error): Transport {
  const inner = new MemoryTransport();
  return {
    name: "late",
    publish: (envelopes) => inner.publish(envelopes),
    subscribe: async (options: TransportSubscribeOptions) => {
      await delay(ms);
      if (fail) throw fail;
      return inner.subscribe(options);
    },
    stats: () => inner.stats(),
    close: () => inner.close(),
  };
}

function make(transport: Transport): Router<TestCatalog> {
  const router = createRouter({ catalog: testCatalog, transport });
  open.push(router);
  return router;
}

describe("readiness of waitFor and events on a transport that subscribes late", () => {
  it("waitFor(...).ready resolves once waiting took effect: an event published right after is seen", async () => {
    const router = make(lateSubscribing(30));
    const waiting = router.waitFor("MODEL_LOADED", { timeoutMs: 2000 });
    await waiting.ready;
    await router.publish("MODEL_LOADED", { config_key: "hex8_2p" });
    expect((await waiting).data.config_key).toBe("hex8_2p");
  });

  it("events(...).ready resolves once the stream sees new events: one published right after arrives", async () => {
    const router = make(lateSubscribing(30));
    const controller = new AbortController();
    const stream = router.events("MODEL_SAVED", { signal: controller.signal });
    await stream.ready;
    await router.publish("MODEL_SAVED", { config_key: "k", n: 7 });
    const first = await stream.next();
    controller.abort();
    expect(first).toMatchObject({ done: false, value: { type: "MODEL_SAVED", data: { n: 7 } } });
  });

  it("is ready at once for in-process types", async () => {
    const router = make(lateSubscribing(60_000));
    const waiting = router.waitFor("JOB_STARTED", { timeoutMs: 2000 });
    await waiting.ready;
    await router.publish("JOB_STARTED", { n: 1 });
    expect((await waiting).data.n).toBe(1);
  });

  it("rejects ready and the wait when the transport subscription fails to start", async () => {
    const router = make(lateSubscribing(1, new Error("consumer limit reached")));
    const waiting = router.waitFor("MODEL_LOADED", { timeoutMs: 5000 });
    await expect(waiting.ready).rejects.toThrow("consumer limit reached");
    await expect(waiting).rejects.toThrow("consumer limit reached");
  });

  it("ends an event stream with the error when its transport subscription fails to start", async () => {
    const router = make(lateSubscribing(1, new Error("consumer limit reached")));
    const stream = router.events("MODEL_SAVED");
    await expect(stream.ready).rejects.toThrow("consumer limit reached");
    await expect(stream.next()).rejects.toThrow("consumer limit reached");
    await expect(stream.next()).resolves.toMatchObject({ done: true });
  });
});
