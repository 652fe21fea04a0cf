import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createEnvelope } from "@switchyard/event-schema";
import { describe, expect, it } from "vitest";
import { SqliteDeadLetterStore } from "./dead-letters";

const run = promisify(execFile);
const root = join(import.meta.dirname, "../../..");

describe("store.replay() from two processes at the same instant", { tags: ["slow"] }, () => {
  it("replays each of 300 records exactly once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dlq-replay-mp-"));
    try {
      const path = join(dir, "coordination.db");
      const store = new SqliteDeadLetterStore({ path });
      for (let n = 0; n < 300; n++) {
        await store.deadLetter({
          envelope: createEnvelope({ type: "TRAINING_COMPLETED", source: "t", data: { n } }),
          subscriber: "evaluator",
          reason: "max_attempts",
          attempts: 5,
          error: { name: "Error", message: "x" },
          failedAt: new Date().toISOString(),
          origin: "sqlite",
        });
      }
      store.close();
      const child = (i: number) =>
        run(
          process.execPath,
          [
            "--import",
            "tsx",
            "packages/cross-process-queue/src/test/dead-letter-store-replayer.ts",
            path,
            join(dir, `out-${i}.txt`),
            String(i),
            "1,2",
          ],
          {
            cwd: root,
            env: { ...process.env, TSX_TSCONFIG_PATH: join(root, "tsconfig.base.json") },
          },
        );
      await Promise.all([child(1), child(2)]);
      const received = [1, 2].flatMap((i) => {
        try {
          return readFileSync(join(dir, `out-${i}.txt`), "utf8")
            .trim()
            .split("\n")
            .map(Number);
        } catch {
          return [];
        }
      });
      const reports = [1, 2].map(
        (i) =>
          JSON.parse(readFileSync(join(dir, `out-${i}.txt.report.json`), "utf8")) as {
            replayed: number[];
          },
      );
      // Before the fix each process listed the 300 records, then claimed them by id one by one:
      // a record the other had already replayed (status `replayed`) was claimed and replayed again.
      expect(received).toHaveLength(300);
      expect(new Set(received).size).toBe(300);
      expect(reports.flatMap((r) => r.replayed).sort((a, b) => a - b)).toEqual(
        [...received].sort((a, b) => a - b),
      );
      const after = new SqliteDeadLetterStore({ path });
      try {
        expect(after.stats().byStatus).toMatchObject({ replayed: 300, retrying: 0 });
        expect(after.list({ status: "replayed", limit: 1_000 }).every((r) => r.replays === 1)).toBe(
          true,
        );
      } finally {
        after.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
