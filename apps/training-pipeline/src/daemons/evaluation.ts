import type { PipelineCatalog } from "@switchyard/event-schema";
import { extractTrainingData } from "@switchyard/event-utils";
import type { HandlerContext, Router } from "@switchyard/router";
import type { PipelineSettings } from "../settings";
import { generationOf, maybeFail, work } from "../simulation";
import { type PipelineEvent, StageDaemon } from "./stage";

/** Evaluation: plays the new model against the baseline; the Elo drifts up with noise. */
export class EvaluationDaemon extends StageDaemon {
  constructor(router: Router<PipelineCatalog>, settings: PipelineSettings) {
    super("evaluation", router, settings, { publishes: ["EVALUATION_COMPLETED"] });
  }

  protected override subscriptions() {
    return this.on({ TRAINING_COMPLETED: this.onTrained });
  }

  private onTrained = async (
    event: PipelineEvent["TRAINING_COMPLETED"],
    ctx: HandlerContext<PipelineCatalog>,
  ): Promise<void> => {
    if (this.isDuplicateEvent(event)) return;
    const training = extractTrainingData(event);
    if (!training.isValid) return;
    const generation = generationOf(event.data);
    await work(this.settings.workMs, this.rng, ctx.signal);
    maybeFail(this.settings.failureRate, this.rng, `evaluation of ${training.configKey}`);
    const elo = Math.round(1500 + generation * 30 + (this.rng() - 0.35) * 80);
    const games_played = 200;
    await this.emit(
      "EVALUATION_COMPLETED",
      {
        config_key: training.configKey,
        model_path: training.modelPath,
        elo,
        games_played,
        win_rate: Math.round((0.45 + this.rng() * 0.2) * 100) / 100,
        generation,
      },
      { causedBy: event },
    );
  };
}
