import { join } from "node:path";
import { sqliteTransport } from "@switchyard/cross-process-queue";
import { SqliteDeadLetterStore } from "@switchyard/dlq";
import { createEnvelope } from "@switchyard/event-schema";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cli, tempDir } from "./test/fixture";

/**
 * Every command taking `--type` checks it by one rule (`eventTypeOf`): a type the catalog in use
 * defines (or its lower-case spelling) passes; a type the catalog does not define passes when the
 * transport holds something of it (events of an older catalog version, a subscription, a dead
 * letter); anything else is a usage error naming it and suggesting the closest known type.
 */

/** Not in the built-in pipeline catalog: the type of an older catalog version, still stored. */
const RETIRED = "LEGACY_SYNC_DONE";
/** Not in the catalog and only in the dead letters (an in-process router dead-lettered it). */
const DEAD_ONLY = "LEGACY_PUSH_DONE";

let tmp: ReturnType<typeof tempDir>;
let db: string;

/** `worker` registered for TRAINING_COMPLETED and RETIRED, one of each pending; one dead letter of DEAD_ONLY. */
beforeEach(async () => {
  tmp = tempDir();
  db = join(tmp.dir, "coordination.db");
  const transport = sqliteTransport({ path: db, pruneIntervalMs: 0 });
  await transport.register("worker", ["TRAINING_COMPLETED", RETIRED]);
  await transport.publish([
    createEnvelope({
      type: "TRAINING_COMPLETED",
      source: "trainer",
      data: { config_key: "hex8_2p", model_path: "m.pt", loss: 0.2 },
    }),
    createEnvelope({ type: RETIRED, source: "old_sync", data: { files: 3 } }),
  ]);
  await transport.close();
  const store = new SqliteDeadLetterStore({ path: db });
  await store.deadLetter({
    envelope: createEnvelope({ type: DEAD_ONLY, source: "pusher", data: {} }),
    subscriber: "notifier",
    reason: "max_attempts",
    attempts: 3,
    error: { name: "Error", message: "gone" },
    failedAt: new Date().toISOString(),
    origin: "router",
  });
  store.close();
});
afterEach(() => tmp.cleanup());

/** The backlog of `worker` (one delivery per type until cleared). */
async function lag(): Promise<number> {
  const run = await cli(["subscribers", "--db", db, "--json"]);
  const subscribers = run.json().subscribers as { subscriber: string; lag: number }[];
  return subscribers.find((s) => s.subscriber === "worker")!.lag;
}

describe("queue clear --type", () => {
  it("refuses a type neither the catalog nor the transport knows, naming it, and clears nothing", async () => {
    expect(await lag()).toBe(2);
    const run = await cli([
      "queue",
      "clear",
      "--pending",
      "--type",
      "TRAINIG_COMPLETED",
      "--yes",
      "--db",
      db,
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("TRAINIG_COMPLETED");
    expect(run.stderr).toContain('Did you mean "TRAINING_COMPLETED"?');
    expect(run.stdout).not.toContain("Cleared");
    expect(await lag()).toBe(2);
    // Refused before the preview too: not "would be dropped" for a type that does not exist.
    const preview = await cli(["queue", "clear", "--pending", "--type", "NOPE", "--db", db]);
    expect(preview.code).toBe(2);
    expect(preview.stderr).not.toContain("Refusing to clear without --yes");
  });

  it("clears a type the store holds though the catalog in use no longer defines it", async () => {
    const run = await cli(["queue", "clear", "--pending", "--type", RETIRED, "--yes", "--json"], {
      env: { SWITCHYARD_DB: db },
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.json()).toMatchObject({ count: 1, type: RETIRED });
    expect(await lag()).toBe(1);
    // The one left is the catalog type's: clearing it empties the backlog.
    const rest = await cli([
      "queue",
      "clear",
      "--pending",
      "--type",
      "TRAINING_COMPLETED",
      "--yes",
      "--db",
      db,
    ]);
    expect(rest.code, rest.stderr).toBe(0);
    expect(await lag()).toBe(0);
  });

  it("clears the runbook's lower-case spelling of a catalog type, as other commands read it", async () => {
    const run = await cli([
      "queue",
      "clear",
      "--pending",
      "--type",
      "training_completed",
      "--yes",
      "--json",
      "--db",
      db,
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json()).toMatchObject({ count: 1, type: "TRAINING_COMPLETED" });
    expect(await lag()).toBe(1);
  });
});

describe("every command taking --type applies the same rule", () => {
  const commands: readonly (readonly string[])[] = [
    ["events", "list"],
    ["events", "tail", "--for", "1ms"],
    ["subscribers"],
    ["dlq", "list"],
    ["dlq", "replay", "--dry-run"],
    ["dlq", "purge"],
    ["queue", "clear", "--pending"],
  ];

  for (const command of commands) {
    const name = command.join(" ");
    it(`${name} refuses a type in neither, accepts one only the events or the dead letters hold`, async () => {
      const typo = await cli([...command, "--type", "TRAINIG_COMPLETED", "--db", db]);
      expect(typo.code, name).toBe(2);
      expect(typo.stderr, name).toContain('Did you mean "TRAINING_COMPLETED"?');
      for (const stored of [RETIRED, DEAD_ONLY]) {
        const run = await cli([...command, "--type", stored, "--db", db]);
        // queue clear and dlq purge without --yes refuse for that reason only.
        expect(run.stderr, `${name} --type ${stored}`).not.toContain("Did you mean");
        expect(run.stderr, `${name} --type ${stored}`).not.toMatch(/unknown event type/i);
        if (!["queue clear --pending", "dlq purge"].includes(name))
          expect(run.code, `${name} --type ${stored}: ${run.stderr}`).toBe(0);
        else expect(run.stderr).toContain("--yes");
      }
    });
  }
});
