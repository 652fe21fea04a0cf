import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDriver } from "@switchyard/transport";
import { runInspectorSuite } from "@switchyard/transport-testkit";
import { sqliteDriver } from "./index";

// The shared inspector contract on real SQLite files: every driver opened on one file is another
// "process" on the same queue.
runInspectorSuite({
  name: "sqlite",
  harness: async () => {
    const dir = mkdtempSync(join(tmpdir(), "cpq-inspector-suite-"));
    const path = join(dir, "coordination.db");
    return {
      driver: () => openDriver(`sqlite:${path}`, { drivers: [sqliteDriver] }),
      transportOptions: {
        // Claims and wake-ups as fast as the suite's short backoffs need.
        minPollMs: 5,
        maxPollMs: 50,
        pruneIntervalMs: 0,
        // By default an acked delivery's row is deleted (its cursor records it), and with it the
        // count of attempts the suite checks for acked deliveries; keeping acked rows keeps it.
        keepAcked: true,
      },
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
});
