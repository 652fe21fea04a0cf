import { createHash, timingSafeEqual } from "node:crypto";
import { escapeJsonText } from "@switchyard/event-schema";
import { createMetrics } from "@switchyard/metrics";
import {
  type Admin,
  type Driver,
  type EventPage,
  type Inspector,
  type StoredEvent,
  sleep,
  timerDelay,
  untilAborted,
} from "@switchyard/transport";
import { type Context, Hono } from "hono";
import { compress } from "hono/compress";
import { secureHeaders } from "hono/secure-headers";
import { streamSSE } from "hono/streaming";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { assets } from "./assets";
import {
  DashboardRequestError,
  DashboardTimeoutError,
  actionBody,
  contractsView,
  daemons,
  deadLetterAction,
  deadLetterFilter,
  deadLetterGroups,
  eventDetail,
  eventQuery,
  overview,
  subscribers,
  windowOf,
} from "./data";
import { DashboardOptionsError, type DashboardOptions, resolveOptions } from "./options";
import {
  type PageContext,
  contractsPage,
  daemonsPage,
  deadLetterPage,
  deadLettersPage,
  errorBody,
  eventPage,
  eventsPage,
  isolate,
  layout,
  overviewPage,
  pipelinePage,
  subscribersPage,
} from "./pages";
import { pipelineGraph, pipelineKeys } from "./pipeline";

/** The header a write must carry the action token in. */
export const TOKEN_HEADER = "x-switchyard-token";

/**
 * The dashboard: a standard Fetch handler (mount it in Hono, Node's http server through
 * `@hono/node-server`, Express/Fastify through their Fetch adapters, Bun or Deno), with
 * `close()` to end the live tails it is serving.
 */
export interface DashboardHandler {
  (request: Request): Promise<Response>;
  /** End every live tail and refuse new ones. Idempotent. */
  close(): Promise<void>;
}

/** The Content-Security-Policy every response carries: nothing but the dashboard's own files. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " +
  "frame-ancestors 'none'";

const isDriver = (source: unknown): source is Driver =>
  typeof source === "object" &&
  source !== null &&
  typeof (source as Driver).inspector === "function" &&
  typeof (source as Driver).admin === "function";

const isInspector = (source: unknown): source is Inspector =>
  typeof source === "object" &&
  source !== null &&
  typeof (source as Inspector).subscribers === "function" &&
  typeof (source as Inspector).events === "function";

const digest = (text: string) => createHash("sha256").update(text).digest();

const STATUS_OF: Readonly<Record<string, 400 | 403 | 404 | 501 | 504>> = {
  INVALID_REQUEST: 400,
  INVALID_QUERY: 400,
  UNBOUNDED_PURGE: 400,
  UNSUPPORTED_OPERATION: 501,
  INSPECTOR_TIMEOUT: 504,
};

/**
 * A JSON answer (data, error or not): the value's JSON with bidi and control characters as `\uXXXX`
 * escapes (`escapeJsonText`, event-schema's one rule). Errors echo names, ids and query values as given, and data
 * carries whatever publishers wrote: a client showing the text raw must not be misled by it.
 */
const json = (c: Pick<Context, "body">, value: unknown, status: ContentfulStatusCode = 200) =>
  c.body(escapeJsonText(JSON.stringify(value)), status, { "content-type": "application/json" });

const errorCode = (error: unknown) =>
  typeof (error as { code?: unknown })?.code === "string"
    ? (error as { code: string }).code
    : "INTERNAL";

/**
 * Create the dashboard over a driver (reads through its inspector, acts through its admin) or
 * an inspector alone (read-only). Read-only unless `actions: { token }` is given; every write
 * is a POST carrying the token in the `x-switchyard-token` header, and anything else is 403.
 *
 * @example
 * ```ts
 * // not runnable
 * const driver = await openDriver("data/coordination/coordination.db", { drivers: [sqliteDriver] });
 * const dashboard = createDashboard(driver, { basePath: "/ops", actions: { token: process.env.TOKEN! } });
 * serve({ fetch: dashboard, port: 4000, hostname: "127.0.0.1" });
 * ```
 */
