import type { AnyCatalog } from "@switchyard/event-schema";
import type { Router, Transport } from "@switchyard/router";
import { ReplayTargetMissingError } from "./errors";
import type { ReplayTarget } from "@switchyard/cross-process-queue";

export type { ReplayTarget };

/**
 * Replay to where each dead letter came from: records from in-process handlers (`origin: "router"`)
 * go to the router subscription of that name, records from a transport go back to that transport's
 * subscriber (`transport.requeue`). The envelope keeps its id, so idempotent consumers recognise it.
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
}): ReplayTarget {
  return {
    async replay(record) {
      if (record.origin === "router") {
        if (!targets.router) throw new ReplayTargetMissingError(record.id, record.origin);
        return targets.router.redeliver(record.subscriber, record.envelope);
      }
      const transport = targets.transport;
      if (!transport?.requeue || transport.name !== record.origin)
        throw new ReplayTargetMissingError(record.id, record.origin);
      return transport.requeue(record.subscriber, record.envelope);
    },
  };
}
