import Emittery from "emittery";
import { describe, expect, it } from "vitest";
import { deliveryCounter } from "./listeners";

describe("deliveryCounter", () => {
  it("gives emittery ten listeners that each receive every emit", async () => {
    const counter = deliveryCounter();
    const emitter = new Emittery();
    for (const listener of counter.listenersOf(10)) emitter.on("E", listener);
    expect(emitter.listenerCount("E")).toBe(10);
    const task = counter.counted(10, 3, async () => {
      for (let i = 0; i < 3; i++) await emitter.emit("E", i);
    });
    await task();
    expect(counter.count).toBe(30);
  });

  it("fails a row that makes fewer deliveries than its listener count says", async () => {
    const counter = deliveryCounter();
    const [one] = counter.listenersOf(1);
    const emitter = new Emittery();
    // The old rows' mistake: one function added ten times is one emittery listener.
    for (let i = 0; i < 10; i++) emitter.on("E", one!);
    const task = counter.counted(10, 2, async () => {
      for (let i = 0; i < 2; i++) await emitter.emit("E", i);
    });
    await expect(task()).rejects.toThrow(
      "a row with 10 listener(s) made 2 deliveries for 2 publishes, not 20",
    );
  });
});
