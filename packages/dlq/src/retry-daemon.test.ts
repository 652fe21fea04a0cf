// Edge cases of the retry daemon over the SQLite store: leases that run out mid-batch, targets
// that hang or honour their signal, damaged rows, options out of range.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { SqliteDeadLetterStore } from "@switchyard/cross-process-queue";
import { type PipelineCatalog, createEnvelope, pipelineCatalog } from "@switchyard/event-schema";
import { DaemonOptionsError } from "@switchyard/handler-base";
import { MemoryTransport, type Router, createRouter } from "@switchyard/router";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { replayTo } from "./replay";
import { quickRetryDaemon } from "./test/daemon";
import { sleep, until } from "./test/wait";
import {
  DlqRetryDaemon,
  type DlqRetryDaemonOptions,
  type RetryTarget,
  type RetryableDeadLetter,
} from "./retry-daemon";

let dir: string;
let path: string;
let store: SqliteDeadLetterStore;
let transport: MemoryTransport;
let router: Router<PipelineCatalog>;
const daemons: DlqRetryDaemon<PipelineCatalog>[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dlq-daemon-"));
  path = join(dir, "coordination.db");
  store = new SqliteDeadLetterStore({ path, retryBackoff: { initialMs: 1, maxMs: 1 } });
  transport = new MemoryTransport();
  router = createRouter({
    catalog: pipelineCatalog,
    transport,
    deadLetter: store,
    subscriptionDefaults: { maxAttempts: 1 },
  });
});
afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
  await router.shutdown({ timeoutMs: 200 });
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** `count` dead letters of subscriber "evaluator", due at once; their ids. */
async function deadLetters(count: number): Promise<number[]> {
  for (let i = 0; i < count; i++)
    await store.deadLetter({
      envelope: createEnvelope({
        type: "TRAINING_COMPLETED",
        source: "trainer",
        data: { config_key: "hex8_2p", model_path: `gen-${i}.pt`, loss: 0.2 },
      }),
      subscriber: "evaluator",
      reason: "max_attempts",
      attempts: 1,
      error: { name: "Error", message: "evaluation cluster unreachable" },
      failedAt: new Date().toISOString(),
      origin: "memory",
    });
  await sleep(5); // due after the 1 ms backoff
  return store.list().map((r) => r.id);
}

/** A logger that keeps what was logged. */
function recordingLogger() {
  const lines: { level: string; obj: unknown; msg: string | undefined }[] = [];
  const at =
    (level: string) =>
    (obj: unknown, msg?: string): void =>
      void lines.push({ level, obj, msg });
  return {
    lines,
    logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") },
  };
}

const codeOfErr = (obj: unknown) => (obj as { err?: { code?: unknown } } | null)?.err?.code;

const daemon = (options: Partial<DlqRetryDaemonOptions<PipelineCatalog>> = {}) =>
  quickRetryDaemon({ store, router, transport }, daemons, options);

