import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { type Envelope, createEnvelope } from "@switchyard/event-schema";
import {
  type DeadLetterInfo,
  type DeadLetterRecord,
  LeaseLostError,
  REPLAY_SKIP_REASONS,
  UnrecoverableError,
  UnsupportedOperationError,
} from "@switchyard/transport";
import { afterEach, beforeEach, expect, it } from "vitest";
import {
  type NatsDeadLetterStore,
  type NatsDeadLetterStoreOptions,
  NatsOptionsError,
  natsDeadLetterStore,
  natsTransport,
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

const job = (n: number, type = "JOB"): Envelope =>
  createEnvelope({ type, source: "dead-letters-test", data: { n } });

const record = (
  envelope: Envelope,
  subscriber = "worker",
  extra: Partial<DeadLetterRecord> = {},
): DeadLetterRecord => ({
  envelope,
  subscriber,
  reason: "max_attempts",
  attempts: 3,
  error: { name: "Error", message: `failed ${(envelope.data as { n: number }).n}` },
  failedAt: new Date().toISOString(),
  origin: "nats",
  ...extra,
});

describeIf(await natsAvailable(), "NatsDeadLetterStore", {}, () => {
  let names: { stream: string; prefix: string };
  let open: { close(): Promise<void> }[] = [];

  // Records due at once unless a test says otherwise (the default waits 1 s before a replay).
  const store = (options: NatsDeadLetterStoreOptions = {}): NatsDeadLetterStore => {
    const s = natsDeadLetterStore({
      servers: NATS_URL,
      ...names,
      retryBackoff: { initialMs: 0 },
      ...options,
    });
    open.push(s);
    return s;
  };

  beforeEach(() => {
    names = uniqueNames("dlq");
  });
  afterEach(async () => {
    await Promise.allSettled(open.map((s) => s.close()));
    open = [];
    await deleteStreams(NATS_URL, names.stream);
  });

  it("keeps a record durably once deadLetter() resolves, one message per record on its own subject", async () => {
    const s = store();
    const envelope = job(1);
    await s.deadLetter(record(envelope));
    // Another connection reads it straight from the stream: it is stored, not buffered.
    const nc = await connect({ servers: NATS_URL });
    try {
      const jsm = await jetstreamManager(nc);
      const id = deadLetterId("worker", envelope.id);
      const message = await jsm.streams.getMessage(deadLetterStreamName(names.stream), {
        last_by_subj: deadLetterSubject(names.prefix, id),
      });
      expect(message).not.toBeNull();
      const stored = message!.json<{ envelope: Envelope; status: string }>();
      expect(stored.envelope).toEqual(envelope);
      expect(stored.status).toBe("pending_retry");
      const info = await jsm.streams.info(deadLetterStreamName(names.stream));
      expect(info.config.max_msgs_per_subject).toBe(1);
      expect(info.config.subjects).toEqual([`${names.prefix}_dlq.>`]);
    } finally {
      await nc.close();
    }
  });

  it("keeps the records of a transport across a restart of the transport and the store", async () => {
    const first = store();
    const transport = natsTransport({
      servers: NATS_URL,
      ...names,
      deadLetter: first,
      drainTimeoutMs: 1_000,
      pullExpiresMs: 2_000,
    });
    open.push(transport);
    await transport.subscribe({
      subscriber: "worker",
      types: ["JOB"],
      handler: async (d) => {
        throw new UnrecoverableError(`no ${(d.envelope.data as { n: number }).n}`);
      },
    });
    const envelopes = [job(1), job(2), job(3)];
    await transport.publish(envelopes);
    await eventually(async () => (await first.counts()).depth === 3, "3 dead letters");
    await transport.close();
    await first.close();

    const again = store();
    const page = await again.list();
    expect(page.deadLetters.map((d) => d.eventId).sort()).toEqual(
      envelopes.map((e) => e.id).sort(),
    );
    for (const d of page.deadLetters) {
      expect(d).toMatchObject({
        subscriber: "worker",
        eventType: "JOB",
        origin: "nats",
        reason: "unrecoverable",
        status: "pending_retry",
        attempts: 1,
        replays: 0,
      });
      expect(d.error.message).toMatch(/^no [123]$/);
      expect(d.envelope).toEqual(envelopes.find((e) => e.id === d.eventId));
    }
    expect(await again.counts()).toMatchObject({
      depth: 3,
      byStatus: { pending_retry: 3 },
      byReason: { unrecoverable: 3 },
      byType: { JOB: 3 },
      bySubscriber: { worker: 3 },
    });
  });

  it("updates the record of an event failed again by the same subscriber: attempts add up", async () => {
    const s = store();
    const envelope = job(1);
    await s.deadLetter(record(envelope, "worker", { attempts: 2 }));
    await s.deadLetter(record(envelope, "worker", { attempts: 3, reason: "unrecoverable" }));
    await s.deadLetter(record(envelope, "other", { attempts: 1 }));
    const { deadLetters } = await s.list({ subscriber: "worker" });
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]).toMatchObject({ attempts: 5, reason: "unrecoverable" });
    expect((await s.counts()).depth).toBe(2);
  });

  it("lets two concurrent deadLetter() calls for one record both count (compare-and-set)", async () => {
    const [a, b] = [store(), store()];
    const envelope = job(1);
    await a.ready();
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        (i % 2 ? a : b).deadLetter(record(envelope, "worker", { attempts: 1 })),
      ),
    );
    const [only] = (await a.list()).deadLetters;
    expect(only?.attempts).toBe(6);
  });

  it("lists every record while another writer rewrites records the read has not reached yet", async () => {
    const seed = store();
    const envelopes = Array.from({ length: 150 }, (_, i) => job(i));
    for (const e of envelopes) await seed.deadLetter(record(e));
    const writer = store();
    const reader = store();
    let stop = false;
    // Rewrite the records stored last first (the ones a reading in stream order reaches last):
    // each rewrite removes the version the read would have reached and appends a new one.
    const rewriting = (async () => {
      for (let round = 0; round < 3 && !stop; round++)
        for (const e of [...envelopes].reverse()) {
          if (stop) break;
          await writer.deadLetter(record(e, "worker", { attempts: 1 }));
        }
    })();
    try {
      for (let i = 0; i < 5; i++) {
        const { deadLetters } = await reader.list({ limit: 1000 });
        expect(deadLetters).toHaveLength(150);
      }
    } finally {
      stop = true;
      await rewriting;
    }
  });

  it("replays each record exactly once when two replayers run at once", async () => {
    const seed = store();
    const envelopes = Array.from({ length: 12 }, (_, i) => job(i));
    for (const e of envelopes) await seed.deadLetter(record(e));
    const calls: string[] = [];
    const to = async (d: DeadLetterInfo) => {
      calls.push(d.id);
      await new Promise((r) => setTimeout(r, 5));
    };
    const [one, two] = await Promise.all([store().replay({}, { to }), store().replay({}, { to })]);
    expect(calls).toHaveLength(12);
    expect(new Set(calls).size).toBe(12);
    expect([...one.replayed, ...two.replayed].sort()).toEqual([...calls].sort());
    // Whatever one replayer did not replay, it skipped because the other had it: holding it at
    // that moment, or done with it already (a replayer that reaches a record after the other
    // finished it finds it replayed; which of the two a run sees is timing).
    expect(one.replayed.length + one.skipped.length).toBe(12);
    expect(two.replayed.length + two.skipped.length).toBe(12);
    for (const s of [...one.skipped, ...two.skipped])
      expect(s.reason).toMatch(/another replayer|replayed before/);
    const counts = await seed.counts();
    expect(counts).toMatchObject({ depth: 0, byStatus: { replayed: 12 } });
    const { deadLetters } = await seed.list();
    expect(deadLetters.every((d) => d.replays === 1 && d.replayedAt !== undefined)).toBe(true);
  });

  it("asks for again before replaying a record replayed before", async () => {
    const s = store();
    const e = job(1);
    await s.deadLetter(record(e));
    const calls: string[] = [];
    const to = async (d: DeadLetterInfo) => void calls.push(d.id);
    expect((await s.replay({}, { to })).replayed).toHaveLength(1);
    const second = await s.replay({}, { to });
    expect(second.replayed).toEqual([]);
    expect(second.skipped[0]?.reason).toBe(REPLAY_SKIP_REASONS.replayedBefore);
    const dry = await s.replay({}, { to, again: true, dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, matched: 1, replayed: [] });
    expect(dry.wouldReplay).toHaveLength(1);
    expect((await s.replay({}, { to, again: true })).replayed).toHaveLength(1);
    expect(calls).toHaveLength(2);
    expect((await s.list()).deadLetters[0]?.replays).toBe(2);
  });

  it("counts a replay whose copy failed again before the replayer settled the record", async () => {
    const s = store();
    const e = job(1);
    await s.deadLetter(record(e));
    // The handed-back copy runs and is dead-lettered again before replay() settles its record.
    const to = async (d: DeadLetterInfo) => {
      await s.deadLetter(record(d.envelope!, d.subscriber, { attempts: 1 }));
    };
    expect((await s.replay({}, { to })).replayed).toHaveLength(1);
    const [stored] = (await s.list()).deadLetters;
    expect(stored).toMatchObject({ replays: 1, attempts: 4, status: "pending_retry" });
    expect(stored!.replayedAt).toBeDefined();
  });

  it("puts a record back as it was when handing it back fails", async () => {
    const s = store();
    await s.deadLetter(record(job(1)));
    const result = await s.replay(
      {},
      {
        to: async () => {
          throw new Error("no such subscriber");
        },
      },
    );
    expect(result.failed).toEqual([{ id: expect.any(String), error: "no such subscriber" }]);
    expect((await s.list()).deadLetters[0]).toMatchObject({ status: "pending_retry", replays: 0 });
  });

  it("filters, pages newest first and purges with tombstones or for good", async () => {
    const s = store();
    const t0 = Date.parse("2026-01-01T00:00:00.000Z");
    for (let i = 0; i < 5; i++)
      await s.deadLetter(
        record(job(i, i < 3 ? "A" : "B"), i % 2 ? "odd" : "even", {
          failedAt: new Date(t0 + i * 1_000).toISOString(),
        }),
      );
    const first = await s.list({ limit: 2 });
    expect(first.deadLetters.map((d) => d.lastFailedAt)).toEqual([
      new Date(t0 + 4_000).toISOString(),
      new Date(t0 + 3_000).toISOString(),
    ]);
    const rest = await s.list({ limit: 2, cursor: first.next! });
    const last = await s.list({ limit: 2, cursor: rest.next! });
    expect(last.next).toBeUndefined();
    expect([...first.deadLetters, ...rest.deadLetters, ...last.deadLetters]).toHaveLength(5);
    expect((await s.list({ type: "A", subscriber: "even" })).deadLetters).toHaveLength(2);
    expect((await s.list({ since: t0 + 2_000, before: t0 + 4_000 })).deadLetters).toHaveLength(2);

    await expect(s.purge({})).rejects.toBeInstanceOf(NatsOptionsError);
    expect(await s.purge({ type: "A" }, { dryRun: true })).toEqual({ dryRun: true, count: 3 });
    expect(await s.purge({ type: "A" })).toEqual({ dryRun: false, count: 3 });
    const purged = (await s.list({ status: "purged" })).deadLetters;
    expect(purged).toHaveLength(3);
    expect(purged.every((d) => d.envelope === undefined)).toBe(true);
    expect(await s.counts()).toMatchObject({ depth: 2, byStatus: { purged: 3, pending_retry: 2 } });
    const replayed = await s.replay({ type: "A" }, { to: async () => {} });
    // The contract's wording (replaySkipReason), as every transport's replay says it.
    expect(replayed.skipped.map((x) => x.reason)).toEqual(
      Array(3).fill("purged: the envelope is gone"),
    );
    expect(await s.purge({}, { all: true, hard: true })).toEqual({ dryRun: false, count: 5 });
    expect((await s.list()).deadLetters).toEqual([]);
  });

  it("opened read-only, reads without creating its stream and refuses writes", async () => {
    const s = store({ readOnly: true });
    expect(await s.list()).toEqual({ deadLetters: [] });
    expect((await s.counts()).depth).toBe(0);
    expect(await s.get(deadLetterId("worker", "x"))).toBeUndefined();
    await expect(s.deadLetter(record(job(1)))).rejects.toBeInstanceOf(UnsupportedOperationError);
    const nc = await connect({ servers: NATS_URL });
    try {
      const jsm = await jetstreamManager(nc);
      const streams: string[] = [];
      for await (const name of jsm.streams.names()) streams.push(name);
      expect(streams).not.toContain(deadLetterStreamName(names.stream));
    } finally {
      await nc.close();
    }
  });

  it("claims due records for the retry daemon, each under a lease only one claimer gets", async () => {
    const s = store();
    const other = store();
    const envelopes = [job(1), job(2), job(3)];
    for (const e of envelopes) await s.deadLetter(record(e));
    await s.deadLetter(record(job(4), "gone"));
    await s.purge({ subscriber: "gone" });
    // Two claimers at once: every record is claimed once, the purged one by nobody.
    const [a, b] = await Promise.all([
      s.claim({ limit: 10, leaseMs: 60_000 }),
      other.claim({ limit: 10, leaseMs: 60_000 }),
    ]);
    const claimed = [...a, ...b];
    expect(claimed.map((c) => c.eventId).sort()).toEqual(envelopes.map((e) => e.id).sort());
    for (const c of claimed) {
      expect(c).toMatchObject({ status: "retrying", subscriber: "worker", origin: "nats" });
      expect(c.envelope).toEqual(envelopes.find((e) => e.id === c.eventId));
      expect(c.leaseToken).toMatch(/^[0-9a-f-]{36}$/);
    }
    // Held: nothing is due while the leases run.
    expect(await s.claim({ limit: 10, leaseMs: 60_000 })).toEqual([]);
    expect((await s.stats()).byStatus).toMatchObject({ retrying: 3 });
    // Bounded by limit.
    await s.deadLetter(record(job(5)));
    await s.deadLetter(record(job(6)));
    expect(await s.claim({ limit: 1, leaseMs: 60_000 })).toHaveLength(1);
  });

  it("settles a claimed record: replayed (counted), given up (with the error given), or due again later", async () => {
    const s = store();
    const [one, two, three] = [job(1), job(2), job(3)];
    for (const e of [one, two, three]) await s.deadLetter(record(e));
    const claimed = await s.claim({ limit: 10, leaseMs: 60_000 });
    const by = (e: Envelope) => claimed.find((c) => c.eventId === e.id)!;
    await s.release(by(one), { status: "replayed" });
    await s.release(by(two), { status: "permanently_failed", error: "gave up after 5 replays" });
    const later = Date.now() + 1_500;
    await s.release(by(three), { status: "pending_retry", nextRetryAt: later });
    const get = async (e: Envelope) => (await s.get(deadLetterId("worker", e.id)))!;
    expect(await get(one)).toMatchObject({ status: "replayed", replays: 1 });
    expect((await get(one)).replayedAt).toBeDefined();
    expect(await get(two)).toMatchObject({ status: "permanently_failed", replays: 0 });
    expect((await get(two)).error.message).toBe("gave up after 5 replays");
    expect(await get(three)).toMatchObject({
      status: "pending_retry",
      nextRetryAt: new Date(later).toISOString(),
    });
    // Not due before its time, due after.
    expect(await s.claim({ limit: 10, leaseMs: 60_000 })).toEqual([]);
    await eventually(
      async () => (await s.claim({ limit: 10, leaseMs: 60_000 })).length === 1,
      "the retry due again",
    );
    // A released claim cannot be released twice.
    await expect(s.release(by(one), { status: "replayed" })).rejects.toBeInstanceOf(LeaseLostError);
  });

  it("lets a claim whose lease ran out be taken over, and refuses the first claimer's settle", async () => {
    const s = store();
    const e = job(1);
    await s.deadLetter(record(e));
    const [first] = await s.claim({ limit: 1, leaseMs: 200 });
    expect(first).toBeDefined();
    expect(await s.claim({ limit: 1, leaseMs: 60_000 })).toEqual([]);
    await new Promise((r) => setTimeout(r, 300));
    const [second] = await s.claim({ limit: 1, leaseMs: 60_000 });
    expect(second?.eventId).toBe(e.id);
    await expect(s.release(first!, { status: "replayed" })).rejects.toBeInstanceOf(LeaseLostError);
    await s.release(second!, { status: "replayed" });
    expect((await s.get(deadLetterId("worker", e.id)))!.replays).toBe(1);
  });

  it("keeps a new failure that arrives while a record is claimed: the claimer's settle is refused", async () => {
    const s = store();
    const e = job(1);
    await s.deadLetter(record(e));
    const [claimed] = await s.claim({ limit: 1, leaseMs: 60_000 });
    // The replayed copy fails again before the daemon settles: the new failure is stored, the
    // replay counted, and the record is due again.
    await s.deadLetter(record(e, "worker", { attempts: 1 }));
    await expect(s.release(claimed!, { status: "replayed" })).rejects.toBeInstanceOf(
      LeaseLostError,
    );
    expect(await s.get(deadLetterId("worker", e.id))).toMatchObject({
      status: "pending_retry",
      replays: 1,
      attempts: 4,
    });
    expect(await s.claim({ limit: 1, leaseMs: 60_000 })).toHaveLength(1);
  });

  it("waits exponentially longer before replaying a record that keeps failing after replays", async () => {
    const s = store({ retryBackoff: { initialMs: 300, maxMs: 1_000 } });
    const e = job(1);
    const id = deadLetterId("worker", e.id);
    /** Store the failure; the wait until its record is due, within the write's own time. */
    const fail = async () => {
      const before = Date.now();
      await s.deadLetter(record(e, "worker", { attempts: 1 }));
      const after = Date.now();
      const due = Date.parse((await s.get(id))!.nextRetryAt!);
      return [due - after, due - before] as const;
    };
    for (const expected of [300, 600, 1_000]) {
      const [least, most] = await fail();
      expect(expected).toBeGreaterThanOrEqual(least);
      expect(expected).toBeLessThanOrEqual(most);
      // Not claimable before its time; claimable once it has come.
      expect(await s.claim({ limit: 10, leaseMs: 60_000 })).toEqual([]);
      let claimed: Awaited<ReturnType<typeof s.claim>> = [];
      await eventually(async () => {
        claimed = await s.claim({ limit: 10, leaseMs: 60_000 });
        return claimed.length === 1;
      }, "the record due");
      await s.release(claimed[0]!, { status: "replayed" });
    }
    expect(await s.get(id)).toMatchObject({ replays: 3, status: "replayed" });
  });

  it("refuses a bad retry backoff with a typed error", () => {
    for (const retryBackoff of [{ initialMs: -1 }, { maxMs: Number.NaN }])
      expect(() => natsDeadLetterStore({ servers: NATS_URL, ...names, retryBackoff })).toThrow(
        NatsOptionsError,
      );
  });

  it("refuses bad claim options with a typed error", async () => {
    const s = store();
    await expect(s.claim({ limit: 0 })).rejects.toBeInstanceOf(NatsOptionsError);
    await expect(s.claim({ leaseMs: -1 })).rejects.toBeInstanceOf(NatsOptionsError);
  });
});
