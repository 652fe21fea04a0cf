// The supervisor: one OS process per daemon, managed by a DaemonManager (restart with backoff,
// DAEMON_PERMANENTLY_FAILED when it gives up), all coordinating through the run's transport.
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { type AnyEventOf, type PipelineCatalog, pipelineCatalog } from "@switchyard/event-schema";
import { DaemonManager } from "@switchyard/handler-base";
import { type Router, type Transport, createRouter } from "@switchyard/router";
import { pipelineDaemons, type PipelineDaemonName } from "./daemons";
import { ProcessDaemon } from "./process/process-daemon";
import type { PipelineSettings } from "./settings";
import { openPipelineDriver, transportOptions } from "./transport";

export interface Pipeline extends AsyncDisposable {
  readonly router: Router<PipelineCatalog>;
  readonly manager: DaemonManager;
  readonly processes: ReadonlyMap<PipelineDaemonName, ProcessDaemon>;
  readonly logFile: string;
  stop(): Promise<void>;
}

/**
 * Register every durable subscriber before any daemon publishes: a subscriber receives the events
 * published after it was registered, so registering them all first means no stage misses an event
 * because its process started a moment later than the producer.
 */
export async function registerSubscribers(transport: Transport): Promise<void> {
  for (const [daemon, spec] of Object.entries(pipelineDaemons)) {
    for (const type of spec.consumes) {
      const subscription = await transport.subscribe({
        subscriber: `${daemon}:${type}`,
        types: [type],
        concurrency: 1,
        // Registration only: nothing has been published yet, and anything claimed is handed back.
        handler: (delivery) =>
          new Promise((_resolve, reject) =>
            delivery.signal.addEventListener("abort", () =>
              reject(delivery.signal.reason as Error),
            ),
          ),
      });
      await subscription.close();
    }
  }
}

/** Start the whole pipeline: the supervisor's own router (for progress), then every daemon process. */
export async function startPipeline(
  settings: PipelineSettings,
  onEvent?: (event: AnyEventOf<PipelineCatalog>) => void,
): Promise<Pipeline> {
  mkdirSync(settings.dataDir, { recursive: true });
  const logFile = join(settings.dataDir, "daemons.log");
  const log: WriteStream = createWriteStream(logFile, { flags: "a" });
  const driver = await openPipelineDriver(settings);
  const transport = driver.transport({ drainTimeoutMs: 1000, ...transportOptions(settings) });
  await registerSubscribers(transport);
  const router = createRouter({ catalog: pipelineCatalog, transport, source: "supervisor" });
  if (onEvent)
    await router.subscribe("*", (event) => onEvent(event), {
      name: "supervisor:progress",
      timeoutMs: 0,
    }).ready;

  const names: PipelineDaemonName[] = [
    "dlq_retry",
    ...(Object.keys(pipelineDaemons) as PipelineDaemonName[]),
  ];
  const processes = new Map(
    names.map((name) => [name, new ProcessDaemon(name, settings, log)] as const),
  );
  const manager = new DaemonManager({
    daemons: [...processes.values()],
    router,
    source: "supervisor",
    maxRestartAttempts: 3,
    restartBackoff: { initialMs: 300, maxMs: 3000 },
  });
  await manager.startAll();

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await manager.stopAll();
      await router.shutdown({ timeoutMs: 2000 });
      await driver.close();
      await new Promise<void>((resolve) => log.end(resolve));
    })());
  return { router, manager, processes, logFile, stop, [Symbol.asyncDispose]: stop };
}
