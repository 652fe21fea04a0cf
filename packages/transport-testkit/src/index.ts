export { runTransportSuite, testEnvelope, collectingSink } from "./suite";
export type { TransportHarness, TransportSuiteOptions } from "./harness";
export type { FeatureSetting, TransportFeature, TransportFeatures } from "./features";
