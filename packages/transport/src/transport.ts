import type { Envelope } from "@switchyard/event-schema";
import type { BackoffOptions } from "./backoff";
import type { SerializedError } from "./errors";

/**
 * A durable path between processes (SQLite, NATS JetStream, or in memory for tests).
 *
 * The contract every implementation states and `@switchyard/transport-testkit` checks:
 * - **publish** is idempotent by envelope `id`: re-publishing an id that was already accepted is a
 *   no-op, counted as a duplicate. One call is one atomic batch where the store has transactions
 *   (memory, SQLite); NATS stores each envelope on its own, so a failed call may have stored part
 *   of the batch, and publishing it again is safe (the testkit's `publishBatch` feature).
 * - **fan-out**: every distinct `subscriber` name gets every matching event once (at least once);
 *   subscriptions sharing a name share the work (competing consumers).
 * - **ordering**: per subscriber, deliveries start in publish order (memory, SQLite: across its
 *   event types; NATS: within each event type only, one consumer per type); a retry may overtake
 *   (the testkit's `ordering` feature).
 * - **outcome**: the handler returning acks the delivery; throwing schedules a retry after a
 *   backoff; throwing `UnrecoverableError`, or failing `maxAttempts` times, hands the delivery to
 *   the dead-letter sink (before it is removed) — nothing is dropped silently.
 * - **lease**: a delivery is leased to one worker from claim time for `leaseMs`; a worker that
 *   dies stops renewing, the lease expires and the delivery is redelivered (attempt + 1). A worker
 *   whose lease expired cannot ack or fail it any more (fencing): its outcome is discarded.
 * - **close** stops claiming, waits for in-flight handlers (their signal is aborted after the
 *   drain timeout, and their deliveries are handed back — a hand-back is not an attempt and does
 *   not count toward `maxAttempts`), and is idempotent.
 */
export interface Transport {
  /** Short name for logs and stats, e.g. `"sqlite"`, `"nats"`, `"memory"`. */
  readonly name: string;
  /**
   * Append envelopes durably. Resolves once they are durable. One call is one atomic batch on
   * transports with transactions (memory, SQLite), per envelope on NATS (see above). Rejects with
   * `TransportClosedError` after `close()`, and with the signal's reason when `signal` is aborted
   * already, having stored nothing.
   */
  publish(
    envelopes: readonly Envelope[],
    options?: { signal?: AbortSignal },
  ): Promise<PublishResult>;
  /**
   * Start delivering the given event types to `subscriber`. Resolves once the subscription is
   * active. Rejects, registering nothing, with the transport's options error (naming the option,
   * as `subscribeOptionsProblem` finds it) for options no transport can work with, and with
   * `TransportClosedError` after `close()`.
   */
  subscribe(options: TransportSubscribeOptions): Promise<TransportSubscription>;
  /** Backlog and in-flight counts per subscriber. */
  stats(): Promise<TransportStats>;
  /**
   * Deliver an envelope again to one registered subscriber only, keeping its id (dead-letter
   * replay; the publish-side idempotency does not apply). Rejects with `UnknownSubscriptionError`
   * when no such subscriber is registered for that event type. Optional: transports without it
   * cannot be replay targets.
   *
   * A requeue never takes over a live lease: a delivery of the envelope being handled right now
   * keeps its lease and its outcome. If that attempt succeeds, it counts as the requeued run (the
   * event runs once); if it fails, the delivery is due again with fresh attempts instead of being
   * dead-lettered.
   */
  requeue?(subscriber: string, envelope: Envelope): Promise<void>;
  /**
   * Register `subscriber` for `types` without consuming, as `subscribe` registers it: every
   * matching event published from now on is kept for it (across restarts) until a subscription
   * with that name takes it. Idempotent; extends the types of a subscriber already registered.
   * Optional: the router's `declareSubscriber` needs it.
   */
  register?(subscriber: string, types: readonly string[]): Promise<void>;
  /**
   * Whether any (non-ephemeral or live ephemeral) subscriber is registered for `type`: false means
   * an event of that type published now is stored for nobody. Optional: the router uses it to
   * warn once per type about events published before any subscriber registered.
   */
  hasSubscribers?(type: string): Promise<boolean>;
  /** Stop all subscriptions (draining in-flight work) and release resources. Idempotent. */
  close(): Promise<void>;
}