export function createDashboard(
  source: Driver | Inspector,
  options: DashboardOptions = {},
): DashboardHandler {
  const resolved = resolveOptions(options);
  let inspector: Inspector;
  let admin: (() => Admin) | undefined;
  if (isDriver(source)) {
    inspector = source.inspector();
    admin = () => source.admin();
  } else if (isInspector(source)) inspector = source;
  else
    throw new DashboardOptionsError(
      "source",
      "expected a driver (from openDriver) or an inspector (driver.inspector()).",
    );
  const { base, token } = resolved;
  const expected = token !== undefined ? digest(token) : undefined;
  const closed = new AbortController();
  const ctx: PageContext = {
    base,
    title: resolved.title,
    transport: inspector.transport,
    actions: token !== undefined && admin !== undefined,
  };
  const metrics = createMetrics(inspector).handler({ path: `${base}/metrics` });

  const app = new Hono<{ Variables: { signal: AbortSignal } }>({ strict: false }).basePath(
    base || "/",
  );
  app.use(
    "*",
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", "data:"],
        connectSrc: ["'self'"],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
      referrerPolicy: "no-referrer",
      // HSTS is the host application's call (it would bind every subdomain of the host), not a
      // mounted dashboard's.
      strictTransportSecurity: false,
      xFrameOptions: "DENY",
    }),
  );

  // Safe by default: any method but GET/HEAD is a write. Refused unless actions are enabled and
  // the request carries the token in a custom header (a cross-site form or image cannot send
  // one, and no CORS preflight is ever answered), from this origin when the browser says one.
  app.use("*", async (c, next) => {
    const method = c.req.method;
    if (method === "GET" || method === "HEAD") return next();
    if (expected === undefined || admin === undefined)
      return json(
        c,
        {
          error: {
            code: "READ_ONLY",
            message:
              admin === undefined
                ? "This dashboard reads an inspector only: give createDashboard a driver and actions: { token } to act."
                : "This dashboard is read-only: start it with actions: { token } to replay or purge.",
          },
        },
        403,
      );
    const given = c.req.header(TOKEN_HEADER);
    if (given === undefined || !timingSafeEqual(digest(given), expected))
      return json(
        c,
        {
          error: {
            code: "FORBIDDEN",
            message: `A write needs the action token in the ${TOKEN_HEADER} header.`,
          },
        },
        403,
      );
    const origin = c.req.header("origin");
    if (origin !== undefined && origin !== new URL(c.req.url).origin)
      return json(
        c,
        { error: { code: "FORBIDDEN", message: `Cross-origin write from ${origin} refused.` } },
        403,
      );
    if (!(c.req.header("content-type") ?? "").startsWith("application/json"))
      return json(
        c,
        {
          error: {
            code: "UNSUPPORTED_MEDIA_TYPE",
            message: "A write's body must be application/json.",
          },
        },
        415,
      );
    return next();
  });

  app.onError((error, c) => {
    const code = errorCode(error);
    const status = STATUS_OF[code] ?? 500;
    const message = error instanceof Error ? error.message : String(error);
    if (c.req.path.startsWith(`${base}/api/`) || c.req.method !== "GET")
      return json(c, { error: { code, message } }, status);
    return c.html(
      layout(
        ctx,
        "overview",
        status === 500 ? "Error" : status === 504 ? "No answer" : "Bad request",
        errorBody(message),
      ),
      status,
    );
  });

  /**
   * Run `work` with a signal that aborts when `outer` does or after `inspectorTimeoutMs` (with a
   * {@link DashboardTimeoutError}), and stop waiting for it then even if it ignores its signal:
   * the one deadline every inspector read (a page, the live tail) is held to.
   */
  const bounded = async <T>(
    what: string,
    outer: AbortSignal,
    work: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> => {
    const deadline = new AbortController();
    const timer = setTimeout(
      () =>
        deadline.abort(
          new DashboardTimeoutError(
            `The transport's inspector did not answer${what} within ${resolved.inspectorTimeoutMs} ms.`,
          ),
        ),
      timerDelay(resolved.inspectorTimeoutMs),
    );
    const signal = AbortSignal.any([outer, deadline.signal]);
    try {
      return await untilAborted(work(signal), signal);
    } finally {
      clearTimeout(timer);
    }
  };

  // Every read of a page or an API route (GET, or HEAD as an uptime check sends) runs under the
  // request's signal and a deadline. An inspector that does not honour the abort (a driver stuck
  // in a call it cannot cancel) must not hold the request either, so the answer does not wait for
  // it: a 504 says what happened.
  // Actions (replay, purge) are not cut short: one stopped halfway would leave the operator
  // guessing what was done; they end with their outcome, or with the request.
  app.use("*", async (c, next) => {
    const path = c.req.path.slice(base.length);
    if (
      (c.req.method !== "GET" && c.req.method !== "HEAD") ||
      path === "/metrics" ||
      path === "/api/events/stream" ||
      path.startsWith("/assets/")
    )
      return next();
    await bounded("", c.req.raw.signal, (signal) => {
      c.set("signal", signal);
      return next();
    });
  });

  const page = (c: Context, heading: string, message: string, status: 404 | 400) =>
    c.html(layout(ctx, "overview", heading, errorBody(message)), status);
  const signal = (c: Context<{ Variables: { signal: AbortSignal } }>) =>
    c.get("signal") ?? c.req.raw.signal;
  const params = (c: Context) => new URL(c.req.url).searchParams;

  // Static files of the package.
  app.use("/assets/*", compress());
  app.get("/assets/:name", (c) => {
    const asset = assets().get(c.req.param("name"));
    if (!asset) return c.text("Not Found\n", 404);
    return c.body(asset.body, 200, { "content-type": asset.type, "cache-control": "no-cache" });
  });
  app.get("/metrics", (c) => metrics(c.req.raw));

  // JSON API.
  app.get("/api", (c) =>
    json(c, {
      transport: inspector.transport,
      capabilities: inspector.capabilities,
      actions: ctx.actions,
      endpoints: [
        "GET api/overview?window=1h",
        "GET api/health",
        "GET api/counts?window=1h",
        "GET api/subscribers?sort=lag&dir=desc",
        "GET api/events?type=&subject=&since=&until=&limit=&cursor=&order=",
        "GET api/events/stream?type=&subject= (server-sent events)",
        "GET api/events/:id",
        "GET api/dead-letters?eventId=&type=&subscriber=&reason=&status=",
        "GET api/dead-letters/records?eventId=&type=&subscriber=&reason=&status=&limit=&cursor=",
        "GET api/dead-letters/:id",
        "POST api/dead-letters/replay",
        "POST api/dead-letters/purge",
        "GET api/daemons",
        "GET api/contracts",
        "GET api/pipeline?window=1h",
        "GET api/pipeline/keys?window=1h",
        "GET metrics",
      ],
    }),
  );
  app.get("/api/overview", async (c) =>
    json(c, await overview(inspector, resolved, c.req.query("window"), signal(c))),
  );
  app.get("/api/health", async (c) => {
    const o = await overview(inspector, resolved, undefined, signal(c));
    return json(c, o.health, o.health.status === "unhealthy" ? 503 : 200);
  });
  app.get("/api/counts", async (c) => {
    const window = windowOf(c.req.query("window"));
    const now = resolved.now();
    const types = params(c)
      .getAll("type")
      .flatMap((t) => t.split(","))
      .filter(Boolean);
    const counts = await inspector.counts({
      since: now - window.ms,
      until: now,
      bucketMs: window.bucketMs,
      ...(types.length > 0 ? { types } : {}),
      signal: signal(c),
    });
    return json(c, { window: window.name, ...counts });
  });
  app.get("/api/subscribers", async (c) =>
    json(c, await subscribers(inspector, c.req.query("sort"), c.req.query("dir"), signal(c))),
  );
  app.get("/api/events", async (c) =>
    json(c, await inspector.events({ ...eventQuery(params(c)), signal: signal(c) })),
  );
  app.get("/api/events/stream", (c) => {
    const query = eventQuery(params(c));
    // Refused, not opened and ended at once: an EventSource reconnects to a stream that ends, but
    // gives up on an error status.
    if (closed.signal.aborted)
      return json(
        c,
        { error: { code: "CLOSED", message: "This dashboard is closed: no new live tail." } },
        503,
      );
    // A HEAD request (an uptime check) gets the headers, and no tail: nobody would read it, and
    // its stream, never read nor cancelled, would hold the tail until the dashboard closes.
    if (c.req.method === "HEAD")
      return c.body(null, 200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
      });
    const lastId = c.req.header("last-event-id")?.trim();
    const resume = lastId && /^\d+$/.test(lastId) ? Number(lastId) : undefined;
    const request = c.req.raw.signal;
    return streamSSE(c, async (stream) => {
      // One signal for the whole tail: it aborts when the client goes (the request's signal, or
      // the response stream cancelled) or the dashboard closes, and stops the reads and the sleep.
      const gone = new AbortController();
      const stop = () => {
        gone.abort(new DOMException("The live tail ended.", "AbortError"));
        stream.abort();
      };
      const ended = AbortSignal.any([closed.signal, request, gone.signal]);
      ended.addEventListener("abort", stop, { once: true });
      stream.onAbort(stop);
      try {
        if (!ended.aborted) await tail(stream, query, resume, ended);
      } catch (error) {
        // The client went or the dashboard closed: nothing to tell anyone. Otherwise a read
        // failed or did not answer in time: say so on the stream, then end it (an EventSource
        // reconnects and resumes after the last event it got).
        if (ended.aborted) return;
        await stream.writeSSE({
          event: "error",
          data: escapeJsonText(
            JSON.stringify({
              code: errorCode(error),
              message: error instanceof Error ? error.message : String(error),
            }),
          ),
        });
      } finally {
        ended.removeEventListener("abort", stop);
      }
    });
  });
  app.get("/api/events/:id", async (c) => {
    const detail = await eventDetail(
      inspector,
      c.req.param("id"),
      signal(c),
      resolved.maxGroupScan,
    );
    if (!detail)
      return json(
        c,
        { error: { code: "NOT_FOUND", message: `No event ${JSON.stringify(c.req.param("id"))}.` } },
        404,
      );
    return json(c, detail);
  });
  app.get("/api/dead-letters", async (c) => {
    const { members: _members, ...groups } = await deadLetterGroups(
      inspector,
      deadLetterFilter(params(c)),
      resolved.maxGroupScan,
      signal(c),
    );
    return json(c, groups);
  });
  app.get("/api/dead-letters/records", async (c) => {
    const p = params(c);
    const limit = Number(p.get("limit") ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500)
      throw new DashboardRequestError(
        `limit must be an integer from 1 to 500; got ${JSON.stringify(p.get("limit"))}.`,
      );
    const cursor = p.get("cursor") || undefined;
    return json(
      c,
      await inspector.deadLetters({
        ...deadLetterFilter(p),
        limit,
        ...(cursor ? { cursor } : {}),
        signal: signal(c),
      }),
    );
  });
  app.get("/api/dead-letters/:id", async (c) => {
    const record = await inspector.deadLetter(c.req.param("id"), { signal: signal(c) });
    if (!record)
      return json(
        c,
        {
          error: {
            code: "NOT_FOUND",
            message: `No dead letter ${JSON.stringify(c.req.param("id"))}.`,
          },
        },
        404,
      );
    return json(c, record);
  });
  for (const action of ["replay", "purge"] as const)
    app.post(`/api/dead-letters/${action}`, async (c) => {
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        throw new DashboardRequestError("the body is not JSON.");
      }
      return json(
        c,
        await deadLetterAction(
          action,
          inspector,
          admin!(),
          actionBody(body),
          resolved.maxGroupScan,
          signal(c),
        ),
      );
    });
  app.get("/api/daemons", async (c) =>
    json(c, await daemons(inspector, resolved.staleAfterMs, signal(c))),
  );
  app.get("/api/contracts", async (c) =>
    json(c, await contractsView(inspector, resolved, signal(c))),
  );
  app.get("/api/pipeline", async (c) =>
    json(
      c,
      await pipelineGraph(
        inspector,
        resolved.pipelines,
        c.req.query("window"),
        resolved.now(),
        signal(c),
      ),
    ),
  );
  app.get("/api/pipeline/keys", async (c) =>
    json(
      c,
      await pipelineKeys(
        inspector,
        resolved.pipelines,
        c.req.query("window"),
        resolved.now(),
        resolved.maxPipelineScan,
        signal(c),
      ),
    ),
  );
  app.all("/api/*", (c) =>
    json(c, { error: { code: "NOT_FOUND", message: `No API route ${c.req.path}.` } }, 404),
  );

  // Pages.
  app.get("/", async (c) =>
    c.html(
      overviewPage(ctx, await overview(inspector, resolved, c.req.query("window"), signal(c))),
    ),
  );
  app.get("/subscribers", async (c) =>
    c.html(
      subscribersPage(
        ctx,
        await subscribers(inspector, c.req.query("sort"), c.req.query("dir"), signal(c)),
      ),
    ),
  );
  app.get("/events", async (c) => {
    const p = params(c);
    return c.html(
      eventsPage(ctx, p, await inspector.events({ ...eventQuery(p), signal: signal(c) })),
    );
  });
  app.get("/events/:id", async (c) => {
    const detail = await eventDetail(
      inspector,
      c.req.param("id"),
      signal(c),
      resolved.maxGroupScan,
    );
    if (!detail) return page(c, "Not found", `No event ${isolate(c.req.param("id"))}.`, 404);
    return c.html(eventPage(ctx, detail));
  });
  app.get("/dead-letters", async (c) => {
    const p = params(c);
    const groups = await deadLetterGroups(
      inspector,
      deadLetterFilter(p),
      resolved.maxGroupScan,
      signal(c),
    );
    return c.html(deadLettersPage(ctx, p, groups, inspector.capabilities.deadLetters));
  });
  app.get("/dead-letters/:id", async (c) => {
    const record = await inspector.deadLetter(c.req.param("id"), { signal: signal(c) });
    if (!record) return page(c, "Not found", `No dead letter ${isolate(c.req.param("id"))}.`, 404);
    return c.html(deadLetterPage(ctx, record));
  });
  app.get("/daemons", async (c) =>
    c.html(
      daemonsPage(
        ctx,
        await daemons(inspector, resolved.staleAfterMs, signal(c)),
        inspector.capabilities.heartbeats,
      ),
    ),
  );
  app.get("/contracts", async (c) =>
    c.html(contractsPage(ctx, await contractsView(inspector, resolved, signal(c)))),
  );
  app.get("/pipeline", async (c) => {
    const window = c.req.query("window");
    const now = resolved.now();
    const [graph, keys] = await Promise.all([
      pipelineGraph(inspector, resolved.pipelines, window, now, signal(c)),
      pipelineKeys(inspector, resolved.pipelines, window, now, resolved.maxPipelineScan, signal(c)),
    ]);
    return c.html(pipelinePage(ctx, graph, keys));
  });
  app.notFound((c) =>
    c.req.path.startsWith(`${base}/api/`)
      ? json(c, { error: { code: "NOT_FOUND", message: `No route ${c.req.path}.` } }, 404)
      : page(c, "Not found", `No page ${isolate(c.req.path)}.`, 404),
  );

  /**
   * The live tail: poll the inspector for events stored since the last one sent (oldest first,
   * paged), send each once by `seq`, until `ended` aborts (the client goes or the dashboard
   * closes). Each read is bounded by `inspectorTimeoutMs`, like a page's: one that does not answer
   * in time (even if the inspector ignores its signal) rejects with a DashboardTimeoutError.
   */
  async function tail(
    stream: Parameters<Parameters<typeof streamSSE>[1]>[0],
    query: ReturnType<typeof eventQuery>,
    resume: number | undefined,
    ended: AbortSignal,
  ): Promise<void> {
    const { types, subject } = query;
    const filter = { ...(types ? { types } : {}), ...(subject ? { subject } : {}) };
    const read = async (
      options: Omit<Parameters<Inspector["events"]>[0] & object, "signal">,
    ): Promise<EventPage> => {
      return bounded(" the live tail", ended, (signal) => inspector.events({ ...options, signal }));
    };
    const newest = (await read({ ...filter, limit: 1, order: "newest" })).events[0];
    let lastSeq = newest?.seq ?? -1;
    let since: string | number = newest?.storedAt ?? resolved.now();
    // A reconnecting EventSource names the last event it got: resume after it. The inspector
    // finds events by time, not by seq, so walk back from the newest (a bounded walk) to where it
    // stood; what arrived since is sent by the loop below.
    if (resume !== undefined && newest !== undefined && resume < newest.seq) {
      let cursor: string | undefined;
      let pages = 0;
      let oldest: StoredEvent | undefined;
      walk: do {
        const page = await read({
          ...filter,
          limit: 200,
          order: "newest",
          ...(cursor ? { cursor } : {}),
        });
        for (const e of page.events) {
          oldest = e;
          if (e.seq <= resume) break walk;
        }
        cursor = page.next;
      } while (cursor && ++pages < 10);
      if (oldest) {
        lastSeq = resume;
        since = oldest.storedAt;
      }
    }
    await stream.writeSSE({
      event: "ready",
      data: escapeJsonText(JSON.stringify({ after: lastSeq })),
    });
    let idle = 0;
    while (!ended.aborted) {
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await read({
          ...filter,
          since,
          order: "oldest",
          limit: 200,
          ...(cursor ? { cursor } : {}),
        });
        for (const e of page.events) {
          if (e.seq <= lastSeq) continue;
          lastSeq = e.seq;
          since = e.storedAt;
          await stream.writeSSE({
            event: "event",
            id: String(e.seq),
            data: escapeJsonText(JSON.stringify(summary(e))),
          });
          idle = 0;
        }
        cursor = page.next;
      } while (cursor && ++pages < 10 && !ended.aborted);
      // A comment line now and then keeps proxies from closing an idle stream.
      if (++idle * resolved.tailIntervalMs >= 15_000) {
        await stream.write(": keep-alive\n\n");
        idle = 0;
      }
      await sleep(resolved.tailIntervalMs, { signal: ended }).catch(() => {});
    }
  }

  const handler = (request: Request): Promise<Response> => Promise.resolve(app.fetch(request));
  let closing: Promise<void> | undefined;
  return Object.assign(handler, {
    close(): Promise<void> {
      closing ??= Promise.resolve().then(() => closed.abort());
      return closing;
    },
  });
}

/** What the live tail sends per event (the envelope is fetched from the event's page). */
function summary(e: StoredEvent) {
  return {
    seq: e.seq,
    id: e.id,
    type: e.type,
    subject: e.subject ?? null,
    source: e.source,
    storedAt: e.storedAt,
  };
}
