// The seed's QualityMonitorDaemon, written against this package: watches self-play data quality
// per config and raises QUALITY_ALERT when it drops below a threshold. Not exported; the tests use
// it as a realistic daemon.
import { type EventsOf, pipelineCatalog } from "@switchyard/event-schema";
import { extractConfigKey, normalizeEventPayload, parseConfigKey } from "@switchyard/event-utils";
import type { HandlerContext, HealthCheckResult, Logger, Router } from "@switchyard/router";
import { HandlerBase } from "../handler-base";

type Pipeline = typeof pipelineCatalog;
type PipelineEvent = EventsOf<Pipeline>;

/** What the quality monitor can be tuned with. */
export interface QualityMonitorConfig {
  /** A config whose latest quality score is below this is low quality. */
  readonly threshold: number;
  /** Health turns degraded when this many configs are low quality at once. */
  readonly maxLowQualityConfigs: number;
}

/** Constructor options; all optional so that `QualityMonitorDaemon.getInstance()` works. */
export interface QualityMonitorOptions {
  readonly router?: Router<Pipeline>;
  readonly logger?: Logger;
  /** @defaultValue 300_000 (5 minutes) */
  readonly cycleIntervalMs?: number;
  readonly config?: Partial<QualityMonitorConfig>;
}

/** Monitors self-play data quality and emits QUALITY_ALERT for configs below the threshold. */
export class QualityMonitorDaemon extends HandlerBase.for(pipelineCatalog)<QualityMonitorConfig> {
  readonly #qualityScores = new Map<string, number>();
  readonly #lowQualityConfigs = new Set<string>();

  constructor(options: QualityMonitorOptions = {}) {
    super({
      name: "quality_monitor",
      cycleIntervalMs: options.cycleIntervalMs ?? 300_000,
      router: options.router,
      logger: options.logger,
      config: { threshold: 0.5, maxLowQualityConfigs: 3, ...options.config },
    });
  }

  /** The latest quality score per config key. */
  get qualityScores(): ReadonlyMap<string, number> {
    return this.#qualityScores;
  }

  protected override subscriptions() {
    return this.on({
      SELFPLAY_COMPLETE: this.onSelfplayComplete,
      NEW_GAMES_AVAILABLE: this.onNewGames,
    });
  }

  protected override async runCycle(signal: AbortSignal): Promise<void> {
    const { threshold } = this.config;
    for (const [config_key, quality_score] of this.#qualityScores) {
      if (signal.aborted) return;
      if (quality_score >= threshold) {
        this.#lowQualityConfigs.delete(config_key);
        continue;
      }
      // Alert when a config turns low quality, not on every cycle while it stays low.
      if (this.#lowQualityConfigs.has(config_key)) continue;
      this.#lowQualityConfigs.add(config_key);
      await this.emit("QUALITY_ALERT", {
        config_key,
        quality_score,
        threshold,
        timestamp: Date.now() / 1000,
      });
    }
  }

  private onSelfplayComplete = (event: PipelineEvent["SELFPLAY_COMPLETE"]): void => {
    if (this.isDuplicateEvent(event)) return;
    const payload = normalizeEventPayload(event);
    const configKey = extractConfigKey(payload);
    if (!configKey) return;
    this.#qualityScores.set(configKey, event.data.quality_score ?? 1);
  };

  private onNewGames = (
    event: PipelineEvent["NEW_GAMES_AVAILABLE"],
    ctx: HandlerContext<Pipeline>,
  ): void => {
    if (this.isDuplicateEvent(event)) return;
    const parsed = parseConfigKey(extractConfigKey(event));
    if (!parsed) return;
    ctx.logger.info(
      {
        boardType: parsed.boardType,
        numPlayers: parsed.numPlayers,
        newGames: event.data.new_games,
      },
      `new games for ${parsed.boardType} ${parsed.numPlayers}p`,
    );
  };

  override health(): HealthCheckResult {
    const base = super.health();
    const low = [...this.#lowQualityConfigs];
    const details = {
      ...base.details,
      configs_monitored: this.#qualityScores.size,
      low_quality_configs: low,
    };
    if (low.length >= this.config.maxLowQualityConfigs) {
      return {
        healthy: false,
        status: base.status === "unhealthy" ? "unhealthy" : "degraded",
        message: `${low.length} configs have low-quality self-play data: ${low.join(", ")}`,
        details,
      };
    }
    return {
      ...base,
      message: base.healthy ? `Monitoring ${this.#qualityScores.size} configs` : base.message,
      details,
    };
  }
}

/**
 * The shared QualityMonitorDaemon, over the process-wide router (created over the pipeline
 * catalog if it does not exist yet).
 */
export function getQualityMonitor(): QualityMonitorDaemon {
  return QualityMonitorDaemon.getInstance();
}
