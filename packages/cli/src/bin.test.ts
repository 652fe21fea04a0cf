import { existsSync } from "node:fs";
import { join } from "node:path";
import { countPending, openQueueReadOnly } from "@switchyard/cross-process-queue";
import { createEnvelope } from "@switchyard/event-schema";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliRun,
  type FilledDatabase,
  fillDatabase,
  runBinary,
  spawnCli,
  tempDir,
} from "./test/fixture";

/**
 * Runs the real `switchyard` executable (src/bin.ts through tsx) as a child process against a
 * database this test filled. Read-only commands run up front, two at a time (each start costs
 * about a second), and the tests assert on their results.
 */
describe("the switchyard binary", { tags: ["slow"] }, () => {
  const tmp = tempDir();
  let filled: FilledDatabase;
  const runs = new Map<string, CliRun>();
  const missing = () => join(tmp.dir, "nowhere", "coordination.db");

  const readOnly = (db: string): Record<string, string[]> => ({
    health: ["health", "--db", db],
    healthJson: ["health", "--db", db, "--json"],
    stats: ["stats", "--db", db],
    subscribersJson: ["subscribers", "--db", db, "--json"],
    trace: ["events", "trace", filled.ids.training, "--db", db, "--json"],
    typo: ["events", "list", "--type", "MODEL_PROMOTD", "--db", db],
    dlqList: ["dlq", "list", "--db", db],
    dlqMissing: ["dlq", "inspect", "404", "--db", db, "--json"],
    failures: ["monitor", "failures", "--db", db, "--json"],
    verifyOk: ["pipeline", "verify", "hex8_2p", "--db", db],
    verifyMissing: ["pipeline", "verify", "sq8_4p", "--db", db, "--json"],
    missingDb: ["stats", "--db", missing()],
  });

  beforeAll(async () => {
    filled = await fillDatabase(tmp.dir);
    const queue = Object.entries(readOnly(filled.path));
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift())
        runs.set(next[0], await runBinary(next[1]));
    };
    await Promise.all([worker(), worker()]);
  }, 120_000);
  afterAll(async () => {
    await filled?.close();
    tmp.cleanup();
  });

  const run = (name: string) => runs.get(name)!;

  it("health exits 1 and prints the failing checks", () => {
    expect(run("health").code).toBe(1);
    expect(run("health").stdout).toMatch(/^STATUS\s+CHECK\s+DETAIL$/m);
    expect(run("health").stdout).toMatch(/UNHEALTHY\s+daemon:evaluator\s+stale/);
    expect(run("healthJson").code).toBe(1);
    expect(run("healthJson").json()).toMatchObject({
      healthy: false,
      status: "unhealthy",
      target: `sqlite:${filled.path}`,
    });
  });

  it("stats and subscribers print their overview and JSON", () => {
    expect(run("stats").code).toBe(0);
    expect(run("stats").stdout).toMatch(/deliveries\s+7 unsettled/);
    const subscribers = run("subscribersJson").json().subscribers;
    expect(subscribers.map((s: { subscriber: string }) => s.subscriber)).toEqual([
      "evaluator",
      "flaky",
      "idle",
      "promoter",
      "slow",
    ]);
  });

  it("events trace follows one event through its subscribers and effects", () => {
    const trace = run("trace").json();
    expect(trace.event.id).toBe(filled.ids.training);
    expect(trace.deliveries.map((d: { state: string }) => d.state)).toEqual(["acked", "retrying"]);
    expect(trace.caused[0].caused[0].caused[0].event.type).toBe("MODEL_DISTRIBUTION_COMPLETE");
  });

  it("an unknown event type is a usage error with a suggestion, not a stack trace", () => {
    expect(run("typo").code).toBe(2);
    expect(run("typo").stderr).toContain('Did you mean "MODEL_PROMOTED"?');
    expect(run("typo").stderr).not.toMatch(/\n\s+at /);
  });

  it("dlq list prints the table; an unknown id is a usage error", () => {
    expect(run("dlqList").code).toBe(0);
    expect(run("dlqList").stdout).toMatch(
      /EVALUATION_COMPLETED\s+promoter\s+pending_retry\s+unrecoverable/,
    );
    expect(run("dlqMissing").code).toBe(2);
    expect(run("dlqMissing").json().error.code).toBe("DEAD_LETTER_NOT_FOUND");
  });

  it("monitor failures ranks failing types as JSON", () => {
    expect(run("failures").json().types[0]).toMatchObject({
      type: "EVALUATION_COMPLETED",
      deadLetters: 2,
    });
  });

  it("pipeline verify exits 0 with every stage ✓, 1 with a stage ✗", () => {
    expect(run("verifyOk").code).toBe(0);
    expect(run("verifyOk").stdout.match(/✓/g)).toHaveLength(7);
    expect(run("verifyMissing").code).toBe(1);
    expect(run("verifyMissing").json()).toMatchObject({
      ok: false,
      missing: ["MODEL_DISTRIBUTION_COMPLETE"],
    });
  });

  it("a missing database is named, with who creates it", () => {
    expect(run("missingDb").code).toBe(2);
    expect(run("missingDb").stderr).toContain(
      `No queue file at ${missing()}. Daemons create it on first start`,
    );
  });

  it("queue clear refuses without --yes, and backs up before clearing with it", async () => {
    const path = join(tmp.dir, "clear.db");
    await filled.copyTo(path);
    const refused = await runBinary(["queue", "clear", "--pending", "--db", path]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("Refusing to clear without --yes");
    const cleared = await runBinary(["queue", "clear", "--pending", "--yes", "--json"], {
      SWITCHYARD_DB: path,
    });
    expect(cleared.code).toBe(0);
    const { backup, count } = cleared.json();
    expect(cleared.stderr).toContain(`Backed up to ${backup}`);
    expect(count).toBe(7);
    const before = openQueueReadOnly(backup);
    const after = openQueueReadOnly(path);
    expect([countPending(before), countPending(after)]).toEqual([7, 0]);
    before.close();
    after.close();
    expect(existsSync(backup)).toBe(true);
  });

  it("events tail prints new events as they are published and stops after --count", async () => {
    const tail = spawnCli([
      "events",
      "tail",
      "--db",
      filled.path,
      "--type",
      "NEW_GAMES_AVAILABLE",
      "--count",
      "2",
    ]);
    await tail.waitForStderr("Following NEW_GAMES_AVAILABLE events");
    const games = (n: number) =>
      createEnvelope({
        type: "NEW_GAMES_AVAILABLE",
        source: "selfplay",
        data: { config_key: "hex8_2p", new_games: n },
      });
    await filled.transport.publish([
      games(1),
      createEnvelope({ type: "SELFPLAY_COMPLETE", source: "s", data: {} }),
    ]);
    await filled.transport.publish([games(2), games(3)]);
    const result = await tail.done;
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('"new_games":1');
    expect(lines[1]).toContain('"new_games":2');
  });

  it("events tail stops cleanly on SIGINT", async () => {
    const tail = spawnCli(["events", "tail", "--db", filled.path, "--json"]);
    await tail.waitForStderr("Ctrl-C to stop");
    tail.child.kill("SIGINT");
    const result = await tail.done;
    expect(result.code).toBe(0);
    expect(result.stderr).not.toContain("error");
  });
});
