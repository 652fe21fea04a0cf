import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createEnvelope,
  defineCatalog,
  defineEvent,
  pipelineCatalog,
  type PipelineCatalog,
} from "@switchyard/event-schema";
import {
  MemoryTransport,
  UnrecoverableError,
  createRouter,
  dedup,
  type Router,
} from "@switchyard/router";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import type { Daemon } from "@switchyard/handler-base";
import { replayTo } from "./replay";
import { quickRetryDaemon } from "./test/daemon";
import { sleep, until } from "./test/wait";
import { DlqRetryDaemon, type DlqRetryDaemonOptions } from "./retry-daemon";
import { SqliteDeadLetterStore } from "@switchyard/cross-process-queue";

let dir: string;
let store: SqliteDeadLetterStore;
let transport: MemoryTransport;
let router: Router<PipelineCatalog>;
const daemons: Daemon[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dlq-flow-"));
  store = new SqliteDeadLetterStore({
    path: join(dir, "coordination.db"),
    retryBackoff: { initialMs: 10, maxMs: 40 },
  });
  transport = new MemoryTransport();
  router = createRouter({
    catalog: pipelineCatalog,
    transport,
    deadLetter: store,
    subscriptionDefaults: { maxAttempts: 2, backoff: { initialMs: 5, jitter: 0 } },
  });
});
afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
  await router.shutdown({ timeoutMs: 200 });
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const training = { config_key: "hex8_2p", model_path: "models/hex8_2p/gen-1.pt", loss: 0.25 };

const daemon = (options: Partial<DlqRetryDaemonOptions<PipelineCatalog>> = {}) =>
  quickRetryDaemon({ store, router, transport }, daemons, options);

describe("paths into the dead-letter queue", () => {
  it("a transport delivery that fails maxAttempts times lands with reason max_attempts", async () => {
    await router.subscribe(
      "TRAINING_COMPLETED",
      () => {
        throw new Error("evaluation cluster unreachable");
      },
      { name: "evaluator" },
    ).ready;
    const sent = await router.publish("TRAINING_COMPLETED", training);
    await until(() => store.list().length === 1);
    expect(store.list()[0]).toMatchObject({
      eventId: sent.id,
      subscriber: "evaluator",
      origin: "memory",
      reason: "max_attempts",
      attempts: 2,
      error: { message: "evaluation cluster unreachable" },
    });
    expect(store.list()[0]!.envelope).toEqual(sent);
  });

  it("an UnrecoverableError lands at once with reason unrecoverable", async () => {
    let calls = 0;
    await router.subscribe(
      "TRAINING_COMPLETED",
      () => {
        calls++;
        throw new UnrecoverableError("checkpoint is corrupt");
      },
      { name: "evaluator" },
    ).ready;
    await router.publish("TRAINING_COMPLETED", training);
    await until(() => store.list().length === 1);
    expect(calls).toBe(1);
    expect(store.list()[0]).toMatchObject({ reason: "unrecoverable", attempts: 1 });
  });

  it("a payload that fails validation on consume lands with reason invalid_payload", async () => {
    let calls = 0;
    await router.subscribe("TRAINING_COMPLETED", () => void calls++, { name: "evaluator" }).ready;
    // Written by an older producer that sends loss as a string.
    await transport.publish([
      createEnvelope({
        type: "TRAINING_COMPLETED",
        source: "legacy",
        data: { ...training, loss: "0.25" },
      }),
    ]);
    await until(() => store.list().length === 1);
    expect(calls).toBe(0);
    expect(store.list()[0]).toMatchObject({ reason: "invalid_payload", subscriber: "evaluator" });
    expect(store.list()[0]!.error.message).toContain("loss");
  });

  it("an in-process handler that times out on every attempt lands with reason timeout, and others keep flowing", async () => {
    const local = createRouter({
      catalog: pipelineCatalog,
      deadLetter: store,
      retry: { attempts: 2, backoff: { initialMs: 1 } },
    });
    const good: number[] = [];
    local.subscribe(
      "QUALITY_ALERT",
      (_e, ctx) =>
        new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve())).then(
          () => new Promise(() => {}),
        ),
      {
        name: "stuck_monitor",
        timeoutMs: 20,
      },
    );
    local.subscribe("QUALITY_ALERT", (e) => void good.push(e.data.quality_score), {
      name: "dashboard",
    });
    await local.publish("QUALITY_ALERT", {
      config_key: "hex8_2p",
      quality_score: 0.3,
      timestamp: 1,
    });
    await local.publish("QUALITY_ALERT", {
      config_key: "hex8_2p",
      quality_score: 0.4,
      timestamp: 2,
    });
    await until(() => store.list().length === 2, 3000);
    expect(good).toEqual([0.3, 0.4]);
    expect(store.list().map((r) => [r.reason, r.origin, r.attempts])).toEqual([
      ["timeout", "router", 2],
      ["timeout", "router", 2],
    ]);
    await local.shutdown({ timeoutMs: 50 });
  });
});

