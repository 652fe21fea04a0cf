// Every daemon of the pipeline, by process name, with the event types it consumes (the supervisor
// registers those durable subscribers before anything is published, so no event is missed).
import type { EventType, PipelineCatalog } from "@switchyard/event-schema";
import type { HandlerBase } from "@switchyard/handler-base";
import type { Router } from "@switchyard/router";
import type { PipelineSettings } from "../settings";
import { DataSyncDaemon } from "./data-sync";
import { DistributionDaemon } from "./distribution";
import { EvaluationDaemon } from "./evaluation";
import { NpzExportDaemon } from "./npz-export";
import { ProgressWatcherDaemon } from "./progress-watcher";
import { PromotionDaemon } from "./promotion";
import { QualityMonitorDaemon } from "./quality-monitor";
import { SelfplayDaemon } from "./selfplay";
import { TrainingDaemon } from "./training";

export interface DaemonSpec {
  readonly create: (
    router: Router<PipelineCatalog>,
    settings: PipelineSettings,
  ) => HandlerBase<PipelineCatalog>;
  readonly consumes: readonly EventType<PipelineCatalog>[];
}

export const pipelineDaemons = {
  selfplay: {
    create: (r, s) => new SelfplayDaemon(r, s),
    consumes: ["MODEL_DISTRIBUTION_COMPLETE", "REGRESSION_DETECTED"],
  },
  data_sync: { create: (r, s) => new DataSyncDaemon(r, s), consumes: ["NEW_GAMES_AVAILABLE"] },
  npz_export: { create: (r, s) => new NpzExportDaemon(r, s), consumes: ["DATA_SYNC_COMPLETED"] },
  training: { create: (r, s) => new TrainingDaemon(r, s), consumes: ["NPZ_EXPORT_COMPLETE"] },
  evaluation: { create: (r, s) => new EvaluationDaemon(r, s), consumes: ["TRAINING_COMPLETED"] },
  promotion: { create: (r, s) => new PromotionDaemon(r, s), consumes: ["EVALUATION_COMPLETED"] },
  distribution: { create: (r, s) => new DistributionDaemon(r, s), consumes: ["MODEL_PROMOTED"] },
  quality_monitor: {
    create: (r, s) => new QualityMonitorDaemon(r, s),
    consumes: ["SELFPLAY_COMPLETE"],
  },
  progress_watcher: {
    create: (r, s) => new ProgressWatcherDaemon(r, s),
    consumes: ["MODEL_PROMOTED", "REGRESSION_DETECTED"],
  },
} satisfies Record<string, DaemonSpec>;

export type PipelineDaemonName = keyof typeof pipelineDaemons | "dlq_retry";
