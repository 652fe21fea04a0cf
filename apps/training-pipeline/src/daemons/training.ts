import { join } from "node:path";
import type { PipelineCatalog } from "@switchyard/event-schema";
import type { HandlerContext, Router } from "@switchyard/router";
import type { PipelineSettings } from "../settings";
import { configDir, generationOf, maybeFail, work, writeArtifact } from "../simulation";
import { type PipelineEvent, StageDaemon } from "./stage";

/** Training: trains on the exported samples (TRAINING_COMPLETED, or TRAINING_FAILED and a retry). */
export class TrainingDaemon extends StageDaemon {
  constructor(router: Router<PipelineCatalog>, settings: PipelineSettings) {
    super("training", router, settings, { publishes: ["TRAINING_COMPLETED", "TRAINING_FAILED"] });
  }

  protected override subscriptions() {
    return this.on({ NPZ_EXPORT_COMPLETE: this.onExported });
  }

  private onExported = async (
    event: PipelineEvent["NPZ_EXPORT_COMPLETE"],
    ctx: HandlerContext<PipelineCatalog>,
  ): Promise<void> => {
    if (this.isDuplicateEvent(event)) return;
    const { config_key } = event.data;
    const generation = generationOf(event.data);
    const model_path = join(
      configDir(this.settings.dataDir, "models", config_key),
      `gen-${generation}.pt.json`,
    );
    await work(this.settings.workMs * 2, this.rng, ctx.signal);
    try {
      maybeFail(this.settings.failureRate, this.rng, `training ${config_key}`);
    } catch (error) {
      await this.emit(
        "TRAINING_FAILED",
        { config_key, model_path, error: (error as Error).message, generation },
        { causedBy: event },
      );
      throw error;
    }
    const loss = Math.round((1.2 / (1 + generation) + this.rng() * 0.1) * 1000) / 1000;
    writeArtifact(model_path, { generation, loss });
    await this.emit(
      "TRAINING_COMPLETED",
      {
        config_key,
        model_path,
        loss,
        epochs: 10,
        samples: event.data.samples_exported,
        generation,
      },
      { causedBy: event },
    );
  };
}
