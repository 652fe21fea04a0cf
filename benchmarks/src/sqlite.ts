// Cross-process on SQLite: our queue next to plainjob and liteque (same durability settings) and
// raw better-sqlite3 inserts as the ceiling. Publishing is measured in this process with tinybench;
// claim+ack, latency and idle CPU with worker processes (worker.ts) and bounded loops.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Worker } from "./child";
import {
  type Figure,
  type GroupResult,
  type Ratio,
  type RunOptions,
  type Target,
  find,
  fromRuns,
  measure,
  median,
  percentile,
  sleep,
} from "./harness";
import { LIBS, type Lib, backlog, payload, producer, rawTable } from "./sqlite-libs";

const SUBSCRIBER = "bench";
const CONCURRENCY = 64;
/** Poll interval given to plainjob and liteque wherever throughput is measured. */
const PEER_POLL_MS = 10;

const names = {
  single: {
    switchyard: "switchyard publish(), 1 event per call",
    plainjob: "plainjob add(), 1 job per call",
    liteque: "liteque enqueue(), 1 job per call",
    raw: "better-sqlite3 INSERT, 1 row per transaction",
  },
  batch: {
    switchyard: "switchyard publish(), 100 events per call",
    plainjob: "plainjob addMany(), 100 jobs per call",
    raw: "better-sqlite3 INSERT, 100 rows per transaction",
  },
  consume: (lib: Lib, procs: number) =>
    `${lib} claim + handle + ack, ${procs} process${procs > 1 ? "es" : ""}`,
};

