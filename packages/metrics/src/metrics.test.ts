import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import type {
  DeadLetterCounts,
  EventCounts,
  HeartbeatInfo,
  Inspector,
  SubscriberBacklog,
} from "@switchyard/transport";
import { abortReason, sleep } from "@switchyard/transport";
import { afterEach, describe, expect, it } from "vitest";
import { createMetrics } from "./metrics";

/** What the scripted inspector answers; change it between scrapes. */
interface State {
  subscribers: SubscriberBacklog[];
  totals: Record<string, number>;
  letters: DeadLetterCounts;
  beats: HeartbeatInfo[];
  fail?: Error;
  hang?: boolean;
  /** Never answer, ignoring the signal (a driver stuck in a call it cannot cancel). */
  stall?: boolean;
}

/**
 * An inspector answering from `state`: the metrics module is a pure function of what an inspector
 * reports, so this isolates its naming, labels and failure handling. (The drivers' own inspectors
 * are checked against real stores by the testkit's inspector suite.)
 */
function scripted(state: State): Inspector & { reads: number } {
  const answer = async <T>(value: () => T, signal?: AbortSignal): Promise<T> => {
    if (state.fail) throw state.fail;
    if (state.stall) await new Promise(() => {});
    if (state.hang)
      await new Promise((_, reject) =>
        signal?.addEventListener("abort", () => reject(abortReason(signal)), { once: true }),
      );
    return value();
  };
  const inspector = {
    transport: "scripted",
    reads: 0,
    capabilities: {
      deliveries: true,
      heartbeats: true,
      deadLetters: true,
      replay: false,
      purge: false,
      clearPending: false,
      backup: false,
      audit: false,
    },
    subscribers: (o?: { signal?: AbortSignal }) => {
      inspector.reads++;
      return answer(() => state.subscribers, o?.signal);
    },
    counts: (q: { bucketMs?: number; signal?: AbortSignal }) =>
      answer(
        (): EventCounts => ({ bucketMs: q.bucketMs ?? 60_000, buckets: [], totals: state.totals }),
        q.signal,
      ),
    deadLetterCounts: (o?: { signal?: AbortSignal }) => answer(() => state.letters, o?.signal),
    heartbeats: (o?: { signal?: AbortSignal }) => answer(() => state.beats, o?.signal),
    events: async () => ({ events: [] }),
    event: async () => undefined,
    deliveries: async () => [],
    causation: async () => undefined,
    deadLetters: async () => ({ deadLetters: [] }),
    deadLetter: async () => undefined,
    close: async () => {},
    [Symbol.asyncDispose]: async () => {},
  };
  return inspector;
}

const backlog = (subscriber: string, n: Partial<SubscriberBacklog> = {}): SubscriberBacklog => ({
  subscriber,
  types: ["T"],
  ephemeral: false,
  pending: 0,
  inFlight: 0,
  retrying: 0,
  dead: 0,
  lag: 0,
  ...n,
});

const beat = (daemon: string, status: string, ageMs: number, restarts = 0): HeartbeatInfo => ({
  daemon,
  pid: 1,
  host: "h",
  status,
  health: {},
  stats: {},
  restarts,
  startedAt: null,
  at: new Date().toISOString(),
  ageMs,
});

function state(): State {
  return {
    subscribers: [
      backlog("trainer", {
        pending: 3,
        inFlight: 1,
        retrying: 2,
        dead: 1,
        lag: 6,
        oldestPendingMs: 4500,
      }),
      backlog("waitFor-1", { ephemeral: true, pending: 9, lag: 9 }),
    ],
    totals: { TRAINING_COMPLETED: 12, MODEL_PROMOTED: 2 },
    letters: {
      depth: 4,
      byStatus: { pending_retry: 4 },
      byReason: { max_attempts: 3, invalid_payload: 1 },
      byType: { TRAINING_COMPLETED: 4 },
      bySubscriber: { trainer: 4 },
      oldestAgeMs: 60_000,
    },
    beats: [beat("trainer", "running", 2_000, 1), beat("exporter", "crashed", 90_000)],
  };
}