describe("DlqRetryDaemon leases", () => {
  it("does not hand back a record whose lease ran out while an earlier one was being replayed", async () => {
    const ids = await deadLetters(2);
    const handedBack: RetryableDeadLetter["id"][] = [];
    let finishFirst!: () => void;
    const first = new Promise<void>((resolve) => (finishFirst = resolve));
    const d = daemon({
      leaseMs: 150,
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
    await until(() => handedBack.length === 1);
    await sleep(250);
    // Both of the daemon's leases have run out: another replayer takes both records over.
    const taken = await store.claim({ limit: 10, leaseMs: 60_000 });
    expect(taken.map((r) => r.id).sort()).toEqual([...ids].sort());
    finishFirst();
    await sleep(150);
    // The second record is the other replayer's now: the daemon must not hand it back as well.
    expect(handedBack).toEqual([handedBack[0]]);
    expect(store.list().map((r) => r.status)).toEqual(["retrying", "retrying"]);
  });

  it("stops waiting for a replay that outlasts its lease, counts it as failed, and retries it later", async () => {
    await deadLetters(1);
    const { lines, logger } = recordingLogger();
    let calls = 0;
    const d = daemon({
      leaseMs: 150,
      logger,
      target: {
        // The first hand-back never answers (and ignores any signal); the next one works.
        replay: () => (calls++ === 0 ? new Promise<void>(() => {}) : Promise.resolve()),
      },
    });
    await d.start();
    await until(() => store.list()[0]?.status === "replayed", 3000);
    expect(calls).toBe(2);
    expect(d.retryStats).toMatchObject({ replayed: 1, replayErrors: 1 });
    expect(lines.some((l) => codeOfErr(l.obj) === "DLQ_REPLAY_TIMEOUT")).toBe(true);
  });

  it("aborts the target's signal on stop(), so stop() does not wait out a slow replay", async () => {
    await deadLetters(1);
    let aborted = false;
    // A target that answers only when its signal aborts (it honours the signal, as asked).
    const target: RetryTarget = {
      replay: (_record, options?: { readonly signal?: AbortSignal }) =>
        new Promise<void>((_resolve, reject) =>
          options?.signal?.addEventListener("abort", () => {
            aborted = true;
            reject(new Error("replay aborted"));
          }),
        ),
    };
    const d = daemon({ target });
    await d.start();
    await until(() => store.list()[0]?.status === "retrying");
    await sleep(20);
    const stopping = performance.now();
    await d.stop();
    expect(performance.now() - stopping).toBeLessThan(1_000);
    expect(aborted).toBe(true);
    // Handed back untouched, due at once, like the rest of a batch cut short by stop().
    const [record] = store.list();
    expect(record).toMatchObject({ status: "pending_retry", replays: 0 });
    expect(record!.nextRetryAt).toBeLessThanOrEqual(Date.now());
  }, 15_000);
});

describe("DlqRetryDaemon replay errors", () => {
  it("waits longer after each replay in a row that could not be delivered, up to maxMs", async () => {
    await deadLetters(1);
    const tries: number[] = [];
    const d = daemon({
      cycleIntervalMs: 5,
      replayErrorBackoff: { initialMs: 20, maxMs: 160, jitter: 0 },
      target: {
        replay: () => {
          tries.push(performance.now());
          return Promise.reject(new Error("target down"));
        },
      },
    });
    await d.start();
    await until(() => tries.length >= 6, 3000);
    await d.stop();
    const gaps = tries.slice(1, 6).map((at, i) => at - tries[i]!);
    // 20, 40, 80, 160, 160 ms (each plus up to one 5 ms cycle), not 20 ms every time.
    for (const [i, least] of [20, 40, 80, 160, 160].entries())
      expect(gaps[i]).toBeGreaterThanOrEqual(least - 5);
    expect(d.retryStats.replayErrors).toBeGreaterThanOrEqual(5);
  });
});

describe("DlqRetryDaemon and damaged records", () => {
  it.each([
    ["valid JSON that is not an object", "[1, 2]"],
    ["an object that is not the record's envelope", '{"note":"edited by hand"}'],
  ])(
    "gives up at once on a row whose envelope is %s, with a typed error, without calling the target",
    async (_what, text) => {
      let handled = 0;
      await router.subscribe("TRAINING_COMPLETED", () => void handled++, { name: "evaluator" })
        .ready;
      const [id] = await deadLetters(1);
      // Edited by hand (another program, an operator with sqlite3).
      const db = new Database(path);
      db.prepare("UPDATE dead_letters SET envelope = ? WHERE id = ?").run(text, id);
      db.close();
      const { lines, logger } = recordingLogger();
      let targetCalls = 0;
      const real = replayTo({ router, transport });
      const gaveUp = router.waitFor("DLQ_PERMANENTLY_FAILED", { timeoutMs: 3000 });
      gaveUp.catch(() => {}); // awaited below; a failure is reported there
      const d = daemon({
        logger,
        target: {
          replay: (record) => {
            targetCalls++;
            return real.replay(record as never);
          },
        },
      });
      await d.start();
      await until(() => store.list()[0]?.status === "permanently_failed" || targetCalls > 1, 2000);
      await sleep(60); // more cycles: nothing more happens to it
      expect(targetCalls).toBe(0);
      expect(store.list()[0]).toMatchObject({ status: "permanently_failed" });
      expect((await gaveUp).data).toMatchObject({ dead_letter_id: id, subscriber: "evaluator" });
      expect(handled).toBe(0);
      expect(d.retryStats).toMatchObject({ givenUp: 1, replayErrors: 0, replayed: 0 });
      expect(lines.some((l) => codeOfErr(l.obj) === "DLQ_DAMAGED_RECORD")).toBe(true);
    },
  );
});

describe("DlqRetryDaemon options", () => {
  it.each([
    ["maxReplays", { maxReplays: Number.NaN }],
    ["maxReplays", { maxReplays: -1 }],
    ["batchSize", { batchSize: 0 }],
    ["batchSize", { batchSize: 2.5 }],
    ["leaseMs", { leaseMs: 0 }],
    ["leaseMs", { leaseMs: Number.NaN }],
    ["depthAlertThreshold", { depthAlertThreshold: -1 }],
    // DLQ_DEPTH_EXCEEDED carries it as a count: with 2.5 the alert failed its schema, never sent.
    ["depthAlertThreshold", { depthAlertThreshold: 2.5 }],
    ["replayErrorBackoff.initialMs", { replayErrorBackoff: { initialMs: Number.NaN } }],
    ["replayErrorBackoff.maxMs", { replayErrorBackoff: { maxMs: -5 } }],
    // A JavaScript caller's string would be a set of its letters, a typo an unknown reason:
    // every record would count as poison and be given up at once.
    ["retryReasons", { retryReasons: "max_attempts" }],
    ["retryReasons", { retryReasons: ["max-attempts"] }],
    ["replayErrorBackoff", { replayErrorBackoff: 5000 }],
    ["store", { store: {} }],
    ["target", { target: undefined }],
  ] as const)("rejects %s out of range with a DaemonOptionsError naming it", (option, bad) => {
    const create = () =>
      new DlqRetryDaemon({
        store,
        target: replayTo({ router, transport }),
        router,
        ...(bad as Partial<DlqRetryDaemonOptions<PipelineCatalog>>),
      });
    expect(create).toThrow(DaemonOptionsError);
    expect(create).toThrow(new RegExp(`option ${option.replace(".", "\\.")} must be`));
  });
});
