import { afterEach, describe, expect, it } from "vitest";
import {
  backupQueue,
  clearPending,
  countPending,
  openDatabase,
  openQueueReadOnly,
  sqliteTransport,
} from "./index";
import { eventually, job, tempQueue } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue>;
afterEach(() => queue.cleanup());

describe("recovery", () => {
  it("backs up the queue, then clears what is pending without touching dead deliveries", async () => {
    queue = tempQueue();
    const t = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    for (const subscriber of ["a", "b"]) {
      await (await t.subscribe({ subscriber, types: ["JOB"], handler: async () => {} })).close();
    }
    const poison = await t.subscribe({
      subscriber: "b",
      types: ["JOB"],
      maxAttempts: 1,
      handler: async () => {
        throw new Error("poison");
      },
    });
    await t.publish([job(1)]);
    await eventually(
      async () =>
        (await t.stats()).subscribers.find((s) => s.subscriber === "b")?.deadLettered === 1,
      "b's dead letter",
    );
    await poison.close();
    await t.publish([job(2), job(3)]);
    await t.close();

    const db = openDatabase(queue.path);
    try {
      await backupQueue(db, `${queue.dir}/backup.db`);
      expect(clearPending(db, { subscriber: "a" })).toEqual({ deliveries: 0, skipped: 3 });
      expect(countPending(db, { subscriber: "a" })).toBe(0);
      expect(countPending(db, { subscriber: "b" })).toBe(2);
      expect(clearPending(db)).toEqual({ deliveries: 0, skipped: 2 });
      expect(countPending(db)).toBe(0);
      expect(
        db.prepare("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'").pluck().get(),
      ).toBe(1);
    } finally {
      db.close();
    }
    const backup = openQueueReadOnly(`${queue.dir}/backup.db`);
    try {
      expect(countPending(backup)).toBe(5);
    } finally {
      backup.close();
    }
  });
});
