import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipelineCatalog } from "@switchyard/event-schema";
import { type DeadLetterRecord, type Router, createRouter } from "@switchyard/router";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sqliteTransport } from "./queue";
import { eventually } from "./test/fixtures";

// The router's handler outcomes over a real SQLite file: what a handler returns, a timeout, and
// what stats see, are the same here as in process and on the memory transport (issue 13).

let dir: string;
let router: Router<typeof pipelineCatalog>;
let deadLetters: DeadLetterRecord[];

/** The router under test, over a SQLite file in a temp dir; `audit` adds the audit log. */
function make(options: { audit: boolean }): Router<typeof pipelineCatalog> {
  router = createRouter({
    catalog: pipelineCatalog,
    transport: sqliteTransport({ path: join(dir, "coordination.db"), pruneIntervalMs: 0 }),
    deadLetter: { deadLetter: (record) => void deadLetters.push(record) },
    audit: options.audit,
    subscriptionDefaults: { maxAttempts: 2, backoff: { initialMs: 1, jitter: 0 } },
  });
  return router;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "cpq-router-outcomes-"));
  deadLetters = [];
});
afterEach(async () => {
  await router.shutdown({ timeoutMs: 200 });
  rmSync(dir, { recursive: true, force: true });
});

const promoted = { config_key: "hex8_2p", model_path: "models/hex8_2p.pt", elo: 1612 };

describe("the router over SQLite", () => {
  it("acks a handler that returns a number once, never retrying or dead-lettering it", async () => {
    const router = make({ audit: false });
    const seen: unknown[] = [];
    await router.subscribe("MODEL_PROMOTED", (e) => seen.push(e), { name: "collector" }).ready;
    await router.publish("MODEL_PROMOTED", promoted);
    await eventually(() => router.getStats().delivered === 1, "the delivery");
    await eventually(
      async () => (await router.transport!.stats()).subscribers[0]!.pending === 0,
      "the ack",
    );
    expect(seen).toHaveLength(1);
    expect(deadLetters).toEqual([]);
    expect(router.getStats()).toMatchObject({ failed: 0, retried: 0 });
  });

  it("audits a handler that overruns timeoutMs as failed, never ok, and dead-letters it as timeout", async () => {
    const router = make({ audit: true });
    const finishers: (() => void)[] = [];
    await router.subscribe(
      "MODEL_PROMOTED",
      () => new Promise<void>((resolve) => finishers.push(resolve)),
      { name: "overruns", timeoutMs: 30, maxAttempts: 1 },
    ).ready;
    await router.publish("MODEL_PROMOTED", promoted);
    await eventually(() => deadLetters.length === 1, "the dead letter");
    expect(deadLetters[0]).toMatchObject({ reason: "timeout", subscriber: "overruns" });
    for (const finish of finishers) finish(); // long after the deadline
    await new Promise<void>((resolve) => setImmediate(resolve));
    const entries = router.auditLog!.entries();
    expect(entries.map((e) => e.result)).toEqual(["failed"]);
    expect(entries[0]!.error).toMatchObject({ code: "HANDLER_TIMEOUT" });
  });

  it("counts failed attempts and the dead letter in router stats and health", async () => {
    const router = make({ audit: false });
    await router.subscribe(
      "MODEL_PROMOTED",
      () => {
        throw new Error("disk full");
      },
      { name: "always-fails" },
    ).ready;
    await router.publish("MODEL_PROMOTED", promoted);
    await eventually(() => deadLetters.length === 1, "the dead letter");
    await eventually(() => router.getStats().deadLettered === 1, "the dead letter counted");
    expect(router.getStats()).toMatchObject({ failed: 1, retried: 1, deadLettered: 1 });
    expect(router.health().status).toBe("degraded");
  });
});
