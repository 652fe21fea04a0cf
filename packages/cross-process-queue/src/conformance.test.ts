import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTransportSuite } from "@switchyard/transport-testkit";
import { sqliteTransport } from "./index";

runTransportSuite({
  name: "sqlite",
  harness: async () => {
    const dir = mkdtempSync(join(tmpdir(), "cpq-conformance-"));
    const path = join(dir, "coordination.db");
    return {
      // Every handle is its own connection to the same file, as another process would be.
      connect: ({ deadLetter, drainTimeoutMs = 2_000 } = {}) =>
        sqliteTransport({
          path,
          drainTimeoutMs,
          pruneIntervalMs: 0,
          ...(deadLetter ? { deadLetter } : {}),
        }),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
  features: {
    persistent: true,
    fanOut: true,
    competingConsumers: true,
    // One delivery queue per subscriber, a batch in one transaction.
    ordering: "perSubscriber",
    publishBatch: "atomic",
    retry: true,
    leaseExpiry: true,
    fencing: true,
    idempotentPublish: true,
    deadLetter: true,
    drainOnClose: true,
    ephemeral: true,
    handBack: true,
    requeue: true,
    requeueDuringLease: true,
    signal: true,
    reconnect: { skip: "embedded: a local file has no connection to lose" },
  },
});
