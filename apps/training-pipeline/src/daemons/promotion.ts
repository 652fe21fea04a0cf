import type { PipelineCatalog } from "@switchyard/event-schema";
import { extractEvaluationData } from "@switchyard/event-utils";
import type { HandlerContext, Router } from "@switchyard/router";
import type { PipelineSettings } from "../settings";
import { generationOf } from "../simulation";
import { type PipelineEvent, StageDaemon } from "./stage";

/** Elo drop beyond which a regression is critical. */
const CRITICAL_DROP = 50;

/** Promotion: promotes a better model (MODEL_PROMOTED), rejects a worse one (REGRESSION_DETECTED / _CRITICAL). */
export class PromotionDaemon extends StageDaemon {
  readonly #best = new Map<string, number>();

  constructor(router: Router<PipelineCatalog>, settings: PipelineSettings) {
    super("promotion", router, settings, {
      publishes: ["MODEL_PROMOTED", "REGRESSION_CRITICAL", "REGRESSION_DETECTED"],
    });
  }

  protected override subscriptions() {
    return this.on({ EVALUATION_COMPLETED: this.onEvaluated });
  }

  private onEvaluated = async (
    event: PipelineEvent["EVALUATION_COMPLETED"],
    _ctx: HandlerContext<PipelineCatalog>,
  ): Promise<void> => {
    if (this.isDuplicateEvent(event)) return;
    const evaluation = extractEvaluationData(event);
    if (!evaluation.isValid) return;
    const { configKey: config_key, modelPath: model_path, elo } = evaluation;
    const generation = generationOf(event.data);
    const best = this.#best.get(config_key);
    if (best === undefined || elo >= best) {
      this.#best.set(config_key, elo);
      await this.emit(
        "MODEL_PROMOTED",
        {
          config_key,
          model_path,
          elo,
          ...(best !== undefined ? { previous_elo: best } : {}),
          generation,
        },
        { causedBy: event },
      );
      return;
    }
    const elo_drop = best - elo;
    const regression = {
      config_key,
      model_path,
      elo_drop,
      current_elo: elo,
      previous_elo: best,
      threshold: CRITICAL_DROP,
      generation,
    };
    if (elo_drop > CRITICAL_DROP)
      await this.emit("REGRESSION_CRITICAL", regression, { causedBy: event });
    await this.emit("REGRESSION_DETECTED", regression, { causedBy: event });
  };
}
