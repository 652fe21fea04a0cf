import { readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { sqliteDriver } from "@switchyard/cross-process-queue";
import { createEnvelope } from "@switchyard/event-schema";
import type { Driver } from "@switchyard/transport";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, root, tempDir } from "./test/fixture";

/** The backlog query of docs/operations.md, as written there. */
function documentedBacklogSql(): string {
  const text = readFileSync(join(root, "docs/operations.md"), "utf8");
  const start = text.indexOf("-- backlog per subscriber");
  expect(start, "docs/operations.md shows the backlog query").toBeGreaterThan(0);
  return text.slice(start, text.indexOf(";", start) + 1);
}

interface Backlog {
  subscriber: string;
  pending: number;
  in_flight: number;
  retrying: number;
  dead: number;
  lag: number;
}

// The expired-lease fixture of cross-process-queue's inspector.test.ts, written through the
// real transport and then moved into every delivery state by hand.
describe("switchyard subscribers on a file with expired leases", () => {
  const tmp = tempDir();
  const path = join(tmp.dir, "coordination.db");
  let driver: Driver;
  let raw: Database.Database;

  beforeAll(async () => {
    driver = await sqliteDriver.open({ scheme: "sqlite", text: path, rest: path, params: {} }, {});
    const transport = driver.transport();
    await transport.register!("a", ["JOB"]);
    await transport.register!("b", ["JOB"]);
    await transport.register!("c", ["OTHER"]);
    await transport.publish(
      Array.from({ length: 12 }, (_, n) =>
        createEnvelope({ type: "JOB", source: "cli-test", data: { n } }),
      ),
    );
    raw = new Database(path);
    const now = Date.now();
    // Subscriber "a" took events 1..10 into deliveries (11 and 12 wait after its cursor).
    raw.prepare("UPDATE subscribers SET cursor_seq = 10 WHERE name = 'a'").run();
    const row = raw.prepare(
      `INSERT INTO deliveries (subscriber, event_seq, type, status, attempts, available_at, lease_token,
                               lease_until, last_error, dead_reason, handed_off, updated_at)
       VALUES ('a', @seq, 'JOB', @status, @attempts, @available, @token, @until, NULL, @reason, 0, @now)`,
    );
    const rows = [
      { seq: 1, status: "pending", attempts: 0, available: now, until: null }, // pending
      { seq: 2, status: "pending", attempts: 2, available: now + 600_000, until: null }, // retrying (backoff)
      { seq: 3, status: "leased", attempts: 1, available: now + 60_000, until: now + 60_000 }, // in flight
      { seq: 4, status: "leased", attempts: 1, available: now - 1_000, until: now - 1_000 }, // retrying (lease expired)
      { seq: 5, status: "leased", attempts: 3, available: now - 5_000, until: now - 5_000 }, // retrying (lease expired)
      { seq: 6, status: "dead", attempts: 5, available: now, until: null, reason: "max_attempts" },
    ];
    for (const r of rows) row.run({ token: r.until === null ? null : 7, reason: null, ...r, now });
  });

  afterAll(async () => {
    raw?.close();
    await driver?.close();
    tmp.cleanup();
  });

  it("prints the same pending, in flight, retrying and lag as the documented SQL and the inspector", async () => {
    const run = await cli(["subscribers", "--db", path, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const fromCli = (run.json().subscribers as Record<string, unknown>[]).map((s): Backlog => ({
      subscriber: s.subscriber as string,
      pending: s.pending as number,
      in_flight: s.inFlight as number,
      retrying: s.retrying as number,
      dead: s.dead as number,
      lag: s.lag as number,
    }));
    const fromInspector = (await driver.inspector().subscribers()).map((s): Backlog => ({
      subscriber: s.subscriber,
      pending: s.pending,
      in_flight: s.inFlight,
      retrying: s.retrying,
      dead: s.dead,
      lag: s.lag,
    }));
    const documented = (raw.prepare(documentedBacklogSql()).all() as Record<string, unknown>[]).map(
      ({ oldest_pending_ms: _, ...rest }) => rest,
    );
    // The expired leases (seq 4 and 5) count as retrying, never in flight.
    expect(fromCli.find((s) => s.subscriber === "a")).toEqual({
      subscriber: "a",
      pending: 3,
      in_flight: 1,
      retrying: 3,
      dead: 1,
      lag: 7,
    });
    expect(fromCli).toEqual(fromInspector);
    expect(fromCli).toEqual(documented);
  });
});
