import {
  type DaemonRunState,
  type Inspector,
  type Logger,
  silentLogger,
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
  /**
   * Where a scrape says what went wrong (pino-compatible): a warning when it reports
   * `switchyard_up 0` (with the inspector's error), and one per scrape that left out values the
   * inspector reported malformed (see {@link SwitchyardMetrics.metrics}). @defaultValue silent
   */
  readonly logger?: Logger;
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
   *
   * A value the inspector reports malformed leaves out its own series only, never the scrape: a
   * count that is not a whole number ≥ 0 (a string, NaN, a negative or fractional number, a
   * bigint, null), an age that is not a number (or NaN), a name that is not a string (then that
   * subscriber's or daemon's series). `switchyard_scrape_left_out` counts them, and the `logger`
   * gets one warning per such scrape, naming them.
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
  const logger = options.logger ?? silentLogger;
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
  const leftOut = gauge(
    "scrape_left_out",
    "Values the inspector reported malformed in the last scrape, left out with their series.",
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
  const unlabelled = new Set<Gauge<string>>([
    scrapeSeconds,
    leftOut,
    windowSeconds,
    dlDepth,
    dlOldest,
  ]);
  clear();

  /**
   * Drop every series but `up`. prom-client's `reset()` puts an unlabelled gauge back at 0, which
   * would report "0 dead letters" for a scrape that could not read them: remove that series too.
   */
  function clear(): void {
    for (const g of [scrapeSeconds, leftOut, ...all]) {
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
    const out = new Answer();
    for (const s of out.list("subscribers", subscribers)) {
      const subscriber = out.name("subscriber", s, "subscriber");
      if (subscriber === undefined || s.ephemeral) continue; // throwaway subscribers would only add churning series
      const labels = { subscriber };
      out.set(pending, labels, s.pending, count);
      out.set(inFlight, labels, s.inFlight, count);
      out.set(retrying, labels, s.retrying, count);
      out.set(dead, labels, s.dead, count);
      out.set(lag, labels, s.lag, count);
      out.set(oldest, labels, s.oldestPendingMs, ageOrNone);
    }
    windowSeconds.set(windowMs / 1000);
    for (const [type, n] of out.entries("counts.totals", counts?.totals))
      out.set(events, { type: labelValue(type) }, n, count);
    if (letters !== undefined && out.object("deadLetterCounts", letters)) {
      out.set(dlDepth, {}, letters.depth, count);
      for (const [type, n] of out.entries("deadLetterCounts.byType", letters.byType))
        out.set(dlByType, { type: labelValue(type) }, n, count);
      for (const [reason, n] of out.entries("deadLetterCounts.byReason", letters.byReason))
        if (n !== undefined) out.set(dlByReason, { reason: labelValue(reason) }, n, count);
      for (const [subscriber, n] of out.entries(
        "deadLetterCounts.bySubscriber",
        letters.bySubscriber,
      ))
        out.set(dlBySubscriber, { subscriber: labelValue(subscriber) }, n, count);
      out.set(dlOldest, {}, letters.oldestAgeMs, ageOrNone);
    }
    for (const beat of out.list("heartbeats", beats)) {
      const daemon = out.name("daemon", beat, "daemon");
      if (daemon === undefined) continue;
      out.set(hbAge, { daemon }, beat.ageMs, age);
      for (const state of DAEMON_STATES)
        hbState.set({ daemon, state }, beat.status === state ? 1 : 0);
      // A heartbeat from before restarts were counted carries none.
      if (beat.restarts !== undefined) out.set(hbRestarts, { daemon }, beat.restarts, count);
    }
    if (out.leftOut.length > 0)
      logger.warn(
        { leftOut: out.leftOut.length, values: out.leftOut.slice(0, MAX_LISTED) },
        `metrics: left out ${out.leftOut.length} value(s) the inspector of "${String(inspector.transport)}" reported malformed; the other series are reported.`,
      );
    leftOut.set(out.leftOut.length);
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
      } catch (error) {
        clear();
        up.set(0);
        logger.warn(
          { err: error },
          `metrics: switchyard_up 0, the scrape read nothing: ${error instanceof Error ? error.message : String(error)}`,
        );
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

// What the inspector reports is read through the rules below: a value that breaks one leaves out
// its own series, not the scrape (prom-client throws on a value that is not a number, which made
// one driver's bad count hide every series; NaN and negative counts it would export as they are).

/** A count as a gauge value: a whole number ≥ 0, else undefined (malformed). */
function count(n: unknown): number | undefined {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 ? n : undefined;
}

/**
 * An age in ms as seconds, never negative: an event or heartbeat stamped by a clock ahead of this
 * one is as old as "now", not younger than it. Not a number (or NaN): undefined (malformed).
 * Infinity stays (+Inf: older than any threshold).
 */
function age(ms: unknown): number | undefined {
  return typeof ms === "number" && !Number.isNaN(ms) ? Math.max(0, ms) / 1000 : undefined;
}

/** An optional age: absent means there is nothing waiting, 0. */
function ageOrNone(ms: unknown): number | undefined {
  return ms === undefined ? 0 : age(ms);
}

/** A reported value as a log line shows it (a bigint as `5n`, a string quoted). */
function shown(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "string")
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === "object" && value !== null)
    return Array.isArray(value) ? "an array" : "an object";
  return String(value);
}

/** Left-out values a warning lists (the count says how many there were in all). */
const MAX_LISTED = 20;

/** One scrape's reading of the inspector's answers: sets what is well formed, notes the rest. */
class Answer {
  /** `series: value` of every value left out. */
  readonly leftOut: string[] = [];

  /** Set `gauge{labels}` to `read(raw)`, or note it left out when `read` refuses the value. */
  set<L extends string>(
    gauge: Gauge<L>,
    labels: Partial<Record<L, string>>,
    raw: unknown,
    read: (raw: unknown) => number | undefined,
  ): void {
    const n = read(raw);
    if (n !== undefined) gauge.set(labels, n);
    else {
      const pairs = Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
      const name = (gauge as unknown as { name: string }).name;
      this.leftOut.push(`${name}${pairs.length ? `{${pairs.join(",")}}` : ""}: ${shown(raw)}`);
    }
  }

  /** `value` when it is an object (a record of the answer), else noted and false. */
  object(what: string, value: unknown): value is object {
    if (typeof value === "object" && value !== null) return true;
    this.leftOut.push(`${what}: ${shown(value)}`);
    return false;
  }

  /** The entries of a record in the answer; none (noted) when it is not one. */
  entries<V>(what: string, record: Readonly<Record<string, V>> | undefined): [string, V][] {
    return this.object(what, record) ? Object.entries(record) : [];
  }

  /** The items of a list in the answer that are objects; the others (and a non-list) noted. */
  list<T extends object>(what: string, items: readonly T[] | undefined): T[] {
    if (!Array.isArray(items)) {
      this.leftOut.push(`${what}: ${shown(items)}`);
      return [];
    }
    return items.filter((item, i): item is T => this.object(`${what}[${i}]`, item));
  }

  /** `item[key]` as a label value, or undefined (noted) when it is not a string. */
  name<K extends string>(
    what: string,
    item: { readonly [P in K]: unknown },
    key: K,
  ): string | undefined {
    const name = item[key];
    if (typeof name === "string") return labelValue(name);
    this.leftOut.push(`${what} named ${shown(name)}: all its series`);
    return undefined;
  }
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
