import type { SqliteDeadLetterStore } from "@switchyard/cross-process-queue";
import type { PipelineCatalog } from "@switchyard/event-schema";
import type { Daemon } from "@switchyard/handler-base";
import type { MemoryTransport, Router } from "@switchyard/router";
import { replayTo } from "../replay";
import { DlqRetryDaemon, type DlqRetryDaemonOptions } from "../retry-daemon";

/**
 * A retry daemon over a test's store, router and memory transport, cycling every 15 ms with a
 * 10–20 ms replay-error backoff; pushed onto `daemons` so the test's teardown stops it.
 */
export function quickRetryDaemon(
  parts: {
    readonly store: SqliteDeadLetterStore;
    readonly router: Router<PipelineCatalog>;
    readonly transport: MemoryTransport;
  },
  daemons: Daemon[],
  options: Partial<DlqRetryDaemonOptions<PipelineCatalog>> = {},
): DlqRetryDaemon<PipelineCatalog> {
  const d = new DlqRetryDaemon({
    store: parts.store,
    target: replayTo({ router: parts.router, transport: parts.transport }),
    router: parts.router,
    cycleIntervalMs: 15,
    replayErrorBackoff: { initialMs: 10, maxMs: 20, jitter: 0 },
    ...options,
  });
  daemons.push(d);
  return d;
}
