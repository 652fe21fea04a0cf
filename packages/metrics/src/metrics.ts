import {
  type DaemonRunState,
  type Inspector,
  timerDelay,
  untilAborted,
} from "@switchyard/transport";
import { Gauge, Registry } from "prom-client";

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /**
   * Prefix of every metric name: a Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), not empty
   * (unprefixed, `up` and `scrape_duration_seconds` would collide with the series Prometheus
   * itself records for every target). @defaultValue `"switchyard_"`
   */
  readonly prefix?: string;
  /**
   * The window `switchyard_events_window` counts events over, in ms. Events stored per type are a
   * gauge over this window (a transport keeps events for its retention only, so an all-time counter
   * could go down after pruning). A positive, finite number. @defaultValue 300_000 (5 minutes)
   */
  readonly eventsWindowMs?: number;
  /**
   * Longest a scrape waits for the inspector before it reports `switchyard_up 0`, whether or not
   * the inspector honours the signal it is given. Positive; beyond 2^31 − 1 ms (Infinity included)
   * it waits that long. @defaultValue 10_000
   */
  readonly timeoutMs?: number;
  /**
   * Labels added to every metric (e.g. `{ env: "prod" }`): Prometheus label names, not starting
   * with `__`, and none of the metrics' own (`subscriber`, `type`, `reason`, `daemon`, `state`).
   * @defaultValue none
   */
  readonly labels?: Readonly<Record<string, string>>;
  /** Clock, for tests. @defaultValue Date.now */
  readonly now?: () => number;
}

/** The defaults of {@link MetricsOptions}. */
export const defaultMetricsOptions = Object.freeze({
  prefix: "switchyard_",
  eventsWindowMs: 300_000,
  timeoutMs: 10_000,
});

/** Daemon states reported by `switchyard_daemon_state`, one series each (the Prometheus enum pattern). */
export const DAEMON_STATES: readonly DaemonRunState[] = Object.freeze([
  "starting",
  "running",
  "stopping",
  "stopped",
  "crashed",
  "failed",
]);

/** Prometheus metrics of one transport, read from its inspector at each scrape. */
export interface SwitchyardMetrics {
  /** The prom-client registry holding the metrics (register more of your own if you like). */
  readonly registry: Registry;
  /** The `Content-Type` of {@link SwitchyardMetrics.metrics}'s text. */
  readonly contentType: string;
  /**
   * Read the inspector once and return the exposition text. Concurrent calls share one read. When
   * the inspector fails or times out, `switchyard_up` is 0 and the other series are left out
   * rather than reported stale. While two timed-out reads of an inspector that ignores its signal
   * are still running, a scrape starts no further read and reports `switchyard_up` 0.
   */
  metrics(options?: { readonly signal?: AbortSignal }): Promise<string>;
  /**
   * A Fetch API handler serving the metrics at `path` (GET and HEAD; 405 for other methods,
   * 404 for other paths; the query string is ignored): mount it in Hono, Node's http server (via
   * `@hono/node-server`), Bun or Deno. `path` is a URL path starting with `/`.
   * @defaultValue path `"/metrics"`
   * @throws RangeError naming `path` when it does not start with `/` (no request would match it).
   */
  handler(options?: { readonly path?: string }): (request: Request) => Promise<Response>;
}

/**
 * Prometheus metrics of a Switchyard event system, from any transport's {@link Inspector}: no
 * change to any daemon. Names, labels and cardinality are listed in docs/observability.md.
 *
 * @example
 * ```ts
 * // not runnable
 * const driver = await openDriver("data/coordination/coordination.db", { drivers: [sqliteDriver], readOnly: true });
 * const metrics = createMetrics(driver.inspector());
 * console.log(await metrics.metrics()); // switchyard_subscriber_lag{subscriber="trainer"} 3 …
 * ```
 *
 * @throws RangeError naming the option when `prefix`, `eventsWindowMs`, `timeoutMs` or a name in
 * `labels` is not usable.
 */
