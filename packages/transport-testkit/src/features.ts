/** The capabilities the suite checks, each on by default. */
export type TransportFeature =
  | "fanOut"
  | "competingConsumers"
  | "ordering"
  | "retry"
  | "leaseExpiry"
  | "fencing"
  | "idempotentPublish"
  | "deadLetter"
  | "drainOnClose"
  | "persistent"
  | "ephemeral"
  | "reconnect"
  | "handBack"
  | "requeue"
  | "requeueDuringLease"
  | "signal";

/** `true` to run a feature's tests, `{ skip: "why" }` to skip them with a stated reason. */
export type FeatureSetting = true | { readonly skip: string };

/**
 * The order in which a subscriber's deliveries start, at concurrency 1 (a retry may overtake).
 * Like Watermill's `GuaranteedOrder` vs `GuaranteedOrderWithSingleSubscriber`, the setting changes
 * what the suite expects, not only whether it runs:
 * - `"perSubscriber"`: in publish order across every type the subscriber takes (one queue per
 *   subscriber: memory, SQLite). The suite checks the whole interleaved sequence.
 * - `"perSubscriberAndType"`: in publish order within each event type only; events of different
 *   types may start in any order relative to each other (one consumer per type: NATS). The suite
 *   checks each type's sequence and never the order across types.
 *
 * `true` means `"perSubscriber"`.
 */
export type OrderingGuarantee = "perSubscriber" | "perSubscriberAndType";

/**
 * What one `publish(envelopes)` call promises about its batch:
 * - `"atomic"`: all or nothing. An envelope that cannot be stored rejects the call with nothing of
 *   the batch stored, and a subscriber never sees part of a batch before the rest is stored
 *   (memory, SQLite: one transaction).
 * - `"perMessage"`: each envelope is stored on its own. A failed call may have stored part of the
 *   batch; publishing the whole batch again is safe, because the stored ids come back as
 *   duplicates (NATS: no multi-message transaction). The suite checks that recovery only.
 */
export type PublishAtomicity = "atomic" | "perMessage";

/** Which features a transport claims. Every skip must say why. */
export type TransportFeatures = Partial<
  Record<Exclude<TransportFeature, "ordering">, FeatureSetting>
> & {
  /** @defaultValue "perSubscriber" */
  readonly ordering?: OrderingGuarantee | FeatureSetting;
  /** @defaultValue "atomic" */
  readonly publishBatch?: PublishAtomicity;
};

/** Features that need the harness to support them; skipped (with this reason) unless enabled. */
export const optInFeatures: Partial<Record<TransportFeature, string>> = {
  reconnect: "the harness has no disrupt(): it cannot break and restore the connection",
};

/** The parts of {@link runInspectorSuite}, each on by default. */
export type InspectorFeature =
  | "backlog"
  | "events"
  | "deliveries"
  | "causation"
  | "counts"
  | "heartbeats"
  | "deadLetters"
  | "admin";

/** Which parts of the inspector suite a driver runs. Every skip must say why. */
export type InspectorFeatures = Partial<Record<InspectorFeature, FeatureSetting>>;
