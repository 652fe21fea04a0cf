// A daemon process with the OpenTelemetry SDK: its finished spans go, one JSON object per line, to
// `spans`. Role "publisher" publishes one TORTURE_JOB inside an active span and exits; role
// "consumer" handles TORTURE_JOB — its first run fails (retried), its second fails for good (dead
// letter), any later run (the replay) succeeds — and reports each run to the parent. `relationship`
// is the router's `spanRelationship` (default "parent").
import { appendFileSync } from "node:fs";
import * as api from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import { sqliteDriver } from "@switchyard/cross-process-queue";
import { UnrecoverableError, createRouter } from "@switchyard/router";
import { openDriver } from "@switchyard/transport";
import { natsDriver } from "@switchyard/transport-nats";
import { tortureCatalog } from "../harness/catalog";
import { config, guard, logger, onMessage, send } from "./common";

interface TracedConfig {
  readonly role: "publisher" | "consumer";
  readonly target: string;
  readonly spans: string;
  readonly log: string;
  /** How a `process` span relates to the producer's context. @defaultValue "parent" */
  readonly relationship?: "parent" | "link";
}

const c = config<TracedConfig>();
const { line, logger: log } = logger(c.log);
guard(line);

/** Writes finished spans as JSON lines: what the parent reassembles into one trace. */
const fileExporter: SpanExporter = {
  export(spans: ReadableSpan[], done) {
    for (const s of spans)
      appendFileSync(
        c.spans,
        `${JSON.stringify({
          pid: process.pid,
          name: s.name,
          kind: s.kind,
          traceId: s.spanContext().traceId,
          spanId: s.spanContext().spanId,
          parentSpanId: s.parentSpanContext?.spanId,
          links: s.links.map((l) => ({
            traceId: l.context.traceId,
            spanId: l.context.spanId,
          })),
          attributes: s.attributes,
          events: s.events.map((e) => ({ name: e.name, attributes: e.attributes })),
          status: s.status,
        })}\n`,
      );
    done({ code: 0 });
  },
  shutdown: () => Promise.resolve(),
};
api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
api.trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(fileExporter)] }),
);

const driver = await openDriver(c.target, { drivers: [sqliteDriver, natsDriver], logger: log });
const router = createRouter({
  catalog: tortureCatalog,
  transport: driver.transport({ logger: log }),
  openTelemetry: { api, meter: false, spanRelationship: c.relationship ?? "parent" },
  logger: log,
  subscriptionDefaults: { maxAttempts: 2, backoff: { initialMs: 20, maxMs: 20 } },
});
onMessage("stop", async () => {
  await router.shutdown();
  await driver.close();
  send({ stopped: true });
  process.exit(0);
});

if (c.role === "publisher") {
  const sent = await api.trace.getTracer("daemon").startActiveSpan("export cycle", async (span) => {
    try {
      return await router.publish("TORTURE_JOB", { key: "traced-1" });
    } finally {
      span.end();
    }
  });
  send({ published: sent.id, traceparent: sent.traceparent });
} else {
  let runs = 0;
  const sub = router.subscribe(
    "TORTURE_JOB",
    (event) => {
      runs++;
      send({ run: runs, id: event.id });
      if (runs === 1) throw new Error("transient: disk busy");
      if (runs === 2) throw new UnrecoverableError("bad model file");
    },
    { name: "traced-consumer" },
  );
  await sub.ready;
  send({ ready: true });
}