export function createMetrics(
  inspector: Inspector,
  options: MetricsOptions = {},
): SwitchyardMetrics {
  const prefix = options.prefix ?? defaultMetricsOptions.prefix;
  const windowMs = options.eventsWindowMs ?? defaultMetricsOptions.eventsWindowMs;
  const timeoutMs = options.timeoutMs ?? defaultMetricsOptions.timeoutMs;
  const now = options.now ?? Date.now;
  // prom-client would refuse a bad prefix with "Invalid metric name", naming neither the option
  // nor the name; an empty one would export `up`, which Prometheus records itself for every target.
  if (typeof prefix !== "string" || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix))
    throw new RangeError(
      `createMetrics: prefix must start a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*, not empty); got ${JSON.stringify(prefix)}.`,
    );
  // A window or timeout that is not a positive time would make every scrape fail (`up 0`) with
  // nothing saying why: refuse it here, naming the option.
  // (A timeout beyond what a timer holds, Infinity included, waits as long as one can.)
  if (!(Number.isFinite(windowMs) && windowMs > 0))
    throw new RangeError(
      `createMetrics: eventsWindowMs must be a positive number of ms; got ${String(windowMs)}.`,
    );
  if (!(timeoutMs > 0))
    throw new RangeError(
      `createMetrics: timeoutMs must be a positive number of ms; got ${String(timeoutMs)}.`,
    );
  const registry = new Registry();
  if (options.labels) registry.setDefaultLabels({ ...checkedLabels(options.labels) });

  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name: `${prefix}${name}`, help, labelNames, registers: [registry] });

  const up = gauge("up", "1 when the last scrape read the transport's inspector, else 0.");
  const scrapeSeconds = gauge(
    "scrape_duration_seconds",
    "How long reading the inspector took during the last scrape.",
  );
  const sub = ["subscriber"] as const;
  const pending = gauge(
    "subscriber_pending",
    "Deliveries never attempted yet (including events behind the subscriber's cursor).",
    sub,
  );
  const inFlight = gauge(
    "subscriber_in_flight",
    "Deliveries whose attempt runs now under a live lease.",
    sub,
  );
  const retrying = gauge(
    "subscriber_retrying",
    "Deliveries attempted at least once and waiting to run again (backoff or expired lease).",
    sub,
  );
  const dead = gauge("subscriber_dead", "Deliveries dead-lettered and not replayed since.", sub);
  const lag = gauge(
    "subscriber_backlog",
    "Deliveries not settled: pending + in flight + retrying.",
    sub,
  );
  const oldest = gauge(
    "subscriber_oldest_pending_age_seconds",
    "Age, from publish, of the oldest pending or retrying event (0 when none).",
    sub,
  );
  const events = gauge(
    "events_window",
    "Events stored per type during the last window (see switchyard_events_window_seconds).",
    ["type"],
  );
  const windowSeconds = gauge(
    "events_window_seconds",
    "The window switchyard_events_window counts over.",
  );
  const dlDepth = gauge(
    "dead_letters",
    "Dead letters that still need attention (not replayed, not purged).",
  );
  const dlByType = gauge(
    "dead_letters_by_type",
    "Dead letters needing attention, per event type.",
    ["type"],
  );
  const dlByReason = gauge(
    "dead_letters_by_reason",
    "Dead letters needing attention, per reason.",
    ["reason"],
  );
  const dlBySubscriber = gauge(
    "dead_letters_by_subscriber",
    "Dead letters needing attention, per subscriber.",
    sub,
  );
  const dlOldest = gauge(
    "dead_letters_oldest_age_seconds",
    "Age of the oldest dead letter needing attention (0 when none).",
  );
  const hbAge = gauge(
    "daemon_heartbeat_age_seconds",
    "Seconds since the daemon's last heartbeat.",
    ["daemon"],
  );
  const hbState = gauge(
    "daemon_state",
    "1 for the daemon's state in its last heartbeat, 0 for the others.",
    ["daemon", "state"],
  );
  const hbRestarts = gauge(
    "daemon_restarts",
    "Restarts after crashes since the daemon's manager started.",
    ["daemon"],
  );

  const all = [
    pending,
    inFlight,
    retrying,
    dead,
    lag,
    oldest,
    events,
    windowSeconds,
    dlDepth,
    dlByType,
    dlByReason,
    dlBySubscriber,
    dlOldest,
    hbAge,
    hbState,
    hbRestarts,
  ];
  const unlabelled = new Set<Gauge<string>>([scrapeSeconds, windowSeconds, dlDepth, dlOldest]);
  clear();

  /**
   * Drop every series but `up`. prom-client's `reset()` puts an unlabelled gauge back at 0, which
   * would report "0 dead letters" for a scrape that could not read them: remove that series too.
   */
  function clear(): void {
    for (const g of [scrapeSeconds, ...all]) {
      g.reset();
      if (unlabelled.has(g)) g.remove();
    }
  }

  /**
   * Reads given up on (timed out) that have not settled yet. An inspector that ignores its signal
   * keeps them running: past {@link MAX_ABANDONED_READS}, a scrape starts no new read (reports
   * `up 0`) until one settles, so a stuck store does not gather one more stuck read per scrape.
   */
  let abandoned = 0;
  async function collect(signal: AbortSignal): Promise<void> {
    if (abandoned >= MAX_ABANDONED_READS)
      throw new Error(`${abandoned} earlier reads of the inspector have not returned yet`);
    const started = now();
    const caps = inspector.capabilities;
    let settled = false;
    const reads = Promise.all([
      inspector.subscribers({ signal }),
      inspector.counts({ since: started - windowMs, until: started, bucketMs: windowMs, signal }),
      caps.deadLetters ? inspector.deadLetterCounts({ signal }) : undefined,
      caps.heartbeats ? inspector.heartbeats({ signal }) : [],
    ]).finally(() => {
      settled = true;
    });
    let answers: Awaited<typeof reads>;
    try {
      answers = await untilAborted(reads, signal);
    } catch (error) {
      if (!settled) {
        abandoned++;
        reads
          .finally(() => {
            abandoned--;
          })
          .catch(() => {});
      }
      throw error;
    }
    const [subscribers, counts, letters, beats] = answers;
    clear();
    for (const s of subscribers) {
      if (s.ephemeral) continue; // throwaway subscribers would only add churning series
      const labels = { subscriber: labelValue(s.subscriber) };
      pending.set(labels, s.pending);
      inFlight.set(labels, s.inFlight);
      retrying.set(labels, s.retrying);
      dead.set(labels, s.dead);
      lag.set(labels, s.lag);
      oldest.set(labels, ageSeconds(s.oldestPendingMs));
    }
    windowSeconds.set(windowMs / 1000);
    for (const [type, n] of Object.entries(counts.totals))
      events.set({ type: labelValue(type) }, n);
    if (letters) {
      dlDepth.set(letters.depth);
      for (const [type, n] of Object.entries(letters.byType))
        dlByType.set({ type: labelValue(type) }, n);
      for (const [reason, n] of Object.entries(letters.byReason))
        dlByReason.set({ reason: labelValue(reason) }, n ?? 0);
      for (const [subscriber, n] of Object.entries(letters.bySubscriber))
        dlBySubscriber.set({ subscriber: labelValue(subscriber) }, n);
      dlOldest.set(ageSeconds(letters.oldestAgeMs));
    }
    for (const beat of beats) {
      const daemon = labelValue(beat.daemon);
      hbAge.set({ daemon }, ageSeconds(beat.ageMs));
      for (const state of DAEMON_STATES)
        hbState.set({ daemon, state }, beat.status === state ? 1 : 0);
      if (typeof beat.restarts === "number") hbRestarts.set({ daemon }, beat.restarts);
    }
    scrapeSeconds.set((now() - started) / 1000);
  }

  let running: Promise<void> | undefined;
  async function scrape(signal?: AbortSignal): Promise<void> {
    running ??= (async () => {
      const controller = new AbortController();
      const timer = setTimeout(
        () => controller.abort(new Error(`the inspector did not answer within ${timeoutMs} ms`)),
        timerDelay(timeoutMs),
      );
      try {
        await collect(controller.signal);
        up.set(1);
      } catch {
        clear();
        up.set(0);
      } finally {
        clearTimeout(timer);
        running = undefined;
      }
    })();
    return signal ? untilAborted(running, signal) : running;
  }

  return {
    registry,
    contentType: registry.contentType,
    async metrics(opts = {}) {
      await scrape(opts.signal);
      return registry.metrics();
    },
    handler(opts = {}) {
      const path = opts.path ?? "/metrics";
      // A request's pathname always starts with "/": any other path would answer 404 forever.
      if (typeof path !== "string" || !path.startsWith("/"))
        throw new RangeError(
          `SwitchyardMetrics.handler: path must be a URL path starting with "/"; got ${JSON.stringify(path)}.`,
        );
      return async (request) => {
        const url = new URL(request.url);
        if (url.pathname !== path) return new Response("Not Found\n", { status: 404 });
        if (request.method !== "GET" && request.method !== "HEAD")
          return new Response("Method Not Allowed\n", {
            status: 405,
            headers: { allow: "GET, HEAD" },
          });
        await scrape(request.signal);
        const body = await registry.metrics();
        return new Response(request.method === "HEAD" ? null : body, {
          status: 200,
          headers: { "content-type": registry.contentType, "cache-control": "no-store" },
        });
      };
    },
  };
}

