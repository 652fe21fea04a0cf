// NatsDeadLetterStore.replay keeps its claim while the target runs (renewed every claimMs / 3),
// reports a claim lost anyway as LeaseLostError, and on abort lists and releases what it did not
// replay. Against a real nats-server (NATS_URL).
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { type Envelope, createEnvelope } from "@switchyard/event-schema";
import {
  type DeadLetterInfo,
  type DeadLetterRecord,
  type Logger,
  REPLAY_SKIP_REASONS,
} from "@switchyard/transport";
import { afterEach, beforeEach, expect, it, vi } from "vitest";
import {
  type NatsDeadLetterStore,
  type NatsDeadLetterStoreOptions,
  natsDeadLetterStore,
} from "./index";
import { deadLetterId, deadLetterStreamName, deadLetterSubject } from "./names";
import {
  NATS_URL,
  deleteStreams,
  describeIf,
  eventually,
  natsAvailable,
  uniqueNames,
} from "./test/nats";

/** The smallest claim a store takes: renewed every 333 ms. */
const CLAIM_MS = 1_000;

const job = (n: number): Envelope =>
  createEnvelope({ type: "JOB", source: "dead-letters-replay-lease-test", data: { n } });

const record = (envelope: Envelope, extra: Partial<DeadLetterRecord> = {}): DeadLetterRecord => ({
  envelope,
  subscriber: "worker",
  reason: "max_attempts",
  attempts: 3,
  error: { name: "Error", message: "failed" },
  failedAt: new Date().toISOString(),
  origin: "nats",
  ...extra,
});

/** A logger keeping every line, to await what the store reports. */
function memoryLogger() {
  const lines: { level: string; msg: string }[] = [];
  const at =
    (level: string) =>
    (obj: unknown, msg?: string): void => {
      lines.push({ level, msg: msg ?? String(obj) });
    };
  const logger: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
  };
  return { logger, lines };
}

/**
 * A replay target that keeps the first record it gets until `finish()` (`holding` resolves with
 * it then) and lets every later one through at once; `calls` lists the ids it got.
 */