describe("DlqRetryDaemon", () => {
  it("replays to the subscriber that failed it, and the consumer's dedup sees the same id", async () => {
    let fail = true;
    const handled: string[] = [];
    await router.subscribe(
      "TRAINING_COMPLETED",
      (e) => {
        if (fail) throw new Error("not yet");
        handled.push(e.id);
      },
      { name: "evaluator", middleware: [dedup()] },
    ).ready;
    const sent = await router.publish("TRAINING_COMPLETED", training);
    await until(() => store.list().length === 1);
    fail = false;
    const d = daemon();
    await d.start();
    await until(() => handled.length === 1);
    expect(handled).toEqual([sent.id]);
    await until(() => store.list()[0]?.status === "replayed");
    expect(d.retryStats.replayed).toBe(1);
    // An operator replays it once more: the consumer's id-based dedup recognises the same event.
    const report = await store.replay(store.list()[0]!.id, { to: replayTo({ router, transport }) });
    expect(report.replayed).toHaveLength(1);
    await until(() => router.getStats().deduplicated === 1);
    expect(handled).toEqual([sent.id]);
  });

  it("backs off between replays and gives up as permanently failed, emitting DLQ_PERMANENTLY_FAILED", async () => {
    const replayTimes: number[] = [];
    await router.subscribe(
      "TRAINING_COMPLETED",
      (_e, ctx) => {
        if (ctx.attempt === 1) replayTimes.push(Date.now());
        throw new Error("still broken");
      },
      { name: "evaluator" },
    ).ready;
    const gaveUp = router.waitFor("DLQ_PERMANENTLY_FAILED", { timeoutMs: 8000 });
    const sent = await router.publish("TRAINING_COMPLETED", training);
    await daemon({ maxReplays: 3 }).start();
    const event = await gaveUp;
    expect(event.data).toMatchObject({ event_id: sent.id, subscriber: "evaluator", replays: 3 });
    expect(store.list()[0]).toMatchObject({ status: "permanently_failed", replays: 3 });
    expect(replayTimes).toHaveLength(4); // the original delivery and three replays
    const gaps = replayTimes.slice(1).map((t, i) => t - replayTimes[i]!);
    expect(gaps[2]!).toBeGreaterThanOrEqual(gaps[0]! - 15); // waits grow (10 → 20 → 40 ms, plus cycle jitter)
  });

  it("keeps the original trace through replays, and the DLQ_PERMANENTLY_FAILED alert carries it", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const seen: (string | undefined)[] = [];
    await router.subscribe(
      "TRAINING_COMPLETED",
      (_e, ctx) => {
        seen.push(ctx.traceId);
        throw new Error("still broken");
      },
      { name: "evaluator" },
    ).ready;
    const gaveUp = router.waitFor("DLQ_PERMANENTLY_FAILED", { timeoutMs: 8000 });
    const sent = await router.publish("TRAINING_COMPLETED", training, {
      traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
    });
    await daemon({ maxReplays: 1 }).start();
    const alert = await gaveUp;
    // Two attempts of the original delivery, then two of the one replay.
    expect(seen).toEqual([traceId, traceId, traceId, traceId]);
    expect(alert.traceparent).toMatch(new RegExp(`^00-${traceId}-`));
    expect(alert).toMatchObject({ causationid: sent.id, correlationid: sent.id });
  });

  it("counts a replayed copy that failed again before the daemon settled it, and keeps going", async () => {
    // Every delivery fails. The target returns only once the replayed copy has failed and been
    // dead-lettered anew: the store counts that replay, and the daemon's settle finds its lease gone.
    await router.subscribe(
      "TRAINING_COMPLETED",
      () => {
        throw new Error("still broken");
      },
      { name: "evaluator" },
    ).ready;
    const sent = [
      await router.publish("TRAINING_COMPLETED", training),
      await router.publish("TRAINING_COMPLETED", { ...training, config_key: "sq19_2p" }),
    ];
    await until(() => store.list().length === 2);
    const gaveUp: string[] = [];
    await router.subscribe("DLQ_PERMANENTLY_FAILED", (e) => void gaveUp.push(e.data.event_id), {
      name: "alerts",
    }).ready;
    const d = daemon({
      maxReplays: 2,
      target: {
        replay: async (record) => {
          const failedAt = store.inspect(record.id as number).lastFailedAt;
          await replayTo({ router, transport }).replay(record as never);
          await until(() => store.inspect(record.id as number).lastFailedAt !== failedAt);
        },
      },
    });
    await d.start();
    await until(() => store.list().every((r) => r.status === "permanently_failed"), 10_000);
    expect(store.list().map((r) => r.replays)).toEqual([2, 2]);
    expect(store.list().every((r) => r.replayedAt !== undefined)).toBe(true);
    await until(() => gaveUp.length === 2);
    expect(gaveUp.sort()).toEqual(sent.map((e) => e.id).sort());
    expect(d.retryStats).toMatchObject({ replayed: 4, givenUp: 2, replayErrors: 0 });
  }, 20_000);

  it("gives up on poison at once instead of replaying it", async () => {
    let calls = 0;
    await router.subscribe(
      "TRAINING_COMPLETED",
      () => {
        calls++;
        throw new UnrecoverableError("poison");
      },
      { name: "evaluator" },
    ).ready;
    const gaveUp = router.waitFor("DLQ_PERMANENTLY_FAILED", { timeoutMs: 3000 });
    await router.publish("TRAINING_COMPLETED", training);
    await daemon().start();
    expect((await gaveUp).data.error).toMatch(/^unrecoverable: poison/);
    expect(calls).toBe(1);
  });

  it("works over a catalog without the DLQ alert types: gives up without emitting them", async () => {
    const jobs = defineCatalog([
      defineEvent({
        type: "JOB_DONE",
        description: "A job finished",
        durable: true,
        data: z.looseObject({ job_id: z.string() }),
      }),
    ]);
    const jobTransport = new MemoryTransport();
    await using jobRouter = createRouter({
      catalog: jobs,
      transport: jobTransport,
      deadLetter: store,
    });
    await jobRouter.subscribe(
      "JOB_DONE",
      () => {
        throw new UnrecoverableError("poison");
      },
      { name: "archiver" },
    ).ready;
    await jobRouter.publish("JOB_DONE", { job_id: "j-1" });
    await until(() => store.stats().depth === 1);
    // No type argument: the daemon's catalog is its router's.
    const d = new DlqRetryDaemon({
      store,
      target: replayTo({ router: jobRouter, transport: jobTransport }),
      router: jobRouter,
      cycleIntervalMs: 15,
      depthAlertThreshold: 0,
    });
    daemons.push(d);
    await d.start();
    await until(() => d.retryStats.givenUp === 1);
    expect(store.list()[0]).toMatchObject({ status: "permanently_failed" });
    expect(d.stats).toMatchObject({ emitFailures: 0, eventsEmitted: 0 });
    expect(d.recentErrors()).toEqual([]);
  });

  it("raises DLQ_DEPTH_EXCEEDED once when the depth crosses the threshold, and reports it in health", async () => {
    await router.subscribe(
      "TRAINING_COMPLETED",
      () => {
        throw new UnrecoverableError("poison");
      },
      { name: "evaluator" },
    ).ready;
    const alerts: number[] = [];
    router.subscribe("DLQ_DEPTH_EXCEEDED", (e) => void alerts.push(e.data.depth), {
      name: "pager",
    });
    for (let i = 0; i < 4; i++)
      await router.publish("TRAINING_COMPLETED", { ...training, model_path: `m${i}.pt` });
    await until(() => store.stats().depth === 4);
    const d = daemon({ depthAlertThreshold: 2 });
    await d.start();
    await until(() => alerts.length === 1);
    await sleep(60);
    expect(alerts).toEqual([4]);
    expect(d.health()).toMatchObject({
      healthy: false,
      status: "degraded",
      message: expect.stringContaining("dead-letter depth 4 > 2"),
    });
  });
});
