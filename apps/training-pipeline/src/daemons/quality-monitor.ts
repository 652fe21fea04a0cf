import type { PipelineCatalog } from "@switchyard/event-schema";
import { extractConfigKey, normalizeEventPayload } from "@switchyard/event-utils";
import type { HealthCheckResult, Router } from "@switchyard/router";
import type { PipelineSettings } from "../settings";
import { type PipelineEvent, StageDaemon } from "./stage";

const THRESHOLD = 0.5;

/** The quality monitor of the daemon guide: QUALITY_ALERT when a config's self-play quality drops. */
export class QualityMonitorDaemon extends StageDaemon {
  readonly #scores = new Map<string, number>();
  readonly #alerted = new Set<string>();

  constructor(router: Router<PipelineCatalog>, settings: PipelineSettings) {
    super("quality_monitor", router, settings, {
      publishes: ["QUALITY_ALERT"],
      cycleIntervalMs: 250,
    });
  }

  protected override subscriptions() {
    return this.on({ SELFPLAY_COMPLETE: this.onSelfplayComplete });
  }

  protected override async runCycle(): Promise<void> {
    for (const [config_key, quality_score] of this.#scores) {
      if (quality_score >= THRESHOLD) {
        this.#alerted.delete(config_key);
        continue;
      }
      if (this.#alerted.has(config_key)) continue;
      this.#alerted.add(config_key);
      await this.emit("QUALITY_ALERT", {
        config_key,
        quality_score,
        threshold: THRESHOLD,
        timestamp: Date.now() / 1000,
      });
    }
  }

  private onSelfplayComplete = (event: PipelineEvent["SELFPLAY_COMPLETE"]): void => {
    if (this.isDuplicateEvent(event)) return;
    const configKey = extractConfigKey(normalizeEventPayload(event));
    if (!configKey) return;
    this.#scores.set(configKey, event.data.quality_score ?? 1);
  };

  override health(): HealthCheckResult {
    const base = super.health();
    return {
      ...base,
      details: {
        ...base.details,
        configs_monitored: this.#scores.size,
        low_quality_configs: [...this.#alerted],
      },
    };
  }
}
