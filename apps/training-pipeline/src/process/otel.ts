// `pnpm demo --otel <file>`: every daemon process records OpenTelemetry spans (the router's send /
// process spans, one trace per event chain across processes) and appends them to <file> as OTLP
// JSON, one ExportTraceServiceRequest per line — what an OpenTelemetry Collector's file exporter
// writes, so `otelcol` or any OTLP/JSON reader can load it.
import { appendFileSync, readFileSync } from "node:fs";
import * as api from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";

/** Register a tracer provider writing this process's spans to `file`; returns the API to pass to routers. */
export function startTracing(file: string, service: string): typeof api {
  const exporter: SpanExporter = {
    export(spans: ReadableSpan[], done) {
      try {
        const body = JsonTraceSerializer.serializeRequest(spans);
        if (body) appendFileSync(file, `${Buffer.from(body).toString("utf8")}\n`);
        done({ code: 0 });
      } catch (error) {
        done({ code: 1, error: error as Error });
      }
    },
    shutdown: () => Promise.resolve(),
  };
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  api.trace.setGlobalTracerProvider(
    new BasicTracerProvider({
      resource: resourceFromAttributes({ "service.name": service }),
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    }),
  );
  return api;
}

/** What a trace file holds: spans, traces, and the longest trace's spans (for the demo's summary). */
export interface TraceSummary {
  readonly spans: number;
  readonly traces: number;
  readonly services: readonly string[];
  /** The trace with most spans: its span names by service, in start order. */
  readonly longest: readonly { readonly service: string; readonly name: string }[];
}

interface OtlpLine {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value: { stringValue?: string } }[] };
    scopeSpans?: { spans?: { traceId: string; name: string; startTimeUnixNano: string }[] }[];
  }[];
}

/** Read an OTLP JSON lines file back. */
export function summarizeTraces(file: string): TraceSummary {
  const byTrace = new Map<string, { service: string; name: string; start: bigint }[]>();
  const services = new Set<string>();
  let spans = 0;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    const request = JSON.parse(line) as OtlpLine;
    for (const rs of request.resourceSpans ?? []) {
      const service =
        rs.resource?.attributes?.find((a) => a.key === "service.name")?.value.stringValue ?? "?";
      services.add(service);
      for (const ss of rs.scopeSpans ?? [])
        for (const span of ss.spans ?? []) {
          spans++;
          const list = byTrace.get(span.traceId) ?? [];
          list.push({ service, name: span.name, start: BigInt(span.startTimeUnixNano) });
          byTrace.set(span.traceId, list);
        }
    }
  }
  const longest = [...byTrace.values()].sort((a, b) => b.length - a.length)[0] ?? [];
  return {
    spans,
    traces: byTrace.size,
    services: [...services].sort(),
    longest: longest
      .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))
      .map(({ service, name }) => ({ service, name })),
  };
}
