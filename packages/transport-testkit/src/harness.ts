import type {
  DeadLetterSink,
  Driver,
  DriverTransportOptions,
  Transport,
} from "@switchyard/transport";
import type { InspectorFeatures, TransportFeatures } from "./features";

/** Per-test access to a transport's backing store. */
export interface TransportHarness {
  /**
   * A new handle on the same store — for durable transports, like another process. Handles made
   * here are closed by the suite; the harness's `cleanup` removes the store.
   */
  connect(options?: {
    deadLetter?: DeadLetterSink;
    /**
     * How long `close()` waits for in-flight handlers. The `handBack` test closes subscriptions
     * while a handler runs: pass it on, or each of its closes waits the transport's default.
     */
    drainTimeoutMs?: number;
  }): Transport | Promise<Transport>;
  /** Remove everything the harness created (temp files, streams, consumers). */
  cleanup(): Promise<void>;
  /**
   * Break the connection to the backing service and restore it (e.g. restart a server). Needed by
   * the `reconnect` feature only.
   */
  disrupt?(): Promise<void>;
}

/** Options of {@link runTransportSuite}. */
export interface TransportSuiteOptions {
  /** Shown in the describe block, e.g. `"sqlite"`. */
  readonly name: string;
  /** Called before every test: a fresh, isolated store. */
  readonly harness: () => Promise<TransportHarness>;
  /** Capabilities the transport claims; anything not skipped is tested. */
  readonly features?: TransportFeatures;
  /**
   * Multiplies every lease and wait in the suite, for transports with coarse timing
   * (e.g. a server with a 1 s minimum ack wait). @defaultValue 1
   */
  readonly timeScale?: number;
  /** Per-test timeout in ms. @defaultValue 20_000 */
  readonly testTimeoutMs?: number;
}

/** Per-test access to a driver's backing store, for {@link runInspectorSuite}. */
export interface InspectorHarness {
  /**
   * Open a driver on this test's store. Every call opens another driver on the same store — for
   * durable transports, like another process. Drivers opened here are closed by the suite; the
   * harness's `cleanup` removes the store.
   */
  driver(): Driver | Promise<Driver>;
  /**
   * Options the suite's `driver.transport(…)` calls add (e.g. a short pull expiry). The suite sets
   * `drainTimeoutMs` itself.
   */
  readonly transportOptions?: DriverTransportOptions;
  /** Remove everything the harness created (temp files, streams, consumers). */
  cleanup(): Promise<void>;
}

/** Options of {@link runInspectorSuite}. */
export interface InspectorSuiteOptions {
  /** Shown in the describe block, e.g. `"sqlite"`. */
  readonly name: string;
  /** Called before every test: a fresh, isolated store. */
  readonly harness: () => Promise<InspectorHarness>;
  /**
   * Parts of the inspector to skip, each with its reason (everything runs by default). What a
   * driver does not support at all belongs in its `capabilities`: the suite then checks that it
   * says so (empty reads, `UnsupportedOperationError`) instead of skipping.
   */
  readonly features?: InspectorFeatures;
  /** Multiplies every lease and wait in the suite, for slow machines or coarse timers. @defaultValue 1 */
  readonly timeScale?: number;
  /** Per-test timeout in ms. @defaultValue 30_000 */
  readonly testTimeoutMs?: number;
}
