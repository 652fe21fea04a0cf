import type { Envelope } from "@switchyard/event-schema";
import { HandlerTimeoutError, decideOutcome } from "@switchyard/transport";
import type { DeliveryContext } from "../context";
import { type Middleware, type MiddlewareScope, defineBuiltInMiddleware } from "./types";

// The parts of `@opentelemetry/api` Switchyard uses, typed structurally so the package does not
// depend on it: pass `import * as api from "@opentelemetry/api"` (an optional peer dependency).
// Spans and metrics follow the OpenTelemetry semantic conventions for messaging, v1.30.0
// (https://opentelemetry.io/docs/specs/semconv/messaging/): operation names `send`, `create`,
// `process`; a settle recorded as a span event.

/** Span attributes. */
export type OtelAttributes = Record<string, string | number | boolean>;

/** A span, as far as Switchyard uses it. */
export interface OtelSpan {
  /** False for a span nothing records (no SDK, or not sampled): attribute work is skipped. */
  isRecording(): boolean;
  setAttribute(key: string, value: string | number | boolean): unknown;
  addEvent(name: string, attributes?: OtelAttributes): unknown;
  recordException(exception: unknown): void;
  setStatus(status: { code: number; message?: string }): unknown;
  spanContext(): OtelSpanContext;
  end(): void;
}

/** Options of a new span. */
export interface OtelSpanOptions {
  kind?: number;
  attributes?: OtelAttributes;
  links?: { context: OtelSpanContext; attributes?: OtelAttributes }[];
}

/** A tracer, as far as Switchyard uses it. */
export interface OtelTracer {
  startSpan(name: string, options: OtelSpanOptions, context?: unknown): OtelSpan;
  startActiveSpan<F extends (span: OtelSpan) => unknown>(
    name: string,
    options: OtelSpanOptions,
    context: unknown,
    fn: F,
  ): ReturnType<F>;
}

/** A W3C trace state (the API's `TraceState`). */
export interface OtelTraceState {
  set(key: string, value: string): OtelTraceState;
  unset(key: string): OtelTraceState;
  get(key: string): string | undefined;
  /** The `tracestate` header value. */
  serialize(): string;
}

/** The span context fields Switchyard reads and writes. */
export interface OtelSpanContext {
  traceId: string;
  spanId: string;
  traceFlags: number;
  isRemote?: boolean;
  traceState?: OtelTraceState;
}

/** A counter or histogram, as far as Switchyard uses them. */
export interface OtelCounter {
  add(value: number, attributes?: OtelAttributes): void;
}
/** A histogram, as far as Switchyard uses it. */
export interface OtelHistogram {
  record(value: number, attributes?: OtelAttributes): void;
}
/** Options of a new instrument; `advice` is honoured by SDKs that support it (JS SDK ≥ 1.20). */
export interface OtelInstrumentOptions {
  description?: string;
  unit?: string;
  advice?: { explicitBucketBoundaries?: number[] };
}
/** A meter, as far as Switchyard uses it. */
export interface OtelMeter {
  createCounter(name: string, options?: OtelInstrumentOptions): OtelCounter;
  createHistogram(name: string, options?: OtelInstrumentOptions): OtelHistogram;
}

