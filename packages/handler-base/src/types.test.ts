import {
  type EventOf,
  defineCatalog,
  defineEvent,
  pipelineCatalog,
} from "@switchyard/event-schema";
import { type HandlerContext, type Router, createRouter } from "@switchyard/router";
import { describe, expectTypeOf, it } from "vitest";
import { z } from "zod";
import type { Daemon } from "./daemon-manager";
import { HandlerBase, type Subscriptions } from "./handler-base";

// These tests are checked by `tsc` (the `@ts-expect-error` lines must stay errors); at run time
// they only construct the classes.

const jobCatalog = defineCatalog([
  defineEvent({
    type: "JOB_DONE",
    description: "t",
    data: z.looseObject({ job_id: z.string(), ok: z.boolean() }),
  }),
]);

class Typed extends HandlerBase {
  constructor(router: Router) {
    super({ name: "typed", router });
  }

  protected override subscriptions(): Subscriptions {
    return {
      TRAINING_COMPLETED: (event, ctx) => {
        expectTypeOf(event).toEqualTypeOf<EventOf<"TRAINING_COMPLETED">>();
        expectTypeOf(event.data.loss).toEqualTypeOf<number>();
        expectTypeOf(ctx).toEqualTypeOf<HandlerContext<typeof pipelineCatalog>>();
        // @ts-expect-error -- config_key is a string, not a number
        const wrongType: number = event.data.config_key;
        void wrongType;
      },
      EVALUATION_COMPLETED: this.onEvaluation,
      // @ts-expect-error -- not an event type of the catalog (TRAINING_COMPLETED is)
      TRAINING_COMPLETE: () => {},
    };
  }

  private onEvaluation = (event: EventOf<"EVALUATION_COMPLETED">) => {
    expectTypeOf(event.data.elo).toEqualTypeOf<number>();
  };

  private onTraining = (_event: EventOf<"TRAINING_COMPLETED">) => {};

  wrongHandler(): Subscriptions {
    // @ts-expect-error -- a TRAINING_COMPLETED handler cannot handle MODEL_PROMOTED
    return { MODEL_PROMOTED: this.onTraining };
  }

  async emits() {
    await this.emit("QUALITY_ALERT", { config_key: "hex8_2p", quality_score: 0.2, timestamp: 1 });
    // @ts-expect-error -- quality_score is missing
    await this.emit("QUALITY_ALERT", { config_key: "hex8_2p", timestamp: 1 });
    // @ts-expect-error -- quality_score must be a number
    await this.emit("QUALITY_ALERT", { config_key: "hex8_2p", quality_score: "low", timestamp: 1 });
    // @ts-expect-error -- not an event type of the catalog
    await this.emit("QUALITY_ALARM", {});
    const sent = await this.emit("MODEL_PROMOTED", {
      config_key: "hex8_2p",
      model_path: "m.pt",
      elo: 1,
    });
    expectTypeOf(sent).toEqualTypeOf<EventOf<"MODEL_PROMOTED"> | undefined>();
  }
}

class JobWatcher extends HandlerBase<typeof jobCatalog, { readonly retries: number }> {
  constructor(router: Router<typeof jobCatalog>) {
    super({ name: "job_watcher", router, config: { retries: 3 } });
  }

  protected override subscriptions(): Subscriptions<typeof jobCatalog> {
    return {
      JOB_DONE: (event) => {
        expectTypeOf(event.data.ok).toEqualTypeOf<boolean>();
        expectTypeOf(this.config.retries).toEqualTypeOf<number>();
      },
      // @ts-expect-error -- TRAINING_COMPLETED is in the pipeline catalog, not in this daemon's
      TRAINING_COMPLETED: () => {},
    };
  }
}

class NeedsArgs extends HandlerBase {
  constructor(router: Router) {
    super({ name: "needs_args", router });
  }
}

class NoArgs extends HandlerBase {
  constructor() {
    super({ name: "no_args", router: createRouter({ catalog: pipelineCatalog }) });
  }
}

describe("typed subscriptions and emits", () => {
  it("types handlers, payloads and emits from the catalog", () => {
    const router = createRouter({ catalog: pipelineCatalog });
    expectTypeOf(new Typed(router)).toExtend<HandlerBase>();
    const jobs = createRouter({ catalog: jobCatalog });
    expectTypeOf(new JobWatcher(jobs).config).toEqualTypeOf<{ readonly retries: number }>();
    // @ts-expect-error -- a router over another catalog does not fit
    void new JobWatcher(router);
  });

  it("offers getInstance only to subclasses constructible without arguments", async () => {
    expectTypeOf(NoArgs.getInstance()).toEqualTypeOf<NoArgs>();
    await NoArgs.resetInstance();
    const neverCalled = () => [
      // @ts-expect-error -- NeedsArgs requires a router
      NeedsArgs.getInstance(),
      // @ts-expect-error -- HandlerBase itself is abstract
      HandlerBase.getInstance(),
    ];
    void neverCalled;
  });

  it("lets a DaemonManager supervise daemons of any catalog", () => {
    expectTypeOf<JobWatcher>().toExtend<Daemon>();
    expectTypeOf<Typed>().toExtend<Daemon>();
  });
});
