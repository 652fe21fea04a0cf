import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteDeadLetterStore } from "@switchyard/cross-process-queue";
import { createEnvelope } from "@switchyard/event-schema";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ReplayTargetMissingError, replayTo } from "./index";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dlq-replay-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("replayTo", () => {
  it("says which target is missing for a record from another origin", async () => {
    using store = new SqliteDeadLetterStore({ path: join(dir, "coordination.db") });
    await store.deadLetter({
      envelope: createEnvelope({ type: "TRAINING_COMPLETED", source: "trainer", data: {} }),
      subscriber: "evaluator",
      reason: "max_attempts",
      attempts: 5,
      error: { name: "Error", message: "boom" },
      failedAt: new Date().toISOString(),
      origin: "nats",
    });
    const replay = store.replay(store.list()[0]!.id, { to: replayTo({}) });
    await expect(replay).rejects.toThrow(ReplayTargetMissingError);
    await expect(replay).rejects.toThrow(/came from the "nats" transport/);
  });
});
