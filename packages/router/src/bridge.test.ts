import { createEnvelope } from "@switchyard/event-schema";
import { afterEach, describe, expect, it, vi } from "vitest";
import { UnrecoverableError } from "@switchyard/transport";
import { MemoryTransport } from "@switchyard/transport";
import { createRouter, type Router } from "./router";
import type { DeadLetterRecord } from "@switchyard/transport";
import { eventually, testCatalog, type TestCatalog } from "./test/fixtures";

const open: Router<TestCatalog>[] = [];
function pair(transport = new MemoryTransport()) {
  const make = () => {
    const r = createRouter({
      catalog: testCatalog,
      transport,
      closeTransport: false,
      subscriptionDefaults: { backoff: { initialMs: 5, jitter: 0 } },
    });
    open.push(r);
    return r;
  };
  return { transport, a: make(), b: make() };
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.shutdown({ timeoutMs: 100 })));
});

describe("bridging durable event types through a transport", () => {
  it("sends durable types through the transport and keeps the rest in process", async () => {
    const { transport, a, b } = pair();
    const publish = vi.spyOn(transport, "publish");
    const gotOnB: string[] = [];
    await b.subscribe(["MODEL_SAVED", "JOB_STARTED"], (e) => void gotOnB.push(e.type), {
      name: "b-listener",
    }).ready;
    // JOB_STARTED first: had it crossed to b, it would arrive there before MODEL_SAVED.
    await a.publish("JOB_STARTED", { n: 1 });
    await a.publish("MODEL_SAVED", { config_key: "hex8_2p", n: 1 });
    await eventually(() => gotOnB.includes("MODEL_SAVED"));
    expect(gotOnB).toEqual(["MODEL_SAVED"]); // JOB_STARTED stayed in router a
    expect(publish).toHaveBeenCalledTimes(1);
    expect(publish.mock.calls[0]![0].map((e) => e.type)).toEqual(["MODEL_SAVED"]);
    expect(a.getStats()).toMatchObject({ published: 2, publishedDurable: 1 });
  });

  it("needs a stable name for subscriptions that receive durable types", () => {
    const { a } = pair();
    expect(() => a.subscribe("MODEL_SAVED", () => {})).toThrow(/Pass a stable \{ name \}/);
    expect(() => a.subscribe("JOB_STARTED", () => {})).not.toThrow();
  });

  it("fans out to every subscriber name and shares work within one name", async () => {
    const { a, b } = pair();
    const seen: Record<string, number[]> = { "a:workers": [], "b:workers": [], "a:auditor": [] };
    await Promise.all([
      a.subscribe("MODEL_SAVED", (e) => void seen["a:workers"]!.push(e.data.n), { name: "workers" })
        .ready,
      b.subscribe("MODEL_SAVED", (e) => void seen["b:workers"]!.push(e.data.n), { name: "workers" })
        .ready,
      a.subscribe("MODEL_SAVED", (e) => void seen["a:auditor"]!.push(e.data.n), { name: "auditor" })
        .ready,
    ]);
    for (let n = 0; n < 20; n++) await a.publish("MODEL_SAVED", { config_key: "k", n });
    await eventually(
      () =>
        seen["a:auditor"]!.length === 20 &&
        seen["a:workers"]!.length + seen["b:workers"]!.length === 20,
    );
    expect(seen["a:auditor"]).toEqual([...Array(20).keys()]);
    expect([...seen["a:workers"]!, ...seen["b:workers"]!].sort((x, y) => x - y)).toEqual([
      ...Array(20).keys(),
    ]);
  });

  it("lets the transport retry a failed handler, with the attempt number in the context", async () => {
    const { a } = pair();
    const attempts: number[] = [];
    await a.subscribe(
      "MODEL_SAVED",
      (_e, ctx) => {
        attempts.push(ctx.attempt);
        if (ctx.attempt < 3) throw new Error("transient");
      },
      { name: "flaky" },
    ).ready;
    await a.publish("MODEL_SAVED", { config_key: "k", n: 1 });
    await eventually(() => attempts.length === 3);
    expect(attempts).toEqual([1, 2, 3]);
  });

  it("does not stack router retries on top of transport retries", async () => {
    const transport = new MemoryTransport();
    const r = createRouter({
      catalog: testCatalog,
      transport,
      retry: { attempts: 3, backoff: { initialMs: 1 } },
      subscriptionDefaults: { maxAttempts: 2, backoff: { initialMs: 1 } },
    });
    open.push(r);
    const handler = vi.fn(() => {
      throw new Error("always");
    });
    await r.subscribe("MODEL_SAVED", handler, { name: "always-fails" }).ready;
    await r.publish("MODEL_SAVED", { config_key: "k", n: 1 });
    await eventually(() => transport.deadLetters.length === 1);
    expect(handler).toHaveBeenCalledTimes(2); // maxAttempts, not 2 × 3
    expect(transport.deadLetters[0]).toMatchObject({
      reason: "max_attempts",
      attempts: 2,
      subscriber: "always-fails",
    });
  });

  it("dead-letters an UnrecoverableError at once through the router's sink", async () => {
    const records: DeadLetterRecord[] = [];
    const transport = new MemoryTransport();
    const r = createRouter({
      catalog: testCatalog,
      transport,
      deadLetter: { deadLetter: (rec) => void records.push(rec) },
    });
    open.push(r);
    await r.subscribe(
      "MODEL_SAVED",
      () => {
        throw new UnrecoverableError("model file is corrupt");
      },
      { name: "loader" },
    ).ready;
    const sent = await r.publish(
      "MODEL_SAVED",
      { config_key: "k", n: 1 },
      { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
    );
    await eventually(() => records.length === 1);
    expect(records[0]).toMatchObject({
      reason: "unrecoverable",
      attempts: 1,
      origin: "memory",
      envelope: { id: sent.id, traceparent: sent.traceparent, data: sent.data },
      error: { name: "UnrecoverableError", message: "model file is corrupt" },
    });
  });

  it("validates payloads arriving from other processes and dead-letters bad ones", async () => {
    const { transport, a } = pair();
    const handler = vi.fn();
    await a.subscribe("MODEL_SAVED", handler, { name: "strict" }).ready;
    // Another program wrote an event that breaks the contract.
    await transport.publish([
      createEnvelope({ type: "MODEL_SAVED", source: "legacy", data: { config_key: 42 } }),
    ]);
    await eventually(() => transport.deadLetters.length === 1);
    expect(handler).not.toHaveBeenCalled();
    expect(transport.deadLetters[0]).toMatchObject({ reason: "invalid_payload", attempts: 1 });
    expect(transport.deadLetters[0]!.error.message).toContain("config_key");
  });

  it("dedupes a re-published event id at the transport", async () => {
    const { a } = pair();
    const seen: string[] = [];
    await a.subscribe("MODEL_SAVED", (e) => void seen.push(e.id), { name: "once" }).ready;
    await a.publish("MODEL_SAVED", { config_key: "k", n: 1 }, { id: "evt-1" });
    await a.publish("MODEL_SAVED", { config_key: "k", n: 1 }, { id: "evt-1" });
    // A later event: deliveries start in publish order, so a second evt-1 would come before it.
    await a.publish("MODEL_SAVED", { config_key: "k", n: 2 }, { id: "evt-2" });
    await eventually(() => seen.includes("evt-2"));
    expect(seen).toEqual(["evt-1", "evt-2"]);
  });

  it("waits for durable events through an ephemeral subscriber that leaves no state behind", async () => {
    const { transport, a, b } = pair();
    const waiting = b.waitFor("MODEL_LOADED", { timeoutMs: 2000 });
    await waiting.ready;
    await a.publish("MODEL_LOADED", { config_key: "hex8_2p" });
    expect((await waiting).data.config_key).toBe("hex8_2p");
    // Unsubscribing closes the transport subscription asynchronously; then nothing is left.
    await eventually(async () => (await transport.stats()).subscribers.length === 0);
  });

  it("reports transport subscriptions in listSubscriptions", async () => {
    const { a } = pair();
    await a.subscribe("*", () => {}, { name: "everything" }).ready;
    expect(a.listSubscriptions()[0]).toMatchObject({
      name: "everything",
      durableTypes: ["MODEL_SAVED", "MODEL_LOADED"],
      transport: "active",
    });
  });

  it("times out a hanging transport delivery so the transport retries it", async () => {
    const { a } = pair();
    const attempts: number[] = [];
    await a.subscribe(
      "MODEL_SAVED",
      (_e, ctx) => {
        attempts.push(ctx.attempt);
        // The first attempt never settles: only the timeout can end it.
        return ctx.attempt === 1 ? new Promise<void>(() => {}) : undefined;
      },
      { name: "hangs-once", timeoutMs: 30 },
    ).ready;
    await a.publish("MODEL_SAVED", { config_key: "hex8_2p", n: 1 });
    await eventually(() => attempts.length === 2);
    expect(attempts).toEqual([1, 2]);
    await eventually(() => a.getStats().delivered === 1);
    expect(a.getStats().subscriptions[0]).toMatchObject({ timedOut: 1, retried: 1, inFlight: 0 });
  });

  it("extends a transport delivery's lease through ctx.extendLease; a local one's is a no-op", async () => {
    const transport = new MemoryTransport();
    const extended: (number | undefined)[] = [];
    const subscribe = transport.subscribe.bind(transport);
    vi.spyOn(transport, "subscribe").mockImplementation((options) =>
      subscribe({
        ...options,
        handler: (delivery) =>
          options.handler({
            ...delivery,
            extendLease: (ms) => {
              extended.push(ms);
              return delivery.extendLease(ms);
            },
          }),
      }),
    );
    const { a } = pair(transport);
    const done: string[] = [];
    await a.subscribe(
      ["MODEL_SAVED", "JOB_STARTED"],
      async (e, ctx) => {
        await ctx.extendLease(5_000);
        done.push(e.type);
      },
      { name: "long-running" },
    ).ready;
    await a.publish("JOB_STARTED", { n: 1 });
    await a.publish("MODEL_SAVED", { config_key: "hex8_2p", n: 1 });
    await eventually(() => done.length === 2);
    expect(extended).toEqual([5_000]); // the local JOB_STARTED has no lease to extend
  });
});
