// The durable transport the demo's processes share, chosen by settings: SQLite or NATS JetStream.
import { sqliteTransport } from "@switchyard/cross-process-queue";
import type { DeadLetterSink, Logger, Transport } from "@switchyard/router";
import { natsTransport } from "@switchyard/transport-nats";
import type { PipelineSettings } from "./settings";

export function pipelineTransport(
  settings: PipelineSettings,
  options: { deadLetter?: DeadLetterSink; logger?: Logger; drainTimeoutMs?: number } = {},
): Transport {
  if (settings.transport === "nats") {
    return natsTransport({
      servers: settings.natsUrl.split(","),
      stream: settings.natsStream,
      prefix: settings.natsPrefix,
      // Keep the run's events for an hour (not only until acked) so it can be verified and inspected.
      retention: "limits",
      maxAgeMs: 3_600_000,
      ...options,
    });
  }
  return sqliteTransport({ path: settings.db, ...options });
}
