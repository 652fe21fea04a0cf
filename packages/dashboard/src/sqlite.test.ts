import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sqliteDriver } from "@switchyard/cross-process-queue";
import { openDriver } from "@switchyard/transport";
import { afterAll, describe, expect, it } from "vitest";
import { apiSuite } from "./test/api-suite";
import { createDashboard } from "./index";
import { getJson, seed } from "./test/fixture";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const file = () => {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-dashboard-"));
  dirs.push(dir);
  return join(dir, "coordination.db");
};

// The same API contract on a real SQLite database, written by the SQLite transport.
apiSuite("the SQLite driver", () => openDriver(`sqlite:${file()}`, { drivers: [sqliteDriver] }));

describe("the dashboard on SQLite", () => {
  it("reads a database opened read-only, and a purge through a writable driver backs up first", async () => {
    const path = file();
    const writer = await openDriver(`sqlite:${path}`, { drivers: [sqliteDriver] });
    try {
      await seed(writer);
      const reader = await openDriver(`sqlite:${path}`, {
        drivers: [sqliteDriver],
        readOnly: true,
      });
      try {
        const { body } = await getJson(createDashboard(reader), "/api/overview");
        expect(body.transport).toBe("sqlite");
        expect(body.deadLetters.depth).toBe(4);
        expect(body.daemons.total).toBe(3);
      } finally {
        await reader.close();
      }
      expect(writer.capabilities.backup).toBe(true);
      const dash = createDashboard(writer, { actions: { token: "a-long-enough-token" } });
      const response = await dash(
        new Request("http://dash.test/api/dead-letters/purge", {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-switchyard-token": "a-long-enough-token",
          },
          body: JSON.stringify({ filter: { subscriber: "pill_eater" } }),
        }),
      );
      const result = (await response.json()) as { count: number; backups: string[] };
      expect(result.count).toBe(1);
      expect(result.backups).toHaveLength(1);
      const backupDir = join(result.backups[0]!, "..");
      expect(readdirSync(backupDir).length).toBeGreaterThan(0);
    } finally {
      await writer.close();
    }
  });
});
