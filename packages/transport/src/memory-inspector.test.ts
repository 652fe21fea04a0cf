import { createEnvelope } from "@switchyard/event-schema";
import { describe, expect, it } from "vitest";
import { InspectorQueryError, UnboundedPurgeError } from "./inspector";
import { MemoryAdmin, MemoryInspector } from "./memory-inspector";
import { MemoryStore, memoryTransport } from "./memory-transport";
import { replaySkipReason } from "./replay-rule";

// The numbers themselves are checked by @switchyard/transport-testkit's inspector suite, which
// runs on the memory driver; these are the memory inspector's own edges.

const job = (n: number, extra: { causationid?: string; id?: string } = {}) =>
  createEnvelope({ type: "JOB", source: "memory-inspector-test", data: { n }, ...extra });

describe("memory inspector", () => {
  it("rejects a cursor it did not give, a bad limit and a bad time with InspectorQueryError", async () => {
    const inspector = new MemoryInspector(new MemoryStore());
    await expect(inspector.events({ cursor: "abc" })).rejects.toBeInstanceOf(InspectorQueryError);
    await expect(inspector.events({ limit: 0 })).rejects.toBeInstanceOf(InspectorQueryError);
    await expect(inspector.events({ since: "yesterday" })).rejects.toThrow(/^since: must be/);
    await expect(inspector.counts({ since: 0, until: Date.now(), bucketMs: 1 })).rejects.toThrow(
      /^bucketMs: \d+ buckets/,
    );
  });

  it("counts an expired lease as retrying, never in flight", async () => {
    const store = new MemoryStore();
    const transport = memoryTransport({ store, drainTimeoutMs: 10 });
    let started = false;
    await transport.subscribe({
      subscriber: "stuck",
      types: ["JOB"],
      leaseMs: 60,
      // Never settles and ignores its signal: a hung worker.
      handler: () => {
        started = true;
        return new Promise<void>(() => {});
      },
    });
    await transport.publish([job(1)]);
    await expect.poll(() => started).toBe(true);
    const inspector = new MemoryInspector(store);
    expect((await inspector.subscribers())[0]).toMatchObject({ inFlight: 1, retrying: 0 });
    // The lease is not renewed. Past its end it is retrying (the only worker is still busy with
    // the hung attempt, so nobody claims it again).
    await new Promise((r) => setTimeout(r, 80));
    expect((await inspector.subscribers())[0]).toMatchObject({
      pending: 0,
      inFlight: 0,
      retrying: 1,
      lag: 1,
    });
    await transport.close();
  });

  it("survives a causation cycle", async () => {
    const store = new MemoryStore();
    const transport = memoryTransport({ store });
    const a = job(1, { id: "cycle-a", causationid: "cycle-b" });
    const b = job(2, { id: "cycle-b", causationid: "cycle-a" });
    await transport.publish([a, b]);
    const tree = await new MemoryInspector(store).causation("cycle-a");
    expect(tree!.causes.map((e) => e.id)).toEqual(["cycle-b"]);
    expect(tree!.root.caused.map((n) => n.event.id)).toEqual(["cycle-b"]);
    expect(tree!.root.caused[0]!.caused).toEqual([]);
  });

  it("pages dead letters by key: records written between pages are neither repeated nor skipped", async () => {
    const store = new MemoryStore();
    const transport = memoryTransport({ store });
    await transport.subscribe({
      subscriber: "poisoned",
      types: ["JOB"],
      maxAttempts: 1,
      handler: async () => {
        throw new Error("no");
      },
    });
    const inspector = new MemoryInspector(store);
    const depth = async () => (await inspector.deadLetterCounts()).depth;
    await transport.publish([job(1), job(2), job(3)]);
    await expect.poll(depth).toBe(3);
    const first = await inspector.deadLetters({ limit: 2 });
    await transport.publish([job(4), job(5)]);
    await expect.poll(depth).toBe(5);
    const second = await inspector.deadLetters({ limit: 2, cursor: first.next! });
    const n = (page: typeof first) =>
      page.deadLetters.map((d) => (d.envelope!.data as { n: number }).n);
    expect([...n(first), ...n(second)]).toEqual([3, 2, 1]);
    expect(second.next).toBeUndefined();
    await expect(inspector.deadLetters({ cursor: "2" })).rejects.toBeInstanceOf(
      InspectorQueryError,
    );
    await transport.close();
  });

  it("refuses a purge without a filter, and hard-purges only when asked", async () => {
    const store = new MemoryStore();
    const transport = memoryTransport({ store });
    await transport.subscribe({
      subscriber: "poisoned",
      types: ["JOB"],
      maxAttempts: 1,
      handler: async () => {
        throw new Error("no");
      },
    });
    await transport.publish([job(1)]);
    const inspector = new MemoryInspector(store);
    await expect.poll(async () => (await inspector.deadLetters()).deadLetters.length).toBe(1);
    const admin = new MemoryAdmin(store);
    await expect(admin.purge({})).rejects.toBeInstanceOf(UnboundedPurgeError);
    expect(await admin.purge({}, { all: true })).toMatchObject({ count: 1 });
    const [tombstone] = (await inspector.deadLetters()).deadLetters;
    expect(tombstone).toMatchObject({ status: "purged" });
    expect(tombstone!.envelope).toBeUndefined();
    expect(await admin.purge({ status: "purged" }, { hard: true })).toMatchObject({ count: 1 });
    expect((await inspector.deadLetters()).deadLetters).toEqual([]);
    await transport.close();
  });

  it("skips in a replay, dry or not, for the contract's reason (replaySkipReason) of each record", async () => {
    const store = new MemoryStore();
    const transport = memoryTransport({ store });
    let healed = false;
    await transport.subscribe({
      subscriber: "poisoned",
      types: ["JOB"],
      maxAttempts: 1,
      handler: async () => {
        if (!healed) throw new Error("no");
      },
    });
    await transport.publish([job(1), job(2), job(3)]);
    const inspector = new MemoryInspector(store);
    await expect.poll(async () => (await inspector.deadLetters()).deadLetters.length).toBe(3);
    const [purged, replayed, waiting] = (await inspector.deadLetters()).deadLetters
      .map((d) => d.id)
      .sort((a, b) => Number(a) - Number(b));
    const admin = new MemoryAdmin(store);
    healed = true;
    expect((await admin.replay({ id: replayed! })).replayed).toEqual([replayed]);
    expect(await admin.purge({ id: purged! })).toMatchObject({ count: 1 });

    const expected = async (id: string) => {
      const record = (await inspector.deadLetter(id))!;
      return replaySkipReason({
        status: record.status,
        hasEnvelope: record.envelope !== undefined,
        ...(record.damaged !== undefined ? { damaged: record.damaged } : {}),
      });
    };
    const dry = await admin.replay({}, { dryRun: true });
    expect(dry.wouldReplay).toEqual([waiting]);
    expect(dry.skipped).toEqual([
      { id: purged, reason: await expected(purged!) },
      { id: replayed, reason: await expected(replayed!) },
    ]);
    expect(dry.skipped.map((s) => s.reason)).toEqual([
      "purged: the envelope is gone",
      "replayed before; pass again to replay it again",
    ]);
    // The real replay skips the same records for the same reasons.
    const real = await admin.replay({});
    expect(real.replayed).toEqual([waiting]);
    expect(real.skipped).toEqual(dry.skipped);
    await transport.close();
  });
});
