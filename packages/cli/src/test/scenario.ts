import { join } from "node:path";
import type { Driver } from "@switchyard/transport";
import {
  NATS_URL,
  deleteStreams,
  natsAvailable,
  uniqueNames,
} from "../../../transport-nats/src/test/nats";
import { openTarget } from "../drivers";
import {
  type ScenarioEvents,
  scenarioEvents,
  scenarioHeartbeats,
  subscribeScenario,
} from "./events";
import { eventually, tempDir } from "./fixture";

export { heartbeat } from "./events";

/** One transport the table-driven suites run on. */
export interface TargetCase {
  /** `sqlite` or `nats`. */
  readonly name: string;
  /** Why it cannot run here, when it cannot (a NATS server not reachable). */
  readonly unavailable?: string;
  /** A fresh, empty target of this kind, and how to remove it. */
  create(label: string): Promise<{ readonly target: string; cleanup(): Promise<void> }>;
}

const nats = await natsAvailable();

/** SQLite in a temp directory and a real nats-server (a stream of its own per test). */
export const TARGETS: readonly TargetCase[] = [
  {
    name: "sqlite",
    async create() {
      const { dir, cleanup } = tempDir();
      return { target: `sqlite:${join(dir, "coordination.db")}`, cleanup: async () => cleanup() };
    },
  },
  {
    name: "nats",
    ...(nats.ok ? {} : { unavailable: nats.reason }),
    async create(label) {
      const names = uniqueNames(label);
      return {
        target: `${NATS_URL}/${names.stream}?prefix=${names.prefix}`,
        async cleanup() {
          // The whole family: the attempt journal and receipts too, not only events, DLQ, heartbeats.
          await deleteStreams(NATS_URL, names.stream).catch(() => undefined);
        },
      };
    },
  },
];

/** What {@link fillTarget} published and left behind. */
export interface Scenario {
  readonly target: string;
  /** The driver that filled it; still open, its transport holding two leases (subscriber `slow`). */
  readonly driver: Driver;
  readonly ids: ScenarioEvents["ids"];
  /** Events published in all. */
  readonly published: number;
  close(): Promise<void>;
}

/**
 * The same scenario on any target, through its driver (transport, dead-letter sink, heartbeat
 * sink): `evaluator` acks TRAINING_COMPLETED, `flaky` fails it and waits an hour for its retry,
 * `promoter` dead-letters EVALUATION_COMPLETED (UnrecoverableError), `notifier` dead-letters
 * DATA_SYNC_FAILED after its one attempt, `slow` holds MODEL_PROMOTED leased, `idle` is
 * registered but not running (3 events wait for it). hex8_2p went through every pipeline stage;
 * sq8_4p stopped before MODEL_DISTRIBUTION_COMPLETE. One TRAINING_FAILED fires its alert.
 * Heartbeats: `trainer` healthy, `evaluator` stale (10 minutes old), `promoter` degraded.
 */
export async function fillTarget(target: string): Promise<Scenario> {
  const driver = await openTarget(target);
  const transport = driver.transport({ drainTimeoutMs: 200 });
  const inspector = driver.inspector();

  const { counts, running } = await subscribeScenario(transport, { notifier: true });
  const { chain, partial, alerts, ids } = scenarioEvents();
  await transport.publish(chain);
  await transport.publish([...partial, ...alerts]);

  let depth = 0;
  await eventually(
    () => counts.acked === 2 && counts.leased === 2 && counts.failed === 2 && depth === 4,
    "deliveries in every state",
    20_000,
    async () => {
      depth = (await inspector.deadLetterCounts()).depth;
    },
  );
  await Promise.all(running.map((s) => s.close()));

  const sink = driver.heartbeatSink();
  for (const beat of scenarioHeartbeats()) await sink.write(beat);
  await eventually(
    () => depth === 3,
    "three heartbeats readable",
    10_000,
    async () => {
      depth = (await inspector.heartbeats()).length;
    },
  );

  return {
    target,
    driver,
    ids,
    published: chain.length + partial.length + alerts.length,
    close: () => driver.close(),
  };
}
