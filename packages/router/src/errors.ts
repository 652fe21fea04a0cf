import { SwitchyardError } from "@switchyard/event-schema";

/** The router was shut down; it accepts no new work. (A closed transport throws `TransportClosedError`, same `code`.) */
export class RouterClosedError extends SwitchyardError {
  constructor(what = "router", options?: { cause?: unknown }) {
    super(
      "CLOSED",
      `The ${what} is closed: create a new one instead of reusing it after shutdown.`,
      options,
    );
  }
}

/**
 * `getRouter()` was called without options before the process-wide router was created. There is
 * no default catalog: create it once at startup with `getRouter({ catalog })`, or pass a router.
 */
export class NoRouterError extends SwitchyardError {
  constructor() {
    super(
      "NO_ROUTER",
      "getRouter() was called before the process-wide router exists, and there is no default catalog. " +
        "Create it once at startup with getRouter({ catalog, transport }), or pass a router explicitly " +
        "(a daemon's `router` option, or HandlerBase.for(router)).",
    );
  }
}

/**
 * A subscription's queue is full: a publish to an `overflow: "error"` subscription, or a
 * `redeliver` to an `"error"` or `"drop-newest"` one (that envelope was dropped).
 */
export class QueueFullError extends SwitchyardError {
  constructor(subscription: string, size: number) {
    super(
      "QUEUE_FULL",
      `The queue of subscription "${subscription}" is full (${size} events). The handler is slower ` +
        `than the publishers: raise concurrency or queueSize, or use overflow "wait" for backpressure.`,
    );
  }
}
