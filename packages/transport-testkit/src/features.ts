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
  | "handBack";

/** `true` to run a feature's tests, `{ skip: "why" }` to skip them with a stated reason. */
export type FeatureSetting = true | { readonly skip: string };

/** Which features a transport claims. Every skip must say why. */
export type TransportFeatures = Partial<Record<TransportFeature, FeatureSetting>>;

/** Features that need the harness to support them; skipped (with this reason) unless enabled. */
export const optInFeatures: Partial<Record<TransportFeature, string>> = {
  reconnect: "the harness has no disrupt(): it cannot break and restore the connection",
};
