import { runTransportSuite } from "@switchyard/transport-testkit";
import { afterAll } from "vitest";
import { natsTransport } from "./index";
import {
  NATS_URL,
  type OwnServer,
  deleteStream,
  describeIf,
  natsAvailable,
  natsServerBinary,
  startOwnServer,
  uniqueNames,
} from "./test/nats";

const features = {
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
} as const;

// The shared server (NATS_URL): every test gets its own stream and subject prefix.
describeIf(await natsAvailable(), `NATS JetStream at ${NATS_URL}`, {}, () => {
  runTransportSuite({
    name: "nats",
    harness: async () => {
      const { stream, prefix } = uniqueNames("conformance");
      return {
        connect: ({ deadLetter } = {}) =>
          natsTransport({
            servers: NATS_URL,
            stream,
            prefix,
            drainTimeoutMs: 2_000,
            pullExpiresMs: 2_000,
            ephemeralInactiveMs: 10_000,
            ...(deadLetter ? { deadLetter } : {}),
          }),
        cleanup: () => deleteStream(NATS_URL, stream),
      };
    },
    features: {
      ...features,
      reconnect: {
        skip: "the shared server at NATS_URL is not this test's to restart; the suite below runs it against its own nats-server",
      },
    },
  });
});

// Its own nats-server (free port, temp store), so `disrupt()` can kill and restart it.
let own: OwnServer | undefined;
afterAll(async () => {
  await own?.dispose();
});

describeIf(natsServerBinary(), "NATS JetStream on a nats-server of its own", {}, () => {
  runTransportSuite({
    name: "nats (own server)",
    harness: async () => {
      own ??= await startOwnServer();
      const server = own;
      const { stream, prefix } = uniqueNames("own");
      return {
        connect: ({ deadLetter } = {}) =>
          natsTransport({
            servers: server.url,
            stream,
            prefix,
            drainTimeoutMs: 2_000,
            pullExpiresMs: 2_000,
            ephemeralInactiveMs: 10_000,
            connectionOptions: { reconnectTimeWait: 100 },
            ...(deadLetter ? { deadLetter } : {}),
          }),
        cleanup: () => deleteStream(server.url, stream),
        disrupt: () => server.restart(),
      };
    },
    features: { ...features, reconnect: true },
  });
});
