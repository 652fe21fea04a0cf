// Internal: how every part of this package opens, recognises errors of, and closes a JetStream session.
import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { type NatsConnection, type NodeConnectionOptions, connect } from "@nats-io/transport-node";
import { abortReason, untilAborted } from "@switchyard/transport";
import { toNatsError } from "./errors";
import type { ResolvedOptions } from "./options";

/** @internal A connection with its JetStream client and manager. */
export interface Session {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
}

/** @internal Whether a JetStream API error carries this `err_code`. */
export const hasCode = (error: unknown, code: number): boolean =>
  (error as { code?: unknown } | null)?.code === code;

/** @internal The stream does not exist. */
export const isStreamNotFound = (error: unknown): boolean =>
  (error as { name?: unknown } | null)?.name === "StreamNotFoundError" || hasCode(error, 10059);

/**
 * @internal Connect (or take `connection`), reach JetStream, then run `setup` (e.g. create a
 * stream). A connection opened here is closed again when any step fails; errors come out as this
 * package's typed errors (`NatsConnectionError`, `NatsAuthError`, `JetStreamUnavailableError` …).
 */
export async function openSession(
  o: Pick<ResolvedOptions, "servers" | "connect" | "connection" | "requestTimeoutMs">,
  setup: (session: Session) => Promise<void> = async () => {},
  signal?: AbortSignal,
): Promise<Session> {
  let nc: NatsConnection;
  try {
    nc = o.connection ?? (await connectNats(o.connect, signal));
  } catch (error) {
    if (signal?.aborted) throw abortReason(signal);
    throw toNatsError(error, { servers: o.servers, phase: "connect" });
  }
  try {
    const jsm = await untilAborted(jetstreamManager(nc, { timeout: o.requestTimeoutMs }), signal);
    const session = { nc, js: jetstream(nc, { timeout: o.requestTimeoutMs }), jsm };
    await untilAborted(setup(session), signal);
    return session;
  } catch (error) {
    if (!o.connection) await nc.close().catch(() => {});
    if (signal?.aborted) throw abortReason(signal);
    throw toNatsError(error, { servers: o.servers, phase: "connect" });
  }
}

/**
 * @internal nats.js `connect`, but one a signal stops: when `signal` aborts, it rejects at once
 * with the signal's reason, and a connection that completes later is closed. (nats.js 3.x cannot
 * cancel a connect in progress: its dial goes on until it succeeds or its own connect timeout.)
 */
export async function connectNats(
  options: NodeConnectionOptions,
  signal?: AbortSignal,
): Promise<NatsConnection> {
  if (signal?.aborted) throw abortReason(signal);
  const pending = connect(options);
  try {
    return await untilAborted(pending, signal);
  } catch (error) {
    if (signal?.aborted) void pending.then((nc) => nc.close()).catch(() => {});
    throw error;
  }
}

/** @internal Flush what is buffered (for at most 2 s), then close a connection this package opened. */
export async function closeConnection(nc: NatsConnection): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    nc.flush().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 2_000);
    }),
  ]);
  clearTimeout(timer);
  await nc.close().catch(() => {});
}

/**
 * @internal The replicas of a stream kept beside the event stream (dead letters, the attempt
 * journal, heartbeats) when it is created: `replicas` where the caller gave it, else the event
 * stream's own where that exists (a cluster run's R3 events get R3 dead letters), else the default.
 */
export async function companionReplicas(
  jsm: JetStreamManager,
  o: Pick<ResolvedOptions, "stream" | "replicas" | "explicit">,
): Promise<number> {
  if (o.explicit.has("replicas")) return o.replicas;
  try {
    return (await jsm.streams.info(o.stream)).config.num_replicas || o.replicas;
  } catch (error) {
    if (isStreamNotFound(error)) return o.replicas;
    throw error;
  }
}
