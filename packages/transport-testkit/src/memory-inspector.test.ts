import { randomUUID } from "node:crypto";
import { memoryDriver, openDriver } from "@switchyard/transport";
import { runInspectorSuite } from "./inspector-suite";

// The reference driver passes its own inspector contract. Every test gets a store of its own
// name; each driver opened on that name is another "process" on the same store.
runInspectorSuite({
  name: "memory",
  harness: async () => {
    const target = `memory:inspector-suite-${randomUUID()}`;
    return {
      driver: () => openDriver(target, { drivers: [memoryDriver] }),
      cleanup: async () => {},
    };
  },
});
