import type { DeadLetterSink, Transport } from "@switchyard/router";
import type { TransportFeatures } from "./features";

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
