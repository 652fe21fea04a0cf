// Spans and metrics recorded by the real OpenTelemetry SDK (in-memory exporter and reader),
// checked against the messaging semantic conventions the router states it follows.
import * as api from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { MemoryTransport, UnrecoverableError, decideOutcome } from "@switchyard/transport";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { dedup } from "./middleware/dedup";
import { retry } from "./middleware/retry";
import { createRouter } from "./router";
import { delay, eventually, testCatalog } from "./test/fixtures";

class TestReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer("test");
let reader: TestReader;
let meter: api.Meter;

beforeAll(() => {
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
});
afterAll(() => api.context.disable());
beforeEach(() => {
  exporter.reset();
  reader = new TestReader();
  meter = new MeterProvider({ readers: [reader] }).getMeter("test");
});

const spansNamed = (prefix: string): ReadableSpan[] =>
  exporter.getFinishedSpans().filter((s) => s.name.startsWith(prefix));

async function metric(name: string): Promise<{ value: unknown; attributes: api.Attributes }[]> {
  const { resourceMetrics } = await reader.collect();
  const found = resourceMetrics.scopeMetrics
    .flatMap((s) => s.metrics)
    .find((m) => m.descriptor.name === name);
  return (found?.dataPoints ?? []).map((p) => ({ value: p.value, attributes: p.attributes }));
}

const otel = () => ({ api, tracer, meter });

