// Test helpers: is a NATS server reachable, and a throwaway nats-server of our own (free port,
// temp store dir) that a test may kill and restart.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, it } from "vitest";
import { receiptStreamName } from "../audit";
import { attemptStreamName, deadLetterStreamName, heartbeatStreamName } from "../names";
import { canConnect, freePort, natsServerBinary } from "./process";

export { natsServerBinary };

/** The shared server the NATS suites use. */
export const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const CI = process.env.CI === "true";

/** A unique stream name and subject prefix, so tests never see each other's events. */
export function uniqueNames(label: string): { stream: string; prefix: string } {
  const id = randomUUID().replaceAll("-", "").slice(0, 12);
  return { stream: `TEST_${label.toUpperCase()}_${id}`, prefix: `test.${label}.${id}` };
}

/** Try to connect (and reach JetStream) within `timeoutMs`; the reason when that fails. */
export async function natsAvailable(
  url: string = NATS_URL,
  timeoutMs = 2_000,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const nc = await connect({ servers: url, timeout: timeoutMs, reconnect: false });
    try {
      await jetstreamManager(nc, { timeout: timeoutMs });
    } finally {
      await nc.close();
    }
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: `NATS with JetStream at ${url}: ${(error as Error).message}` };
  }
}

/**
 * `describe`, or — when the requirement is not met — `describe.skip` with a printed reason.
 * Under `CI=true` an unmet requirement fails instead: CI must not pass by skipping.
 */
export function describeIf(
  availability: { ok: true } | { ok: false; reason: string },
  name: string,
  options: { tags?: string[] },
  body: () => void,
): void {
  if (availability.ok) {
    describe(name, options, body);
    return;
  }
  if (CI) {
    describe(name, options, () => {
      it("has what it needs (CI=true does not allow skipping)", () => {
        throw new Error(`${availability.reason}. Under CI=true the NATS suites must run.`);
      });
    });
    return;
  }
  console.warn(`skipping "${name}": ${availability.reason}`);
  describe.skip(`${name} — skipped: ${availability.reason}`, body);
}

/** A nats-server this test owns. */
export interface OwnServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Kill the server (SIGKILL by default) and wait for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Start it again on the same port with the same store (after `kill`). */
  start(): Promise<void>;
  /** Kill and start again. */
  restart(): Promise<void>;
  /** Stop it for good and remove its files. */
  dispose(): Promise<void>;
}

/**
 * Start a nats-server with JetStream on a free loopback port and a temp store dir. `config`, if
 * given, is written to a config file (use `{{port}}` and `{{store}}` placeholders); otherwise the
 * server runs with `-js`. `jetstream: false` starts one without JetStream.
 */
export async function startOwnServer(
  options: { config?: string; jetstream?: boolean } = {},
): Promise<OwnServer> {
  const binary = natsServerBinary();
  if (!binary.ok) throw new Error(binary.reason);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "sy-nats-"));
  const storeDir = join(dir, "store");
  let args: string[];
  if (options.config) {
    const file = join(dir, "server.conf");
    writeFileSync(
      file,
      options.config.replaceAll("{{port}}", String(port)).replaceAll("{{store}}", storeDir),
    );
    args = ["-c", file];
  } else {
    args = ["-a", "127.0.0.1", "-p", String(port)];
    if (options.jetstream !== false) args.push("-js", "-sd", storeDir);
  }
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async () => {
    const proc = spawn(binary.path, args, { stdio: "ignore" });
    child = proc;
    exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(port))) {
      if (proc.exitCode !== null) throw new Error(`nats-server exited with ${proc.exitCode}`);
      if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} in 10 s`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    kill,
    start,
    restart: async () => {
      await kill();
      await start();
    },
    dispose: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Delete a test stream (ignoring one that is already gone). */
export async function deleteStream(url: string, stream: string): Promise<void> {
  const nc = await connect({ servers: url, timeout: 2_000, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    await jsm.streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}

/**
 * Every stream the transport family may create for `stream`: the stream itself, its dead
 * letters, attempt journal, heartbeats and receipts.
 */
export function streamFamily(stream: string): string[] {
  return [
    stream,
    deadLetterStreamName(stream),
    attemptStreamName(stream),
    heartbeatStreamName(stream),
    receiptStreamName(stream),
  ];
}

/** Delete a test's stream and every companion stream of it ({@link streamFamily}), over one connection. */
export async function deleteStreams(url: string, stream: string): Promise<void> {
  const nc = await connect({ servers: url, timeout: 2_000, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    for (const name of streamFamily(stream)) await jsm.streams.delete(name).catch(() => false);
  } finally {
    await nc.close();
  }
}

/**
 * Poll `check` every 10 ms until true, failing with `what` after `timeoutMs`. A check that throws
 * fails at once, unless `retryErrors` is set: then (for reads made while a cluster is still
 * recovering from a kill, whose JetStream API requests may time out for a while) the error counts
 * as "not yet", and the last one is reported if the deadline passes.
 */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
  options: { retryErrors?: boolean } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      if (!options.retryErrors) throw error;
      lastError = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}` +
          (lastError === undefined
            ? ""
            : ` (last error: ${lastError instanceof Error ? `${lastError.name}: ${lastError.message}` : JSON.stringify(lastError)})`),
        { cause: lastError },
      );
    await new Promise((r) => setTimeout(r, 10));
  }
}
