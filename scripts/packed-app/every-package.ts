// Every published package imported from one file, so that type-checking this app reads every
// package's .d.ts (with lib checks on), not only those the two daemons use. Never run.
import * as cli from "@switchyard/cli";
import * as crossProcessQueue from "@switchyard/cross-process-queue";
import * as dashboard from "@switchyard/dashboard";
import * as dlq from "@switchyard/dlq";
import * as eventSchema from "@switchyard/event-schema";
import * as eventUtils from "@switchyard/event-utils";
import * as handlerBase from "@switchyard/handler-base";
import * as metrics from "@switchyard/metrics";
import * as router from "@switchyard/router";
import * as transport from "@switchyard/transport";
import * as transportNats from "@switchyard/transport-nats";
import * as transportTestkit from "@switchyard/transport-testkit";

/** One value from each package, typed from its declarations. */
export const everyPackage = {
  cli: cli.createProgram,
  crossProcessQueue: crossProcessQueue.sqliteTransport,
  dashboard: dashboard.CONTENT_SECURITY_POLICY,
  dlq: dlq.SqliteDeadLetterStore,
  eventSchema: eventSchema.defineCatalog,
  eventUtils: eventUtils.getEventId,
  handlerBase: handlerBase.HandlerBase,
  metrics: metrics.createMetrics,
  router: router.createRouter,
  transport: transport,
  transportNats: transportNats.NatsDeadLetterStore,
  transportTestkit: transportTestkit.runTransportSuite,
};
