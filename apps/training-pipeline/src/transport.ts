// Where the demo's processes meet: the driver for the run's target, chosen once from settings —
// `sqlite:<db>` or `nats://host:4222,…/STREAM?prefix=…`. Everything else (the transport, the
// heartbeat sink, the dead-letter store, the reads of the verification) comes from that driver.
import { drivers } from "@switchyard/cli";
import type { RetryableDeadLetterStore } from "@switchyard/dlq";
import { type DeadLetterSink, type Driver, type Logger, openDriver } from "@switchyard/transport";
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

/**
 * When a dead letter of a run becomes due for replay: 300 ms after it failed, doubling per replay
 * up to 3 s, so the retry daemon's replays show within a demo's minute.
 */
export const DEMO_DEAD_LETTER_BACKOFF = { initialMs: 300, maxMs: 3_000 } as const;

/**
 * Open the run's driver (the CLI's drivers: SQLite and NATS), its dead-letter store replaying on
 * {@link DEMO_DEAD_LETTER_BACKOFF}. Close it when done.
 */
export function openPipelineDriver(
  settings: PipelineSettings,
  options: { readOnly?: boolean; logger?: Logger } = {},
): Promise<Driver> {
  return openDriver(pipelineTarget(settings), {
    drivers,
    readOnly: options.readOnly ?? false,
    options: { [settings.transport]: { retryBackoff: DEMO_DEAD_LETTER_BACKOFF } },
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

/** Whether a driver's dead-letter sink is a store the retry daemon can work. */
function isRetryable(
  sink: DeadLetterSink | undefined,
): sink is DeadLetterSink & RetryableDeadLetterStore {
  const store = sink as Partial<RetryableDeadLetterStore> | undefined;
  return (
    typeof store?.claim === "function" &&
    typeof store.release === "function" &&
    typeof store.stats === "function"
  );
}

/**
 * The run's dead-letter store: the driver's own (the SQLite file's `dead_letters`, or on NATS the
 * dead-letter stream beside the run's events), which its inspector reads, so `switchyard dlq list`
 * on the run's target lists what the daemons dead-lettered. It is the sink of the transport and
 * the router, and the retry daemon works on it (both drivers' stores claim and release records).
 * The driver closes it.
 *
 * @throws Error when the driver has no dead-letter store the retry daemon can work.
 */
export function runDeadLetters(driver: Driver): DeadLetterSink & RetryableDeadLetterStore {
  const sink = driver.deadLetterSink();
  if (!isRetryable(sink))
    throw new Error(
      `the ${driver.scheme} driver of ${driver.target} has no dead-letter store the retry daemon ` +
        `can work (claim, release, stats): run the demo on sqlite or nats.`,
    );
  return sink;
}
