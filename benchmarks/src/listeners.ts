// Listeners for the in-process rows, one distinct function each, and a check that every task made
// the deliveries it claims to.

/** Counts deliveries made by the listeners of {@link deliveryCounter}. */
export interface DeliveryCounter {
  /** Deliveries so far, over every listener made here. */
  readonly count: number;
  /**
   * `n` distinct no-op async listeners. Distinct, not one function `n` times: emittery keeps its
   * listeners in a Set, so the same function added ten times is one listener (the router rows once
   * compared our 10 subscribers with emittery calling one).
   */
  readonly listenersOf: (n: number) => ((event?: unknown) => Promise<void>)[];
  /**
   * `task`, checked: after each run it must have made `listeners × publishes` deliveries, or it
   * throws, so a row cannot silently measure less work than its name says.
   */
  readonly counted: (
    listeners: number,
    publishes: number,
    task: () => Promise<void>,
  ) => () => Promise<void>;
}

/** A fresh {@link DeliveryCounter}. */
export function deliveryCounter(): DeliveryCounter {
  const sink = { count: 0 };
  return {
    get count() {
      return sink.count;
    },
    listenersOf: (n) =>
      Array.from({ length: n }, () => async (_event?: unknown) => {
        sink.count++;
      }),
    counted: (listeners, publishes, task) => async () => {
      const before = sink.count;
      await task();
      const made = sink.count - before;
      if (made !== listeners * publishes)
        throw new Error(
          `a row with ${listeners} listener(s) made ${made} deliveries for ${publishes} publishes, not ${listeners * publishes}`,
        );
    },
  };
}
