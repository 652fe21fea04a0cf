// The retry daemon over the NATS dead-letter store: the same semantics as over SQLite, on a real
// nats-server (NATS_URL), with the router's durable events on the NATS transport.
import { type PipelineCatalog, pipelineCatalog } from "@switchyard/event-schema";
import { type Router, createRouter, dedup } from "@switchyard/router";
import {
  type NatsDeadLetterStore,
  type NatsTransport,
  natsDeadLetterStore,
  natsTransport,
} from "@switchyard/transport-nats";
import { type DeadLetterBackoff, UnrecoverableError } from "@switchyard/transport";
import { afterEach, beforeEach, expect, it } from "vitest";
import {
  NATS_URL,
  deleteStreams,
  describeIf,
  eventually,
  natsAvailable,
  uniqueNames,
} from "../../transport-nats/src/test/nats";
import { replayTo } from "./replay";
import { DlqRetryDaemon, type DlqRetryDaemonOptions } from "./retry-daemon";

const training = { config_key: "hex8_2p", model_path: "models/hex8_2p/gen-1.pt", loss: 0.25 };

describeIf(await natsAvailable(), "DlqRetryDaemon over the NATS dead-letter store", {}, () => {
  let names: { stream: string; prefix: string };
  let store: NatsDeadLetterStore;
  let transport: NatsTransport;
  let router: Router<PipelineCatalog>;
  const daemons: DlqRetryDaemon<PipelineCatalog>[] = [];

  /** The store, the transport dead-lettering into it and a router over that transport. */
  const open = (retryBackoff: DeadLetterBackoff) => {
    store = natsDeadLetterStore({ servers: NATS_URL, ...names, retryBackoff });
    transport = natsTransport({
      servers: NATS_URL,
      ...names,
      deadLetter: store,
      drainTimeoutMs: 1_000,
      pullExpiresMs: 2_000,
    });
    router = createRouter({
      catalog: pipelineCatalog,
      transport,
      subscriptionDefaults: { maxAttempts: 1 },
    });
  };

  beforeEach(() => {
    names = uniqueNames("dlqd");
    open({ initialMs: 10, maxMs: 40 });
  });
  afterEach(async () => {
    await Promise.all(daemons.splice(0).map((d) => d.stop()));
    await router.shutdown({ timeoutMs: 1_000 });
    await store.close();
    await deleteStreams(NATS_URL, names.stream);
  });

  const daemon = (options: Partial<DlqRetryDaemonOptions<PipelineCatalog>> = {}) => {
    const d = new DlqRetryDaemon({
      store,
      target: replayTo({ router, transport }),
      router,
      cycleIntervalMs: 50,
      replayErrorBackoff: { initialMs: 50, maxMs: 100, jitter: 0 },
      ...options,
    });
    daemons.push(d);
    return d;
  };
  const records = async () => (await store.list()).deadLetters;

  /** Subscribe `evaluator` to TRAINING_COMPLETED with a handler that always fails. */
  async function subscribeFailingEvaluator(): Promise<void> {
    await router.subscribe(
      "TRAINING_COMPLETED",
      () => {
        throw new Error("still broken");
      },
      { name: "evaluator" },
    ).ready;
  }

  it("replays a dead letter to the subscriber that failed it, once, and settles it as replayed", async () => {
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
    await eventually(async () => (await records()).length === 1, "the dead letter");
    fail = false;
    // Two daemons over one store (two processes would do the same): the claim is exclusive.
    const a = daemon();
    const b = daemon();
    await Promise.all([a.start(), b.start()]);
    await eventually(async () => (await records())[0]?.status === "replayed", "replayed");
    expect(handled).toEqual([sent.id]);
    expect((await records())[0]).toMatchObject({ replays: 1, subscriber: "evaluator" });
    expect(a.retryStats.replayed + b.retryStats.replayed).toBe(1);
    expect(a.health().details).toMatchObject({ replayed: a.retryStats.replayed });
  });

  it("gives up on poison at once, emitting DLQ_PERMANENTLY_FAILED with the NATS record's id", async () => {
    let calls = 0;
    await router.subscribe(
      "TRAINING_COMPLETED",
      () => {
        calls++;
        throw new UnrecoverableError("poison");
      },
      { name: "evaluator" },
    ).ready;
    const gaveUp = router.waitFor("DLQ_PERMANENTLY_FAILED", { timeoutMs: 10_000 });
    const sent = await router.publish("TRAINING_COMPLETED", training);
    await daemon().start();
    const alert = await gaveUp;
    const [record] = await records();
    expect(record).toMatchObject({ status: "permanently_failed", eventId: sent.id });
    expect(alert.data).toMatchObject({
      dead_letter_id: record!.id,
      event_id: sent.id,
      subscriber: "evaluator",
    });
    expect(alert.data.error).toMatch(/^unrecoverable: poison/);
    expect(calls).toBe(1);
  });

  it("keeps going when a replayed copy fails again before the daemon settled it", async () => {
    // Every delivery fails. The target returns only once the replayed copy has failed and been
    // dead-lettered anew (a slow target, or a fast failure): the daemon's claim is gone by then.
    await subscribeFailingEvaluator();
    const sent = [
      await router.publish("TRAINING_COMPLETED", training),
      await router.publish("TRAINING_COMPLETED", { ...training, config_key: "sq19_2p" }),
    ];
    await eventually(async () => (await records()).length === 2, "two dead letters");
    const gaveUp: string[] = [];
    const d = daemon({
      maxReplays: 2,
      target: {
        replay: async (record) => {
          const before = record.replays;
          await replayTo({ router, transport }).replay(record as never);
          await eventually(
            async () => ((await store.get(String(record.id)))?.replays ?? 0) > before,
            "the copy dead-lettered again",
          );
        },
      },
    });
    const alerts = router.subscribe(
      "DLQ_PERMANENTLY_FAILED",
      (e) => void gaveUp.push(e.data.event_id),
      { name: "alerts" },
    );
    await alerts.ready;
    await d.start();
    // Both records go through their replays and are given up, well inside the claims' lease.
    await eventually(
      async () => (await records()).every((r) => r.status === "permanently_failed"),
      "both given up",
      15_000,
    );
    expect((await records()).map((r) => r.replays)).toEqual([2, 2]);
    await eventually(() => gaveUp.length === 2, "two alerts");
    expect(gaveUp.sort()).toEqual(sent.map((e) => e.id).sort());
    expect(d.retryStats).toMatchObject({ replayed: 4, givenUp: 2, replayErrors: 0 });
  }, 30_000);

  it("does not hand back a record whose lease ran out while an earlier one was being replayed", async () => {
    await subscribeFailingEvaluator();
    await router.publish("TRAINING_COMPLETED", training);
    await router.publish("TRAINING_COMPLETED", { ...training, config_key: "sq19_2p" });
    // Both must be due (the store's 10 ms backoff) before the daemon's one and only cycle claims.
    await eventually(async () => {
      const now = Date.now();
      const due = (await records()).filter((r) => Date.parse(r.nextRetryAt ?? "0") <= now);
      return due.length === 2;
    }, "two due dead letters");
    const handedBack: (string | number)[] = [];
    let finishFirst!: () => void;
    const first = new Promise<void>((resolve) => (finishFirst = resolve));
    const d = daemon({
      leaseMs: 300,
      batchSize: 2,
      cycleIntervalMs: 60_000, // one cycle only: a later claim of its own would be a new lease
      target: {
        replay: async (record) => {
          handedBack.push(record.id);
          if (handedBack.length === 1) await first;
        },
      },
    });
    await d.start();
    await eventually(() => handedBack.length === 1, "the first hand-back");
    await new Promise((r) => setTimeout(r, 450));
    // Both of the daemon's claims have run out: another replayer takes both records over.
    const taken = await store.claim({ limit: 10, leaseMs: 60_000 });
    expect(taken).toHaveLength(2);
    finishFirst();
    await new Promise((r) => setTimeout(r, 300));
    // The second record is the other replayer's now: the daemon must not hand it back as well.
    expect(handedBack).toEqual([handedBack[0]]);
    expect((await records()).map((r) => r.status)).toEqual(["retrying", "retrying"]);
  });

  it("backs off after a replay that could not be delivered, and tries again when it is due", async () => {
    let broken = true;
    const handled: string[] = [];
    await router.subscribe(
      "TRAINING_COMPLETED",
      (e) => {
        if (broken) throw new Error("down");
        handled.push(e.id);
      },
      { name: "evaluator" },
    ).ready;
    await router.publish("TRAINING_COMPLETED", training);
    await eventually(async () => (await records()).length === 1, "the dead letter");
    broken = false;
    let refusals = 0;
    const d = daemon({
      // The first hand-back fails (the target is down): the record is due again after a backoff.
      target: {
        replay: async (record) => {
          if (refusals++ === 0) throw new Error("target down");
          await replayTo({ router, transport }).replay(record as never);
        },
      },
    });
    await d.start();
    await eventually(async () => (await records())[0]?.status === "replayed", "replayed");
    expect(d.retryStats).toMatchObject({ replayed: 1, replayErrors: 1 });
    expect(handled).toHaveLength(1);
  });

  it("waits longer after each replay that failed again, as the store's backoff says", async () => {
    // This test's own store, transport and router: a backoff long enough to see against the cycle.
    await router.shutdown({ timeoutMs: 1_000 });
    await store.close();
    open({ initialMs: 300, maxMs: 600 });
    const runs: number[] = [];
    await router.subscribe(
      "TRAINING_COMPLETED",
      () => {
        runs.push(Date.now());
        throw new Error("still broken");
      },
      { name: "evaluator" },
    ).ready;
    await router.publish("TRAINING_COMPLETED", training);
    await eventually(async () => (await records()).length === 1, "the dead letter");
    await daemon({ maxReplays: 3 }).start();
    await eventually(
      async () => (await records())[0]?.status === "permanently_failed",
      "given up after 3 replays",
      15_000,
    );
    // The first run, then 3 replays: each after the wait for its replay count (300, 600, 600 ms),
    // not on the daemon's next 50 ms cycle.
    expect(runs).toHaveLength(4);
    const gaps = runs.slice(1).map((at, i) => at - runs[i]!);
    for (const [i, least] of [300, 600, 600].entries())
      expect(gaps[i]).toBeGreaterThanOrEqual(least - 20);
  }, 30_000);
});
