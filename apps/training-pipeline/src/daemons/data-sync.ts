import { copyFileSync, mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import type { PipelineCatalog } from "@switchyard/event-schema";
import { type HandlerContext, type Router, UnrecoverableError } from "@switchyard/router";
import type { PipelineSettings } from "../settings";
import {
  TransientFailure,
  configDir,
  generationOf,
  insideDataDir,
  maybeFail,
  work,
} from "../simulation";
import { type PipelineEvent, StageDaemon } from "./stage";

/** Data sync: copies new games to the training store (DATA_SYNC_COMPLETED, or DATA_SYNC_FAILED and a retry). */
export class DataSyncDaemon extends StageDaemon {
  constructor(router: Router<PipelineCatalog>, settings: PipelineSettings) {
    super("data_sync", router, settings, {
      publishes: ["DATA_SYNC_COMPLETED", "DATA_SYNC_FAILED"],
    });
  }

  protected override subscriptions() {
    return this.on({ NEW_GAMES_AVAILABLE: this.onNewGames });
  }

  private onNewGames = async (
    event: PipelineEvent["NEW_GAMES_AVAILABLE"],
    ctx: HandlerContext<PipelineCatalog>,
  ): Promise<void> => {
    const { config_key, db_path } = event.data;
    if ((event.data as { poison?: unknown }).poison) {
      throw new UnrecoverableError(`games database ${db_path} is corrupt: cannot read its header`);
    }
    // Paths from the payload: refused (dead-lettered) before any work when they point elsewhere.
    const target = configDir(this.settings.dataDir, "training-store", config_key);
    const games = db_path ? insideDataDir(this.settings.dataDir, db_path, "db_path") : undefined;
    const generation = generationOf(event.data);
    if (this.isDuplicateEvent(event)) return;
    await work(this.settings.workMs, this.rng, ctx.signal);
    try {
      maybeFail(this.settings.failureRate, this.rng, `sync of ${config_key}`);
    } catch (error) {
      await this.emit(
        "DATA_SYNC_FAILED",
        {
          source: "selfplay-host",
          target,
          config_key,
          error: (error as Error).message,
          attempt: ctx.attempt,
          generation,
        },
        { causedBy: event },
      );
      throw error;
    }
    if (!games) throw new TransientFailure("no db_path yet");
    mkdirSync(target, { recursive: true });
    copyFileSync(games, join(target, basename(games)));
    await this.emit(
      "DATA_SYNC_COMPLETED",
      {
        source: "selfplay-host",
        target,
        files_synced: 1,
        config_key,
        generation,
      },
      { causedBy: event },
    );
  };
}
