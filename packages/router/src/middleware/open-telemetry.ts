import type { Envelope } from "@switchyard/event-schema";
import type { DeliveryContext } from "../context";
import { type Middleware, defineMiddleware } from "./types";

// The parts of `@opentelemetry/api` Switchyard uses, typed structurally so the package does not
// depend on it: pass `import * as api from "@opentelemetry/api"` (an optional peer dependency).

/** A span, as far as Switchyard uses it. */
export interface OtelSpan {
  setAttribute(key: string, value: string | number | boolean): unknown;
  recordException(exception: unknown): void;
  setStatus(status: { code: number; message?: string }): unknown;
  end(): void;
}

/** A tracer, as far as Switchyard uses it. */
export interface OtelTracer {
  startActiveSpan<F extends (span: OtelSpan) => unknown>(
    name: string,
    options: { kind?: number; attributes?: Record<string, string | number | boolean> },
    context: unknown,
    fn: F,
  ): ReturnType<F>;
}

/** The span context fields Switchyard reads and writes. */
export interface OtelSpanContext {
  traceId: string;
  spanId: string;
  traceFlags: number;
  isRemote?: boolean;
}

/** The subset of `@opentelemetry/api` Switchyard needs. */
export interface OpenTelemetryApi {
  readonly trace: {
    getTracer(name: string, version?: string): OtelTracer;
    setSpanContext(context: never, spanContext: OtelSpanContext): unknown;
    getSpanContext(context: never): OtelSpanContext | undefined;
    isSpanContextValid(spanContext: OtelSpanContext): boolean;
  };
  readonly context: { active(): unknown };
  readonly SpanKind: { readonly CONSUMER: number };
  readonly SpanStatusCode: { readonly ERROR: number };
}

/** Options of {@link openTelemetry}. */
export interface OpenTelemetryOptions {
  /** `import * as api from "@opentelemetry/api"`. */
  readonly api: OpenTelemetryApi;
  /** @defaultValue `api.trace.getTracer("@switchyard/router")` */
  readonly tracer?: OtelTracer;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The span context a W3C `traceparent` names, or undefined. */
export function spanContextOf(traceparent: string | undefined): OtelSpanContext | undefined {
  const match = traceparent === undefined ? null : TRACEPARENT.exec(traceparent);
  if (!match) return undefined;
  return {
    traceId: match[2]!,
    spanId: match[3]!,
    traceFlags: parseInt(match[4]!, 16),
    isRemote: true,
  };
}

/** The W3C `traceparent` of the active span, if there is a valid one. */
export function activeTraceparent(api: OpenTelemetryApi): string | undefined {
  const sc = api.trace.getSpanContext(api.context.active() as never);
  if (!sc || !api.trace.isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

/**
 * One consumer span per delivery (`process <TYPE>`), a child of the event's `traceparent`, with
 * the messaging attributes (system, destination, message id, consumer group = subscription) and the
 * attempt; a failure records the exception and sets the error status. Sits outermost (audit stage)
 * so the span covers retries. `createRouter({ openTelemetry: { api } })` installs it and also stamps
 * the active span's `traceparent` on events published without one.
 */
export function openTelemetry(options: OpenTelemetryOptions): Middleware {
  const { api } = options;
  const tracer = options.tracer ?? api.trace.getTracer("@switchyard/router");
  return defineMiddleware("audit", function openTelemetry(next, scope) {
    return (event: Envelope, context) => {
      const ctx = context as DeliveryContext;
      const remote = spanContextOf(event.traceparent);
      const parent = remote
        ? api.trace.setSpanContext(api.context.active() as never, remote)
        : api.context.active();
      return tracer.startActiveSpan(
        `process ${event.type}`,
        {
          kind: api.SpanKind.CONSUMER,
          attributes: {
            "messaging.system": "switchyard",
            "messaging.operation.type": "process",
            "messaging.destination.name": event.type,
            "messaging.message.id": event.id,
            "messaging.consumer.group.name": scope.subscription,
            "switchyard.origin": scope.origin,
            ...(event.subject !== undefined ? { "switchyard.subject": event.subject } : {}),
          },
        },
        parent,
        async (span) => {
          try {
            await next(event, ctx);
            span.setAttribute("switchyard.outcome", ctx.outcome);
          } catch (error) {
            span.recordException(error);
            span.setStatus({
              code: api.SpanStatusCode.ERROR,
              message: error instanceof Error ? error.message : String(error),
            });
            throw error;
          } finally {
            span.setAttribute("switchyard.attempt", ctx.attempt);
            span.end();
          }
        },
      );
    };
  });
}
