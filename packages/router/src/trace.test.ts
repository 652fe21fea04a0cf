import { describe, expect, it } from "vitest";
import { createRouter } from "./router";
import { memoryLogger, testCatalog } from "./test/fixtures";
import { spanContextOf } from "./middleware/open-telemetry";
import { traceIdOf } from "./trace";

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/;

describe("trace context without OpenTelemetry", () => {
  it("stamps a new trace on every event published without trace context", async () => {
    const router = createRouter({ catalog: testCatalog });
    const events = await Promise.all(
      Array.from({ length: 500 }, (_, n) => router.publish("JOB_STARTED", { n })),
    );
    for (const event of events) expect(event.traceparent).toMatch(TRACEPARENT);
    expect(new Set(events.map((e) => traceIdOf(e.traceparent))).size).toBe(500);
    await router.shutdown();
  });

  it("continues the causing event's trace through ctx.publish, with a new span id", async () => {
    const router = createRouter({ catalog: testCatalog });
    router.subscribe("JOB_STARTED", (event, ctx) => ctx.publish("JOB_FINISHED", event.data));
    const finished = router.waitFor("JOB_FINISHED", { timeoutMs: 2_000 });
    const started = await router.publish("JOB_STARTED", { n: 1 });
    const child = await finished;
    expect(traceIdOf(child.traceparent)).toBe(traceIdOf(started.traceparent));
    expect(child.traceparent).not.toBe(started.traceparent);
    await router.shutdown();
  });

  it("gives handlers the trace id as ctx.traceId and on every ctx.logger line", async () => {
    const logger = memoryLogger();
    const router = createRouter({ catalog: testCatalog, logger });
    let seen: string | undefined;
    router.subscribe("JOB_STARTED", (_event, ctx) => {
      seen = ctx.traceId;
      ctx.logger.info({ step: 1 }, "handling");
    });
    const event = await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    expect(seen).toBe(traceIdOf(event.traceparent));
    const line = logger.lines.find((l) => l.msg === "handling");
    expect(line?.obj).toMatchObject({ traceId: seen, eventId: event.id, step: 1 });
    await router.shutdown();
  });

  it("keeps a traceparent the publisher gives", async () => {
    const router = createRouter({ catalog: testCatalog });
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    expect((await router.publish("JOB_STARTED", { n: 1 }, { traceparent })).traceparent).toBe(
      traceparent,
    );
    await router.shutdown();
  });

  it("carries the causing event's tracestate with its trace", async () => {
    const router = createRouter({ catalog: testCatalog });
    const parent = await router.publish("JOB_STARTED", { n: 1 }, { tracestate: "vendor=abc" });
    expect(parent.tracestate).toBe("vendor=abc");
    const child = await router.publish("JOB_FINISHED", { n: 1 }, { causedBy: parent });
    expect(child.tracestate).toBe("vendor=abc");
    expect(traceIdOf(child.traceparent)).toBe(traceIdOf(parent.traceparent));
    const fresh = await router.publish("JOB_STARTED", { n: 2 });
    expect(fresh.tracestate).toBeUndefined();
    await router.shutdown();
  });
});

describe("spanContextOf", () => {
  it("parses each traceparent it is given, also alternating and repeated ones", () => {
    const a = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const b = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    for (const tp of [a, a, b, a, "not-a-traceparent", b, b]) {
      const sc = spanContextOf(tp);
      if (tp === "not-a-traceparent") expect(sc).toBeUndefined();
      else
        expect(sc).toEqual({
          traceId: tp.slice(3, 35),
          spanId: tp.slice(36, 52),
          traceFlags: parseInt(tp.slice(53), 16),
          isRemote: true,
        });
    }
    expect(spanContextOf(undefined)).toBeUndefined();
  });
});
