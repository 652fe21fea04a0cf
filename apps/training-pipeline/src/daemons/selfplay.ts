import { join } from "node:path";
import type { PipelineCatalog } from "@switchyard/event-schema";
import type { Router } from "@switchyard/router";
import type { PipelineSettings } from "../settings";
import { generationOf, work, writeArtifact } from "../simulation";
import { type PipelineEvent, StageDaemon } from "./stage";

/**
 * Self-play: starts one generation per config at a time (SELFPLAY_COMPLETE, NEW_GAMES_AVAILABLE)
 * and the next once the previous one ended (distributed, or rejected as a regression). Injects one
 * poison event at the start when asked to.
 */
export class SelfplayDaemon extends StageDaemon {
  readonly #generation = new Map<string, number>();
  /** The generation each config has in flight, until its outcome (distributed or rejected) comes. */
  readonly #inFlight = new Map<string, number>();
  #poisoned = false;

  constructor(router: Router<PipelineCatalog>, settings: PipelineSettings) {
    super("selfplay", router, settings, {
      publishes: ["NEW_GAMES_AVAILABLE", "SELFPLAY_COMPLETE"],
      cycleIntervalMs: 100,
    });
  }

  protected override subscriptions() {
    return this.on({
      MODEL_DISTRIBUTION_COMPLETE: this.onGenerationEnded,
      REGRESSION_DETECTED: this.onGenerationEnded,
    });
  }

  protected override async runCycle(signal: AbortSignal): Promise<void> {
    for (const config_key of this.settings.configs) {
      const done = this.#generation.get(config_key) ?? 0;
      if (this.#inFlight.has(config_key) || done >= this.settings.generations) continue;
      const generation = done + 1;
      this.#inFlight.set(config_key, generation);
      await work(this.settings.workMs, this.rng, signal);
      const games = 150 + Math.floor(this.rng() * 100);
      const db_path = writeArtifact(
        join(this.settings.dataDir, "selfplay", config_key, `gen-${generation}.json`),
        { games },
      );
      const quality_score = Math.round((0.35 + this.rng() * 0.65) * 100) / 100;
      await this.emit("SELFPLAY_COMPLETE", {
        config_key,
        games_generated: games,
        quality_score,
        db_path,
        generation,
      });
      await this.emit("NEW_GAMES_AVAILABLE", { config_key, new_games: games, db_path, generation });
      if (this.settings.poison && !this.#poisoned) {
        this.#poisoned = true;
        // A corrupt games database: data sync cannot read it, whatever it retries.
        await this.emit("NEW_GAMES_AVAILABLE", {
          config_key,
          new_games: 0,
          db_path: join(this.settings.dataDir, "selfplay", config_key, "corrupt.db"),
          poison: true,
        });
      }
    }
  }

  private onGenerationEnded = (
    event: PipelineEvent["MODEL_DISTRIBUTION_COMPLETE" | "REGRESSION_DETECTED"],
  ): void => {
    if (this.isDuplicateEvent(event, { keyFields: ["config_key", "generation"] })) return;
    const { config_key } = event.data;
    const generation = generationOf(event.data);
    // A second outcome of an earlier generation (a redelivered evaluation judged again, a replayed
    // dead letter) does not end the one in flight: that would start it a second time.
    const running = this.#inFlight.get(config_key);
    if (running !== undefined && generation < running) return;
    if (generation > (this.#generation.get(config_key) ?? 0))
      this.#generation.set(config_key, generation);
    this.#inFlight.delete(config_key);
  };
}
