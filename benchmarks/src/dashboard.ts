// The dashboard's server time per page on a large SQLite database: the Fetch handler called
// directly (no network), each response read to its last byte, through a read-only driver as
// `switchyard dashboard` opens it. In full mode also the page load in a real browser (Debian's
// Chromium through playwright-core), when one is installed.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sqliteDriver } from "@switchyard/cross-process-queue";
import { createDashboard, serveDashboard } from "@switchyard/dashboard";
import { type Envelope, createEnvelope } from "@switchyard/event-schema";
import {
  type DaemonHeartbeat,
  type Driver,
  UnrecoverableError,
  openDriver,
} from "@switchyard/transport";
import {
  type Figure,
  type GroupResult,
  type RunOptions,
  fromRuns,
  percentile,
  sleep,
} from "./harness";

const GROUP = "dashboard: server time per page (ms)";
const BROWSER_GROUP = "dashboard: browser page load (ms)";
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
/** The event types stored, in rotation; subscribers below are registered for some of them. */
const TYPES = ["SELFPLAY_COMPLETE", "TRAINING_COMPLETED", "EVALUATION_COMPLETED", "MODEL_PROMOTED"];
const POISON = "POISON_PILL";
const BATCH = 1000;

/** The pages and their JSON endpoints measured, as a user opens them (default parameters). */
const ROUTES = [
  ["overview page `/`", "/"],
  ["`/api/overview`", "/api/overview"],
  ["events page `/events`", "/events"],
  ["`/api/events`", "/api/events"],
  ["dead letters page `/dead-letters`", "/dead-letters"],
  ["`/api/dead-letters`", "/api/dead-letters"],
  ["pipeline page `/pipeline`", "/pipeline"],
  ["`/api/pipeline/keys`", "/api/pipeline/keys"],
] as const;

/** The pipeline the Pipeline page draws and verifies per key (the bench's stage types, `config_key`). */
const PIPELINE = { name: "bench", key: "config_key", stages: TYPES };

interface Sizes {
  readonly events: number;
  readonly deadLetters: number;
  /** Requests per route, after the warm-up. */
  readonly requests: number;
}

