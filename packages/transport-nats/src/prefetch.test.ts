import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { createEnvelope } from "@switchyard/event-schema";
import { silentLogger } from "@switchyard/transport";
import { afterEach, describe, expect, it } from "vitest";
import { type ConsumerHandle, NatsSubscription, type SubscriptionHost } from "./subscription";

// The pull arithmetic of a subscription, against a stand-in connection (no server): what it asks
// for, what it holds, and when it renews a lease, message by message.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A connection that records publishes (pull requests) and lets the test deliver messages. */
class FakeConnection {
  readonly pulls: number[] = [];
  /**
   * Pulls and outcomes as written to the socket: like nats.js, a publish into an empty buffer
   * schedules the write for a microtask later, and everything published until then goes with it.
   */
  readonly writes: string[][] = [];
  #buffer: string[] = [];

  send(what: string): void {
    if (this.#buffer.length === 0)
      queueMicrotask(() => {
        this.writes.push(this.#buffer);
        this.#buffer = [];
      });
    this.#buffer.push(what);
  }
  readonly callbacks: ((error: Error | null, msg: Msg) => void)[] = [];
  readonly options = {};

  publish(subject: string, data: string | Uint8Array): void {
    if (!subject.includes(".CONSUMER.MSG.NEXT.")) throw new Error(`unexpected publish ${subject}`);
    const body = typeof data === "string" ? data : decoder.decode(data);
    const { batch } = JSON.parse(body) as { batch: number };
    this.pulls.push(batch);
    this.send(`pull ${batch}`);
  }

  subscribe(_subject: string, options: { callback: (error: Error | null, msg: Msg) => void }) {
    this.callbacks.push(options.callback);
    return { isClosed: () => false, drain: async () => {}, unsubscribe: () => {} };
  }

  /** Messages asked for so far. */
  get asked(): number {
    return this.pulls.reduce((a, b) => a + b, 0);
  }
}

const handle: ConsumerHandle = { name: "s__X__h", ackWaitMs: 30_000, kind: "type" };

function host(): SubscriptionHost {
  return {
    name: "fake",
    stream: "S",
    prefix: "p",
    logger: silentLogger,
    drainTimeoutMs: 100,
    pullExpiresMs: 10_000,
    receiptSubject: () => undefined,
    deadLetter: async () => {},
    journal: undefined,
    recreate: async (h) => h,
    remove: async () => {},
    forget: () => {},
  };
}

/** A gate a handler waits on. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("NatsSubscription pulls", () => {
  let subscription: NatsSubscription | undefined;
  afterEach(async () => {
    await subscription?.close();
    subscription = undefined;
  });

  function setup(concurrency: number, handler: () => Promise<void>, ackWaitMs = 30_000) {
    const nc = new FakeConnection();
    const responses: string[] = [];
    subscription = new NatsSubscription(
      host(),
      { nc: nc as unknown as NatsConnection, apiPrefix: "$JS.API" },
      { subscriber: "s", types: ["X"], concurrency, ephemeral: true, handler },
      silentLogger,
    );
    subscription.start([{ ...handle, ackWaitMs }]);
    let seq = 0;
    const deliver = (n: number) => {
      for (let i = 0; i < n; i++) {
        seq++;
        const envelope = createEnvelope({ type: "X", source: "test", data: { seq } });
        const msg = {
          subject: "p.X",
          reply: `$JS.ACK.S.${handle.name}.1.${seq}.${seq}.0.0`,
          data: encoder.encode(JSON.stringify(envelope)),
          headers: undefined,
          respond: (payload: Uint8Array) => {
            responses.push(decoder.decode(payload));
            nc.send(decoder.decode(payload));
            return true;
          },
        } as unknown as Msg;
        nc.callbacks[0]!(null, msg);
      }
    };
    return { nc, responses, deliver };
  }

  it("holds no more than `concurrency` while no handler has finished", async () => {
    const g = gate();
    let started = 0;
    const { nc, deliver } = setup(4, async () => {
      started++;
      await g.wait;
    });
    expect(nc.pulls).toEqual([4]);
    deliver(4);
    await settle();
    expect(started).toBe(4);
    // Four running, none finished: nothing more is asked for.
    expect(nc.asked).toBe(4);
    g.open();
  });

  it("keeps asking while quick handlers run, so the next messages are on their way", async () => {
    const held: { gate?: ReturnType<typeof gate> } = {};
    let started = 0;
    const { nc, responses, deliver } = setup(4, async () => {
      started++;
      if (held.gate) await held.gate.wait;
    });
    // Four quick handlers: their time sets the prefetch (4: they finish well within the window).
    deliver(4);
    await settle();
    expect(responses).toEqual(["+ACK", "+ACK", "+ACK", "+ACK"]);
    expect(nc.asked).toBe(8);
    // Four that wait: while they run, four more are asked for (at most `concurrency` asked for).
    const g = (held.gate = gate());
    deliver(4);
    await settle();
    expect(started).toBe(8);
    expect(nc.asked).toBe(12);
    // They arrive and wait in the buffer for a slot: 8 held, nothing more asked for.
    deliver(4);
    await settle();
    expect(started).toBe(8);
    expect(subscription!.inFlight).toBe(8);
    expect(nc.asked).toBe(12);
    g.open();
    await settle();
    await settle();
    expect(started).toBe(12);
    // They waited less than the lease's safety margin: started without renewing (no +WPI).
    expect(responses.filter((r) => r !== "+ACK")).toEqual([]);
    expect(responses.length).toBe(12);
  });

  it("asks for no more than `concurrency` once handlers are too slow for the prefetch window", async () => {
    const held: { gate?: ReturnType<typeof gate> } = {};
    // Four handlers of 250 ms at once free a slot every 62 ms on average: no message could wait
    // for one within the 50 ms prefetch window.
    const { nc, deliver } = setup(
      4,
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 250));
        if (held.gate) await held.gate.wait;
      },
      1_000,
    );
    deliver(4);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(nc.asked).toBe(8);
    const g = (held.gate = gate());
    deliver(4);
    await settle();
    expect(nc.asked).toBe(8);
    g.open();
  });

  it("stops prefetching when a handler runs far longer than the mean", async () => {
    const held: { gate?: ReturnType<typeof gate> } = {};
    const { nc, deliver } = setup(
      2,
      async () => {
        if (held.gate) await held.gate.wait;
      },
      1_000,
    );
    deliver(2);
    await settle();
    expect(nc.asked).toBe(4);
    const g = (held.gate = gate());
    deliver(1);
    await settle();
    // Quick so far: one more asked for while it runs.
    expect(nc.asked).toBe(5);
    // The watchdog sees it run for 300 ms: two of those at once leave no room within the 50 ms
    // prefetch window, so the prefetch drops to 0.
    await new Promise((resolve) => setTimeout(resolve, 300));
    deliver(2);
    await settle();
    // Two running, one waiting for a slot: nothing more is asked for.
    expect(subscription!.inFlight).toBe(3);
    expect(nc.asked).toBe(5);
    g.open();
  });

  it("pulls after a quick handler's ack, so both leave in one write", async () => {
    const { nc, deliver } = setup(1, async () => {});
    deliver(1);
    await settle();
    expect(nc.writes).toEqual([["pull 1"], ["+ACK", "pull 1"]]);
    // Prefetching now (1): the next pull is due on arrival, and leaves with the ack.
    deliver(1);
    await settle();
    expect(nc.writes.slice(2).map((w) => w.sort())).toEqual([["+ACK", "pull 1"]]);
  });
});
