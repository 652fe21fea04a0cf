export { runTransportSuite, testEnvelope, collectingSink } from "./suite";
export { runInspectorSuite } from "./inspector-suite";
export type {
  InspectorHarness,
  InspectorSuiteOptions,
  TransportHarness,
  TransportSuiteOptions,
} from "./harness";
export type {
  FeatureSetting,
  InspectorFeature,
  InspectorFeatures,
  OrderingGuarantee,
  PublishAtomicity,
  TransportFeature,
  TransportFeatures,
} from "./features";
