// One daemon process of the pipeline: its own router on the run's driver (the SQLite queue or NATS
// JetStream), the driver's dead-letter store as sink (the retry daemon works on it), the driver's
// heartbeat sink (the CLI reads both through the driver's inspector), and a DaemonManager that
// restarts the daemon if it crashes and stops it gracefully on SIGTERM.
import { pipelineCatalog } from "@switchyard/event-schema";
import { DlqRetryDaemon, replayTo } from "@switchyard/dlq";
import { DaemonManager } from "@switchyard/handler-base";
import { createRouter } from "@switchyard/router";
import { type PipelineDaemonName, pipelineDaemons } from "../daemons";
import { settingsFromEnv } from "../settings";
import { openPipelineDriver, runDeadLetters, transportOptions } from "../transport";
import { jsonLogger } from "./log";
import { startTracing } from "./otel";

const name = process.argv[2] as PipelineDaemonName;
const settings = settingsFromEnv();
const logger = jsonLogger((line) => process.stderr.write(line), { daemon: name, pid: process.pid });

const driver = await openPipelineDriver(settings, { logger });
// Due for replay 300 ms after a failure, doubling per replay up to 3 s (the driver's option).
const store = runDeadLetters(driver);
const transport = driver.transport({ deadLetter: store, logger, ...transportOptions(settings) });
const router = createRouter({
  catalog: pipelineCatalog,
  transport,
  deadLetter: store,
  source: name,
  logger,
  ...(settings.otel
    ? { openTelemetry: { api: startTracing(settings.otel, name), meter: false } }
    : {}),
  subscriptionDefaults: { maxAttempts: 4, backoff: { initialMs: 50, maxMs: 1000 }, leaseMs: 3_000 },
});

const daemon =
  name === "dlq_retry"
    ? new DlqRetryDaemon({
        store,
        target: replayTo({ router, transport }),
        router,
        cycleIntervalMs: 300,
        maxReplays: 3,
        depthAlertThreshold: 25,
        logger,
      })
    : pipelineDaemons[name].create(router, settings);

const heartbeats = driver.heartbeatSink();
const manager = new DaemonManager({
  daemons: [daemon],
  heartbeatSink: heartbeats,
  heartbeatIntervalMs: 1000,
  logger,
  restartBackoff: { initialMs: 200, maxMs: 2000 },
});

const running = manager.run({ signals: ["SIGTERM", "SIGINT"] });
await manager.startAll();
process.send?.({ type: "ready", daemon: name });
await running;
await router.shutdown({ timeoutMs: 5000 });
// Closes the transport, the heartbeat sink (flushing the last "stopped" beat) and the store.
await driver.close();
process.disconnect?.();
