import { join } from "node:path";
import { type Envelope, createEnvelope } from "@switchyard/event-schema";
import {
  type DaemonHeartbeat,
  type Driver,
  type TransportSubscription,
  UnrecoverableError,
} from "@switchyard/transport";
import {
  NATS_URL,
  deleteStream,
  natsAvailable,
  uniqueNames,
} from "../../../transport-nats/src/test/nats";
import { openTarget } from "../drivers";
import { eventually, tempDir } from "./fixture";

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
          for (const stream of [names.stream, `${names.stream}_DLQ`, `${names.stream}_HEARTBEATS`])
            await deleteStream(NATS_URL, stream).catch(() => undefined);
        },
      };
    },
  },
];

function stage(type: string, configKey: string, data: object, cause?: Envelope): Envelope {
  return createEnvelope({
    type,
    source: `${type.toLowerCase()}_daemon`,
    subject: configKey,
    data: { config_key: configKey, ...data },
    ...(cause ? { causationid: cause.id } : {}),
  });
}

/** What {@link fillTarget} published and left behind. */
export interface Scenario {
  readonly target: string;
  /** The driver that filled it; still open, its transport holding two leases (subscriber `slow`). */
  readonly driver: Driver;
  readonly ids: {
    /** TRAINING_COMPLETED of hex8_2p: acked by `evaluator`, retrying at `flaky`; caused a chain of 3 events. */
    readonly training: string;
    readonly evaluation: string;
    readonly promotion: string;
    readonly distribution: string;
  };
  /** Events published in all. */
  readonly published: number;
  close(): Promise<void>;
}

/** A heartbeat as a DaemonManager writes it. */
export function heartbeat(
  daemon: string,
  ageMs: number,
  health: { healthy: boolean; status: "healthy" | "degraded" | "unhealthy"; message: string },
  status: DaemonHeartbeat["status"] = "running",
): DaemonHeartbeat {
  return {
    daemon,
    pid: 4242,
    host: "gpu-1",
    status,
    health: { ...health, details: {} },
    stats: {
      eventsProcessed: 12,
      eventsDeduplicated: 2,
      errorsCount: 1,
    } as DaemonHeartbeat["stats"],
    restarts: 1,
    startedAt: new Date(Date.now() - 3_600_000).toISOString(),
    at: new Date(Date.now() - ageMs).toISOString(),
  };
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

  const idle = await transport.subscribe({
    subscriber: "idle",
    types: ["NEW_GAMES_AVAILABLE", "MODEL_DISTRIBUTION_COMPLETE"],
    handler: async () => {},
  });
  await idle.close();
  let acked = 0;
  let failed = 0;
  let leased = 0;
  const running: TransportSubscription[] = [];
  running.push(
    await transport.subscribe({
      subscriber: "evaluator",
      types: ["TRAINING_COMPLETED"],
      handler: async () => void acked++,
    }),
    await transport.subscribe({
      subscriber: "flaky",
      types: ["TRAINING_COMPLETED"],
      maxAttempts: 5,
      backoff: { initialMs: 3_600_000, maxMs: 3_600_000 },
      handler: async () => {
        failed++;
        throw new Error("evaluation cluster unreachable");
      },
    }),
    await transport.subscribe({
      subscriber: "promoter",
      types: ["EVALUATION_COMPLETED"],
      handler: async () => {
        throw new UnrecoverableError("elo missing from payload");
      },
    }),
    await transport.subscribe({
      subscriber: "notifier",
      types: ["DATA_SYNC_FAILED"],
      maxAttempts: 1,
      handler: async () => {
        throw new Error("smtp unreachable");
      },
    }),
  );
  await transport.subscribe({
    subscriber: "slow",
    types: ["MODEL_PROMOTED"],
    leaseMs: 300_000,
    concurrency: 4,
    handler: (delivery) => {
      leased++;
      return new Promise((_, reject) =>
        delivery.signal.addEventListener("abort", () => reject(new Error("stopped")), {
          once: true,
        }),
      );
    },
  });

  const games = stage("NEW_GAMES_AVAILABLE", "hex8_2p", { new_games: 500, db_path: "games.db" });
  const sync = stage("DATA_SYNC_COMPLETED", "hex8_2p", { files_synced: 3 }, games);
  const npz = stage(
    "NPZ_EXPORT_COMPLETE",
    "hex8_2p",
    { npz_path: "hex8.npz", samples: 10_000 },
    sync,
  );
  const training = stage(
    "TRAINING_COMPLETED",
    "hex8_2p",
    { model_path: "gen-7.pt", loss: 0.21 },
    npz,
  );
  const evaluation = stage(
    "EVALUATION_COMPLETED",
    "hex8_2p",
    { model_path: "gen-7.pt", elo: 1612 },
    training,
  );
  const promotion = stage(
    "MODEL_PROMOTED",
    "hex8_2p",
    { model_path: "gen-7.pt", elo: 1612 },
    evaluation,
  );
  const distribution = stage(
    "MODEL_DISTRIBUTION_COMPLETE",
    "hex8_2p",
    { model_path: "gen-7.pt" },
    promotion,
  );
  // sq8_4p: everything but the distribution; its config key only in the payload, not the subject.
  const partial = [
    ["NEW_GAMES_AVAILABLE", { new_games: 100 }],
    ["DATA_SYNC_COMPLETED", { files_synced: 1 }],
    ["NPZ_EXPORT_COMPLETE", { npz_path: "sq8.npz" }],
    ["TRAINING_COMPLETED", { model_path: "sq.pt", loss: 0.3 }],
    ["EVALUATION_COMPLETED", { model_path: "sq.pt", elo: 1500 }],
    ["MODEL_PROMOTED", { model_path: "sq.pt", elo: 1500 }],
  ].map(([type, data]) =>
    createEnvelope({
      type: type as string,
      source: "pipeline",
      data: { config_key: "sq8_4p", ...(data as object) },
    }),
  );
  const alerts = [
    createEnvelope({
      type: "TRAINING_FAILED",
      source: "trainer",
      data: { config_key: "sq8_4p", error: "CUDA out of memory" },
    }),
    createEnvelope({
      type: "DATA_SYNC_FAILED",
      source: "sync",
      data: { host: "gpu-3", error: "timeout" },
    }),
    createEnvelope({
      type: "DATA_SYNC_FAILED",
      source: "sync",
      data: { host: "gpu-4", error: "timeout" },
    }),
  ];
  const chain = [games, sync, npz, training, evaluation, promotion, distribution];
  await transport.publish(chain);
  await transport.publish([...partial, ...alerts]);

  let depth = 0;
  await eventually(
    () => acked === 2 && leased === 2 && failed === 2 && depth === 4,
    "deliveries in every state",
    20_000,
    async () => {
      depth = (await inspector.deadLetterCounts()).depth;
    },
  );
  await Promise.all(running.map((s) => s.close()));

  const sink = driver.heartbeatSink();
  await sink.write(
    heartbeat("trainer", 0, { healthy: true, status: "healthy", message: "trainer is running" }),
  );
  await sink.write(
    heartbeat("evaluator", 600_000, {
      healthy: true,
      status: "healthy",
      message: "evaluator is running",
    }),
  );
  await sink.write(
    heartbeat("promoter", 0, {
      healthy: false,
      status: "degraded",
      message: "event loop lag 250 ms",
    }),
  );
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
    ids: {
      training: training.id,
      evaluation: evaluation.id,
      promotion: promotion.id,
      distribution: distribution.id,
    },
    published: chain.length + partial.length + alerts.length,
    close: () => driver.close(),
  };
}
