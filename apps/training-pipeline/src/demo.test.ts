import { execFile } from "node:child_process";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { SqliteDeadLetterStore } from "@switchyard/dlq";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../../../", import.meta.url));

describe("the training-pipeline demo", { tags: ["slow"] }, () => {
  it(
    "flows every stage for every config, dead-letters the poison and survives a killed daemon",
    { timeout: 180_000 },
    async () => {
      const dir = join(tmpdir(), `switchyard-demo-test-${process.pid}-${Date.now()}`);
      const db = join(dir, "coordination.db");
      try {
        const { stdout } = await run(
          process.execPath,
          [
            "--import",
            "tsx",
            "apps/training-pipeline/src/demo.ts",
            "--configs",
            "hex8_2p,square8_4p",
            "--generations",
            "2",
            "--failure-rate",
            "0.2",
            "--kill",
            "evaluation",
            "--db",
            db,
            "--timeout",
            "150",
          ],
          {
            cwd: root,
            env: { ...process.env, TSX_TSCONFIG_PATH: join(root, "tsconfig.base.json") },
            maxBuffer: 10 * 2 ** 20,
          },
        );
        expect(stdout).toContain("all generations done");
        expect(stdout).toContain("every stage flowed for 2 configs");
        expect(stdout).not.toContain("✗");
        expect(stdout.match(/✓ MODEL_DISTRIBUTION_COMPLETE/g)).toHaveLength(2);
        expect(stdout).toContain("SIGKILL evaluation");
        const store = new SqliteDeadLetterStore({ path: db });
        const poison = store.list({ type: "NEW_GAMES_AVAILABLE" });
        store.close();
        expect(poison).toEqual([
          expect.objectContaining({
            reason: "unrecoverable",
            status: "permanently_failed",
            subscriber: "data_sync:NEW_GAMES_AVAILABLE",
          }),
        ]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