function heldTarget() {
  const calls: string[] = [];
  let finish: (() => void) | undefined;
  let started!: (record: DeadLetterInfo) => void;
  const holding = new Promise<DeadLetterInfo>((resolve) => (started = resolve));
  return {
    calls,
    holding,
    finish: () => finish?.(),
    to: (r: DeadLetterInfo): Promise<void> => {
      calls.push(r.id);
      if (finish !== undefined) return Promise.resolve();
      started(r);
      return new Promise<void>((resolve) => (finish = resolve));
    },
  };
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeIf(await natsAvailable(), "NatsDeadLetterStore.replay and its claims", {}, () => {
  let names: { stream: string; prefix: string };
  let open: { close(): Promise<void> }[] = [];

  // As another process has it: a store of its own on the same stream and prefix.
  const store = (options: NatsDeadLetterStoreOptions = {}): NatsDeadLetterStore => {
    const s = natsDeadLetterStore({
      servers: NATS_URL,
      ...names,
      retryBackoff: { initialMs: 0 },
      claimMs: CLAIM_MS,
      ...options,
    });
    open.push(s);
    return s;
  };

  /** Read (and with `write`, overwrite against its revision) record `id` as stored, on a connection of its own. */
  const raw = async (
    id: string,
    write?: (stored: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<Record<string, unknown>> => {
    const nc = await connect({ servers: NATS_URL });
    try {
      const jsm = await jetstreamManager(nc);
      const subject = deadLetterSubject(names.prefix, id);
      const message = await jsm.streams.getMessage(deadLetterStreamName(names.stream), {
        last_by_subj: subject,
      });
      const stored = message!.json<Record<string, unknown>>();
      if (!write) return stored;
      const next = write(stored);
      await jsm.jetstream().publish(subject, JSON.stringify(next), {
        expect: { lastSubjectSequence: message!.seq },
      });
      return next;
    } finally {
      await nc.close();
    }
  };

  beforeEach(() => {
    names = uniqueNames("dlqlease");
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await Promise.allSettled(open.map((s) => s.close()));
    open = [];
    await deleteStreams(NATS_URL, names.stream);
  });

  it("keeps its claim while a long target runs: a concurrent replayer skips the record instead of replaying it again", async () => {
    const a = store();
    const e = job(1);
    await a.deadLetter(record(e));
    const held = heldTarget();
    const first = a.replay({}, { to: held.to });
    await held.holding;
    // Several claim lengths: without renewal the claim ran out long ago.
    await delay(3 * CLAIM_MS);
    const again: string[] = [];
    const second = await store().replay({}, { to: async (d) => void again.push(d.id) });
    // Before the fix: the claim had run out, and the record was handed back a second time.
    expect(again).toEqual([]);
    expect(second.replayed).toEqual([]);
    expect(second.skipped).toEqual([
      { id: deadLetterId("worker", e.id), reason: REPLAY_SKIP_REASONS.beingReplayed },
    ]);
    held.finish();
    const result = await first;
    expect(result.replayed).toEqual([deadLetterId("worker", e.id)]);
    expect(result.failed).toEqual([]);
    expect(await a.get(deadLetterId("worker", e.id))).toMatchObject({
      status: "replayed",
      replays: 1,
    });
  }, 20_000);

  it("reports the record in progress as lost (LeaseLostError) when a renewal finds its claim taken", async () => {
    const { logger, lines } = memoryLogger();
    const a = store({ logger });
    const e = job(1);
    const id = deadLetterId("worker", e.id);
    await a.deadLetter(record(e));
    const held = heldTarget();
    const running = a.replay({}, { to: held.to });
    await held.holding;
    // Another replayer takes the record over, as it may once a claim ran out (this process stalled).
    const taken = {
      token: "another-replayer",
      until: new Date(Date.now() + 600_000).toISOString(),
    };
    await raw(id, (stored) => ({ ...stored, claim: taken }));
    await eventually(
      () => lines.some((l) => l.level === "warn" && /claim was lost/.test(l.msg)),
      "the renewal to find the claim taken",
    );
    held.finish();
    const result = await running;
    expect(result.replayed).toEqual([]);
    expect(result.failed).toEqual([{ id, error: expect.stringMatching(/^Lease lost for event/) }]);
    // The other replayer's claim stands.
    expect(await raw(id)).toMatchObject({ status: "retrying", claim: taken, replays: 0 });
  }, 20_000);

  it("counts a replay whose copy failed again while the target still ran, without reporting it lost", async () => {
    const { logger, lines } = memoryLogger();
    const a = store({ logger });
    const e = job(1);
    const id = deadLetterId("worker", e.id);
    await a.deadLetter(record(e));
    const result = await a.replay(
      {},
      {
        to: async (d) => {
          // The handed-back copy is dead-lettered anew before the target returns...
          await a.deadLetter(record(d.envelope, { attempts: 1 }));
          // ...and a renewal meets that new version before the replay settles.
          await eventually(
            () => lines.some((l) => /failed again/.test(l.msg)),
            "a renewal to meet the new failure",
          );
        },
      },
    );
    expect(result).toMatchObject({ replayed: [id], failed: [], skipped: [] });
    expect(lines.filter((l) => l.level === "warn")).toEqual([]);
    expect(await a.get(id)).toMatchObject({ status: "pending_retry", replays: 1, attempts: 4 });
  }, 20_000);

  it("stops after the record in progress when aborted: the others listed as skipped and claimable at once", async () => {
    const a = store();
    for (const n of [1, 2, 3]) await a.deadLetter(record(job(n)));
    const controller = new AbortController();
    const calls: string[] = [];
    const result = await a.replay(
      {},
      {
        signal: controller.signal,
        to: async (d) => {
          calls.push(d.id);
          controller.abort();
        },
      },
    );
    expect(calls).toHaveLength(1);
    expect(result.replayed).toEqual(calls);
    expect(result.failed).toEqual([]);
    const rest = (await a.list()).deadLetters.map((d) => d.id).filter((id) => id !== calls[0]);
    expect(result.skipped).toHaveLength(2);
    expect(result.skipped).toEqual(
      expect.arrayContaining(
        rest.map((id) => ({ id, reason: "not replayed: the replay was aborted" })),
      ),
    );
    // Never claimed, nothing to wait for: another replayer takes them right away.
    const again = await store().replay({}, { to: async () => {} });
    expect([...again.replayed].sort()).toEqual([...rest].sort());
    expect((await a.counts()).byStatus).toEqual({ replayed: 3 });
  });

  it("reports a target that throws a value that is no Error (undefined) as failed, the record back as it was", async () => {
    const a = store();
    const e = job(1);
    const id = deadLetterId("worker", e.id);
    await a.deadLetter(record(e));
    const result = await a.replay(
      {},
      {
        to: () => {
          // eslint-disable-next-line @typescript-eslint/only-throw-error -- what a JavaScript caller may do
          throw undefined;
        },
      },
    );
    expect(result).toMatchObject({ replayed: [], failed: [{ id, error: "undefined" }] });
    expect(await raw(id)).toMatchObject({ status: "pending_retry", replays: 0 });
    expect(await raw(id)).not.toHaveProperty("claim");
  });

  it("rejects with the reason of a signal aborted before the call, claiming nothing", async () => {
    const a = store();
    const e = job(1);
    await a.deadLetter(record(e));
    const reason = new Error("shutting down");
    const to = vi.fn(async () => {});
    await expect(a.replay({}, { to, signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(to).not.toHaveBeenCalled();
    expect(await raw(deadLetterId("worker", e.id))).not.toHaveProperty("claim");
    expect((await a.counts()).byStatus).toEqual({ pending_retry: 1 });
  });

  it("clears and unrefs its renewal timer after every record, whether its replay succeeded or failed", async () => {
    const a = store();
    const envelopes = [job(1), job(2), job(3)];
    for (const e of envelopes) await a.deadLetter(record(e));
    const failing = deadLetterId("worker", envelopes[1]!.id);
    const set = vi.spyOn(globalThis, "setInterval");
    const clear = vi.spyOn(globalThis, "clearInterval");
    const result = await a.replay(
      {},
      {
        to: async (d) => {
          if (d.id === failing) throw new Error("subscriber gone");
        },
      },
    );
    expect(result.replayed).toHaveLength(2);
    expect(result.failed).toEqual([{ id: failing, error: "subscriber gone" }]);
    // The renewal timers: one per record handed to the target, every claimMs / 3.
    const timers = set.mock.calls
      .map((call, i) => ({ delay: call[1], timer: set.mock.results[i]!.value as NodeJS.Timeout }))
      .filter((t) => t.delay === Math.floor(CLAIM_MS / 3))
      .map((t) => t.timer);
    expect(timers).toHaveLength(3);
    const cleared = clear.mock.calls.map((c) => c[0]);
    for (const timer of timers) {
      expect(cleared).toContain(timer);
      // A replay left running never holds the process open.
      expect(timer.hasRef()).toBe(false);
    }
  });
});
