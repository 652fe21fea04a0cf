// What a demo run is made of. Parsed once by the demo, handed to every daemon process as JSON.
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface PipelineSettings {
  /** Config keys to train, e.g. ["hex8_2p", "square8_4p"]. */
  readonly configs: readonly string[];
  /** Generations per config before the demo stops. */
  readonly generations: number;
  /** Share (0..1) of stage handler attempts that fail transiently and are retried. */
  readonly failureRate: number;
  /** Seed of the simulated randomness (Elo drift, failures), so a run can be repeated. */
  readonly seed: number;
  /** The coordination database: the SQLite queue file of a `sqlite` run (a NATS run writes none). */
  readonly db: string;
  /** Where fake game files, NPZ files and models are written. */
  readonly dataDir: string;
  /** Simulated work per stage, in ms. */
  readonly workMs: number;
  /** Inject one poison event that must end in the dead-letter queue. */
  readonly poison: boolean;
  /**
   * The durable path between the daemons: the SQLite file `db`, or NATS JetStream. On NATS the
   * heartbeats and the dead letters go to the streams beside the event stream
   * (`<natsStream>_HEARTBEATS`, `<natsStream>_DLQ`), the NATS driver's sink and store.
   */
  readonly transport: "sqlite" | "nats";
  /** NATS servers (comma-separated), for `transport: "nats"`. */
  readonly natsUrl: string;
  /**
   * Replicas of the run's streams on a NATS cluster. Without it: 3 when `natsUrl` names three or
   * more servers (a cluster), else 1.
   */
  readonly natsReplicas?: number;
  /** JetStream stream and subject prefix of this run (unique per run, so runs never mix). */
  readonly natsStream: string;
  readonly natsPrefix: string;
  /**
   * Where every process appends its OpenTelemetry spans (OTLP JSON lines), for `--otel`.
   * @defaultValue none: no tracing
   */
  readonly otel?: string;
}

export const defaultSettings = (): PipelineSettings => {
  const dataDir = join(tmpdir(), `switchyard-demo-${Date.now()}`);
  return {
    configs: ["hex8_2p", "square8_4p"],
    generations: 3,
    failureRate: 0.15,
    seed: 7,
    db: join(dataDir, "coordination.db"),
    dataDir,
    workMs: 120,
    poison: true,
    transport: "sqlite",
    natsUrl: process.env.NATS_URL ?? "nats://127.0.0.1:4222",
    natsStream: `SWITCHYARD_DEMO_${Date.now()}`,
    natsPrefix: `switchyard.demo${Date.now()}`,
  };
};

const ENV = "SWITCHYARD_PIPELINE_SETTINGS";

/** Settings for a daemon process, as the supervisor passed them. */
export function settingsFromEnv(): PipelineSettings {
  const raw = process.env[ENV];
  if (!raw)
    throw new Error(
      `${ENV} is not set: daemon processes are started by the supervisor (pnpm demo).`,
    );
  return JSON.parse(raw) as PipelineSettings;
}

export function settingsEnv(settings: PipelineSettings): Record<string, string> {
  return { [ENV]: JSON.stringify(settings) };
}
