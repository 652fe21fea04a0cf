import * as api from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UnrecoverableError } from "@switchyard/transport";
import type { OtelSpan, OtelTracer } from "./middleware/open-telemetry";
import { createRouter } from "./router";
import { testCatalog } from "./test/fixtures";

// What an SDK would record: enough to check names, parents, attributes, status and ending.
interface Recorded {
  name: string;
  kind: number | undefined;
  attributes: Record<string, unknown>;
  parent: api.SpanContext | undefined;
  context: api.SpanContext;
  status?: { code: number; message?: string };
  exceptions: unknown[];
  ended: boolean;
}
const spans: Recorded[] = [];
let nextSpan = 1;
const tracer: OtelTracer = {
  startActiveSpan(name, options, context, fn) {
    const parent = api.trace.getSpanContext(context as api.Context);
    const own: api.SpanContext = {
      traceId: parent?.traceId ?? "1".repeat(32),
      spanId: (nextSpan++).toString(16).padStart(16, "0"),
      traceFlags: 1,
    };
    const record: Recorded = {
      name,
      kind: options.kind,
      attributes: { ...options.attributes },
      parent,
      context: own,
      exceptions: [],
      ended: false,
    };
    spans.push(record);
    const span: OtelSpan = {
      setAttribute: (k, v) => void (record.attributes[k] = v),
      recordException: (e) => void record.exceptions.push(e),
      setStatus: (s) => void (record.status = s),
      end: () => void (record.ended = true),
    };
    return fn(span) as never;
  },
};

// A synchronous context manager: enough for `context.with(...)` around a publish call.
const stack: api.Context[] = [];
const manager: api.ContextManager = {
  active: () => stack.at(-1) ?? api.ROOT_CONTEXT,
  with: (ctx, fn, thisArg, ...args) => {
    stack.push(ctx);
    try {
      return fn.call(thisArg, ...args);
    } finally {
      stack.pop();
    }
  },
  bind: (_ctx, target) => target,
  enable: () => manager,
  disable: () => manager,
};
beforeAll(() => void api.context.setGlobalContextManager(manager));
afterAll(() => api.context.disable());

describe("OpenTelemetry", () => {
  it("opens a consumer span per delivery, a child of the event's traceparent", async () => {
    spans.length = 0;
    const router = createRouter({ catalog: testCatalog, openTelemetry: { api, tracer } });
    router.subscribe("JOB_STARTED", () => {}, { name: "worker" });
    const sent = await router.publish(
      "JOB_STARTED",
      { n: 1 },
      { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
    );
    await router.drain();
    expect(spans).toHaveLength(1);
    expect(spans[0]).toMatchObject({
      name: "process JOB_STARTED",
      kind: api.SpanKind.CONSUMER,
      ended: true,
      parent: {
        traceId: "0af7651916cd43dd8448eb211c80319c",
        spanId: "b7ad6b7169203331",
        isRemote: true,
      },
      attributes: {
        "messaging.system": "switchyard",
        "messaging.destination.name": "JOB_STARTED",
        "messaging.message.id": sent.id,
        "messaging.consumer.group.name": "worker",
        "switchyard.outcome": "ok",
        "switchyard.attempt": 1,
      },
    });
    await router.shutdown();
  });

  it("records a failing handler's exception and error status", async () => {
    spans.length = 0;
    const router = createRouter({ catalog: testCatalog, openTelemetry: { api, tracer } });
    router.subscribe("JOB_STARTED", () => {
      throw new UnrecoverableError("bad job");
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    expect(spans[0]).toMatchObject({
      status: { code: api.SpanStatusCode.ERROR, message: "bad job" },
      ended: true,
    });
    expect(spans[0]!.exceptions).toEqual([expect.any(UnrecoverableError)]);
    await router.shutdown();
  });

  it("stamps the active span's traceparent on events published without one", async () => {
    const router = createRouter({ catalog: testCatalog, openTelemetry: { api, tracer } });
    const active = api.trace.setSpanContext(api.ROOT_CONTEXT, {
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      traceFlags: 1,
    });
    const published = api.context.with(active, () => router.publish("JOB_STARTED", { n: 1 }));
    expect((await published).traceparent).toBe(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    // No active span: a new trace, not the last one.
    const outside = (await router.publish("JOB_STARTED", { n: 2 })).traceparent;
    expect(outside).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(outside).not.toContain("4bf92f3577b34da6a3ce929d0e0e4736");
    await router.shutdown();
  });
});