/** Outcome of {@link Transport.publish}. */
export interface PublishResult {
  /** Envelopes newly stored. */
  readonly published: number;
  /** Envelopes whose id was already stored (idempotent re-publish). */
  readonly duplicates: number;
}

/** What a transport handler receives. */
export interface Delivery {
  readonly envelope: Envelope;
  /** 1 for the first delivery, 2 for the first retry or redelivery, and so on. */
  readonly attempt: number;
  /** The subscriber this delivery belongs to. */
  readonly subscriber: string;
  /** Aborted when the lease is lost or the transport closes: stop work, your outcome won't count. */
  readonly signal: AbortSignal;
  /**
   * Extend the lease by `ms` from now (default: the subscription's `leaseMs`). Rejects with
   * `LeaseLostError` when the lease already expired and someone else holds the delivery.
   */
  extendLease(ms?: number): Promise<void>;
}

/** Options of {@link Transport.subscribe}. */
export interface TransportSubscribeOptions {
  /** Stable subscriber name: its delivery state persists across restarts and is shared by its processes. */
  readonly subscriber: string;
  /** Exact event types to deliver. */
  readonly types: readonly string[];
  /** Handles one delivery. Return to ack; throw to retry; throw `UnrecoverableError` to dead-letter. */
  readonly handler: (delivery: Delivery) => Promise<void>;
  /** Deliveries handled at once by this subscription. @defaultValue 1 */
  readonly concurrency?: number;
  /** Lease length from claim time. @defaultValue 30_000 */
  readonly leaseMs?: number;
  /** Attempts before a delivery is dead-lettered. @defaultValue 5 */
  readonly maxAttempts?: number;
  /** Delay between attempts. @defaultValue {@link defaultBackoff} */
  readonly backoff?: BackoffOptions;
  /** Where exhausted and unrecoverable deliveries go. @defaultValue the transport's own sink, if any */
  readonly deadLetter?: DeadLetterSink;
  /**
   * A throwaway subscriber: receives only events published after it subscribed, and its state is
   * removed when it closes (used by `router.waitFor` and `router.events`). @defaultValue false
   */
  readonly ephemeral?: boolean;
  /** Aborting closes the subscription. */
  readonly signal?: AbortSignal;
}

/** A running transport subscription. `close()` drains in-flight deliveries and is idempotent. */
export interface TransportSubscription extends AsyncDisposable {
  readonly subscriber: string;
  close(): Promise<void>;
}

/** Backlog per subscriber, as reported by {@link Transport.stats}. */
export interface TransportStats {
  readonly transport: string;
  readonly subscribers: readonly SubscriberStats[];
}

/** One subscriber's backlog. */
export interface SubscriberStats {
  readonly subscriber: string;
  /** Deliveries waiting to be claimed (including those waiting for a retry). */
  readonly pending: number;
  /** Deliveries currently leased to a worker. */
  readonly inFlight: number;
  /** Events behind the newest published event (pending + in flight). */
  readonly lag: number;
  /** Deliveries handed to the dead-letter sink so far. */
  readonly deadLettered: number;
  /** Age in ms of the oldest pending delivery, if any. */
  readonly oldestPendingMs?: number;
}

/** Why a delivery was dead-lettered. */
export type DeadLetterReason = "max_attempts" | "unrecoverable" | "invalid_payload" | "timeout";

/** Everything needed to inspect and replay a failed delivery. */
export interface DeadLetterRecord {
  /** The original envelope: id, trace context and payload intact. */
  readonly envelope: Envelope;
  /** The subscriber (or in-process subscription) that failed it. */
  readonly subscriber: string;
  readonly reason: DeadLetterReason;
  /** Attempts made, the last one included. */
  readonly attempts: number;
  /** The last error. */
  readonly error: SerializedError;
  /** When the last attempt failed (RFC 3339). */
  readonly failedAt: string;
  /** Where it failed: `"router"` for in-process handlers, else the transport name. */
  readonly origin: string;
}

/**
 * Where failed deliveries go. Implemented by `@switchyard/dlq`'s store; the router's `deadLetter`
 * middleware and every transport write to it. Must be durable by the time the promise resolves.
 */
export interface DeadLetterSink {
  deadLetter(record: DeadLetterRecord): Promise<void> | void;
}
