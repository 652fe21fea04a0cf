import { afterEach, describe, expect, it } from "vitest";
import { SqliteHeartbeatSink, listHeartbeats, openQueueReadOnly } from "./index";
import { tempQueue } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue>;
afterEach(() => queue.cleanup());

describe("SqliteHeartbeatSink", () => {
  it("upserts one row per daemon that other processes can read", async () => {
    queue = tempQueue();
    const sink = new SqliteHeartbeatSink({ path: queue.path });
    const beat = {
      daemon: "quality_monitor",
      pid: 100,
      host: "node-1",
      status: "running",
      health: { healthy: true, status: "healthy" },
      stats: { cycles: 1 },
      startedAt: "2025-01-15T10:00:00.000Z",
      at: "2025-01-15T10:00:05.000Z",
    };
    sink.write(beat);
    sink.write({
      ...beat,
      status: "stopping",
      stats: { cycles: 2 },
      at: "2025-01-15T10:00:10.000Z",
    });
    sink.write({ ...beat, daemon: "training_daemon", pid: 101 });
    const closing = sink.close();
    expect(sink.close()).toBe(closing);
    await closing;
    const db = openQueueReadOnly(queue.path);
    try {
      const rows = listHeartbeats(db, Date.parse("2025-01-15T10:01:00.000Z"));
      expect(rows.map((r) => [r.daemon, r.status, r.stats, r.ageMs])).toEqual([
        ["quality_monitor", "stopping", { cycles: 2 }, 50_000],
        ["training_daemon", "running", { cycles: 1 }, 55_000],
      ]);
    } finally {
      db.close();
    }
  });
});