/**
 * An age in ms as seconds, never negative: an event or heartbeat stamped by a clock ahead of this
 * one is as old as "now", not younger than it.
 */
function ageSeconds(ms: number | undefined): number {
  return Math.max(0, ms ?? 0) / 1000;
}

/** A lone (unpaired) UTF-16 surrogate. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * A name as a label value the exposition's UTF-8 can carry. Encoding turns every lone surrogate
 * into U+FFFD, so two subscribers (or daemons) whose names differ only there would become two
 * identical series, and Prometheus would drop one: each is written as its `\uXXXX` code instead.
 * (prom-client escapes `\`, `"` and newlines itself.)
 */
function labelValue(name: string): string {
  return name.replace(
    LONE_SURROGATE,
    (unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Timed-out reads still running that a scrape tolerates before it stops starting new ones: one
 * lost answer recovers at the next scrape; a store that answers none keeps at most this many.
 */
const MAX_ABANDONED_READS = 2;

/** Label names the metrics use themselves: a constant label of the same name would hide them. */
const OWN_LABELS: ReadonlySet<string> = new Set([
  "subscriber",
  "type",
  "reason",
  "daemon",
  "state",
]);

/**
 * The `labels` option, checked: each name must be a Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`,
 * not starting with `__`, which Prometheus reserves) and not one of the metrics' own labels. One bad
 * name would make the whole exposition text unparsable, so every scrape would fail.
 */
function checkedLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
  for (const name of Object.keys(labels)) {
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name) || name.startsWith("__"))
      throw new RangeError(
        `createMetrics: labels.${name} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__").`,
      );
    if (OWN_LABELS.has(name))
      throw new RangeError(
        `createMetrics: labels.${name} is a label the metrics set themselves (${[...OWN_LABELS].join(", ")}): pick another name.`,
      );
  }
  return labels;
}
