// The transport contract on a 3-node JetStream cluster of the test's own, every stream and
// consumer replicated R3; `disrupt()` SIGKILLs the stream's leader and restarts it.
import { runTransportSuite } from "@switchyard/transport-testkit";
import { afterAll } from "vitest";
import { natsTransport } from "./index";
import { type OwnCluster, startOwnCluster } from "./test/cluster";
import { describeIf, natsServerBinary, uniqueNames } from "./test/nats";

let cluster: OwnCluster | undefined;
afterAll(async () => {
  await cluster?.dispose();
});

describeIf(
  natsServerBinary(),
  "NATS JetStream on a 3-node cluster (R3)",
  { tags: ["slow"] },
  () => {
    runTransportSuite({
      name: "nats (3-node cluster, R3)",
      testTimeoutMs: 60_000,
      harness: async () => {
        cluster ??= await startOwnCluster();
        const own = cluster;
        const { stream, prefix } = uniqueNames("r3");
        return {
          connect: ({ deadLetter } = {}) =>
            natsTransport({
              servers: [...own.urls],
              stream,
              prefix,
              replicas: 3,
              drainTimeoutMs: 2_000,
              pullExpiresMs: 2_000,
              ephemeralInactiveMs: 10_000,
              connectionOptions: { reconnectTimeWait: 100 },
              ...(deadLetter ? { deadLetter } : {}),
            }),
          cleanup: async () => {
            for (const node of own.nodes) if (!node.running) await own.start(node.name);
            await own.deleteStream(stream);
          },
          // A node loss the contract must survive: the stream's leader is SIGKILLed; once the
          // stream and its consumers have new leaders, the node comes back on the same store.
          disrupt: async () => {
            const leader = await own.waitForStreamLeader(stream, { current: true });
            await own.kill(leader);
            await own.waitForStreamLeader(stream, { not: leader });
            for (const consumer of await own.consumers(stream))
              await own.waitForConsumerLeader(stream, consumer, { not: leader });
            await own.start(leader);
          },
        };
      },
      features: {
        persistent: true,
        fanOut: true,
        competingConsumers: true,
        // One consumer per subscriber and type: ordered within a type only.
        ordering: "perSubscriberAndType",
        // No multi-message transaction: each envelope of a batch is stored on its own.
        publishBatch: "perMessage",
        retry: true,
        leaseExpiry: true,
        fencing: true,
        idempotentPublish: true,
        deadLetter: true,
        drainOnClose: true,
        ephemeral: true,
        handBack: true,
        requeue: true,
        requeueDuringLease: {
          skip: "requeue() publishes a copy on the replay subject without looking at a live delivery: a requeue during a running attempt runs the event again (and a failing last attempt is still dead-lettered)",
        },
        signal: true,
        reconnect: true,
      },
    });
  },
);
