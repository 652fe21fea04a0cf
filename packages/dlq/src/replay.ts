import type { AnyCatalog, Envelope } from "@switchyard/event-schema";
import type { Router, Transport } from "@switchyard/router";
import { ReplayTargetMissingError } from "./errors";
import type { ReplayTarget } from "@switchyard/cross-process-queue";
import type { RetryTarget, RetryableDeadLetter } from "./retry-daemon";

export type { ReplayTarget };

/**
 * Replay to where each dead letter came from: records from in-process handlers (`origin: "router"`)
 * go to the router subscription of that name, records from a transport go back to that transport's
 * subscriber (`transport.requeue`). The envelope keeps its id, so idempotent consumers recognise it.
 *
 * A replay resolves only once the envelope was taken: a redelivery the subscription refuses
 * (`QueueFullError` under overflow `"error"`/`"drop-newest"`, `RouterClosedError` when it closes)
 * rejects, so the store and the retry daemon count it as failed and keep the dead letter. The
 * `signal` the retry daemon passes (aborted on stop and when the record's lease runs out) is
 * passed to `router.redeliver`: a redelivery waiting for room (overflow `"wait"`) gives up then
 * and is not queued later. Already aborted, nothing is handed back.
 *
 * @example
 * ```ts
 * // not runnable (see the README)
 * store.replay({ subscriber: "trainer" }, { to: replayTo({ router, transport }) });
 * ```
 */
export function replayTo(targets: {
  /** Any router (only `redeliver` is used). */
  router?: Pick<Router<AnyCatalog>, "redeliver">;
  transport?: Transport;
}): ReplayTarget & RetryTarget {
  return {
    async replay(
      record: RetryableDeadLetter & { readonly envelope: Envelope },
      options: { readonly signal?: AbortSignal } = {},
    ) {
      const { signal } = options;
      signal?.throwIfAborted();
      if (record.origin === "router") {
        if (!targets.router) throw new ReplayTargetMissingError(record.id, record.origin);
        return targets.router.redeliver(
          record.subscriber,
          record.envelope,
          signal ? { signal } : {},
        );
      }
      const transport = targets.transport;
      if (!transport?.requeue || transport.name !== record.origin)
        throw new ReplayTargetMissingError(record.id, record.origin);
      return transport.requeue(record.subscriber, record.envelope);
    },
  };
}
