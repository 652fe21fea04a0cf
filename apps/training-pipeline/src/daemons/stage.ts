// What every stage daemon of the demo shares: its settings, a seeded RNG per process, and the
// subscribe options that make transient failures visible as transport retries.
import {
  type EventType,
  type EventsOf,
  type PipelineCatalog,
  pipelineCatalog,
} from "@switchyard/event-schema";
import { HandlerBase } from "@switchyard/handler-base";
import type { Router } from "@switchyard/router";
import type { PipelineSettings } from "../settings";
import app from "../../package.json" with { type: "json" };
import { random } from "../simulation";

/** Every envelope of the pipeline catalog, by event type: `PipelineEvent["MODEL_PROMOTED"]`. */
export type PipelineEvent = EventsOf<PipelineCatalog>;

/** What a stage daemon says about itself beyond its name. */
export interface StageOptions {
  /**
   * Every type the daemon emits: announced in its heartbeats' contracts from the start (not only
   * after a first emit), and the source of the subscription matrix in docs/events.md.
   */
  readonly publishes: readonly EventType<PipelineCatalog>[];
  /** @defaultValue 60_000 */
  readonly cycleIntervalMs?: number;
}

export abstract class StageDaemon extends HandlerBase.for(pipelineCatalog) {
  protected readonly settings: PipelineSettings;
  protected readonly rng: () => number;

  constructor(
    name: string,
    router: Router<PipelineCatalog>,
    settings: PipelineSettings,
    options: StageOptions,
  ) {
    super({
      name,
      router,
      cycleIntervalMs: options.cycleIntervalMs ?? 60_000,
      publishes: options.publishes,
      package: `${app.name}@${app.version}`,
      subscribeOptions: { timeoutMs: 30_000 },
    });
    this.settings = settings;
    this.rng = random(settings.seed + hash(name) + process.pid);
  }
}

function hash(text: string): number {
  let h = 0;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) | 0;
  return h;
}
