// A nats-server of the test's own (free loopback port, temp store dir) that a scenario SIGKILLs
// and restarts on the same store. The shared server at NATS_URL is never killed.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, openSync, closeSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  canConnect,
  freePort,
  natsServerBinary,
} from "../../../packages/transport-nats/src/test/process";
import { delay } from "./wait";

export { natsServerBinary };

/** A nats-server this scenario owns. */
export interface OwnNatsServer {
  readonly url: string;
  /** Starts so far (1 + restarts). */
  readonly starts: number;
  /** SIGKILL it and wait until it is gone. */
  kill(): Promise<void>;
  /** Start it again on the same port and store, and wait until it listens. */
  start(): Promise<void>;
  /** Whether it runs right now. */
  up(): boolean;
}

/**
 * Start a JetStream nats-server on a free loopback port with its store under `dir` and its log in
 * `dir/nats-server.log`, with the server's default store settings (what issue 14 ran).
 */
export async function startNatsServer(dir: string): Promise<OwnNatsServer> {
  const binary = natsServerBinary();
  if (!binary.ok) throw new Error(binary.reason);
  const port = await freePort();
  const store = join(dir, "jetstream");
  mkdirSync(store, { recursive: true });
  const conf = join(dir, "nats-server.conf");
  writeFileSync(
    conf,
    [`listen: "127.0.0.1:${port}"`, `jetstream { store_dir: "${store}" }`, ""].join("\n"),
  );
  const logFile = join(dir, "nats-server.log");
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let starts = 0;
  const start = async () => {
    const out = openSync(logFile, "a");
    let proc: ChildProcess;
    try {
      proc = spawn(binary.path, ["-c", conf], { stdio: ["ignore", out, out] });
    } finally {
      closeSync(out);
    }
    child = proc;
    starts++;
    exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    const deadline = Date.now() + 15_000;
    while (!(await canConnect(port))) {
      if (proc.exitCode !== null)
        throw new Error(`nats-server exited with ${proc.exitCode}; see ${logFile}`);
      if (Date.now() > deadline)
        throw new Error(`nats-server did not listen on ${port} within 15 s`);
      await delay(25);
    }
  };
  const alive = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    get starts() {
      return starts;
    },
    kill: async () => {
      if (alive()) child!.kill("SIGKILL");
      await exited;
    },
    start,
    up: alive,
  };
}
