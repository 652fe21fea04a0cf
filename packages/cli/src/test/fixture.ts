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
import { createEnvelope } from "@switchyard/event-schema";
import { runCli } from "../program";
import {
  type ScenarioEvents,
  scenarioEvents,
  scenarioHeartbeats,
  subscribeScenario,
} from "./events";

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

/** A coordination database filled through the real queue, DLQ store and heartbeat sink. */
export interface FilledDatabase {
  readonly path: string;
  /** The transport that filled it; still open, holding one lease (subscriber `slow`). */
  readonly transport: SqliteTransport;
  readonly ids: ScenarioEvents["ids"];
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

  const { counts, running } = await subscribeScenario(transport, { notifier: false });
  const { chain, partial, alerts, ids } = scenarioEvents();
  await transport.publish(chain);
  await transport.publish([...partial, ...alerts]);

  const inspect = new Database(path, { readonly: true });
  const count = (sql: string) => inspect.prepare(sql).pluck().get() as number;
  await eventually(
    () =>
      counts.acked === 2 &&
      counts.leased === 2 &&
      count(
        `SELECT COUNT(*) FROM deliveries WHERE subscriber = 'flaky' AND last_error IS NOT NULL`,
      ) === 2 &&
      count(`SELECT COUNT(*) FROM dead_letters`) === 2,
    "deliveries in every state",
  );
  inspect.close();
  await Promise.all(running.map((subscription) => subscription.close()));

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
  for (const beat of scenarioHeartbeats()) sink.write(beat);
  await sink.close();

  return {
    path,
    transport,
    ids,
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

/**
 * Run the CLI in this process with a signal that aborts as soon as `when` appears on stderr (a note
 * the command writes after it opened its target, say): a stop that comes while it runs.
 */
export async function cliAbortingOn(
  args: readonly string[],
  when: RegExp,
): Promise<CliRun & { readonly aborted: boolean }> {
  const controller = new AbortController();
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, {
    from: "user",
    env: {},
    signal: controller.signal,
    stdout: (text) => void (stdout += text),
    stderr: (text) => {
      stderr += text;
      if (when.test(stderr)) controller.abort();
    },
  });
  return { ...runOf(code, stdout, stderr), aborted: controller.signal.aborted };
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