/** The value of one series in an exposition text, or undefined. */
function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("Prometheus metrics from an inspector", () => {
  it("names the backlog, events, dead letters and daemon gauges with Prometheus conventions", async () => {
    const text = await createMetrics(scripted(state())).metrics();
    expect(value(text, "switchyard_up")).toBe(1);
    expect(value(text, 'switchyard_subscriber_pending{subscriber="trainer"}')).toBe(3);
    expect(value(text, 'switchyard_subscriber_in_flight{subscriber="trainer"}')).toBe(1);
    expect(value(text, 'switchyard_subscriber_retrying{subscriber="trainer"}')).toBe(2);
    expect(value(text, 'switchyard_subscriber_dead{subscriber="trainer"}')).toBe(1);
    expect(value(text, 'switchyard_subscriber_backlog{subscriber="trainer"}')).toBe(6);
    expect(
      value(text, 'switchyard_subscriber_oldest_pending_age_seconds{subscriber="trainer"}'),
    ).toBe(4.5);
    expect(text).not.toContain("waitFor-1"); // ephemeral subscribers add no series
    expect(value(text, 'switchyard_events_window{type="TRAINING_COMPLETED"}')).toBe(12);
    expect(value(text, "switchyard_events_window_seconds")).toBe(300);
    expect(value(text, "switchyard_dead_letters")).toBe(4);
    expect(value(text, 'switchyard_dead_letters_by_reason{reason="invalid_payload"}')).toBe(1);
    expect(value(text, 'switchyard_dead_letters_by_type{type="TRAINING_COMPLETED"}')).toBe(4);
    expect(value(text, 'switchyard_dead_letters_by_subscriber{subscriber="trainer"}')).toBe(4);
    expect(value(text, "switchyard_dead_letters_oldest_age_seconds")).toBe(60);
    expect(value(text, 'switchyard_daemon_heartbeat_age_seconds{daemon="exporter"}')).toBe(90);
    expect(value(text, 'switchyard_daemon_state{daemon="exporter",state="crashed"}')).toBe(1);
    expect(value(text, 'switchyard_daemon_state{daemon="exporter",state="running"}')).toBe(0);
    expect(value(text, 'switchyard_daemon_restarts{daemon="trainer"}')).toBe(1);
    expect(text).toContain("# TYPE switchyard_subscriber_backlog gauge");
  });

  it("drops the series of a subscriber that is gone, and reports up 0 without stale values when the inspector fails", async () => {
    const s = state();
    const metrics = createMetrics(scripted(s));
    await metrics.metrics();
    s.subscribers = [backlog("evaluator", { pending: 1, lag: 1 })];
    let text = await metrics.metrics();
    expect(value(text, 'switchyard_subscriber_pending{subscriber="trainer"}')).toBeUndefined();
    expect(value(text, 'switchyard_subscriber_pending{subscriber="evaluator"}')).toBe(1);
    s.fail = new Error("database is locked");
    text = await metrics.metrics();
    expect(value(text, "switchyard_up")).toBe(0);
    expect(text).not.toContain('subscriber="evaluator"');
  });

  it("gives up on an inspector that hangs after timeoutMs, and shares one read between concurrent scrapes", async () => {
    const s = state();
    const inspector = scripted(s);
    const metrics = createMetrics(inspector, { timeoutMs: 50 });
    await Promise.all([metrics.metrics(), metrics.metrics(), metrics.metrics()]);
    expect(inspector.reads).toBe(1);
    s.hang = true;
    expect(value(await metrics.metrics(), "switchyard_up")).toBe(0);
  });

  it("gives up on an inspector that ignores its signal after timeoutMs, and reads again at the next scrape", async () => {
    const s = state();
    const metrics = createMetrics(scripted(s), { timeoutMs: 50 });
    s.stall = true;
    expect(value(await metrics.metrics(), "switchyard_up")).toBe(0);
    s.stall = false;
    expect(value(await metrics.metrics(), "switchyard_up")).toBe(1);
  });

  it("starts no new read while earlier reads the inspector ignored the signal of are still stuck", async () => {
    const s = state();
    const inspector = scripted(s);
    const metrics = createMetrics(inspector, { timeoutMs: 20 });
    s.stall = true;
    for (let i = 0; i < 5; i++) expect(value(await metrics.metrics(), "switchyard_up")).toBe(0);
    expect(inspector.reads).toBe(2); // not one more stuck read per scrape
  });

  it("reports no series but up when the inspector fails, not a dead-letter depth of 0", async () => {
    const s = state();
    const metrics = createMetrics(scripted(s));
    expect(value(await metrics.metrics(), "switchyard_dead_letters")).toBe(4);
    s.fail = new Error("database is locked");
    const samples = (await metrics.metrics()).split("\n").filter((l) => l && !l.startsWith("#"));
    expect(samples).toEqual(["switchyard_up 0"]);
  });

  it("reports no dead-letter depth for a transport that stores no dead letters", async () => {
    const inspector = scripted(state());
    const text = await createMetrics({
      ...inspector,
      capabilities: { ...inspector.capabilities, deadLetters: false },
    }).metrics();
    expect(value(text, "switchyard_up")).toBe(1);
    expect(value(text, "switchyard_dead_letters")).toBeUndefined();
    expect(value(text, "switchyard_dead_letters_oldest_age_seconds")).toBeUndefined();
  });

  it("refuses a window, a timeout or a constant label that would spoil every scrape, naming it", () => {
    const inspector = scripted(state());
    for (const [options, named] of [
      [{ eventsWindowMs: 0 }, "eventsWindowMs"],
      [{ eventsWindowMs: Number.NaN }, "eventsWindowMs"],
      [{ eventsWindowMs: Infinity }, "eventsWindowMs"],
      [{ timeoutMs: -1 }, "timeoutMs"],
      [{ timeoutMs: Number.NaN }, "timeoutMs"],
      [{ labels: { "deploy-env": "prod" } }, "labels.deploy-env"],
      [{ labels: { __name__: "x" } }, "labels.__name__"],
      [{ labels: { subscriber: "x" } }, "labels.subscriber"],
    ] as const)
      expect(() => createMetrics(inspector, options), named).toThrow(named);
  });

  it("refuses a prefix that is not a metric name prefix, or empty (Prometheus's own up), naming it", () => {
    const inspector = scripted(state());
    for (const prefix of ["my-app_", "1st_", "", "sw yard_"])
      expect(() => createMetrics(inspector, { prefix }), JSON.stringify(prefix)).toThrow(
        /createMetrics: prefix/,
      );
    expect(() => createMetrics(inspector, { prefix: "acme:sy_" })).not.toThrow();
  });

  it("refuses a handler path that no request path can equal, naming it", () => {
    const metrics = createMetrics(scripted(state()));
    for (const path of ["metrics", "", "http://localhost/metrics"])
      expect(() => metrics.handler({ path }), JSON.stringify(path)).toThrow(/handler: path/);
    expect(() => metrics.handler({ path: "/ops/metrics" })).not.toThrow();
  });

  it("reports an age of 0, not a negative one, when a publisher's clock is ahead", async () => {
    const s = state();
    s.subscribers = [backlog("trainer", { pending: 1, lag: 1, oldestPendingMs: -1500 })];
    s.letters = { ...s.letters, oldestAgeMs: -2000 };
    const text = await createMetrics(scripted(s)).metrics();
    expect(
      value(text, 'switchyard_subscriber_oldest_pending_age_seconds{subscriber="trainer"}'),
    ).toBe(0);
    expect(value(text, "switchyard_dead_letters_oldest_age_seconds")).toBe(0);
  });

  it("waits as long as a timer can for a timeout beyond 2^31 ms instead of giving up at once", async () => {
    const s = state();
    const slow = scripted(s);
    const subscribers = slow.subscribers;
    slow.subscribers = async (o) => {
      await sleep(20, { signal: o?.signal }); // an inspector that honours its signal
      return subscribers(o);
    };
    for (const timeoutMs of [3_000_000_000, Infinity])
      expect(value(await createMetrics(slow, { timeoutMs }).metrics(), "switchyard_up")).toBe(1);
  });

  it("escapes hostile label values (a subscriber named with quotes, backslashes and newlines)", async () => {
    const s = state();
    s.subscribers = [backlog('evil"\\\nname', { pending: 2, lag: 2 })];
    const text = await createMetrics(scripted(s)).metrics();
    expect(value(text, 'switchyard_subscriber_pending{subscriber="evil\\"\\\\\\nname"}')).toBe(2);
  });

  it("keeps two subscribers whose names differ only in lone surrogates as two series over HTTP", async () => {
    const s = state();
    s.subscribers = [
      backlog("worker\uD800", { pending: 1, lag: 1 }),
      backlog("worker\uDFFF", { pending: 2, lag: 2 }),
      backlog("ok\uD83D\uDE82", { pending: 3, lag: 3 }), // a well-formed pair stays as it is
    ];
    s.beats = [beat("\uDC00d", "running", 1000)];
    const response = await createMetrics(scripted(s)).handler()(
      new Request("http://localhost/metrics"),
    );
    const text = new TextDecoder().decode(await response.arrayBuffer()); // what a scraper reads
    const series = text
      .split("\n")
      .filter((l) => l.startsWith("switchyard_subscriber_pending{"))
      .map((l) => l.slice(0, l.lastIndexOf(" ")));
    expect(new Set(series).size).toBe(3); // not two identical series, one of them dropped by Prometheus
    expect(value(text, 'switchyard_subscriber_pending{subscriber="worker\\\\ud800"}')).toBe(1);
    expect(value(text, 'switchyard_subscriber_pending{subscriber="worker\\\\udfff"}')).toBe(2);
    expect(value(text, 'switchyard_subscriber_pending{subscriber="ok🚂"}')).toBe(3);
    expect(value(text, 'switchyard_daemon_heartbeat_age_seconds{daemon="\\\\udc00d"}')).toBe(1);
  });

  it("serves GET and HEAD at its path through a Fetch handler, 404 elsewhere and 405 for writes", async () => {
    const handler = createMetrics(scripted(state()), { labels: { env: "test" } }).handler();
    const ok = await handler(new Request("http://localhost/metrics"));
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toContain("text/plain");
    expect(await ok.text()).toContain('switchyard_up{env="test"} 1');
    expect(
      (await handler(new Request("http://localhost/metrics", { method: "HEAD" }))).status,
    ).toBe(200);
    // Asked for OpenMetrics first (as Prometheus asks), it answers the text format it writes, and
    // says so: a scraper parses the body by this Content-Type.
    const asked = await handler(
      new Request("http://localhost/metrics", {
        headers: {
          accept:
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
        },
      }),
    );
    expect(asked.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(await asked.text()).not.toContain("# EOF");
    expect((await handler(new Request("http://localhost/other"))).status).toBe(404);
    const post = await handler(new Request("http://localhost/metrics", { method: "POST" }));
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });

  it("leaves out only the values an inspector reports that are not counts, keeps every other series, and says which", async () => {
    const s = state();
    const odd = (n: unknown) => n as number; // what a misbehaving driver hands over
    s.subscribers = [
      backlog("trainer", { pending: 3, lag: 3 }),
      backlog("strings", { pending: odd("7"), inFlight: 1, lag: 1 }),
      backlog("nan", { retrying: Number.NaN, dead: 2, lag: 0 }),
      backlog("negative", { inFlight: -1, lag: 4, oldestPendingMs: odd("soon") }),
      backlog("big", { dead: odd(5n), pending: 1, lag: odd(null) }),
      backlog("fraction", { pending: 0.5, lag: Infinity }),
      backlog(42 as unknown as string, { pending: 1, lag: 1 }), // a name that is not a string: no series at all
    ];
    s.totals = { TRAINING_COMPLETED: 12, BROKEN: odd("12"), WORSE: odd(3n) };
    s.letters = {
      ...s.letters,
      depth: odd("4"),
      byType: { TRAINING_COMPLETED: 4, OTHER: -2 },
      byReason: { max_attempts: odd(null), timeout: 1 },
      oldestAgeMs: odd(60_000n),
    };
    s.beats = [
      beat("trainer", "running", 2_000, odd(Number.NaN)),
      beat("exporter", "crashed", odd(90_000n)),
    ];
    const warnings: unknown[] = [];
    const logger = {
      debug() {},
      info() {},
      warn: (obj: unknown) => warnings.push(obj),
      error() {},
    };
    const text = await createMetrics(scripted(s), { logger }).metrics();
    expect(value(text, "switchyard_up")).toBe(1);
    expect(value(text, 'switchyard_subscriber_pending{subscriber="trainer"}')).toBe(3);
    expect(value(text, 'switchyard_subscriber_pending{subscriber="strings"}')).toBeUndefined();
    expect(value(text, 'switchyard_subscriber_in_flight{subscriber="strings"}')).toBe(1);
    expect(value(text, 'switchyard_subscriber_retrying{subscriber="nan"}')).toBeUndefined();
    expect(value(text, 'switchyard_subscriber_dead{subscriber="nan"}')).toBe(2);
    expect(value(text, 'switchyard_subscriber_in_flight{subscriber="negative"}')).toBeUndefined();
    expect(value(text, 'switchyard_subscriber_backlog{subscriber="negative"}')).toBe(4);
    expect(
      value(text, 'switchyard_subscriber_oldest_pending_age_seconds{subscriber="negative"}'),
    ).toBeUndefined();
    expect(value(text, 'switchyard_subscriber_dead{subscriber="big"}')).toBeUndefined();
    expect(value(text, 'switchyard_subscriber_backlog{subscriber="big"}')).toBeUndefined();
    expect(value(text, 'switchyard_subscriber_pending{subscriber="big"}')).toBe(1);
    expect(value(text, 'switchyard_subscriber_pending{subscriber="fraction"}')).toBeUndefined();
    expect(value(text, 'switchyard_subscriber_backlog{subscriber="fraction"}')).toBeUndefined();
    expect(text).not.toContain('subscriber="42"');
    expect(value(text, 'switchyard_events_window{type="TRAINING_COMPLETED"}')).toBe(12);
    expect(value(text, 'switchyard_events_window{type="BROKEN"}')).toBeUndefined();
    expect(value(text, 'switchyard_events_window{type="WORSE"}')).toBeUndefined();
    expect(value(text, "switchyard_dead_letters")).toBeUndefined();
    expect(value(text, 'switchyard_dead_letters_by_type{type="TRAINING_COMPLETED"}')).toBe(4);
    expect(value(text, 'switchyard_dead_letters_by_type{type="OTHER"}')).toBeUndefined();
    expect(value(text, 'switchyard_dead_letters_by_reason{reason="max_attempts"}')).toBeUndefined();
    expect(value(text, 'switchyard_dead_letters_by_reason{reason="timeout"}')).toBe(1);
    expect(value(text, "switchyard_dead_letters_oldest_age_seconds")).toBeUndefined();
    expect(value(text, 'switchyard_daemon_restarts{daemon="trainer"}')).toBeUndefined();
    expect(value(text, 'switchyard_daemon_heartbeat_age_seconds{daemon="trainer"}')).toBe(2);
    expect(
      value(text, 'switchyard_daemon_heartbeat_age_seconds{daemon="exporter"}'),
    ).toBeUndefined();
    expect(value(text, 'switchyard_daemon_state{daemon="exporter",state="crashed"}')).toBe(1);
    // One warning per scrape, naming every value left out and what it was.
    expect(warnings).toHaveLength(1);
    const warning = JSON.stringify(warnings[0]);
    expect(warning).toContain('switchyard_subscriber_pending{subscriber=\\"strings\\"}');
    expect(warning).toContain("switchyard_daemon_heartbeat_age_seconds");
    expect(warning).toContain('\\"7\\"');
    expect(warning).toContain("5n");
    expect((warnings[0] as { leftOut: number }).leftOut).toBe(17);
    // …and a series says so too, for an alert that does not read logs.
    expect(value(text, "switchyard_scrape_left_out")).toBe(17);
    if (spawnSync("promtool", ["--version"]).status === 0) {
      const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
      expect(check.stderr + check.stdout).toBe("");
    }
  });

  it("reports NaN in no series: an age a driver could not compute is left out, not exported as NaN", async () => {
    const s = state();
    s.subscribers = [backlog("trainer", { pending: 1, lag: 1, oldestPendingMs: Number.NaN })];
    s.beats = [beat("trainer", "running", Number.NaN)];
    const text = await createMetrics(scripted(s)).metrics();
    expect(value(text, "switchyard_up")).toBe(1);
    expect(text).not.toMatch(/ nan$/im); // prom-client writes NaN as "Nan"
    expect(value(text, 'switchyard_subscriber_pending{subscriber="trainer"}')).toBe(1);
  });

  it("says why a scrape reported up 0 through the logger", async () => {
    const s = state();
    s.fail = new Error("database is locked");
    const warnings: string[] = [];
    const logger = {
      debug() {},
      info() {},
      warn: (_: unknown, msg?: string) => warnings.push(String(msg)),
      error() {},
    };
    expect(value(await createMetrics(scripted(s), { logger }).metrics(), "switchyard_up")).toBe(0);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("database is locked");
  });

  const promtool = spawnSync("promtool", ["--version"]).status === 0;
  if (!promtool && process.env.CI !== "true")
    console.log("skipping the promtool checks: no promtool binary (apt-get install prometheus)");
  it.skipIf(!promtool && process.env.CI !== "true")(
    "passes promtool check metrics, hostile label values and odd numbers included",
    async () => {
      const s = state();
      const hostile = ['q"uote', "back\\slash\\", "new\nline", "cr\rtab\t", "ünï 🚂", ""];
      s.subscribers = hostile.map((name, i) => backlog(name, { pending: i, lag: i }));
      s.totals = Object.fromEntries(hostile.map((type, i) => [type, i]));
      s.letters = {
        ...s.letters,
        byReason: { 'a"b': 1 } as DeadLetterCounts["byReason"],
        oldestAgeMs: Number.NaN,
      };
      s.beats = [beat('d"\\\n', "weird\nstate", Infinity, -1)];
      const metrics = createMetrics(scripted(s), { labels: { env: 'p"r\\o\nd' } });
      for (const text of [
        await createMetrics(scripted(state())).metrics(),
        await metrics.metrics(),
      ]) {
        expect(
          value(text, 'switchyard_up{env="p\\"r\\\\o\\nd"}') ?? value(text, "switchyard_up"),
        ).toBe(1);
        const check = spawnSync("promtool", ["check", "metrics"], {
          input: text,
          encoding: "utf8",
        });
        expect(check.stderr + check.stdout).toBe("");
        expect(check.status).toBe(0);
      }
    },
  );
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const prometheus = spawnSync("prometheus", ["--version"]).status === 0;
if (!prometheus)
  console.log(
    "skipping the Prometheus scrape test: no prometheus binary (apt-get install prometheus)",
  );

describe.skipIf(!prometheus && process.env.CI !== "true")(
  "scraped by a real Prometheus",
  { tags: ["slow"] },
  () => {
    const cleanups: (() => unknown)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    it("Prometheus scrapes the endpoint and answers the backlog through its HTTP API", async () => {
      const s = state();
      const metrics = createMetrics(scripted(s));
      const appPort = await freePort();
      const server = serve({ fetch: metrics.handler(), port: appPort, hostname: "127.0.0.1" });
      cleanups.push(() => new Promise((r) => server.close(r)));
      const dir = mkdtempSync(join(tmpdir(), "prom-"));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(
        join(dir, "prometheus.yml"),
        `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: switchyard\n    static_configs:\n      - targets: ["127.0.0.1:${appPort}"]\n`,
      );
      const promPort = await freePort();
      const child = spawn(
        "prometheus",
        [
          `--config.file=${join(dir, "prometheus.yml")}`,
          `--storage.tsdb.path=${join(dir, "data")}`,
          `--web.listen-address=127.0.0.1:${promPort}`,
        ],
        { stdio: "ignore" },
      );
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGTERM");
          }),
      );
      const query = async (q: string): Promise<number | undefined> => {
        try {
          const response = await fetch(
            `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`,
          );
          const body = (await response.json()) as {
            data?: { result?: { value: [number, string] }[] };
          };
          const first = body.data?.result?.[0];
          return first ? Number(first.value[1]) : undefined;
        } catch {
          return undefined; // not up yet
        }
      };
      const deadline = Date.now() + 60_000;
      let seen: number | undefined;
      while (Date.now() < deadline) {
        seen = await query('switchyard_subscriber_backlog{subscriber="trainer"}');
        if (seen !== undefined) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(seen).toBe(6);
      expect(await query('switchyard_dead_letters_by_reason{reason="max_attempts"}')).toBe(3);
      expect(await query('up{job="switchyard"}')).toBe(1);
    }, 90_000);
  },
);
