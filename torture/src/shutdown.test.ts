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

const { shutdown } = size;
/** Long enough that nothing is redelivered by lease expiry: only a drain can hand work back. */
const LEASE_MS = 8_000;
const DRAIN_MS = 1_000;

/**
 * Consumers that drain on SIGTERM (close the router: finish in-flight handlers, abort and hand
 * back those still running after the drain timeout) are SIGTERMed mid-stream and replaced.
 */
async function shutdownRun(
  title: string,
  spec: (dir: string) => TransportSpec,
  dlq: (dir: string) => string,
) {
  const dir = mkdtempSync(join(tmpdir(), "torture-term-"));
  try {
    return await runConsumerTorture({
      title,
      spec: spec(dir),
      dir,
      dlqPath: dlq(dir),
      subscriber: "shutdown",
      events: shutdown.events,
      poison: 0,
      consumers: shutdown.consumers,
      publishMs: shutdown.publishMs,
      interrupt: { signal: "SIGTERM", max: shutdown.maxTerms, gapMs: [300, 900] },
      consumer: {
        concurrency: 8,
        leaseMs: LEASE_MS,
        maxAttempts: 50,
        workMs: 20,
        drainTimeoutMs: DRAIN_MS,
        drainOnSigterm: true,
      },
      // Some handlers outlast the drain timeout: they must be aborted and handed back.
      slow: { every: 30, ms: 2_500 },
      drainMs: size.drainMs,
      drainedLeaseMs: LEASE_MS,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function expectClean(result: ConsumerTortureResult, kind: "sqlite" | "nats"): void {
  const r = result.reconciliation;
  expect(result.errors).toEqual([]);
  expect(r.lostKeys).toEqual([]);
  expect(r.unjustified).toEqual([]);
  expect(r.unexpectedDeadLetters).toEqual([]);
  expect(r.handledUnique).toBe(shutdown.events);
  expect(r.kills).toBeGreaterThan(0);
  // Work aborted by a drain was handed back: its next attempt started well before the lease ended.
  expect(result.handBacks.neverRetried).toBe(0);
  expect(result.handBacks.maxGapMs).toBeLessThan(LEASE_MS / 2);
  // Nothing a draining process took was left to wait out its lease. SQLite dispatches what it
  // claims at once, so nothing is ever taken and not started. On NATS, close() hands back what a
  // pull delivered but no handler started (a copy with the same attempt, or a nak that counts as
  // a delivery where the copy cannot be stored); each must come back long before the lease.
  if (kind === "sqlite") expect(result.handBacks.unstarted).toBe(0);
  else expect(result.handBacks.unstartedMaxWaitMs).toBeLessThan(LEASE_MS / 2);
}

describe("SIGTERM during load on the SQLite queue", { tags: ["slow"] }, () => {
  it(
    `loses nothing when draining consumers are SIGTERMed mid-stream (${shutdown.events} events, ${size.mode})`,
    async () => {
      expectClean(
        await shutdownRun(
          `shutdown · sqlite · ${size.mode}`,
          (dir) => ({ kind: "sqlite", path: join(dir, "coordination.db") }),
          (dir) => join(dir, "coordination.db"),
        ),
        "sqlite",
      );
    },
    testTimeoutMs,
  );
});

const nats = await natsAvailability();
describeNats(nats, "SIGTERM during load on NATS JetStream", { tags: ["slow"] }, () => {
  it(
    `loses nothing when draining consumers are SIGTERMed mid-stream (${shutdown.events} events, ${size.mode})`,
    async () => {
      const names = uniqueStream("term");
      try {
        expectClean(
          await shutdownRun(
            `shutdown · nats · ${size.mode}`,
            () => ({ kind: "nats", url: NATS_URL, ...names }),
            (dir) => join(dir, "dead-letters.db"),
          ),
          "nats",
        );
      } finally {
        await deleteStream(NATS_URL, names.stream).catch(() => {});
      }
    },
    testTimeoutMs,
  );
});
