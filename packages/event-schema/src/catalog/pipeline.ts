import { z } from "zod";
import { defineCatalog, defineEvent } from "../define";

// Payload field names are a wire contract read by other languages: snake_case, verbatim from the
// original system. Every payload is a loose object: unknown fields pass through untouched.

const configKey = z.string().min(1).describe('Board type and player count, e.g. "hex8_2p"');
const modelPath = z.string().min(1).describe("Path of the model checkpoint");
const count = z.number().int().nonnegative();
const seconds = z.number().nonnegative();
const ONE_HOUR = 3_600_000;

/** Training finished for a config. */
export const TrainingCompleted = defineEvent({
  type: "TRAINING_COMPLETED",
  description: "Training finished and wrote a model checkpoint",
  durable: true,
  severity: "critical",
  data: z.looseObject({
    config_key: configKey,
    model_path: modelPath,
    loss: z.number(),
    epochs: count.optional(),
    samples: count.optional(),
    val_loss: z.number().optional(),
    duration_seconds: seconds.optional(),
  }),
});

/** A model was evaluated against the current baseline. */
export const EvaluationCompleted = defineEvent({
  type: "EVALUATION_COMPLETED",
  description: "Model evaluation finished with an Elo estimate",
  durable: true,
  severity: "critical",
  data: z.looseObject({
    config_key: configKey,
    model_path: modelPath,
    elo: z.number(),
    games_played: count,
    win_rate: z.number().min(0).max(1).optional(),
    opponent: z.string().optional(),
    duration_seconds: seconds.optional(),
  }),
});

/** A model became the production model for its config. */
export const ModelPromoted = defineEvent({
  type: "MODEL_PROMOTED",
  description: "A model was promoted to production",
  durable: true,
  severity: "critical",
  data: z.looseObject({
    config_key: configKey,
    model_path: modelPath,
    elo: z.number(),
    previous_elo: z.number().optional(),
    previous_model_path: z.string().optional(),
  }),
});

/** Game data was copied between hosts or stores. */
export const DataSyncCompleted = defineEvent({
  type: "DATA_SYNC_COMPLETED",
  description: "A data sync finished",
  durable: true,
  severity: "critical",
  data: z.looseObject({
    source: z.string().min(1),
    target: z.string().min(1),
    files_synced: count,
    config_key: configKey.optional(),
    bytes_synced: count.optional(),
    duration_seconds: seconds.optional(),
  }),
});

/** An evaluated model is worse than the production model. */
export const RegressionDetected = defineEvent({
  type: "REGRESSION_DETECTED",
  description: "An Elo regression was found for a candidate model",
  durable: true,
  severity: "critical",
  data: z.looseObject({
    config_key: configKey,
    model_path: modelPath,
    elo_drop: z.number(),
    current_elo: z.number().optional(),
    previous_elo: z.number().optional(),
    threshold: z.number().optional(),
  }),
});

/** A regression beyond the critical threshold. */
export const RegressionCritical = defineEvent({
  type: "REGRESSION_CRITICAL",
  description: "An Elo regression beyond the critical threshold",
  durable: true,
  severity: "critical",
  alert: { kind: "any" },
  data: z.looseObject({
    config_key: configKey,
    model_path: modelPath,
    elo_drop: z.number(),
    current_elo: z.number().optional(),
    previous_elo: z.number().optional(),
    threshold: z.number().optional(),
  }),
});

/** A self-play batch finished. */
export const SelfplayComplete = defineEvent({
  type: "SELFPLAY_COMPLETE",
  description: "A self-play batch finished",
  durable: true,
  severity: "informational",
  data: z.looseObject({
    config_key: configKey,
    games_generated: count.optional(),
    quality_score: z.number().min(0).max(1).optional(),
    duration_seconds: seconds.optional(),
    db_path: z.string().optional(),
  }),
});

/** New games were written to a games database; triggers the pipeline. */
export const NewGamesAvailable = defineEvent({
  type: "NEW_GAMES_AVAILABLE",
  description: "New games are available in a games database",
  durable: true,
  severity: "informational",
  data: z.looseObject({
    config_key: configKey,
    new_games: count.optional(),
    total_games: count.optional(),
    db_path: z.string().optional(),
  }),
});

/** Training data was exported to an NPZ file. */
export const NpzExportComplete = defineEvent({
  type: "NPZ_EXPORT_COMPLETE",
  description: "Training samples were exported to an NPZ file",
  durable: true,
  severity: "informational",
  data: z.looseObject({
    config_key: configKey,
    npz_path: z.string().min(1),
    samples_exported: count.optional(),
    games_exported: count.optional(),
  }),
});

/** A promoted model reached every host that serves it. */
export const ModelDistributionComplete = defineEvent({
  type: "MODEL_DISTRIBUTION_COMPLETE",
  description: "A promoted model was distributed to its hosts",
  durable: true,
  severity: "informational",
  data: z.looseObject({
    config_key: configKey,
    model_path: modelPath,
    hosts: z.array(z.string()).optional(),
    hosts_updated: count.optional(),
  }),
});

/** No Elo improvement for too long. */
export const ProgressStallDetected = defineEvent({
  type: "PROGRESS_STALL_DETECTED",
  description: "No Elo improvement for a config over the stall window",
  durable: true,
  severity: "informational",
  data: z.looseObject({
    config_key: configKey,
    stalled_for_seconds: seconds.optional(),
    generations_without_improvement: count.optional(),
    best_elo: z.number().optional(),
    current_elo: z.number().optional(),
  }),
});

