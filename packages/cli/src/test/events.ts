// What both CLI scenarios publish and register — the SQLite database of fixture.ts and the
// any-target scenario of scenario.ts — so the two agree on every id, count and state.
import { type Envelope, createEnvelope } from "@switchyard/event-schema";
import {
  type DaemonHeartbeat,
  type Transport,
  type TransportSubscription,
  UnrecoverableError,
} from "@switchyard/transport";

function stage(type: string, configKey: string, data: object, cause?: Envelope): Envelope {
  return createEnvelope({
    type,
    source: `${type.toLowerCase()}_daemon`,
    subject: configKey,
    data: { config_key: configKey, ...data },
    ...(cause ? { causationid: cause.id } : {}),
  });
}

/** The events of a scenario. */
export interface ScenarioEvents {
  /** hex8_2p through every pipeline stage, each event caused by the one before. */
  readonly chain: readonly Envelope[];
  /** sq8_4p through every stage but the distribution; its key only in the payload, not the subject. */
  readonly partial: readonly Envelope[];
  /** One TRAINING_FAILED (fires its alert), two DATA_SYNC_FAILED (under theirs). */
  readonly alerts: readonly Envelope[];
  readonly ids: {
    /** TRAINING_COMPLETED of hex8_2p: acked by `evaluator`, retrying at `flaky`; caused a chain of 3 events. */
    readonly training: string;
    readonly evaluation: string;
    readonly promotion: string;
    readonly distribution: string;
  };
}

/** New envelopes (fresh ids) of the scenario. */
export function scenarioEvents(): ScenarioEvents {
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
  return {
    chain: [games, sync, npz, training, evaluation, promotion, distribution],
    partial,
    alerts,
    ids: {
      training: training.id,
      evaluation: evaluation.id,
      promotion: promotion.id,
      distribution: distribution.id,
    },
  };
}

/** What the scenario's handlers have done so far. */
export interface ScenarioCounts {
  /** TRAINING_COMPLETED acked by `evaluator`. */
  acked: number;
  /** TRAINING_COMPLETED failed by `flaky`. */
  failed: number;
  /** MODEL_PROMOTED held leased by `slow`. */
  leased: number;
}

/**
 * Register the scenario's subscribers: `idle` (registered, not running), `evaluator` acks,
 * `flaky` fails and waits an hour for its retry, `promoter` dead-letters (UnrecoverableError),
 * with `notifier: true` also `notifier`, which dead-letters DATA_SYNC_FAILED after one attempt, and `slow`
 * holds MODEL_PROMOTED leased until the transport closes. `running` are those to close once the
 * deliveries settled (all but `slow`).
 */
export async function subscribeScenario(
  transport: Transport,
  options: { readonly notifier: boolean },
): Promise<{ readonly counts: ScenarioCounts; readonly running: TransportSubscription[] }> {
  const counts: ScenarioCounts = { acked: 0, failed: 0, leased: 0 };
  const idle = await transport.subscribe({
    subscriber: "idle",
    types: ["NEW_GAMES_AVAILABLE", "MODEL_DISTRIBUTION_COMPLETE"],
    handler: async () => {},
  });
  await idle.close();
  const running: TransportSubscription[] = [];
  running.push(
    await transport.subscribe({
      subscriber: "evaluator",
      types: ["TRAINING_COMPLETED"],
      handler: async () => void counts.acked++,
    }),
    await transport.subscribe({
      subscriber: "flaky",
      types: ["TRAINING_COMPLETED"],
      maxAttempts: 5,
      backoff: { initialMs: 3_600_000, maxMs: 3_600_000 },
      handler: async () => {
        counts.failed++;
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
  );
  if (options.notifier)
    running.push(
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
      counts.leased++;
      return new Promise((_, reject) =>
        delivery.signal.addEventListener("abort", () => reject(new Error("stopped")), {
          once: true,
        }),
      );
    },
  });
  return { counts, running };
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

/** The scenario's three heartbeats: `trainer` healthy, `evaluator` stale (10 minutes old), `promoter` degraded. */
export function scenarioHeartbeats(): DaemonHeartbeat[] {
  return [
    heartbeat("trainer", 0, { healthy: true, status: "healthy", message: "trainer is running" }),
    heartbeat("evaluator", 600_000, {
      healthy: true,
      status: "healthy",
      message: "evaluator is running",
    }),
    heartbeat("promoter", 0, {
      healthy: false,
      status: "degraded",
      message: "event loop lag 250 ms",
    }),
  ];
}