export async function benchSqlite(options: RunOptions): Promise<GroupResult> {
  const { quick } = options;
  const dir = mkdtempSync(join(tmpdir(), "switchyard-bench-"));
  try {
    const publish = await publishing(dir, options);
    const consume = await consuming(dir, quick);
    const latency = await latencies(dir, quick);
    const figures = [...publish, ...consume, ...latency.figures];
    const v = (name: string) => find(figures, name).value;

    const ratios: Ratio[] = [];
    const ratio = (description: string, a: string, b: string) => {
      const value = v(a) / v(b);
      ratios.push({ group: "sqlite", description: `${description}: ${a} / ${b}`, value });
      return value;
    };
    const batchVsRaw = ratio("batched publish vs raw", names.batch.switchyard, names.batch.raw);
    ratio("single publish vs raw", names.single.switchyard, names.single.raw);
    const singleVsPlainjob = ratio(
      "single publish vs plainjob",
      names.single.switchyard,
      names.single.plainjob,
    );
    ratio("single publish vs liteque", names.single.switchyard, names.single.liteque);
    ratio("batched publish vs plainjob", names.batch.switchyard, names.batch.plainjob);
    const twoVsPlainjob = ratio(
      "claim+ack, 2 processes, vs plainjob",
      names.consume("switchyard", 2),
      names.consume("plainjob", 2),
    );
    ratio(
      "claim+ack, 1 process, vs plainjob",
      names.consume("switchyard", 1),
      names.consume("plainjob", 1),
    );
    for (const procs of [1, 2]) {
      ratio(
        `claim+ack, ${procs} process(es), vs liteque`,
        names.consume("switchyard", procs),
        names.consume("liteque", procs),
      );
    }
    ratio(
      "claim+ack, 2 processes vs 1",
      names.consume("switchyard", 2),
      names.consume("switchyard", 1),
    );

    const { p50, p99, cpu } = latency.ours;
    const targets: Target[] = [
      {
        group: "sqlite",
        description: "batched publish (100 per call) ≥ 40 % of raw 100-row inserts",
        met: batchVsRaw >= 0.4,
        detail: `${(batchVsRaw * 100).toFixed(0)} %`,
      },
      {
        group: "sqlite",
        description: "single publish ≥ plainjob's single add()",
        met: singleVsPlainjob >= 1,
        detail: `${singleVsPlainjob.toFixed(2)}×`,
      },
      {
        group: "sqlite",
        description: "claim+ack with 2 processes ≥ 3× plainjob's (2 processes)",
        met: twoVsPlainjob >= 3,
        detail: `${twoVsPlainjob.toFixed(2)}×`,
      },
      {
        group: "sqlite",
        description: "latency p50 ≤ 0.5 ms at 500 events/s (publish → handler, two processes)",
        met: p50 <= 0.5,
        detail: `${p50.toFixed(3)} ms`,
      },
      {
        group: "sqlite",
        description: "latency p99 ≤ 5 ms at 500 events/s",
        met: p99 <= 5,
        detail: `${p99.toFixed(3)} ms`,
      },
      {
        group: "sqlite",
        description: "idle subscriber process ≤ 2 % CPU",
        met: cpu <= 2,
        detail: `${cpu.toFixed(2)} % of one core`,
      },
    ];
    const sqliteVersion = sqliteVersionOf12();
    const settings = [
      `better-sqlite3 12 bundles SQLite ${sqliteVersion} (switchyard, plainjob, raw); liteque runs on better-sqlite3 11.9.1.`,
      "Durability, every SQLite library: WAL, `synchronous = NORMAL`, busy timeout 5 s, one file in the OS temp directory. " +
        "switchyard: `sqliteTransport()` defaults (`claimBatchSize` 64, `minPollMs` 25, `maxPollMs` 1000, `watch` on; `wal_autocheckpoint = 0` on its connections, checkpoints in a worker thread per process: PASSIVE every 100 ms after commits, RESTART at 4000 WAL pages); " +
        "plainjob 0.0.14: its `defineQueue()` pragmas (`journal_mode = WAL`, `synchronous = 1`, `busy_timeout = 5000`), better-sqlite3 12; " +
        "liteque 0.8.0: `buildDBClient()` with `walEnabled` (WAL, `synchronous = NORMAL`, `cache_size = -65536`), on its own better-sqlite3 11.9.1 (≥ 11.10 rejects its async transactions); " +
        "raw: better-sqlite3 12, WAL, `synchronous = NORMAL`, `wal_autocheckpoint = 4000` (inline, the queue's former cadence), a table like `events` (autoincrement key, unique text id, payload JSON). plainjob and liteque keep SQLite's default `wal_autocheckpoint` (1000 pages, inline).",
      `Publish: tinybench (3 rounds in rotated order, warm-up included), ops/s from the median task time; every call builds its event (switchyard: \`createEnvelope()\` with a UUIDv7 id; raw: UUIDv7 + \`JSON.stringify\`). switchyard has one registered subscriber.`,
      `Claim+ack: a backlog (switchyard ${PREFILL.switchyard.full}, plainjob ${PREFILL.plainjob.full}, liteque ${PREFILL.liteque.full} events; sized so that one run takes a few seconds) published before the workers start; ` +
        `timed from "go" until the backlog query shows nothing left (polled every 2 ms over a read-only connection), at most ${CAP_MS / 1000} s per run; ${RUNS_FULL} runs each, median (range in brackets). ` +
        `Handler: a no-op async function. switchyard: subscription \`concurrency\` ${CONCURRENCY}; liteque: \`Runner\` \`concurrency\` ${CONCURRENCY}, \`pollIntervalMs\` ${PEER_POLL_MS}; plainjob: one job at a time per worker (its design), \`pollIntervall\` ${PEER_POLL_MS}.`,
      `Latency: one subscriber process, the publisher in the benchmark process, ${RATE} events/s paced by timers for ${LATENCY_MS.full / 1000} s per run (switchyard: ${RUNS_FULL} runs, median of the runs' percentiles; peers: 1 run each); ` +
        "latency = handler start − the `process.hrtime` taken just before `publish()` (CLOCK_MONOTONIC, shared by the processes). " +
        `Idle CPU: \`process.cpuUsage()\` in the subscriber process over ${IDLE_MS.full / 1000} s with nothing published, after ${SETTLE_MS.full / 1000} s of settling; % of one core.`,
    ];
    return { figures, targets, ratios, settings };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function sqliteVersionOf12(): string {
  const db = new Database(":memory:");
  try {
    return db.prepare("SELECT sqlite_version()").pluck().get() as string;
  } finally {
    db.close();
  }
}

async function publishing(dir: string, options: RunOptions): Promise<Figure[]> {
  const group = "sqlite: publish (events/s)";
  const file = (name: string) => join(dir, `publish-${name}.db`);
  const ours = await producer("switchyard", file("switchyard"));
  await ours.register(SUBSCRIBER, "X");
  const plainjob = await producer("plainjob", file("plainjob"));
  const liteque = await producer("liteque", file("liteque"));
  const raw = rawTable(file("raw"));
  const list = Array.from({ length: 100 }, () => payload);
  try {
    const single = await measure(
      group,
      {
        [names.single.switchyard]: async () => {
          for (let i = 0; i < 100; i++) await ours.publish("X", payload);
        },
        [names.single.plainjob]: async () => {
          for (let i = 0; i < 100; i++) await plainjob.publish("X", payload);
        },
        [names.single.liteque]: async () => {
          for (let i = 0; i < 100; i++) await liteque.publish("X", payload);
        },
        [names.single.raw]: async () => {
          for (let i = 0; i < 100; i++) raw.one("X", payload);
        },
      },
      100,
      options,
    );
    const batch = await measure(
      group,
      {
        [names.batch.switchyard]: async () => {
          for (let i = 0; i < 10; i++) await ours.publishMany!("X", list);
        },
        [names.batch.plainjob]: async () => {
          for (let i = 0; i < 10; i++) await plainjob.publishMany!("X", list);
        },
        [names.batch.raw]: async () => {
          for (let i = 0; i < 10; i++) raw.many("X", list);
        },
      },
      1000,
      options,
    );
    const note = "no batch enqueue in liteque: not in the batch table";
    return [...single, ...batch].map((f) => (f.name === names.single.liteque ? { ...f, note } : f));
  } finally {
    await Promise.all([ours.close(), plainjob.close(), liteque.close()]);
    raw.close();
  }
}

const PREFILL: Record<Lib, { full: number; quick: number }> = {
  switchyard: { full: 40_000, quick: 2_000 },
  plainjob: { full: 20_000, quick: 1_000 },
  liteque: { full: 2_000, quick: 200 },
};
const RUNS_FULL = 3;
const CAP_MS = 10_000;

async function consuming(dir: string, quick: boolean): Promise<Figure[]> {
  const group = "sqlite: claim + handle + ack (events/s)";
  const figures: Figure[] = [];
  let run = 0;
  for (const lib of LIBS) {
    for (const procs of [1, 2]) {
      const rates: number[] = [];
      for (let r = 0; r < (quick ? 1 : RUNS_FULL); r++) {
        rates.push(await consumeOnce(join(dir, `consume-${run++}.db`), lib, procs, quick));
      }
      figures.push(fromRuns(group, names.consume(lib, procs), rates));
    }
  }
  return figures;
}

async function consumeOnce(path: string, lib: Lib, procs: number, quick: boolean) {
  const total = PREFILL[lib][quick ? "quick" : "full"];
  const p = await producer(lib, path);
  await p.register(SUBSCRIBER, "X");
  const list = Array.from({ length: 500 }, () => payload);
  for (let i = 0; i < total; i += list.length) {
    if (p.publishMany) await p.publishMany("X", list.slice(0, Math.min(500, total - i)));
    else for (let k = 0; k < Math.min(500, total - i); k++) await p.publish("X", payload);
  }
  await p.close();
  const workers = Array.from(
    { length: procs },
    () =>
      new Worker("consume", {
        lib,
        path,
        subscriber: SUBSCRIBER,
        type: "X",
        concurrency: CONCURRENCY,
        pollMs: PEER_POLL_MS,
      }),
  );
  const left = backlog(lib, path, SUBSCRIBER, "X");
  try {
    await Promise.all(workers.map((w) => w.next("ready", 60_000)));
    const start = performance.now();
    for (const w of workers) w.send({ type: "go" });
    const cap = start + (quick ? 3_000 : CAP_MS);
    while (left.left() && performance.now() < cap) await sleep(2);
    const elapsed = performance.now() - start;
    const done = total - left.count();
    const results = await Promise.all(workers.map((w) => w.finish("done", 30_000)));
    const handled = results.reduce((n, m) => n + (m.handled as number), 0);
    if (handled < done) throw new Error(`${lib}: ${done} acked but only ${handled} handled`);
    return (done / elapsed) * 1000;
  } finally {
    left.close();
    for (const w of workers) w.kill();
  }
}

const RATE = 500;
const LATENCY_MS = { full: 4_000, quick: 500 };
const IDLE_MS = { full: 5_000, quick: 500 };
const SETTLE_MS = { full: 2_000, quick: 200 };

async function latencies(dir: string, quick: boolean) {
  const group = "sqlite: publish → handler latency at 500 events/s, idle CPU";
  const figures: Figure[] = [];
  const configs: { lib: Lib; pollMs: number; runs: number }[] = [
    { lib: "switchyard", pollMs: 0, runs: quick ? 1 : RUNS_FULL },
    { lib: "plainjob", pollMs: 1000, runs: 1 },
    { lib: "plainjob", pollMs: PEER_POLL_MS, runs: 1 },
    { lib: "liteque", pollMs: 1000, runs: 1 },
    { lib: "liteque", pollMs: PEER_POLL_MS, runs: 1 },
  ];
  let ours = { p50: Number.NaN, p99: Number.NaN, cpu: Number.NaN };
  let n = 0;
  for (const { lib, pollMs, runs } of configs) {
    const p50s: number[] = [];
    const p99s: number[] = [];
    const cpus: number[] = [];
    for (let r = 0; r < runs; r++) {
      const result = await latencyOnce(join(dir, `latency-${n++}.db`), lib, pollMs, quick);
      p50s.push(percentile(result.latencies, 0.5));
      p99s.push(percentile(result.latencies, 0.99));
      cpus.push(result.cpu);
    }
    const label =
      lib === "switchyard" ? "switchyard (defaults)" : `${lib}, poll every ${pollMs} ms`;
    figures.push(
      fromRuns(group, `${label}: p50`, p50s, { unit: "ms" }),
      fromRuns(group, `${label}: p99`, p99s, { unit: "ms" }),
      fromRuns(group, `${label}: idle subscriber CPU`, cpus, { unit: "% CPU" }),
    );
    if (lib === "switchyard") ours = { p50: median(p50s), p99: median(p99s), cpu: median(cpus) };
  }
  return { figures, ours };
}

async function latencyOnce(path: string, lib: Lib, pollMs: number, quick: boolean) {
  const p = await producer(lib, path);
  const worker = new Worker("latency", {
    lib,
    path,
    subscriber: "latency",
    type: "L",
    concurrency: 1,
    pollMs,
  });
  try {
    await worker.next("ready", 60_000);
    await sleep(SETTLE_MS[quick ? "quick" : "full"]);
    const idleMs = IDLE_MS[quick ? "quick" : "full"];
    worker.send({ type: "idle", ms: idleMs });
    const { percent } = await worker.next<{ type: "cpu"; percent: number }>("cpu", idleMs + 30_000);
    const count = (LATENCY_MS[quick ? "quick" : "full"] * RATE) / 1000;
    const interval = 1000 / RATE;
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const wait = start + i * interval - performance.now();
      if (wait > 0.5) await sleep(wait);
      await p.publish("L", { ...payload, t: Number(process.hrtime.bigint()) });
    }
    // Let the last deliveries arrive (a poll interval at most), then collect.
    const left = backlog(lib, path, "latency", "L");
    const until = performance.now() + pollMs + 2_000;
    while (left.left() && performance.now() < until) await sleep(5);
    left.close();
    const done = await worker.finish<{ type: "done"; latencies: number[] }>("done", 30_000);
    if (done.latencies.length < count) {
      throw new Error(`${lib}: ${done.latencies.length} of ${count} latency events arrived`);
    }
    return { latencies: done.latencies, cpu: percent };
  } finally {
    worker.kill();
    await p.close();
  }
}
