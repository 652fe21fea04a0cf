import type { PipelineCatalog } from "@switchyard/event-schema";
import type { HandlerContext, Router } from "@switchyard/router";
import type { PipelineSettings } from "../settings";
import { generationOf, maybeFail, work } from "../simulation";
import { type PipelineEvent, StageDaemon } from "./stage";

const HOSTS = ["gpu-node-1", "gpu-node-2", "edge-1"];

/** Distribution: ships a promoted model to its serving hosts (MODEL_DISTRIBUTION_COMPLETE). */
export class DistributionDaemon extends StageDaemon {
  constructor(router: Router<PipelineCatalog>, settings: PipelineSettings) {
    super("distribution", router, settings, { publishes: ["MODEL_DISTRIBUTION_COMPLETE"] });
  }

  protected override subscriptions() {
    return this.on({ MODEL_PROMOTED: this.onPromoted });
  }

  private onPromoted = async (
    event: PipelineEvent["MODEL_PROMOTED"],
    ctx: HandlerContext<PipelineCatalog>,
  ): Promise<void> => {
    if (this.isDuplicateEvent(event)) return;
    const generation = generationOf(event.data);
    await work(this.settings.workMs, this.rng, ctx.signal);
    maybeFail(this.settings.failureRate, this.rng, `distribution of ${event.data.config_key}`);
    await this.emit(
      "MODEL_DISTRIBUTION_COMPLETE",
      {
        config_key: event.data.config_key,
        model_path: event.data.model_path,
        hosts: HOSTS,
        hosts_updated: HOSTS.length,
        generation,
      },
      { causedBy: event },
    );
  };
}
