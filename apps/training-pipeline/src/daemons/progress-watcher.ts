import type { PipelineCatalog } from "@switchyard/event-schema";
import type { Router } from "@switchyard/router";
import type { PipelineSettings } from "../settings";
import { type PipelineEvent, StageDaemon } from "./stage";

/** Generations in a row without a promotion that count as a stall. */
const STALL_AFTER = 2;

/** Progress watcher: PROGRESS_STALL_DETECTED when a config keeps failing to improve. */
export class ProgressWatcherDaemon extends StageDaemon {
  readonly #withoutImprovement = new Map<string, number>();
  readonly #bestElo = new Map<string, number>();
  readonly #reported = new Set<string>();

  constructor(router: Router<PipelineCatalog>, settings: PipelineSettings) {
    super("progress_watcher", router, settings, {
      publishes: ["PROGRESS_STALL_DETECTED"],
      cycleIntervalMs: 250,
    });
  }

  protected override subscriptions() {
    return this.on({ MODEL_PROMOTED: this.onPromoted, REGRESSION_DETECTED: this.onRegression });
  }

  protected override async runCycle(): Promise<void> {
    for (const [config_key, count] of this.#withoutImprovement) {
      if (count < STALL_AFTER || this.#reported.has(config_key)) continue;
      this.#reported.add(config_key);
      const best = this.#bestElo.get(config_key);
      await this.emit("PROGRESS_STALL_DETECTED", {
        config_key,
        generations_without_improvement: count,
        ...(best !== undefined ? { best_elo: best } : {}),
      });
    }
  }

  private onPromoted = (event: PipelineEvent["MODEL_PROMOTED"]): void => {
    if (this.isDuplicateEvent(event)) return;
    this.#withoutImprovement.set(event.data.config_key, 0);
    this.#bestElo.set(event.data.config_key, event.data.elo);
    this.#reported.delete(event.data.config_key);
  };

  private onRegression = (event: PipelineEvent["REGRESSION_DETECTED"]): void => {
    if (this.isDuplicateEvent(event)) return;
    const key = event.data.config_key;
    this.#withoutImprovement.set(key, (this.#withoutImprovement.get(key) ?? 0) + 1);
  };
}
