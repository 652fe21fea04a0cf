// What every stage daemon of the demo shares: its settings, a seeded RNG per process, and the
// subscribe options that make transient failures visible as transport retries.
import { type EventsOf, type PipelineCatalog, pipelineCatalog } from "@switchyard/event-schema";
import { HandlerBase } from "@switchyard/handler-base";
import type { Router } from "@switchyard/router";
import type { PipelineSettings } from "../settings";
import { random } from "../simulation";

/** Every envelope of the pipeline catalog, by event type: `PipelineEvent["MODEL_PROMOTED"]`. */
export type PipelineEvent = EventsOf<PipelineCatalog>;

export abstract class StageDaemon extends HandlerBase.for(pipelineCatalog) {
  protected readonly settings: PipelineSettings;
  protected readonly rng: () => number;

  constructor(
    name: string,
    router: Router<PipelineCatalog>,
    settings: PipelineSettings,
    cycleIntervalMs = 60_000,
  ) {
    super({ name, router, cycleIntervalMs, subscribeOptions: { timeoutMs: 30_000 } });
    this.settings = settings;
    this.rng = random(settings.seed + hash(name) + process.pid);
  }
}

function hash(text: string): number {
  let h = 0;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) | 0;
  return h;
}