/** Self-play data quality dropped below the threshold. */
export const QualityAlert = defineEvent({
  type: "QUALITY_ALERT",
  description: "Self-play data quality is below the threshold",
  durable: true,
  severity: "informational",
  data: z.looseObject({
    config_key: configKey,
    quality_score: z.number(),
    timestamp: z.number().describe("Unix time in seconds"),
    threshold: z.number().optional(),
  }),
});

/** The daemon manager gave up restarting a daemon. */
export const DaemonPermanentlyFailed = defineEvent({
  type: "DAEMON_PERMANENTLY_FAILED",
  description: "A daemon crashed too often and will not be restarted",
  durable: true,
  severity: "critical",
  alert: { kind: "any" },
  data: z.looseObject({
    daemon_name: z.string().min(1),
    restart_attempts: count,
    error: z.string(),
    host: z.string().optional(),
    pid: z.number().int().optional(),
  }),
});

/** More than one node believes it is the leader. */
export const SplitBrainDetected = defineEvent({
  type: "SPLIT_BRAIN_DETECTED",
  description: "Multiple nodes claim leadership at once",
  durable: true,
  severity: "critical",
  alert: { kind: "any" },
  data: z.looseObject({
    leaders: z.array(z.string()).min(2),
    detected_by: z.string().optional(),
    term: z.number().int().optional(),
  }),
});

/** A data sync failed. */
export const DataSyncFailed = defineEvent({
  type: "DATA_SYNC_FAILED",
  description: "A data sync failed",
  durable: true,
  severity: "critical",
  alert: { kind: "rate", moreThan: 3, withinMs: ONE_HOUR },
  data: z.looseObject({
    source: z.string().min(1),
    target: z.string().min(1),
    error: z.string(),
    config_key: configKey.optional(),
    attempt: count.optional(),
  }),
});

/** Training crashed. */
export const TrainingFailed = defineEvent({
  type: "TRAINING_FAILED",
  description: "Training crashed or was aborted",
  durable: true,
  severity: "critical",
  alert: { kind: "any" },
  data: z.looseObject({
    config_key: configKey,
    error: z.string(),
    model_path: z.string().optional(),
    epoch: count.optional(),
  }),
});

/** The dead-letter retry daemon gave up on a dead letter. */
export const DlqPermanentlyFailed = defineEvent({
  type: "DLQ_PERMANENTLY_FAILED",
  description: "A dead letter failed every replay and was given up",
  durable: true,
  severity: "critical",
  alert: { kind: "any" },
  data: z.looseObject({
    /** The store's id of the record: a number in `SqliteDeadLetterStore`, a string in the NATS store. */
    dead_letter_id: z.union([z.number().int(), z.string().min(1)]),
    event_id: z.string().min(1),
    event_type: z.string().min(1),
    subscriber: z.string().min(1),
    replays: count,
    error: z.string(),
  }),
});

/** The dead-letter queue holds more records than its alert threshold. */
export const DlqDepthExceeded = defineEvent({
  type: "DLQ_DEPTH_EXCEEDED",
  description: "The dead-letter queue is deeper than its alert threshold",
  durable: true,
  severity: "critical",
  alert: { kind: "any" },
  data: z.looseObject({
    depth: count,
    threshold: count,
    by_type: z.record(z.string(), count).optional(),
  }),
});

/**
 * The training pipeline's event catalog: every event of the self-play → sync → export → train →
 * evaluate → promote → distribute pipeline, with its payload contract, severity and alert rule,
 * and the `training` pipeline: the stages every generation flows through for one `config_key`.
 * All of them are durable (they cross daemon processes).
 */
export const pipelineCatalog = defineCatalog(
  [
    NewGamesAvailable,
    SelfplayComplete,
    DataSyncCompleted,
    DataSyncFailed,
    NpzExportComplete,
    TrainingCompleted,
    TrainingFailed,
    EvaluationCompleted,
    ModelPromoted,
    RegressionDetected,
    RegressionCritical,
    ModelDistributionComplete,
    ProgressStallDetected,
    QualityAlert,
    DaemonPermanentlyFailed,
    SplitBrainDetected,
    DlqPermanentlyFailed,
    DlqDepthExceeded,
  ],
  {
    pipelines: [
      {
        name: "training",
        key: "config_key",
        description:
          "One generation of a config: new games are synced, exported, trained on, evaluated, promoted and distributed",
        stages: [
          "NEW_GAMES_AVAILABLE",
          "DATA_SYNC_COMPLETED",
          "NPZ_EXPORT_COMPLETE",
          "TRAINING_COMPLETED",
          "EVALUATION_COMPLETED",
          "MODEL_PROMOTED",
          "MODEL_DISTRIBUTION_COMPLETE",
        ],
      },
    ],
  },
);

/** The type of {@link pipelineCatalog}. */
export type PipelineCatalog = typeof pipelineCatalog;

/**
 * The stages of the catalog's `training` pipeline, in order (`pipelineCatalog.pipeline("training")`):
 * what `switchyard pipeline verify` checks by default.
 */
export const pipelineStages = pipelineCatalog.pipeline("training")!.stages;