describe("OpenTelemetry (messaging semantic conventions v1.30.0)", () => {
  it("opens a send producer span per publish, and a process consumer span as its child", async () => {
    const router = createRouter({ catalog: testCatalog, openTelemetry: otel() });
    router.subscribe("JOB_STARTED", () => {}, { name: "worker" });
    const sent = await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    const [send] = spansNamed("send JOB_STARTED");
    const [process] = spansNamed("process JOB_STARTED");
    expect(send).toBeDefined();
    expect(process).toBeDefined();
    expect(send!.kind).toBe(api.SpanKind.PRODUCER);
    expect(send!.attributes).toMatchObject({
      "messaging.system": "switchyard",
      "messaging.operation.name": "send",
      "messaging.operation.type": "send",
      "messaging.destination.name": "JOB_STARTED",
      "messaging.message.id": sent.id,
      "messaging.message.body.size": Buffer.byteLength(JSON.stringify({ n: 1 })),
    });
    // The envelope carries the send span's context: consumers continue the trace.
    expect(sent.traceparent).toBe(
      `00-${send!.spanContext().traceId}-${send!.spanContext().spanId}-01`,
    );
    expect(process!.kind).toBe(api.SpanKind.CONSUMER);
    expect(process!.spanContext().traceId).toBe(send!.spanContext().traceId);
    expect(process!.parentSpanContext?.spanId).toBe(send!.spanContext().spanId);
    // A process span links to the creation context even when it is the parent (conventions: SHOULD).
    expect(process!.links.map((l) => l.context.spanId)).toEqual([send!.spanContext().spanId]);
    expect(process!.attributes).toMatchObject({
      "messaging.operation.name": "process",
      "messaging.operation.type": "process",
      "messaging.consumer.group.name": "worker",
      "messaging.message.id": sent.id,
      "switchyard.delivery.attempt": 1,
    });
    expect(process!.events.map((e) => [e.name, e.attributes])).toEqual([
      ["settle", { "messaging.operation.type": "settle", "switchyard.settle.outcome": "ack" }],
    ]);
    // Metric attributes carry the Required `messaging.operation.name`.
    const send_ = {
      "messaging.system": "switchyard",
      "messaging.operation.name": "send",
      "messaging.destination.name": "JOB_STARTED",
    };
    const process_ = {
      "messaging.system": "switchyard",
      "messaging.operation.name": "process",
      "messaging.destination.name": "JOB_STARTED",
      "messaging.consumer.group.name": "worker",
    };
    expect(await metric("messaging.client.sent.messages")).toEqual([
      { value: 1, attributes: send_ },
    ]);
    expect(await metric("messaging.client.consumed.messages")).toEqual([
      { value: 1, attributes: process_ },
    ]);
    expect((await metric("messaging.process.duration")).map((p) => p.attributes)).toEqual([
      process_,
    ]);
    expect((await metric("messaging.client.operation.duration")).map((p) => p.attributes)).toEqual([
      send_,
    ]);
    await router.shutdown();
  });

  it("buckets durations in seconds by the conventions' boundaries: 20 ms is not in the first bucket", async () => {
    const router = createRouter({ catalog: testCatalog, openTelemetry: otel() });
    router.subscribe("JOB_STARTED", () => delay(20), { name: "worker" });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    const boundaries = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
    type Histogram = { count: number; buckets: { boundaries: number[]; counts: number[] } };
    const [process] = await metric("messaging.process.duration");
    const histogram = process!.value as Histogram;
    expect(histogram.buckets.boundaries).toEqual(boundaries);
    expect(histogram.count).toBe(1);
    // 20 ms and more (timers run late, never early): past the 10 ms bound.
    expect(histogram.buckets.counts.slice(0, 2)).toEqual([0, 0]);
    const [send] = await metric("messaging.client.operation.duration");
    expect((send!.value as Histogram).buckets.boundaries).toEqual(boundaries);
    await router.shutdown();
  });

  it("counts deduplicated deliveries and handler timeouts", async () => {
    const router = createRouter({
      catalog: testCatalog,
      openTelemetry: otel(),
      middleware: [dedup({ key: (e) => String((e.data as { n: number }).n) })],
    });
    router.subscribe("JOB_STARTED", () => {}, { name: "worker" });
    router.subscribe(
      "JOB_FINISHED",
      (_e, ctx) => new Promise((r) => ctx.signal.addEventListener("abort", r)),
      {
        name: "slow",
        timeoutMs: 20,
      },
    );
    await router.publish("JOB_STARTED", { n: 1 });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.publish("JOB_FINISHED", { n: 9 });
    await router.drain();
    expect((await metric("switchyard.deliveries.deduplicated"))[0]?.value).toBe(1);
    expect((await metric("switchyard.handler.timeouts"))[0]?.value).toBe(1);
    await router.shutdown();
  });

  it("counts a delivery the handler marks as a duplicate, once, in the metric and the stats", async () => {
    const router = createRouter({ catalog: testCatalog, openTelemetry: otel() });
    router.subscribe(
      "JOB_STARTED",
      (event, ctx) => {
        if (event.data.n === 1) {
          ctx.markDeduplicated();
          ctx.markDeduplicated();
        }
      },
      { name: "worker" },
    );
    await router.publish("JOB_STARTED", { n: 1 });
    await router.publish("JOB_STARTED", { n: 2 });
    await router.drain();
    expect((await metric("switchyard.deliveries.deduplicated"))[0]?.value).toBe(1);
    expect(router.stats().deduplicated).toBe(1);
    expect(spansNamed("process").map((s) => s.attributes["switchyard.outcome"])).toEqual([
      "deduplicated",
      "ok",
    ]);
    await router.close();
  });

  it("links instead of parenting with spanRelationship: link", async () => {
    const router = createRouter({
      catalog: testCatalog,
      openTelemetry: { ...otel(), spanRelationship: "link" },
    });
    router.subscribe("JOB_STARTED", () => {}, { name: "worker" });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    const [send] = spansNamed("send");
    const [process] = spansNamed("process");
    expect(process!.spanContext().traceId).not.toBe(send!.spanContext().traceId);
    expect(process!.links.map((l) => l.context.spanId)).toEqual([send!.spanContext().spanId]);
    await router.shutdown();
  });

  it("follows a transport delivery through a retry to the dead letter: one trace, settle per attempt with the transport's delay", async () => {
    const transport = new MemoryTransport();
    const router = createRouter({
      catalog: testCatalog,
      transport,
      openTelemetry: otel(),
      subscriptionDefaults: { maxAttempts: 2, backoff: { initialMs: 5, maxMs: 5 } },
    });
    let runs = 0;
    router.subscribe(
      "MODEL_SAVED",
      () => {
        runs++;
        throw new Error("disk full");
      },
      { name: "saver" },
    );
    const sent = await router.publish("MODEL_SAVED", { config_key: "k", n: 1 });
    await eventually(() => transport.deadLetters.length === 1, 5_000);
    const processes = spansNamed("process MODEL_SAVED").sort(
      (a, b) =>
        (a.attributes["switchyard.delivery.attempt"] as number) -
        (b.attributes["switchyard.delivery.attempt"] as number),
    );
    expect(runs).toBe(2);
    expect(processes).toHaveLength(2);
    const send = spansNamed("send MODEL_SAVED")[0]!;
    for (const p of processes) {
      expect(p.spanContext().traceId).toBe(send.spanContext().traceId);
      expect(p.attributes["error.type"]).toBe("Error");
      expect(p.status.code).toBe(api.SpanStatusCode.ERROR);
    }
    const expectedDelay = decideOutcome(
      { failed: true, error: new Error("x") },
      1,
      { maxAttempts: 2, backoff: { initialMs: 5, maxMs: 5 } },
      sent.id,
    );
    expect(processes[0]!.events.find((e) => e.name === "settle")?.attributes).toEqual({
      "messaging.operation.type": "settle",
      "switchyard.settle.outcome": "retry",
      "switchyard.retry.delay_ms": expectedDelay.kind === "retry" ? expectedDelay.delayMs : -1,
    });
    expect(processes[1]!.events.find((e) => e.name === "settle")?.attributes).toEqual({
      "messaging.operation.type": "settle",
      "switchyard.settle.outcome": "dead_letter",
      "switchyard.dead_letter.reason": "max_attempts",
    });
    expect((await metric("switchyard.deliveries.retried"))[0]?.value).toBe(1);
    expect((await metric("switchyard.deliveries.dead_lettered"))[0]?.value).toBe(1);
    await router.shutdown();
  });

  it("records each in-process retry as a retry settle with its delay on the process span, and counts it", async () => {
    const router = createRouter({ catalog: testCatalog, openTelemetry: otel() });
    let runs = 0;
    router.subscribe(
      "JOB_STARTED",
      () => {
        if (++runs < 3) throw new Error("flaky");
      },
      {
        name: "worker",
        middleware: [retry({ attempts: 3, backoff: { initialMs: 5, multiplier: 2, jitter: 0 } })],
      },
    );
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    expect(runs).toBe(3);
    const processes = spansNamed("process JOB_STARTED");
    expect(processes).toHaveLength(1);
    expect(processes[0]!.attributes["switchyard.delivery.attempt"]).toBe(3);
    expect(
      processes[0]!.events.filter((e) => e.name === "settle").map((e) => e.attributes),
    ).toEqual([
      {
        "messaging.operation.type": "settle",
        "switchyard.settle.outcome": "retry",
        "switchyard.retry.delay_ms": 5,
      },
      {
        "messaging.operation.type": "settle",
        "switchyard.settle.outcome": "retry",
        "switchyard.retry.delay_ms": 10,
      },
      { "messaging.operation.type": "settle", "switchyard.settle.outcome": "ack" },
    ]);
    expect(await metric("switchyard.deliveries.retried")).toEqual([
      {
        value: 2,
        attributes: expect.objectContaining({
          "messaging.destination.name": "JOB_STARTED",
          "messaging.consumer.group.name": "worker",
        }),
      },
    ]);
    await router.shutdown();
  });

  it("gives each message of a batch a create span, linked from one send span", async () => {
    const router = createRouter({ catalog: testCatalog, openTelemetry: otel() });
    const sent = await router.publishBatch([
      { type: "JOB_STARTED", data: { n: 1 } },
      { type: "JOB_STARTED", data: { n: 2 } },
    ]);
    const creates = spansNamed("create JOB_STARTED");
    const [send] = spansNamed("send JOB_STARTED");
    expect(creates).toHaveLength(2);
    // The create spans are the creation contexts (PRODUCER); the send span is a client call.
    expect(creates.map((c) => c.kind)).toEqual([api.SpanKind.PRODUCER, api.SpanKind.PRODUCER]);
    expect(send!.kind).toBe(api.SpanKind.CLIENT);
    expect(send!.attributes["messaging.batch.message_count"]).toBe(2);
    expect(send!.links.map((l) => l.context.spanId).sort()).toEqual(
      creates.map((c) => c.spanContext().spanId).sort(),
    );
    expect(sent.map((e) => e.traceparent?.split("-")[2]).sort()).toEqual(
      creates.map((c) => c.spanContext().spanId).sort(),
    );
    await router.shutdown();
  });

  it("records a failing in-process handler's exception, error.type and error status", async () => {
    const router = createRouter({ catalog: testCatalog, openTelemetry: otel() });
    router.subscribe("JOB_STARTED", () => {
      throw new UnrecoverableError("bad job");
    });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    const [process] = spansNamed("process");
    expect(process!.status).toMatchObject({ code: api.SpanStatusCode.ERROR, message: "bad job" });
    expect(process!.attributes["error.type"]).toBe("UnrecoverableError");
    expect(process!.attributes["switchyard.outcome"]).toBe("failed");
    expect(process!.events.map((e) => e.name)).toContain("exception");
    await router.shutdown();
  });

  it("parents the send span on the active span, and starts a new trace outside any", async () => {
    const router = createRouter({ catalog: testCatalog, openTelemetry: otel() });
    const active = api.trace.setSpanContext(api.ROOT_CONTEXT, {
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      traceFlags: 1,
    });
    const inside = await api.context.with(active, () => router.publish("JOB_STARTED", { n: 1 }));
    expect(inside.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(spansNamed("send")[0]!.parentSpanContext?.spanId).toBe("00f067aa0ba902b7");
    const outside = (await router.publish("JOB_STARTED", { n: 2 })).traceparent;
    expect(outside).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(outside).not.toContain("4bf92f3577b34da6a3ce929d0e0e4736");
    await router.shutdown();
  });

  it("carries the active span's tracestate onto the envelope, and the envelope's onto the process span", async () => {
    const router = createRouter({ catalog: testCatalog, openTelemetry: otel() });
    const seen: (string | undefined)[] = [];
    router.subscribe(
      "JOB_STARTED",
      async (event, ctx) => {
        seen.push(api.trace.getActiveSpan()?.spanContext().traceState?.serialize());
        await ctx.publish("JOB_FINISHED", { n: event.data.n });
      },
      { name: "worker" },
    );
    const caused: (string | undefined)[] = [];
    router.subscribe("JOB_FINISHED", (event) => void caused.push(event.tracestate), {
      name: "reporter",
    });
    const active = api.trace.setSpanContext(api.ROOT_CONTEXT, {
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      traceFlags: 1,
      traceState: api.createTraceState("vendor=abc"),
    });
    const inside = await api.context.with(active, () => router.publish("JOB_STARTED", { n: 1 }));
    expect(inside.tracestate).toBe("vendor=abc");
    // Consumer side: from the envelope alone (no active span at publish).
    const explicit = await router.publish(
      "JOB_STARTED",
      { n: 2 },
      {
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate: "vendor=xyz",
      },
    );
    expect(explicit.tracestate).toBe("vendor=xyz");
    await router.drain();
    expect(seen).toEqual(["vendor=abc", "vendor=xyz"]);
    expect(caused).toEqual(["vendor=abc", "vendor=xyz"]);
    expect(
      spansNamed("process JOB_STARTED").map((s) => s.spanContext().traceState?.serialize()),
    ).toEqual(["vendor=abc", "vendor=xyz"]);
    await router.shutdown();
  });

  it("continues the causing event's trace for ctx.publish", async () => {
    const router = createRouter({ catalog: testCatalog, openTelemetry: otel() });
    router.subscribe(
      "JOB_STARTED",
      async (event, ctx) => {
        await ctx.publish("JOB_FINISHED", { n: event.data.n });
      },
      { name: "worker" },
    );
    router.subscribe("JOB_FINISHED", () => {}, { name: "reporter" });
    const first = await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    const trace = first.traceparent!.split("-")[1];
    expect(
      exporter
        .getFinishedSpans()
        .map((s) => s.name)
        .sort(),
    ).toEqual([
      "process JOB_FINISHED",
      "process JOB_STARTED",
      "send JOB_FINISHED",
      "send JOB_STARTED",
    ]);
    for (const span of exporter.getFinishedSpans()) expect(span.spanContext().traceId).toBe(trace);
    // The caused event's send span is a child of the process span that published it.
    const processStarted = spansNamed("process JOB_STARTED")[0]!;
    expect(spansNamed("send JOB_FINISHED")[0]!.parentSpanContext?.spanId).toBe(
      processStarted.spanContext().spanId,
    );
    await router.shutdown();
  });
});

describe("OpenTelemetry API with no SDK registered", () => {
  afterEach(() => {
    api.trace.disable();
    vi.restoreAllMocks();
  });

  it("starts no span until an SDK registers; events still carry trace context, then spans follow", async () => {
    const startSpan = vi.spyOn(api.ProxyTracer.prototype, "startSpan");
    const startActiveSpan = vi.spyOn(api.ProxyTracer.prototype, "startActiveSpan");
    // The default tracer (the API's proxy) and the API's no-op meter: nothing would record.
    const router = createRouter({ catalog: testCatalog, openTelemetry: { api } });
    const traces: (string | undefined)[] = [];
    router.subscribe(
      "JOB_STARTED",
      async (event, ctx) => {
        traces.push(ctx.traceId);
        await ctx.publish("JOB_FINISHED", { n: event.data.n });
      },
      { name: "worker" },
    );
    const finished: string[] = [];
    router.subscribe("JOB_FINISHED", (event) => void finished.push(event.traceparent!), {
      name: "reporter",
    });

    const first = await router.publish("JOB_STARTED", { n: 1 });
    const batch = await router.publishBatch([{ type: "JOB_STARTED", data: { n: 2 } }]);
    await router.drain();
    expect(startSpan).not.toHaveBeenCalled();
    expect(startActiveSpan).not.toHaveBeenCalled();
    expect(exporter.getFinishedSpans()).toEqual([]);
    // Trace context as without OpenTelemetry: a new trace per publish, the cause's for ctx.publish.
    const trace = first.traceparent!.split("-")[1]!;
    expect(first.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(traces).toEqual([trace, batch[0]!.traceparent!.split("-")[1]]);
    expect(finished.map((t) => t.split("-")[1])).toEqual(traces);

    // An SDK registered after the router was made: spans from the next publish on.
    api.trace.setGlobalTracerProvider(provider);
    await router.publish("JOB_STARTED", { n: 3 });
    await router.drain();
    expect(spansNamed("send JOB_STARTED")).toHaveLength(1);
    expect(spansNamed("process JOB_STARTED")).toHaveLength(1);
    expect(spansNamed("send JOB_FINISHED")).toHaveLength(1);
    await router.shutdown();
  });

  it("carries the active span's trace context, tracestate included, while no SDK is registered", async () => {
    const router = createRouter({ catalog: testCatalog, openTelemetry: { api } });
    const active = api.trace.setSpanContext(api.ROOT_CONTEXT, {
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      traceFlags: 1,
      traceState: api.createTraceState("vendor=abc"),
    });
    const sent = await api.context.with(active, () => router.publish("JOB_STARTED", { n: 1 }));
    expect(sent.traceparent).toBe("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    expect(sent.tracestate).toBe("vendor=abc");
    await router.shutdown();
  });

  it("keeps tracing with a tracer given explicitly, registered or not", async () => {
    const router = createRouter({ catalog: testCatalog, openTelemetry: { api, tracer } });
    router.subscribe("JOB_STARTED", () => {}, { name: "worker" });
    await router.publish("JOB_STARTED", { n: 1 });
    await router.drain();
    expect(spansNamed("send JOB_STARTED")).toHaveLength(1);
    expect(spansNamed("process JOB_STARTED")).toHaveLength(1);
    await router.shutdown();
  });
});
