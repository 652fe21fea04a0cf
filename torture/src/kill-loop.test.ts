import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  NATS_URL,
  deleteStream,
  describeNats,
  natsAvailability,
  uniqueStream,
} from "./harness/nats";
import { type ConsumerTortureResult, runConsumerTorture } from "./harness/run";
import type { TransportSpec } from "./harness/transports";
import { size, testTimeoutMs } from "./size";

const { killLoop } = size;

/** Consumers SIGKILLed at random moments while events flow; every one restarted at once. */
async function killLoopRun(
  title: string,
  spec: (dir: string) => TransportSpec,
  dlq: (dir: string) => string,
) {
  const dir = mkdtempSync(join(tmpdir(), "torture-kill-"));
  try {
    return await runConsumerTorture({
      title,
      spec: spec(dir),
      dir,
      dlqPath: dlq(dir),
      subscriber: "kill-loop",
      events: killLoop.events,
      poison: killLoop.poison,
      consumers: killLoop.consumers,
      publishMs: killLoop.publishMs,
      interrupt: { signal: "SIGKILL", max: killLoop.maxKills, gapMs: [200, 800] },
      // A short lease, so what a killed process held comes back within a second.
      consumer: {
        concurrency: 8,
        leaseMs: 1_000,
        maxAttempts: 50,
        workMs: 12,
        drainTimeoutMs: 2_000,
        drainOnSigterm: false,
      },
      // Some long handlers, so a kill often lands on work in flight.
      slow: { every: 40, ms: 150 },
      drainMs: size.drainMs,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function expectClean(result: ConsumerTortureResult): void {
  const r = result.reconciliation;
  expect(result.errors).toEqual([]);
  expect(r.lostKeys).toEqual([]);
  expect(r.unjustified).toEqual([]);
  expect(r.unexpectedDeadLetters).toEqual([]);
  expect(r.missingDeadLetters).toEqual([]);
  expect(r.handledUnique).toBe(killLoop.events - killLoop.poison);
  expect(r.deadLetteredExpected).toBe(killLoop.poison);
  expect(r.kills).toBeGreaterThan(0);
}

describe("kill loop on the SQLite queue", { tags: ["slow"] }, () => {
  it(
    `loses nothing while consumers are SIGKILLed at random (${killLoop.events} events, ${size.mode})`,
    async () => {
      const result = await killLoopRun(
        `kill loop · sqlite · ${size.mode}`,
        (dir) => ({ kind: "sqlite", path: join(dir, "coordination.db") }),
        // The dead-letter store lives in the queue's file, as by default.
        (dir) => join(dir, "coordination.db"),
      );
      expectClean(result);
    },
    testTimeoutMs,
  );
});

const nats = await natsAvailability();
describeNats(nats, "kill loop on NATS JetStream", { tags: ["slow"] }, () => {
  it(
    `loses nothing while consumers are SIGKILLed at random (${killLoop.events} events, ${size.mode})`,
    async () => {
      const names = uniqueStream("kill");
      try {
        const result = await killLoopRun(
          `kill loop · nats · ${size.mode}`,
          () => ({ kind: "nats", url: NATS_URL, ...names }),
          (dir) => join(dir, "dead-letters.db"),
        );
        expectClean(result);
      } finally {
        await deleteStream(NATS_URL, names.stream).catch(() => {});
      }
    },
    testTimeoutMs,
  );
});
