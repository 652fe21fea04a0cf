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

describe("replaying from two processes", { tags: ["slow"] }, () => {
  it("never replays one record twice", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dlq-mp-"));
    try {
      const path = join(dir, "coordination.db");
      const store = new SqliteDeadLetterStore({ path, retryBackoff: { initialMs: 0 } });
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
            "packages/cross-process-queue/src/test/dead-letter-replayer.ts",
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
      const perProcess = [1, 2].map((i) => {
        try {
          return readFileSync(join(dir, `out-${i}.txt`), "utf8")
            .trim()
            .split("\n")
            .filter(Boolean)
            .map(Number);
        } catch {
          return [];
        }
      });
      const ids = perProcess.flat();
      expect(ids).toHaveLength(300);
      expect(new Set(ids).size).toBe(300);
      // Both processes took part (otherwise the test would prove nothing about contention).
      expect(perProcess.every((list) => list.length > 0)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
