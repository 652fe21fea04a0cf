import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import {
  type SqliteTransport,
  SqliteHeartbeatSink,
  backupQueue,
  sqliteTransport,
} from "@switchyard/cross-process-queue";
import { SqliteDeadLetterStore } from "@switchyard/dlq";
import { type Envelope, createEnvelope } from "@switchyard/event-schema";
import { UnrecoverableError } from "@switchyard/router";
import { runCli } from "../program";

export const root = join(import.meta.dirname, "../../../..");

/** A temp directory removed by `cleanup()`. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-cli-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Poll `check` (after `refresh`, when given) until it is true; throws after `timeoutMs` naming `what`. */
export async function eventually(
  check: () => boolean,
  what: string,
  timeoutMs = 10_000,
  refresh?: () => Promise<void>,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (refresh) await refresh();
    if (check()) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await delay(refresh ? 50 : 10);
  }
}

function stage(
  type: string,
  configKey: string,
  data: Record<string, unknown>,
  cause?: Envelope,
): Envelope {
  return createEnvelope({
    type,
    source: `${type.toLowerCase()}_daemon`,
    subject: configKey,
    data: { config_key: configKey, ...data },
    ...(cause ? { causationid: cause.id } : {}),
  });
}

/** A coordination database filled through the real queue, DLQ store and heartbeat sink. */
export interface FilledDatabase {
  readonly path: string;
  /** The transport that filled it; still open, holding one lease (subscriber `slow`). */
  readonly transport: SqliteTransport;
  readonly ids: {
    /** TRAINING_COMPLETED of hex8_2p: acked by `evaluator`, retrying at `flaky`; caused a chain of 3 events. */
    readonly training: string;
    readonly evaluation: string;
    readonly promotion: string;
    readonly distribution: string;
  };
  /** Dead letter ids: from the SQLite transport, from an in-process router, and one 10 days old. */
  readonly deadLetters: { readonly sqlite: number; readonly router: number; readonly old: number };
  /** Copy the database (SQLite online backup) to `destination`. */
  copyTo(destination: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Subscribers in every state: `evaluator` acks, `flaky` fails and waits an hour for its retry,
 * `promoter` dead-letters (UnrecoverableError) into the DLQ, `slow` holds its delivery leased,
 * `idle` is registered but not running (its events stay queued). hex8_2p went through every
 * pipeline stage; sq8_4p stopped before MODEL_DISTRIBUTION_COMPLETE. One TRAINING_FAILED fires
 * its alert; two DATA_SYNC_FAILED stay under theirs. Heartbeats: `trainer` healthy, `evaluator`
 * stale (10 minutes old), `promoter` degraded.
 */
export async function fillDatabase(dir: string): Promise<FilledDatabase> {
  const path = join(dir, "coordination.db");
  const store = new SqliteDeadLetterStore({ path });
  const transport = sqliteTransport({
    path,
    pruneIntervalMs: 0,
    deadLetter: store,
    drainTimeoutMs: 200,
  });

  const idle = await transport.subscribe({
    subscriber: "idle",
    types: ["NEW_GAMES_AVAILABLE", "MODEL_DISTRIBUTION_COMPLETE"],
    handler: async () => {},
  });
  await idle.close();
  let acked = 0;
  const evaluator = await transport.subscribe({
    subscriber: "evaluator",
    types: ["TRAINING_COMPLETED"],
    handler: async () => void acked++,
  });
  const flaky = await transport.subscribe({
    subscriber: "flaky",
    types: ["TRAINING_COMPLETED"],
    maxAttempts: 5,
    backoff: { initialMs: 3_600_000, maxMs: 3_600_000 },
    handler: async () => {
      throw new Error("evaluation cluster unreachable");
    },
  });
  const promoter = await transport.subscribe({
    subscriber: "promoter",
    types: ["EVALUATION_COMPLETED"],
    handler: async () => {
      throw new UnrecoverableError("elo missing from payload");
    },
  });
  let leased = 0;
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
  await transport.publish([games, sync, npz, training, evaluation, promotion, distribution]);
  await transport.publish([...partial, ...alerts]);

  const inspect = new Database(path, { readonly: true });
  const count = (sql: string) => inspect.prepare(sql).pluck().get() as number;
  await eventually(
    () =>
      acked === 2 &&
      leased === 2 &&
      count(
        `SELECT COUNT(*) FROM deliveries WHERE subscriber = 'flaky' AND last_error IS NOT NULL`,
      ) === 2 &&
      count(`SELECT COUNT(*) FROM dead_letters`) === 2,
    "deliveries in every state",
  );
  inspect.close();
  await Promise.all([evaluator.close(), flaky.close(), promoter.close()]);

  const [sqliteRecord] = store.list({ subscriber: "promoter", limit: 1 });
  await store.deadLetter({
    envelope: createEnvelope({
      type: "MODEL_PROMOTED",
      source: "promoter",
      data: { config_key: "hex8_2p", model_path: "x.pt", elo: 1 },
    }),
    subscriber: "notifier",
    reason: "max_attempts",
    attempts: 3,
    error: { name: "Error", message: "smtp unreachable" },
    failedAt: new Date().toISOString(),
    origin: "router",
  });
  await store.deadLetter({
    envelope: createEnvelope({
      type: "QUALITY_ALERT",
      source: "monitor",
      data: { config_key: "hex8_2p", quality_score: 0.2 },
    }),
    subscriber: "alerter",
    reason: "unrecoverable",
    attempts: 1,
    error: { name: "Error", message: "old failure" },
    failedAt: new Date(Date.now() - 10 * 86_400_000).toISOString(),
    origin: "sqlite",
  });
  const router = store.list({ subscriber: "notifier", limit: 1 })[0]!.id;
  const old = store.list({ subscriber: "alerter", limit: 1 })[0]!.id;

  const sink = new SqliteHeartbeatSink({ path });
  const beat = (
    daemon: string,
    ageMs: number,
    health: { healthy: boolean; status: string; message: string },
  ) =>
    sink.write({
      daemon,
      pid: 4242,
      host: "gpu-1",
      status: "running",
      health: { ...health, details: {} },
      stats: { eventsProcessed: 12, eventsDeduplicated: 2, errorsCount: 1 },
      startedAt: new Date(Date.now() - 3_600_000).toISOString(),
      at: new Date(Date.now() - ageMs).toISOString(),
    });
  beat("trainer", 0, { healthy: true, status: "healthy", message: "trainer is running" });
  beat("evaluator", 600_000, { healthy: true, status: "healthy", message: "evaluator is running" });
  beat("promoter", 0, { healthy: false, status: "degraded", message: "event loop lag 250 ms" });
  await sink.close();

  return {
    path,
    transport,
    ids: {
      training: training.id,
      evaluation: evaluation.id,
      promotion: promotion.id,
      distribution: distribution.id,
    },
    deadLetters: { sqlite: sqliteRecord!.id, router, old },
    async copyTo(destination) {
      const db = new Database(path, { readonly: true });
      try {
        await backupQueue(db, destination);
      } finally {
        db.close();
      }
    },
    async close() {
      await transport.close();
      store.close();
    },
  };
}

/** What one CLI run produced. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as JSON (shapes vary by command; tests check them field by field). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json(): any;
}

function runOf(code: number, stdout: string, stderr: string): CliRun {
  return {
    code,
    stdout,
    stderr,
    json: () => {
      try {
        return JSON.parse(stdout) as unknown;
      } catch {
        throw new Error(`stdout is not JSON (exit ${code}):\n${stdout}\nstderr:\n${stderr}`);
      }
    },
  };
}

/** Run the CLI in this process (through `runCli`), capturing its output. */
export async function cli(
  args: readonly string[],
  options: { signal?: AbortSignal; env?: Record<string, string> } = {},
): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, {
    from: "user",
    stdout: (text) => void (stdout += text),
    stderr: (text) => void (stderr += text),
    env: options.env ?? {},
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return runOf(code, stdout, stderr);
}

/** The real `switchyard` binary (src/bin.ts through tsx), as a child process. */
export function spawnCli(args: readonly string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ["--import", "tsx", "packages/cli/src/bin.ts", ...args], {
    cwd: root,
    env: { ...process.env, TSX_TSCONFIG_PATH: join(root, "tsconfig.base.json"), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const done = new Promise<CliRun>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) =>
      resolve(runOf(code ?? (signal ? 128 : -1), stdout, stderr)),
    );
  });
  return {
    child,
    done,
    /** Resolves once stderr contains `text`. */
    async waitForStderr(text: string, timeoutMs = 15_000): Promise<void> {
      await eventually(
        () => stderr.includes(text),
        `"${text}" on stderr (got: ${stderr})`,
        timeoutMs,
      );
    },
  };
}

/** Run the real binary to completion. */
export function runBinary(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<CliRun> {
  return spawnCli(args, env).done;
}