/** The subset of `@opentelemetry/api` Switchyard needs. */
export interface OpenTelemetryApi {
  readonly trace: {
    getTracer(name: string, version?: string): OtelTracer;
    getTracerProvider?(): unknown;
    setSpan(context: never, span: OtelSpan): unknown;
    setSpanContext(context: never, spanContext: OtelSpanContext): unknown;
    getSpanContext(context: never): OtelSpanContext | undefined;
    isSpanContextValid(spanContext: OtelSpanContext): boolean;
  };
  readonly context: { active(): unknown };
  /**
   * Parse a W3C `tracestate` (the API's `createTraceState`): an envelope's `tracestate` then
   * reaches the consumer's span context. Without it, the consumer side drops the trace state.
   */
  readonly createTraceState?: (rawTraceState?: string) => OtelTraceState;
  /**
   * The API's proxy provider class: while no SDK is registered behind the global one, tracing is
   * a no-op and the router skips span work entirely (no span per publish or delivery).
   */
  readonly ProxyTracerProvider?: new () => { getDelegate(): unknown };
  readonly metrics?: { getMeter(name: string, version?: string): OtelMeter };
  /** The API's no-op meter (what `metrics.getMeter` returns while no SDK is registered). */
  readonly createNoopMeter?: () => OtelMeter;
  readonly SpanKind: {
    readonly CLIENT: number;
    readonly CONSUMER: number;
    readonly PRODUCER: number;
  };
  readonly SpanStatusCode: { readonly ERROR: number };
}

/** Options of {@link openTelemetry} and the router's `openTelemetry` option. */
export interface OpenTelemetryOptions {
  /** `import * as api from "@opentelemetry/api"`. */
  readonly api: OpenTelemetryApi;
  /** @defaultValue `api.trace.getTracer("@switchyard/router")` */
  readonly tracer?: OtelTracer;
  /**
   * Where metrics go; `false` for none. @defaultValue `api.metrics.getMeter("@switchyard/router")`
   * (a no-op until an SDK `MeterProvider` is registered)
   */
  readonly meter?: OtelMeter | false;
  /**
   * How a `process` span relates to the context the message was sent in: `"parent"` (one trace
   * from producer to every consumer; the span also links to that context, as the semantic
   * conventions ask of every process span) or `"link"` (a new trace per delivery, only linked to
   * the producer's — the conventions' default for batch receivers; Oban's `span_relationship`).
   * @defaultValue "parent"
   */
  readonly spanRelationship?: "parent" | "link";
  /** `messaging.system`. @defaultValue "switchyard" */
  readonly system?: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * The span context a W3C `traceparent` names, or undefined; with a `tracestate` and an API that
 * parses one (`createTraceState`), the context carries that trace state too.
 */
export function spanContextOf(
  traceparent: string | undefined,
  tracestate?: string,
  api?: Pick<OpenTelemetryApi, "createTraceState">,
): OtelSpanContext | undefined {
  const sc = parseTraceparent(traceparent);
  if (sc === undefined || !tracestate || api?.createTraceState === undefined) return sc;
  return Object.freeze({ ...sc, traceState: api.createTraceState(tracestate) });
}

function parseTraceparent(traceparent: string | undefined): OtelSpanContext | undefined {
  if (traceparent === undefined) return undefined;
  // One event reaches every subscription: each asks for the same traceparent in a row.
  if (traceparent === lastTraceparent) return lastSpanContext;
  const match = TRACEPARENT.exec(traceparent);
  const sc = match
    ? { traceId: match[2]!, spanId: match[3]!, traceFlags: parseInt(match[4]!, 16), isRemote: true }
    : undefined;
  lastTraceparent = traceparent;
  lastSpanContext = sc && Object.freeze(sc);
  return lastSpanContext;
}
let lastTraceparent: string | undefined;
let lastSpanContext: OtelSpanContext | undefined;

/** A span context as a W3C `traceparent`. */
export function traceparentOf(sc: OtelSpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

/** A span context's trace state as a W3C `tracestate`, or undefined when it has none. */
export function tracestateOf(sc: OtelSpanContext): string | undefined {
  return sc.traceState?.serialize() || undefined;
}

/** The W3C trace context (`traceparent` and `tracestate`) of the active span, if it is valid. */
export function activeTraceContext(
  api: OpenTelemetryApi,
): { traceparent: string; tracestate: string | undefined } | undefined {
  const sc = api.trace.getSpanContext(api.context.active() as never);
  if (!sc || !api.trace.isSpanContextValid(sc)) return undefined;
  return { traceparent: traceparentOf(sc), tracestate: tracestateOf(sc) };
}

/** The instruments the router records, per the messaging conventions plus Switchyard's own. */
export interface Instruments {
  readonly sent: OtelCounter;
  readonly operationDuration: OtelHistogram;
  readonly consumed: OtelCounter;
  readonly processDuration: OtelHistogram;
  readonly retried: OtelCounter;
  readonly deadLettered: OtelCounter;
  readonly timeouts: OtelCounter;
  readonly deduplicated: OtelCounter;
}

/**
 * Bucket boundaries, in seconds, of the duration histograms: the messaging semantic conventions'
 * recommendation (an SDK's default boundaries are for milliseconds, and would put every duration
 * in the first bucket).
 */
export const durationBuckets: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
]);