export async function benchDashboard(options: RunOptions): Promise<GroupResult> {
  const sizes: Sizes = options.quick
    ? { events: 2_000, deadLetters: 50, requests: 5 }
    : { events: 100_000, deadLetters: 1_000, requests: 30 };
  const dir = mkdtempSync(join(tmpdir(), "switchyard-bench-dashboard-"));
  const path = join(dir, "coordination.db");
  try {
    const built = await build(path, sizes);
    const reader = await openDriver(`sqlite:${path}`, { drivers: [sqliteDriver], readOnly: true });
    try {
      const database = `SQLite file (WAL) with ${sizes.events.toLocaleString("en")} events (${TYPES.length + 1} types, ${BATCH}-event publish batches), ${sizes.deadLetters.toLocaleString("en")} dead letters (one signature), ${built.subscribers} subscribers (${built.backlog.toLocaleString("en")} deliveries pending), 2 daemons; every event inside the 1 h window (published just before)`;
      const settings = `${database}; read-only driver; handler called in process with \`new Request\`, body read in full; ${sizes.requests} sequential requests per route, routes interleaved, after 2 warm-up requests each`;
      // The database is what the settings say: the backlog and the dead letters as read back.
      const inspector = reader.inspector();
      const pending = (await inspector.subscribers()).reduce((n, s) => n + s.lag, 0);
      const dead = (await inspector.deadLetterCounts()).depth;
      if (pending !== built.backlog || dead !== sizes.deadLetters)
        throw new Error(
          `the database holds ${pending} pending deliveries and ${dead} dead letters; expected ${built.backlog} and ${sizes.deadLetters}`,
        );
      const dashboard = createDashboard(reader, { catalog: { pipelines: [PIPELINE] } });
      const figures: Figure[] = [];
      const times = new Map<string, number[]>(ROUTES.map(([name]) => [name, []]));
      const bytes = new Map<string, number>();
      const fetchOnce = async (url: string): Promise<number> => {
        const t0 = performance.now();
        const response = await dashboard(new Request(`http://dashboard.bench${url}`));
        const body = await response.text();
        const ms = performance.now() - t0;
        if (response.status !== 200)
          throw new Error(`dashboard ${url} answered ${response.status}: ${body.slice(0, 200)}`);
        bytes.set(url, body.length);
        return ms;
      };
      for (const [, url] of ROUTES) for (let i = 0; i < 2; i++) await fetchOnce(url);
      for (let i = 0; i < sizes.requests; i++) {
        // Rotate the order so that no route always follows the same one (caches, GC).
        const shift = i % ROUTES.length;
        for (const [name, url] of [...ROUTES.slice(shift), ...ROUTES.slice(0, shift)])
          times.get(name)!.push(await fetchOnce(url));
      }
      for (const [name, url] of ROUTES) {
        const runs = times.get(name)!;
        figures.push(
          fromRuns(GROUP, name, runs, {
            unit: "ms",
            settings,
            note: `p95 ${percentile(runs, 0.95).toFixed(1)} ms; ${(bytes.get(url)! / 1024).toFixed(1)} KiB`,
          }),
        );
      }
      const notMeasured: string[] = [];
      if (options.quick) {
        notMeasured.push("dashboard browser page load: not in quick mode (full `pnpm bench` only)");
      } else if (!existsSync(CHROMIUM)) {
        const why = `dashboard browser page load: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`;
        console.log(`  skipped ${why}`);
        notMeasured.push(why);
      } else {
        figures.push(...(await browserLoad(reader, database)));
      }
      return {
        figures,
        targets: [],
        notMeasured,
        settings: [
          `dashboard: \`createDashboard(driver, { catalog })\` defaults (read-only, 1 h window, dead-letter groups from at most 10,000 records, Pipeline page verifying per key from at most 20,000 events per pipeline) with one declared pipeline (${TYPES.length} stages linked by \`config_key\`, 50 keys) on \`openDriver("sqlite:…", { readOnly: true })\`; the database is written first through \`sqliteDriver\`'s transport (${built.seedSeconds.toFixed(0)} s to build) and closed before measuring.`,
        ],
      };
    } finally {
      await reader.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Write the database as a running system would: events published in batches, subscribers
 * registered that have not consumed yet (the backlog), dead letters from a subscriber whose
 * handler fails unrecoverably, and two daemons' heartbeats.
 */
async function build(
  path: string,
  sizes: Sizes,
): Promise<{ subscribers: number; backlog: number; seedSeconds: number }> {
  const t0 = performance.now();
  const writer = await openDriver(`sqlite:${path}`, { drivers: [sqliteDriver] });
  try {
    const transport = writer.transport();
    // Three subscribers registered and not consuming: each keeps a backlog of its types.
    const registered: [string, string[]][] = [
      ["trainer", ["SELFPLAY_COMPLETE"]],
      ["evaluator", ["TRAINING_COMPLETED"]],
      ["promoter", ["EVALUATION_COMPLETED"]],
    ];
    for (const [name, types] of registered) await transport.register!(name, types);
    await transport.subscribe({
      subscriber: "pill_eater",
      types: [POISON],
      handler: async (d) => {
        // One first line (one dead-letter signature), the detail on the next.
        const key = String((d.envelope.data as { config_key: string }).config_key);
        throw new UnrecoverableError(`cannot parse the payload\nconfig ${key}`);
      },
    });
    // Poison pills spread evenly through the events, so dead letters span the whole history.
    const every = Math.floor(sizes.events / sizes.deadLetters);
    let backlog = 0;
    let batch: Envelope[] = [];
    for (let i = 0; i < sizes.events; i++) {
      const poison = i % every === every - 1 && Math.floor(i / every) < sizes.deadLetters;
      const type = poison ? POISON : TYPES[i % TYPES.length]!;
      if (!poison && type !== "MODEL_PROMOTED") backlog++;
      batch.push(
        createEnvelope({
          type,
          source: "bench",
          subject: `cfg${i % 50}`,
          data: { config_key: `cfg${i % 50}`, n: i, model_path: `models/cfg${i % 50}/gen-${i}.pt` },
        }),
      );
      if (batch.length === BATCH || i === sizes.events - 1) {
        await transport.publish(batch);
        batch = [];
      }
    }
    const inspector = writer.inspector();
    const deadline = Date.now() + (sizes.events > 10_000 ? 600_000 : 60_000);
    while ((await inspector.deadLetterCounts()).depth < sizes.deadLetters) {
      if (Date.now() > deadline)
        throw new Error(`the ${sizes.deadLetters} dead letters were not written in time`);
      await sleep(50);
    }
    const sink = writer.heartbeatSink();
    const now = new Date().toISOString();
    for (const daemon of ["selfplay", "trainer"]) {
      const beat: DaemonHeartbeat = {
        daemon,
        pid: process.pid,
        host: "bench",
        status: "running",
        health: { healthy: true, status: "healthy", message: "ok", details: {} },
        stats: {
          eventsProcessed: 0,
          eventsDeduplicated: 0,
          successCount: 0,
          errorsCount: 0,
          successRate: 1,
          lastActivity: Date.now(),
          cyclesRun: 0,
          cycleFailures: 0,
          consecutiveCycleFailures: 0,
          eventsEmitted: 0,
          emitFailures: 0,
          consecutiveEmitFailures: 0,
        },
        restarts: 0,
        startedAt: now,
        at: now,
      };
      await sink.write(beat);
    }
    return {
      subscribers: registered.length + 1,
      backlog,
      seedSeconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await writer.close();
  }
}

/** Median page load (`waitForLoadState("load")`) of the overview, events and pipeline pages in Chromium. */
async function browserLoad(driver: Driver, database: string): Promise<Figure[]> {
  const { chromium } = await import("playwright-core");
  const served = await serveDashboard({ driver, port: 0 });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox"],
  });
  const loads = 7;
  try {
    const figures: Figure[] = [];
    for (const [name, route] of [
      ["overview page `/`", ""],
      ["events page `/events`", "events"],
      ["pipeline page `/pipeline`", "pipeline"],
    ] as const) {
      const runs: number[] = [];
      for (let i = 0; i < loads + 1; i++) {
        // A fresh context each time: a first visit, nothing cached.
        const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
        const page = await context.newPage();
        const t0 = performance.now();
        const response = await page.goto(`${served.url}${route}`);
        await page.waitForLoadState("load");
        const ms = performance.now() - t0;
        await context.close();
        if (response?.status() !== 200)
          throw new Error(`browser: ${route || "/"} answered ${String(response?.status())}`);
        if (i > 0) runs.push(ms); // the first load warms the browser and the server
      }
      figures.push(
        fromRuns(BROWSER_GROUP, name, runs, {
          unit: "ms",
          settings: `${database}; read-only driver; \`serveDashboard\` on 127.0.0.1, headless Chromium (${CHROMIUM}), new context per load (cold cache), \`page.goto\` to the \`load\` event; ${loads} loads after 1 warm-up`,
          note: `p95 ${percentile(runs, 0.95).toFixed(0)} ms`,
        }),
      );
    }
    return figures;
  } finally {
    await browser.close();
    await served.close();
  }
}
