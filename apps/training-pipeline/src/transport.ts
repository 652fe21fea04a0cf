// The durable transport the demo's processes share, and where their heartbeats go, chosen by
// settings: SQLite (the `db` file) or NATS JetStream.
import {
  SqliteHeartbeatSink,
  listHeartbeats,
  openQueueReadOnly,
  sqliteTransport,
} from "@switchyard/cross-process-queue";
import type { HeartbeatSink } from "@switchyard/handler-base";
import type { DeadLetterSink, Logger, Transport } from "@switchyard/router";
import {
  heartbeatStreamName,
  listNatsHeartbeats,
  natsHeartbeatSink,
  natsTransport,
} from "@switchyard/transport-nats";
import type { PipelineSettings } from "./settings";

/** Keep a NATS run's events and heartbeats for an hour, so it can be verified and inspected. */
const KEEP_MS = 3_600_000;

/** The NATS servers of a run: `natsUrl` split on commas, blanks dropped. */
export function natsServers(natsUrl: string): string[] {
  return natsUrl
    .split(",")
    .map((url) => url.trim())
    .filter(Boolean);
}

/**
 * Stream replicas of a NATS run: `natsReplicas` if given, else 3 when three or more servers are
 * named (a cluster), else 1.
 */
export function natsReplicas(settings: Pick<PipelineSettings, "natsUrl" | "natsReplicas">): number {
  return settings.natsReplicas ?? (natsServers(settings.natsUrl).length >= 3 ? 3 : 1);
}

/** The servers, stream, prefix and replicas of a NATS run. */
const natsLocation = (settings: PipelineSettings) => ({
  servers: natsServers(settings.natsUrl),
  stream: settings.natsStream,
  prefix: settings.natsPrefix,
  replicas: natsReplicas(settings),
});

export function pipelineTransport(
  settings: PipelineSettings,
  options: { deadLetter?: DeadLetterSink; logger?: Logger; drainTimeoutMs?: number } = {},
): Transport {
  if (settings.transport === "nats") {
    return natsTransport({
      ...natsLocation(settings),
      // Not only until acked: the run's events stay for the verification and for inspection.
      retention: "limits",
      maxAgeMs: KEEP_MS,
      ...options,
    });
  }
  return sqliteTransport({ path: settings.db, ...options });
}

/** A heartbeat sink that is closed when its process ends. */
export type PipelineHeartbeatSink = HeartbeatSink & { close(): void | Promise<void> };

/**
 * Where a daemon process writes its heartbeats: on NATS the heartbeat stream beside the run's
 * event stream (read from any machine), else the SQLite file's `daemon_heartbeats` table.
 */
export function pipelineHeartbeats(
  settings: PipelineSettings,
  options: { logger?: Logger } = {},
): PipelineHeartbeatSink {
  if (settings.transport === "nats")
    return natsHeartbeatSink({ ...natsLocation(settings), maxAgeMs: KEEP_MS, ...options });
  return new SqliteHeartbeatSink({ path: settings.db });
}

/** Where {@link pipelineHeartbeats} writes, for people. */
export function heartbeatsWhere(settings: PipelineSettings): string {
  return settings.transport === "nats"
    ? `NATS stream ${heartbeatStreamName(settings.natsStream)}`
    : settings.db;
}

/** Every daemon's last heartbeat, read back from where {@link pipelineHeartbeats} wrote it. */
export async function pipelineHeartbeatList(
  settings: PipelineSettings,
): Promise<{ readonly daemon: string; readonly status: string }[]> {
  if (settings.transport === "nats") return listNatsHeartbeats(natsLocation(settings));
  const db = openQueueReadOnly(settings.db);
  try {
    return listHeartbeats(db);
  } finally {
    db.close();
  }
}