/** Create the instruments on a meter. */
export function instrumentsOf(meter: OtelMeter): Instruments {
  return {
    sent: meter.createCounter("messaging.client.sent.messages", {
      description: "Messages a producer attempted to send.",
      unit: "{message}",
    }),
    operationDuration: meter.createHistogram("messaging.client.operation.duration", {
      description: "Duration of a send operation.",
      unit: "s",
      advice: { explicitBucketBoundaries: [...durationBuckets] },
    }),
    consumed: meter.createCounter("messaging.client.consumed.messages", {
      description: "Messages delivered to a consumer.",
      unit: "{message}",
    }),
    processDuration: meter.createHistogram("messaging.process.duration", {
      description: "Duration of processing one delivery.",
      unit: "s",
      advice: { explicitBucketBoundaries: [...durationBuckets] },
    }),
    retried: meter.createCounter("switchyard.deliveries.retried", {
      description: "Failed attempts that will run again after a backoff.",
      unit: "{delivery}",
    }),
    deadLettered: meter.createCounter("switchyard.deliveries.dead_lettered", {
      description: "Deliveries that failed for good and went to the dead-letter sink.",
      unit: "{delivery}",
    }),
    timeouts: meter.createCounter("switchyard.handler.timeouts", {
      description: "Attempts that ran past their timeout.",
      unit: "{attempt}",
    }),
    deduplicated: meter.createCounter("switchyard.deliveries.deduplicated", {
      description: "Deliveries skipped as duplicates (the dedup middleware).",
      unit: "{delivery}",
    }),
  };
}

/** The OpenTelemetry wiring of one router: its tracer, meter instruments and settings. */
export interface Telemetry {
  readonly api: OpenTelemetryApi;
  readonly tracer: OtelTracer;
  readonly instruments: Instruments | undefined;
  readonly relationship: "parent" | "link";
  readonly system: string;
  /**
   * True while nothing would record: the default tracer with no SDK registered behind the API's
   * global provider, and no metric instruments. Checked per publish and per delivery (an SDK may be
   * registered after the router is made); while true, spans are not started at all, and events
   * carry trace context exactly as without OpenTelemetry (the caller's, the causing event's, the
   * active span's, or a new trace). A no-op span per publish and delivery cost ~2 µs (3.5× a
   * publish without OpenTelemetry).
   */
  readonly dormant: () => boolean;
}

const NEVER = (): boolean => false;

/**
 * Whether the API's global tracer provider has no SDK behind it: it is the API's proxy and hands
 * out the API's no-op provider. Another copy of the API (a different class) counts as an SDK.
 */
function noTracerProvider(api: OpenTelemetryApi): () => boolean {
  const Proxy = api.ProxyTracerProvider;
  if (typeof Proxy !== "function" || typeof api.trace.getTracerProvider !== "function")
    return NEVER;
  // A proxy nothing was registered behind returns the API's no-op provider (one shared instance).
  const noop = new Proxy().getDelegate();
  return () => {
    const provider = api.trace.getTracerProvider!();
    return provider instanceof Proxy && provider.getDelegate() === noop;
  };
}

