import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { defineMiddleware } from "./middleware/types";
import { type Router, createRouter } from "./router";
import { testCatalog, type TestCatalog } from "./test/fixtures";

// A full garbage collection on demand: the flag, then a context made after it that has `gc`.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const open: Router<TestCatalog>[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.shutdown({ timeoutMs: 100 })));
});

/** Lets every callback already due run (microtasks, then one turn of the event loop). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("the timeout middleware (in the chain when other middleware wraps the handler)", () => {
  it("keeps no context of a settled delivery once the next one starts", async () => {
    const passThrough = defineMiddleware("custom", function passThrough(next) {
      return next;
    });
    const router = createRouter({ catalog: testCatalog, middleware: [passThrough] });
    open.push(router);
    let first: WeakRef<object> | undefined;
    router.subscribe(
      "JOB_STARTED",
      async (_event, ctx) => {
        first ??= new WeakRef(ctx);
      },
      { name: "keeps-nothing", timeoutMs: 60_000 },
    );
    for (let n = 0; n < 10; n++) await router.publish("JOB_STARTED", { n });
    await router.drain();
    await settle(); // a WeakRef holds its target until the job that made it ends
    gc();
    expect(first).toBeDefined();
    expect(first!.deref()).toBeUndefined();
  });
});
