import { join } from "node:path";
import type { PipelineCatalog } from "@switchyard/event-schema";
import type { HandlerContext, Router } from "@switchyard/router";
import type { PipelineSettings } from "../settings";
import { configDir, generationOf, maybeFail, work, writeArtifact } from "../simulation";
import { type PipelineEvent, StageDaemon } from "./stage";

/** NPZ export: turns synced games into training samples (NPZ_EXPORT_COMPLETE). */
export class NpzExportDaemon extends StageDaemon {
  constructor(router: Router<PipelineCatalog>, settings: PipelineSettings) {
    super("npz_export", router, settings, { publishes: ["NPZ_EXPORT_COMPLETE"] });
  }

  protected override subscriptions() {
    return this.on({ DATA_SYNC_COMPLETED: this.onSynced });
  }

  private onSynced = async (
    event: PipelineEvent["DATA_SYNC_COMPLETED"],
    ctx: HandlerContext<PipelineCatalog>,
  ): Promise<void> => {
    if (this.isDuplicateEvent(event)) return;
    const { config_key } = event.data;
    if (!config_key) return;
    const dir = configDir(this.settings.dataDir, "npz", config_key);
    const generation = generationOf(event.data);
    await work(this.settings.workMs, this.rng, ctx.signal);
    maybeFail(this.settings.failureRate, this.rng, `export of ${config_key}`);
    const samples = 4000 + Math.floor(this.rng() * 2000);
    const npz_path = writeArtifact(join(dir, `gen-${generation}.npz.json`), { samples });
    await this.emit(
      "NPZ_EXPORT_COMPLETE",
      { config_key, npz_path, samples_exported: samples, generation },
      { causedBy: event },
    );
  };
}