/** Resolve {@link OpenTelemetryOptions} once. */
export function telemetryOf(options: OpenTelemetryOptions): Telemetry {
  const { api } = options;
  if (typeof api?.trace?.getTracer !== "function" || typeof api.context?.active !== "function")
    throw new TypeError(
      'openTelemetry: api must be the OpenTelemetry API (import * as api from "@opentelemetry/api")',
    );
  const relationship = options.spanRelationship ?? "parent";
  // Anything else would silently start a new trace per delivery (the "link" behaviour).
  if (relationship !== "parent" && relationship !== "link")
    throw new RangeError(
      `openTelemetry: spanRelationship must be "parent" or "link", got ${JSON.stringify(relationship)}`,
    );
  const meter =
    options.meter === false
      ? undefined
      : (options.meter ?? api.metrics?.getMeter("@switchyard/router"));
  // The API's no-op meter stays one (metrics have no proxy that an SDK registered later would
  // fill): no instruments then, so nothing is measured or built per event for them.
  const instruments = meter && meter !== api.createNoopMeter?.() ? instrumentsOf(meter) : undefined;
  return {
    api,
    tracer: options.tracer ?? api.trace.getTracer("@switchyard/router"),
    instruments,
    relationship,
    system: options.system ?? "switchyard",
    // A tracer given explicitly, or instruments to feed: always at work.
    dormant: options.tracer === undefined && !instruments ? noTracerProvider(api) : NEVER,
  };
}

/** Bytes of an event's payload as JSON (`messaging.message.body.size`). */
export function bodySize(event: Envelope): number {
  try {
    return Buffer.byteLength(JSON.stringify(event.data) ?? "");
  } catch {
    return 0;
  }
}

