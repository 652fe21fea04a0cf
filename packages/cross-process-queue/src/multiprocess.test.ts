import { createRouter } from "@switchyard/router";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { countPending, openQueueReadOnly, sqliteTransport, type SqliteTransport } from "./index";
import { type Child, bundleChild, startChild } from "./test/bundle";
import { eventually, job, tempQueue, testCatalog } from "./test/fixtures";

// Real processes on one real file. Children run this package's code, bundled by esbuild.
describe("several processes on one queue file", { tags: ["slow"] }, () => {
  let bundle: { file: string; cleanup: () => void };
  let queue: ReturnType<typeof tempQueue>;
  let children: Child[] = [];
  let transports: SqliteTransport[] = [];

  beforeAll(async () => {
    bundle = await bundleChild();
  }, 60_000);
  afterAll(() => bundle?.cleanup());
  beforeEach(() => {
    queue = tempQueue();
  });
  afterEach(async () => {
    for (const c of children) if (c.process.exitCode === null) c.process.kill("SIGKILL");
    await Promise.all(children.map((c) => c.exited));
    await Promise.all(transports.map((t) => t.close()));
    children = [];
    transports = [];
    queue.cleanup();
  });

  const spawn = (mode: string, options: Record<string, number> = {}) => {
    const child = startChild(bundle.file, mode, queue.path, options);
    children.push(child);
    return child;
  };
  const open = () => {
    const t = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    transports.push(t);
    return t;
  };
  const ready = (c: Child) => c.next((m) => m === "ready");

  it("shares one subscriber's backlog between 3 processes, each event exactly once", async () => {
    const publisher = open();
    const workers = [
      spawn("consume", { concurrency: 8, workMs: 1 }),
      spawn("consume", { concurrency: 8, workMs: 1 }),
      spawn("consume", { concurrency: 8, workMs: 1 }),
    ];
    await Promise.all(workers.map(ready));
    const total = 3_000;
    for (let n = 0; n < total; n += 100) {
      await publisher.publish(Array.from({ length: 100 }, (_, i) => job(n + i)));
    }
    const db = openQueueReadOnly(queue.path);
    try {
      await eventually(
        () => countPending(db, { subscriber: "workers" }) === 0,
        "the backlog to drain",
        25_000,
      );
    } finally {
      db.close();
    }
    const reports = await Promise.all(
      workers.map((w) => {
        const report = w.next<{ handled: number[]; checkpoints: { mode: string } }>(
          (m) => typeof m === "object" && m !== null && "handled" in m,
        );
        w.process.send("stop");
        return report;
      }),
    );
    const all = reports.flatMap((r) => r.handled).sort((a, b) => a - b);
    expect(all).toHaveLength(total);
    expect(new Set(all).size).toBe(total);
    expect(all[0]).toBe(0);
    expect(all[total - 1]).toBe(total - 1);
    for (const r of reports) expect(r.handled.length).toBeGreaterThan(0);
    // Each process checkpoints from its own worker thread (also from a bundle like this child).
    for (const r of reports) expect(r.checkpoints.mode).toBe("background");
  }, 30_000);

  it("redelivers to another process the event a SIGKILLed process was handling", async () => {
    const doomed = spawn("hang", { leaseMs: 500 });
    await ready(doomed);
    const publisher = open();
    await publisher.publish([job(42)]);
    const started = await doomed.next<{ started: number; attempt: number }>(
      (m) => typeof m === "object" && m !== null && "started" in m,
    );
    expect(started).toMatchObject({ started: 42, attempt: 1 });
    doomed.process.kill("SIGKILL");
    expect(await doomed.exited).toBe("SIGKILL");

    const survivor = open();
    const got: { n: number; attempt: number }[] = [];
    await survivor.subscribe({
      subscriber: "crashy",
      types: ["JOB"],
      leaseMs: 5_000,
      handler: async (d) =>
        void got.push({ n: (d.envelope.data as { n: number }).n, attempt: d.attempt }),
    });
    await eventually(() => got.length === 1, "the redelivery after the lease expired", 10_000);
    expect(got).toEqual([{ n: 42, attempt: 2 }]);
    await eventually(async () => {
      const stats = await survivor.stats();
      const crashy = stats.subscribers.find((s) => s.subscriber === "crashy");
      return crashy?.pending === 0 && crashy.inFlight === 0;
    }, "the redelivery to be acked");
  }, 30_000);

  it("regression: two processes replaying the event a third is handling do not run it again", async () => {
    const replayers = [spawn("requeue"), spawn("requeue")];
    await Promise.all(replayers.map(ready));
    const worker = open();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const runs: number[] = [];
    await worker.subscribe({
      subscriber: "trainer",
      types: ["JOB"],
      handler: async (d) => {
        runs.push(d.attempt);
        if (runs.length === 1) await released;
      },
    });
    const e = job(7);
    await worker.publish([e]);
    await eventually(() => runs.length === 1, "the handler to start");
    // Both replayers requeue the event at the same instant while the handler runs.
    const replies = replayers.map((r) =>
      r.next<{ requeued?: string; failed?: string }>(
        (m) => typeof m === "object" && m !== null && ("requeued" in m || "failed" in m),
      ),
    );
    for (const r of replayers) r.process.send({ requeue: e, subscriber: "trainer" });
    expect(await Promise.all(replies)).toEqual([{ requeued: e.id }, { requeued: e.id }]);
    release();
    await eventually(async () => {
      const stats = await worker.stats();
      const trainer = stats.subscribers.find((s) => s.subscriber === "trainer");
      return trainer?.pending === 0 && trainer.inFlight === 0 && runs.length >= 1;
    }, "the outcome to be saved");
    expect(runs).toEqual([1]);
  }, 30_000);

  it("lets 4 processes publish at full speed without SQLITE_BUSY reaching them", async () => {
    const reader = open();
    const seen = new Set<number>();
    // A subscriber in a 5th process (this one) keeps claiming while the writers write.
    await reader.subscribe({
      subscriber: "tally",
      types: ["JOB"],
      concurrency: 32,
      handler: async (d) => void seen.add((d.envelope.data as { n: number }).n),
    });
    const count = 2_000;
    const writers = [0, 1, 2, 3].map((writer) => spawn("publish", { count, writer: writer + 1 }));
    await Promise.all(writers.map(ready));
    const results = await Promise.all(
      writers.map((w) => {
        const result = w.next<{ published: number; errors: string[] }>(
          (m) => typeof m === "object" && m !== null && "published" in m,
          25_000,
        );
        w.process.send("go");
        return result;
      }),
    );
    for (const r of results) {
      expect(r.errors).toEqual([]);
      expect(r.published).toBe(count);
    }
    await eventually(() => seen.size === 4 * count, "every published event to arrive", 20_000);
  }, 30_000);

  it("round-trips PING → PONG between routers in two processes", async () => {
    const echo = spawn("echo");
    await ready(echo);
    const router = createRouter({ catalog: testCatalog, transport: open(), closeTransport: false });
    const pongs: { n: number; pid: number; causationid: string | undefined }[] = [];
    await router.subscribe(
      "PONG",
      (e) => void pongs.push({ n: e.data.n, pid: e.data.pid, causationid: e.causationid }),
      { name: "pong-reader" },
    ).ready;
    const pings = [];
    for (let n = 1; n <= 5; n++) pings.push(await router.publish("PING", { n }));
    await eventually(() => pongs.length === 5, "five PONGs from the echo process", 10_000);
    expect(pongs.map((p) => p.n).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(new Set(pongs.map((p) => p.pid))).toEqual(new Set([echo.process.pid]));
    expect(pongs.map((p) => p.causationid).sort()).toEqual(pings.map((p) => p.id).sort());
    await router.shutdown();
    echo.process.send("stop");
    await echo.next((m) => m === "stopped");
  }, 30_000);
});
