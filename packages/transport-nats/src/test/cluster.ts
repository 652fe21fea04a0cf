// Test harness: a 3-node JetStream cluster of our own on free loopback ports (client, route and
// monitoring port per node, each node its own store dir), whose nodes a test may SIGKILL and
// restart on the same store, and which can say who leads the meta group, a stream and a consumer.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type JetStreamManager, type StreamInfo, jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, connect } from "@nats-io/transport-node";
import { canConnect, freePort, natsServerBinary } from "./process";

/** One node of an {@link OwnCluster}. */
export interface ClusterNode {
  /** Server name (`n1`, `n2`, `n3`): what `cluster.leader` reports. */
  readonly name: string;
  /** Client URL, `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  readonly routePort: number;
  readonly monitorPort: number;
  readonly storeDir: string;
  /** Whether its process is running (started and not killed). */
  readonly running: boolean;
}

/** What `/jsz` of one node says about the JetStream meta group. */
interface Jsz {
  readonly meta_cluster?: { readonly leader?: string; readonly cluster_size?: number };
}

/** A JetStream cluster this test owns. */
export interface OwnCluster {
  readonly name: string;
  readonly nodes: readonly ClusterNode[];
  /** Every node's client URL: give all of them to clients, so they fail over. */
  readonly urls: readonly string[];
  /** The node with this server name. */
  node(name: string): ClusterNode;
  /** SIGKILL (by default) a node and wait for its process to exit. */
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** Start a killed node again on the same ports and store; resolves once it takes clients. */
  start(name: string): Promise<void>;
  /** The meta leader once every running node agrees on one that is running (bounded wait). */
  waitForMetaLeader(timeoutMs?: number): Promise<string>;
  /** The stream's leader as its leader reports it (`cluster.leader`), or undefined if none. */
  streamLeader(stream: string): Promise<string | undefined>;
  /** The stream's info as its leader reports it (state, cluster, config). */
  streamInfo(stream: string): Promise<StreamInfo>;
  /** Names of the stream's consumers. */
  consumers(stream: string): Promise<string[]>;
  /** Delete a stream (ignoring one that is already gone). */
  deleteStream(stream: string): Promise<void>;
  /** The consumer's leader (`cluster.leader` of consumer info), or undefined if none. */
  consumerLeader(stream: string, consumer: string): Promise<string | undefined>;
  /**
   * Wait until the stream has a running leader (other than `not`, if given) and, with
   * `current: true`, every replica is current; the leader's name.
   */
  waitForStreamLeader(
    stream: string,
    options?: { not?: string; current?: boolean; timeoutMs?: number },
  ): Promise<string>;
  /** Likewise for a consumer. */
  waitForConsumerLeader(
    stream: string,
    consumer: string,
    options?: { not?: string; current?: boolean; timeoutMs?: number },
  ): Promise<string>;
  /** Ask a consumer's leader to step down, so another replica takes over (`$JS.API.CONSUMER.LEADER.STEPDOWN`). */
  stepDownConsumer(stream: string, consumer: string): Promise<void>;
  /** The last `lines` lines of a node's log (for failure messages). */
  logTail(name: string, lines?: number): string;
  /** Kill every node and remove every file. Idempotent. */
  dispose(): Promise<void>;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Thrown by a probe that knows waiting longer cannot help. */
class GaveUp extends Error {}

/** Poll `probe` every `everyMs` until it returns a value, failing with `what` after `timeoutMs`. */
async function pollFor<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  timeoutMs: number,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      if (error instanceof GaveUp) throw error;
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}` +
          (last ? ` (last error: ${(last as Error).message})` : ""),
      );
    await pause(everyMs);
  }
}

// Every cluster this process started, so an exiting test process never leaves servers behind.
const live = new Set<ChildProcess>();
let exitHook = false;
function killOnExit(proc: ChildProcess): void {
  live.add(proc);
  proc.once("exit", () => live.delete(proc));
  if (exitHook) return;
  exitHook = true;
  process.once("exit", () => {
    for (const p of live) p.kill("SIGKILL");
  });
}

/**
 * Start a JetStream cluster of `size` nodes (`n1`…) on loopback, routes between all of them, and
 * wait until it has a meta leader. Rejects (after killing what it started) if it does not form in
 * `timeoutMs`.
 */
export async function startOwnCluster(
  options: { size?: number; timeoutMs?: number } = {},
): Promise<OwnCluster> {
  const binary = natsServerBinary();
  if (!binary.ok) throw new Error(binary.reason);
  const size = options.size ?? 3;
  const dir = mkdtempSync(join(tmpdir(), "sy-nats-cluster-"));
  const name = `sy_${dir.slice(-6).replaceAll(/[^A-Za-z0-9]/g, "")}`;
  const ports: { port: number; routePort: number; monitorPort: number }[] = [];
  const taken = new Set<number>();
  const fresh = async () => {
    for (;;) {
      const p = await freePort();
      if (!taken.has(p)) {
        taken.add(p);
        return p;
      }
    }
  };
  for (let i = 0; i < size; i++)
    ports.push({ port: await fresh(), routePort: await fresh(), monitorPort: await fresh() });

  interface NodeState extends ClusterNode {
    running: boolean;
    child: ChildProcess | undefined;
    exited: Promise<void>;
    readonly args: string[];
    readonly log: string;
  }
  const nodes: NodeState[] = ports.map((p, i) => {
    const nodeName = `n${i + 1}`;
    const nodeDir = join(dir, nodeName);
    mkdirSync(nodeDir);
    const routes = ports
      .filter((_, j) => j !== i)
      .map((q) => `nats://127.0.0.1:${q.routePort}`)
      .join(",");
    return {
      name: nodeName,
      url: `nats://127.0.0.1:${p.port}`,
      ...p,
      storeDir: join(nodeDir, "store"),
      running: false,
      child: undefined,
      exited: Promise.resolve(),
      log: join(nodeDir, "server.log"),
      args: [
        ...["-a", "127.0.0.1", "-p", String(p.port), "-m", String(p.monitorPort)],
        ...["--server_name", nodeName, "--cluster_name", name],
        ...["--cluster", `nats://127.0.0.1:${p.routePort}`, "--routes", routes],
        ...["-js", "-sd", join(nodeDir, "store")],
      ],
    };
  });
  const byName = (nodeName: string): NodeState => {
    const node = nodes.find((n) => n.name === nodeName);
    if (!node)
      throw new Error(
        `no node ${nodeName} in cluster ${name} (${nodes.map((n) => n.name).join(", ")})`,
      );
    return node;
  };

  const jsz = async (node: NodeState): Promise<Jsz> => {
    const response = await fetch(`http://127.0.0.1:${node.monitorPort}/jsz`, {
      signal: AbortSignal.timeout(1_000),
    });
    return (await response.json()) as Jsz;
  };

  let disposed: Promise<void> | undefined;
  const startNode = async (node: NodeState, timeoutMs = 15_000) => {
    if (node.running) return;
    if (disposed) throw new Error(`cluster ${name} is disposed: node ${node.name} cannot start`);
    // nats-server appends to its log file, so one file holds every run of the node.
    const fd = openSync(node.log, "a");
    let proc: ChildProcess;
    try {
      proc = spawn(binary.path, node.args, { stdio: ["ignore", fd, fd] });
    } finally {
      closeSync(fd);
    }
    killOnExit(proc);
    node.child = proc;
    node.running = true;
    node.exited = new Promise<void>((resolve) =>
      proc.once("exit", () => {
        node.running = false;
        resolve();
      }),
    );
    await pollFor(
      async () => {
        if (proc.exitCode !== null)
          throw new GaveUp(
            `nats-server ${node.name} exited with ${proc.exitCode}: ${cluster.logTail(node.name, 5)}`,
          );
        return (await canConnect(node.port)) ? true : undefined;
      },
      `node ${node.name} to listen (log: ${node.log})`,
      timeoutMs,
      25,
    );
  };

  const killNode = async (node: NodeState, signal: NodeJS.Signals = "SIGKILL") => {
    const child = node.child;
    if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
    await node.exited;
  };

  // One client connection (all URLs, reconnecting) for the stream and consumer info the tests ask.
  let admin: Promise<{ nc: NatsConnection; jsm: JetStreamManager }> | undefined;
  const manager = () =>
    (admin ??= (async () => {
      const nc = await connect({
        servers: nodes.map((n) => n.url),
        maxReconnectAttempts: -1,
        reconnectTimeWait: 100,
        timeout: 2_000,
        name: "cluster-harness",
      });
      // A short request timeout: info about a stream without a leader goes unanswered, and the
      // election times the tests report are only as fine as this.
      return { nc, jsm: await jetstreamManager(nc, { timeout: 1_000 }) };
    })().catch((error: unknown) => {
      admin = undefined;
      throw error;
    }));

  const isRunning = (leader: string | undefined) =>
    leader !== undefined && nodes.some((n) => n.name === leader && n.running);

  interface ClusterInfo {
    readonly leader?: string;
    readonly replicas?: readonly { readonly current: boolean; readonly offline?: boolean }[];
  }
  const waitForLeader = async (
    what: string,
    info: () => Promise<ClusterInfo | undefined>,
    options: { not?: string; current?: boolean; timeoutMs?: number },
  ) =>
    pollFor(
      async () => {
        const cluster = await info();
        const leader = cluster?.leader;
        if (!isRunning(leader) || leader === options.not) return undefined;
        if (options.current) {
          const replicas = cluster?.replicas ?? [];
          if (replicas.length !== nodes.length - 1) return undefined;
          if (replicas.some((r) => !r.current || r.offline)) return undefined;
        }
        return leader;
      },
      `a leader of ${what}${options.not ? ` other than ${options.not}` : ""}${
        options.current ? " with every replica current" : ""
      }`,
      options.timeoutMs ?? 30_000,
    );

  const cluster: OwnCluster = {
    name,
    nodes,
    urls: nodes.map((n) => n.url),
    node: byName,
    kill: (nodeName, signal) => killNode(byName(nodeName), signal),
    start: (nodeName) => startNode(byName(nodeName)),
    waitForMetaLeader: (timeoutMs = 30_000) =>
      pollFor(
        async () => {
          const running = nodes.filter((n) => n.running);
          const leaders = await Promise.all(
            running.map(async (n) => (await jsz(n)).meta_cluster?.leader),
          );
          const leader = leaders[0];
          return leader && isRunning(leader) && leaders.every((l) => l === leader)
            ? leader
            : undefined;
        },
        `a JetStream meta leader in cluster ${name}`,
        timeoutMs,
      ),
    streamLeader: async (stream) => {
      const { jsm } = await manager();
      return (await jsm.streams.info(stream)).cluster?.leader;
    },
    streamInfo: async (stream) => (await manager()).jsm.streams.info(stream),
    consumers: (stream) =>
      // Right after a node loss the harness's own connection may be reconnecting: ask again.
      pollFor(
        async () => {
          const names: string[] = [];
          for await (const info of (await manager()).jsm.consumers.list(stream))
            names.push(info.name);
          return names;
        },
        `the consumers of stream ${stream}`,
        15_000,
      ),
    deleteStream: async (stream) => {
      await (await manager()).jsm.streams.delete(stream).catch(() => false);
    },
    consumerLeader: async (stream, consumer) => {
      const { jsm } = await manager();
      return (await jsm.consumers.info(stream, consumer)).cluster?.leader;
    },
    waitForStreamLeader: async (stream, options = {}) =>
      waitForLeader(
        `stream ${stream}`,
        async () => (await (await manager()).jsm.streams.info(stream)).cluster,
        options,
      ),
    waitForConsumerLeader: async (stream, consumer, options = {}) =>
      waitForLeader(
        `consumer ${consumer}`,
        async () => (await (await manager()).jsm.consumers.info(stream, consumer)).cluster,
        options,
      ),
    stepDownConsumer: async (stream, consumer) => {
      const { nc } = await manager();
      const reply = await nc.request(`$JS.API.CONSUMER.LEADER.STEPDOWN.${stream}.${consumer}`, "", {
        timeout: 5_000,
      });
      const answer = reply.json<{ success?: boolean; error?: { description?: string } }>();
      if (!answer.success)
        throw new Error(`consumer ${consumer} did not step down: ${answer.error?.description}`);
    },
    logTail: (nodeName, lines = 30) => {
      try {
        return readFileSync(byName(nodeName).log, "utf8").split("\n").slice(-lines).join("\n");
      } catch {
        return "";
      }
    },
    dispose: () =>
      (disposed ??= (async () => {
        const connection = await admin?.catch(() => undefined);
        await connection?.nc.close().catch(() => {});
        await Promise.all(nodes.map((n) => killNode(n)));
        rmSync(dir, { recursive: true, force: true });
      })()),
  };

  try {
    await Promise.all(nodes.map((n) => startNode(n)));
    await cluster.waitForMetaLeader(options.timeoutMs ?? 30_000);
  } catch (error) {
    const logs = nodes.map((n) => `--- ${n.name} ---\n${cluster.logTail(n.name, 15)}`).join("\n");
    await cluster.dispose();
    throw new Error(`cluster ${name} did not form: ${(error as Error).message}\n${logs}`, {
      cause: error,
    });
  }
  return cluster;
}
