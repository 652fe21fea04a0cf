import { MemoryStore, MemoryTransport } from "@switchyard/transport";
import { runTransportSuite } from "./suite";

// The reference implementation must pass its own contract. Handles share one store per test,
// like processes sharing one database.
runTransportSuite({
  name: "memory",
  harness: async () => {
    const store = new MemoryStore();
    return {
      connect: ({ deadLetter, drainTimeoutMs = 2000 } = {}) =>
        new MemoryTransport({ store, drainTimeoutMs, ...(deadLetter ? { deadLetter } : {}) }),
      cleanup: async () => {},
    };
  },
  features: {
    // One queue per subscriber, and a batch is stored in one step.
    ordering: "perSubscriber",
    publishBatch: "atomic",
    requeue: true,
    requeueDuringLease: true,
    signal: true,
    handBack: true,
    reconnect: { skip: "in process: there is no connection to lose" },
  },
});
