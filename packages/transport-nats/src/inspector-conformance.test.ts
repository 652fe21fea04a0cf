import { runInspectorSuite } from "@switchyard/transport-testkit";
import { openDriver } from "@switchyard/transport";
import { natsDriver } from "./index";
import { NATS_URL, deleteStreams, describeIf, natsAvailable, uniqueNames } from "./test/nats";

// The shared inspector suite against a real nats-server: every test gets its own streams and
// subject prefix; each driver opened on them is another "process".
describeIf(await natsAvailable(), `NATS inspector at ${NATS_URL}`, {}, () => {
  runInspectorSuite({
    name: "nats",
    harness: async () => {
      const { stream, prefix } = uniqueNames("inspect");
      const target = `${NATS_URL}/${stream}?prefix=${prefix}`;
      return {
        driver: () => openDriver(target, { drivers: [natsDriver] }),
        transportOptions: { pullExpiresMs: 2_000, ephemeralInactiveMs: 10_000 },
        cleanup: () => deleteStreams(NATS_URL, stream),
      };
    },
  });
});