function errorType(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

/**
 * One consumer span per delivery attempt (`process <TYPE>`, kind CONSUMER), linked to the context
 * the event was sent in and, in `"parent"` mode (the default), its child, with the messaging
 * attributes — system, operation, destination (the event type), message id, consumer group (the
 * subscription), body size — and `switchyard.delivery.attempt`. The settle is recorded as a
 * `settle` span event: `ack`, `retry` (with `switchyard.retry.delay_ms`, the delay the transport
 * applies: the one outcome policy with the delivery's keyed jitter; in process, one per retry of
 * the `retry` middleware, with its backoff) or `dead_letter` (with the reason); a failure records
 * the exception, `error.type` and the error status. Sits outermost (audit stage) so an in-process span covers its
 * retries. `createRouter({ openTelemetry: { api } })` installs it, opens `send` producer spans and
 * records the metrics.
 */
export function openTelemetry(options: OpenTelemetryOptions | Telemetry): Middleware {
  const t = "relationship" in options ? options : telemetryOf(options);
  const { api, tracer, instruments } = t;
  return defineBuiltInMiddleware("audit", function openTelemetry(next, scope) {
    return (event: Envelope, context) => {
      if (t.dormant()) return next(event, context);
      const ctx = context as DeliveryContext;
      const remote = spanContextOf(event.traceparent, event.tracestate, api);
      const parent =
        remote && t.relationship === "parent"
          ? api.trace.setSpanContext(api.context.active() as never, remote)
          : api.context.active();
      const base: OtelAttributes = {
        "messaging.system": t.system,
        "messaging.operation.name": "process",
        "messaging.destination.name": event.type,
        "messaging.consumer.group.name": scope.subscription,
      };
      const started = instruments ? performance.now() : 0;
      return tracer.startActiveSpan(
        `process ${event.type}`,
        // The conventions: a process span SHOULD link to the message's creation context, parent or
        // not (in parent mode, the link names the same span as the parent).
        remote
          ? { kind: api.SpanKind.CONSUMER, links: [{ context: remote }] }
          : { kind: api.SpanKind.CONSUMER },
        parent,
        async (span) => {
          // Nothing records this span (no SDK, or not sampled): no attribute work at all.
          const recording = span.isRecording();
          if (recording) {
            for (const [key, value] of Object.entries(base)) span.setAttribute(key, value);
            span.setAttribute("messaging.operation.type", "process");
            span.setAttribute("messaging.message.id", event.id);
            span.setAttribute("messaging.message.body.size", bodySize(event));
            span.setAttribute("switchyard.origin", scope.origin);
            if (event.subject !== undefined) span.setAttribute("switchyard.subject", event.subject);
          }
          instruments?.consumed.add(1, base);
          if (scope.origin === "local" && (recording || instruments)) {
            // In-process retries (the retry middleware, below) settle here as the transport's do:
            // a `retry` settle with its delay on this span, and the retried counter.
            ctx.onRetry = (delayMs) => {
              if (recording)
                span.addEvent("settle", {
                  "messaging.operation.type": "settle",
                  "switchyard.settle.outcome": "retry",
                  "switchyard.retry.delay_ms": delayMs,
                });
              instruments?.retried.add(1, base);
            };
          }
          let failure: { error: unknown } | undefined;
          try {
            await next(event, ctx);
          } catch (error) {
            failure = { error };
            if (recording) {
              span.recordException(error);
              span.setAttribute("error.type", errorType(error));
              span.setStatus({
                code: api.SpanStatusCode.ERROR,
                message: error instanceof Error ? error.message : String(error),
              });
            }
            throw error;
          } finally {
            if (recording || instruments) {
              const settle = settleOf(scope, ctx, event, failure);
              if (recording) {
                span.addEvent("settle", settle);
                // A thrown attempt ran no outcome of its own: ctx.outcome still holds its initial "ok".
                span.setAttribute("switchyard.outcome", failure ? "failed" : ctx.outcome);
                span.setAttribute("switchyard.delivery.attempt", ctx.attempt);
              }
              if (instruments) {
                const attrs = failure ? { ...base, "error.type": errorType(failure.error) } : base;
                instruments.processDuration.record((performance.now() - started) / 1000, attrs);
                if (settle["switchyard.settle.outcome"] === "retry")
                  instruments.retried.add(1, base);
                if (settle["switchyard.settle.outcome"] === "dead_letter")
                  instruments.deadLettered.add(1, base);
                if (failure?.error instanceof HandlerTimeoutError)
                  instruments.timeouts.add(1, base);
                if (ctx.outcome === "deduplicated") instruments.deduplicated.add(1, base);
              }
            }
            span.end();
          }
        },
      );
    };
  });
}

/**
 * What happens to the delivery after this attempt. In process, the chain below already decided
 * (retried inside, dead-lettered or failed). From a transport, the transport settles it by the one
 * outcome policy, which this applies with the same inputs (attempt, maxAttempts, backoff, the
 * envelope id as jitter key) — so the delay stated is the transport's.
 */
function settleOf(
  scope: MiddlewareScope,
  ctx: DeliveryContext,
  event: Envelope,
  failure: { error: unknown } | undefined,
): OtelAttributes {
  if (scope.origin === "local") {
    if (!failure)
      return {
        "messaging.operation.type": "settle",
        "switchyard.settle.outcome": ctx.outcome === "dead_lettered" ? "dead_letter" : "ack",
      };
    return { "messaging.operation.type": "settle", "switchyard.settle.outcome": "failed" };
  }
  const outcome = decideOutcome(
    failure ? { failed: true, error: failure.error } : { failed: false },
    ctx.attempt,
    { maxAttempts: scope.maxAttempts, backoff: scope.backoff },
    event.id,
  );
  switch (outcome.kind) {
    case "ack":
      return { "messaging.operation.type": "settle", "switchyard.settle.outcome": "ack" };
    case "retry":
      return {
        "messaging.operation.type": "settle",
        "switchyard.settle.outcome": "retry",
        "switchyard.retry.delay_ms": outcome.delayMs,
      };
    case "dead_letter":
      return {
        "messaging.operation.type": "settle",
        "switchyard.settle.outcome": "dead_letter",
        "switchyard.dead_letter.reason": outcome.reason,
      };
  }
}
