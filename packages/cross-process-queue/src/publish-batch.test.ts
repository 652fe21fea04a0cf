import Database from "better-sqlite3";
import type { Envelope } from "@switchyard/event-schema";
import { afterEach, describe, expect, it } from "vitest";
import { type SqliteTransport, sqliteTransport } from "./index";
import { eventually, job, tempQueue } from "./test/fixtures";

// A batch is stored by multi-row INSERTs (its exact size, or power-of-two pieces; at most 128 rows
// each): these cases cross every piece boundary and check what one row per INSERT gave: order,
// dedup, counts.
let queue: ReturnType<typeof tempQueue> | undefined;
let transport: SqliteTransport | undefined;
afterEach(async () => {
  await transport?.close();
  transport = undefined;
  queue?.cleanup();
  queue = undefined;
});

function open(): SqliteTransport {
  queue = tempQueue();
  transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
  return transport;
}

function storedIds(): string[] {
  const db = new Database(queue!.path, { readonly: true });
  try {
    return db.prepare(`SELECT id FROM events ORDER BY seq`).pluck().all() as string[];
  } finally {
    db.close();
  }
}

describe("publishing a batch", () => {
  it.each([2, 3, 100, 127, 128, 129, 255, 300])(
    "stores %i events in batch order, one seq each",
    async (size) => {
      const t = open();
      const batch = Array.from({ length: size }, (_, i) => job(i));
      expect(await t.publish(batch)).toEqual({ published: size, duplicates: 0 });
      expect(storedIds()).toEqual(batch.map((e) => e.id));
    },
  );

  it("stores batches of many sizes on one connection in order (exact-size INSERTs, then pieces)", async () => {
    const t = open();
    const all: Envelope[] = [];
    // More sizes than get an INSERT of their own: the later ones go in power-of-two pieces.
    for (const size of [3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 17, 100, 99, 3]) {
      const batch = Array.from({ length: size }, (_, i) => job(all.length + i));
      expect(await t.publish(batch)).toEqual({ published: size, duplicates: 0 });
      all.push(...batch);
    }
    expect(storedIds()).toEqual(all.map((e) => e.id));
  });

  it("skips ids stored before and ids repeated within the batch, keeping the first", async () => {
    const t = open();
    const before = Array.from({ length: 5 }, (_, i) => job(1000 + i));
    await t.publish(before);
    const fresh = Array.from({ length: 200 }, (_, i) => job(i));
    // Repeats inside the batch (one in the first 128-row piece, one across pieces) and old ids.
    const repeated = { ...fresh[3]!, data: { n: -1 } };
    const batch: Envelope[] = [
      ...fresh.slice(0, 10),
      repeated,
      before[0]!,
      ...fresh.slice(10, 150),
      { ...fresh[140]!, data: { n: -2 } },
      before[4]!,
      ...fresh.slice(150),
    ];
    expect(await t.publish(batch)).toEqual({ published: 200, duplicates: 4 });
    expect(storedIds()).toEqual([...before, ...fresh].map((e) => e.id));
  });

  it("delivers every event of a large batch once, in publish order", async () => {
    const t = open();
    const got: number[] = [];
    const sub = await t.subscribe({
      subscriber: "reader",
      types: ["JOB"],
      handler: async (d) => void got.push((d.envelope.data as { n: number }).n),
    });
    const batch = Array.from({ length: 777 }, (_, i) => job(i));
    expect(await t.publish(batch)).toEqual({ published: 777, duplicates: 0 });
    await eventually(() => got.length === 777, "777 deliveries");
    expect(got).toEqual(batch.map((_, i) => i));
    await sub.close();
  });
});
