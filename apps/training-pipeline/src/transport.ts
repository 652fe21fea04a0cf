// Where the demo's processes meet: the driver for the run's target, chosen once from settings —
// `sqlite:<db>` or `nats://host:4222,…/STREAM?prefix=…`. Everything else (the transport, the
// heartbeat sink, the reads of the verification) comes from that driver.
import { drivers } from "@switchyard/cli";
import { openDatabase } from "@switchyard/cross-process-queue";
import { type Driver, type Logger, openDriver } from "@switchyard/transport";
import { heartbeatStreamName } from "@switchyard/transport-nats";
import type { PipelineSettings } from "./settings";

/** Keep a NATS run's events for an hour, so it can be verified and inspected. */
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

/** The SQLite target of a file: `sqlite:<path>`. */
export function sqliteTarget(path: string): string {
  return `sqlite:${path}`;
}

/**
 * The transport target of a run, as a user would type it to the CLI: `sqlite:<db>`, or
 * `nats://host:4222,host2:4222/<natsStream>?prefix=<natsPrefix>` (server URLs lose their
 * `nats://` scheme: the target names hosts).
 */
export function pipelineTarget(
  settings: Pick<PipelineSettings, "transport" | "db" | "natsUrl" | "natsStream" | "natsPrefix">,
): string {
  if (settings.transport === "sqlite") return sqliteTarget(settings.db);
  const hosts = natsServers(settings.natsUrl).map((url) => url.replace(/^[a-z]+:\/\//i, ""));
  return (
    `nats://${hosts.join(",")}/${encodeURIComponent(settings.natsStream)}` +
    `?prefix=${encodeURIComponent(settings.natsPrefix)}`
  );
}

/** Open the run's driver (the CLI's drivers: SQLite and NATS). Close it when done. */
export function openPipelineDriver(
  settings: PipelineSettings,
  options: { readOnly?: boolean; logger?: Logger } = {},
): Promise<Driver> {
  return openDriver(pipelineTarget(settings), {
    drivers,
    readOnly: options.readOnly ?? false,
    ...(options.logger ? { logger: options.logger } : {}),
  });
}

/**
 * What the run's transport is opened with beyond the driver's defaults: on NATS the stream keeps
 * every event for an hour (not only until acked), for the verification and for inspection, with
 * `natsReplicas` replicas; SQLite needs nothing more.
 */
export function transportOptions(settings: PipelineSettings): Record<string, unknown> {
  return settings.transport === "nats"
    ? { retention: "limits", maxAgeMs: KEEP_MS, replicas: natsReplicas(settings) }
    : {};
}

/** Where the run's heartbeats go (the driver's heartbeat sink), for people. */
export function heartbeatsWhere(settings: PipelineSettings): string {
  return settings.transport === "nats"
    ? `NATS stream ${heartbeatStreamName(settings.natsStream)}`
    : settings.db;
}

/**
 * The target that lists a run's dead letters: `sqlite:<db>` on either transport, because the
 * daemons dead-letter into the SQLite dead-letter store at `db`, which the retry daemon works on
 * (`DlqRetryDaemon` claims and releases records with leases, which only that store offers).
 */
export function deadLettersTarget(settings: Pick<PipelineSettings, "db">): string {
  return sqliteTarget(settings.db);
}

/**
 * Make a NATS run's dead-letter file a queue file too (an empty one), so the CLI's SQLite driver
 * opens it: `switchyard dlq list --transport sqlite:<db>` then lists the run's dead letters, where
 * it would otherwise refuse a file without the queue's schema. A SQLite run's file already is one.
 */
export function prepareDeadLetterFile(settings: Pick<PipelineSettings, "transport" | "db">): void {
  if (settings.transport !== "nats") return;
  openDatabase(settings.db).close();
}
