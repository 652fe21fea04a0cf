// Replays of in-process dead letters (origin "router") through `router.redeliver`, which rejects
// when the subscription does not take the envelope (QueueFullError, RouterClosedError) and gives
// up waiting for room when its signal aborts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteDeadLetterStore } from "@switchyard/cross-process-queue";
import { type PipelineCatalog, createEnvelope, pipelineCatalog } from "@switchyard/event-schema";
import { type Overflow, type Router, createRouter } from "@switchyard/router";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { replayTo } from "./replay";
import { DlqRetryDaemon } from "./retry-daemon";
import { sleep, until } from "./test/wait";

let dir: string;
let store: SqliteDeadLetterStore;
let router: Router<PipelineCatalog>;
const daemons: DlqRetryDaemon<PipelineCatalog>[] = [];
let release: () => void;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dlq-redeliver-"));
  store = new SqliteDeadLetterStore({
    path: join(dir, "coordination.db"),
    retryBackoff: { initialMs: 1, maxMs: 1 },
  });
  // In process only: every type is delivered locally, so `redeliver` reaches the subscription.
  router = createRouter({ catalog: pipelineCatalog });
});
afterEach(async () => {
  release?.();
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
  await router.shutdown({ timeoutMs: 200 });
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const training = (n: number) => ({
  config_key: "hex8_2p",
  model_path: `gen-${n}.pt`,
  loss: 0.2,
});

/**
 * Subscription "evaluator" with its one worker busy and its queue (size 1) full; the ids of the
 * events it handled, in order.
 */
async function fullSubscription(overflow: Overflow): Promise<string[]> {
  const gate = new Promise<void>((resolve) => (release = resolve));
  const handled: string[] = [];
  router.subscribe(
    "TRAINING_COMPLETED",
    async (event) => {
      handled.push(event.id);
      await gate;
    },
    { name: "evaluator", queueSize: 1, overflow, timeoutMs: 0 },
  );
  await router.publish("TRAINING_COMPLETED", training(1)); // running
  await router.publish("TRAINING_COMPLETED", training(2)); // queued: the queue is full
  return handled;
}

/** One dead letter of "evaluator" from an in-process handler, due at once; its envelope. */
async function routerDeadLetter() {
  const envelope = createEnvelope({
    type: "TRAINING_COMPLETED",
    source: "trainer",
    data: training(9),
  });
  await store.deadLetter({
    envelope,
    subscriber: "evaluator",
    reason: "max_attempts",
    attempts: 3,
    error: { name: "Error", message: "evaluation cluster unreachable" },
    failedAt: new Date().toISOString(),
    origin: "router",
  });
  await sleep(5); // due after the 1 ms backoff
  return envelope;
}

function retryDaemon(leaseMs: number): DlqRetryDaemon<PipelineCatalog> {
  const d = new DlqRetryDaemon({
    store,
    target: replayTo({ router }),
    router,
    cycleIntervalMs: 15,
    leaseMs,
    replayErrorBackoff: { initialMs: 10, maxMs: 20, jitter: 0 },
  });
  daemons.push(d);
  return d;
}

describe("replayTo and a redelivery the subscription does not take", () => {
  it("counts a redelivery rejected under drop-newest as a failed replay, the dead letter kept with the reason", async () => {
    const handled = await fullSubscription("drop-newest");
    const envelope = await routerDeadLetter();
    const report = await store.replay({ subscriber: "evaluator" }, { to: replayTo({ router }) });
    expect(report.replayed).toEqual([]);
    expect(report.failed).toEqual([
      {
        id: store.list()[0]!.id,
        error: expect.stringMatching(/queue of subscription "evaluator" is full/),
      },
    ]);
    expect(store.list()[0]).toMatchObject({ status: "pending_retry", replays: 0 });
    release();
    await router.drain({ signal: AbortSignal.timeout(1_000) });
    expect(handled).not.toContain(envelope.id);
  });

  it("has the retry daemon count a rejected redelivery as a replay error, never as replayed", async () => {
    const handled = await fullSubscription("drop-newest");
    const envelope = await routerDeadLetter();
    const d = retryDaemon(60_000);
    await d.start();
    await until(() => d.retryStats.replayErrors >= 2);
    await d.stop();
    expect(d.retryStats.replayed).toBe(0);
    expect(store.list()[0]).toMatchObject({ status: "pending_retry", replays: 0 });
    release();
    await router.drain({ signal: AbortSignal.timeout(1_000) });
    expect(handled).not.toContain(envelope.id);
  });
});

describe("replayTo and a redelivery waiting for room (overflow wait)", () => {
  it("regression: gives up the redelivery when the daemon's lease runs out, so it is not queued later besides the retry", async () => {
    const handled = await fullSubscription("wait");
    const envelope = await routerDeadLetter();
    const d = retryDaemon(100);
    await d.start();
    // Two hand-backs that found no room within their lease: both failed replays.
    await until(() => d.retryStats.replayErrors >= 2);
    await d.stop();
    release();
    await router.drain({ signal: AbortSignal.timeout(1_000) });
    // Before the fix each timed-out redelivery kept waiting and was queued once room came:
    // the event ran once per failed replay, although the record says it was never replayed.
    expect(handled.filter((id) => id === envelope.id)).toEqual([]);
    expect(store.list()[0]).toMatchObject({ status: "pending_retry", replays: 0 });
  });

  it("regression: stops waiting for room when the daemon stops, the record due again and not delivered", async () => {
    const handled = await fullSubscription("wait");
    const envelope = await routerDeadLetter();
    // A lease far longer than the test: only the stop can end the wait.
    const d = retryDaemon(600_000);
    await d.start();
    await until(() => store.list()[0]?.status === "retrying");
    await sleep(20);
    await d.stop();
    // Before the fix stop() waited its stopTimeoutMs (10 s) and the record stayed claimed.
    expect(store.list()[0]).toMatchObject({ status: "pending_retry", replays: 0 });
    expect(d.retryStats).toMatchObject({ replayed: 0 });
    release();
    await router.drain({ signal: AbortSignal.timeout(1_000) });
    expect(handled).not.toContain(envelope.id);
  });
});
