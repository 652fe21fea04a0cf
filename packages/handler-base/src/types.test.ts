import {
  type EventOf,
  type EventsOf,
  defineCatalog,
  defineEvent,
  pipelineCatalog,
} from "@switchyard/event-schema";
import { type HandlerContext, type Router, createRouter } from "@switchyard/router";
import { afterAll, describe, expect, expectTypeOf, it } from "vitest";
import { z } from "zod";
import type { Daemon } from "./daemon-manager";
import { HandlerBase, type Subscriptions } from "./handler-base";

// These tests are checked by `tsc` (`pnpm typecheck`): every `@ts-expect-error` line must stay an
// error, every `expectTypeOf` must hold. At run time they only construct the classes.

// ---------------------------------------------------------------------------------------------
// A user's own catalog, written the way the "your own catalog" guide shows: the catalog is
// written once, and the user code below (the classes) has no explicit type argument anywhere.

const shopCatalog = defineCatalog([
  defineEvent({
    type: "ORDER_PLACED",
    description: "A customer placed an order",
    durable: true,
    data: z.looseObject({ order_id: z.string(), amount: z.number() }),
  }),
  defineEvent({
    type: "ORDER_SHIPPED",
    description: "An order left the warehouse",
    durable: true,
    data: z.looseObject({ order_id: z.string(), carrier: z.enum(["post", "courier"]) }),
  }),
]);

const shopRouter = createRouter({ catalog: shopCatalog });

/** Bound to a router: the catalog comes from it, and it is the default router. */
class Shipper extends HandlerBase.for(shopRouter) {
  constructor() {
    super({ name: "shipper" });
  }

  protected override subscriptions() {
    return this.on({
      ORDER_PLACED: async (event, ctx) => {
        expectTypeOf(event.type).toEqualTypeOf<"ORDER_PLACED">();
        expectTypeOf(event.data.order_id).toEqualTypeOf<string>();
        expectTypeOf(event.data.amount).toEqualTypeOf<number>();
        expectTypeOf(ctx).toEqualTypeOf<HandlerContext<typeof shopCatalog>>();
        // @ts-expect-error -- order_id is a string, not a number
        const wrongType: number = event.data.order_id;
        void wrongType;

        const carrier = event.data.amount > 100 ? "courier" : "post";
        const sent = await this.emit(
          "ORDER_SHIPPED",
          { order_id: event.data.order_id, carrier },
          { causedBy: event },
        );
        expectTypeOf(sent).toEqualTypeOf<
          EventOf<"ORDER_SHIPPED", typeof shopCatalog> | undefined
        >();
        await ctx.publish("ORDER_SHIPPED", { order_id: "o-1", carrier: "post" });
      },
      ORDER_SHIPPED: (event) => {
        expectTypeOf(event.data.carrier).toEqualTypeOf<"post" | "courier">();
      },
      // @ts-expect-error -- not an event type of the shop catalog (ORDER_PLACED is)
      ORDER_PLACD: () => {},
    });
  }

  async emits() {
    await this.emit("ORDER_PLACED", { order_id: "o-1", amount: 12 });
    // @ts-expect-error -- amount is missing
    await this.emit("ORDER_PLACED", { order_id: "o-1" });
    // @ts-expect-error -- amount must be a number
    await this.emit("ORDER_PLACED", { order_id: "o-1", amount: "12" });
    // @ts-expect-error -- "drone" is not a carrier of the enum
    await this.emit("ORDER_SHIPPED", { order_id: "o-1", carrier: "drone" });
    // @ts-expect-error -- not an event type of the shop catalog
    await this.emit("ORDER_CANCELLED", { order_id: "o-1" });
    // @ts-expect-error -- a pipeline event type is not in the shop catalog
    await this.emit("MODEL_PROMOTED", { config_key: "k", model_path: "m", elo: 1 });
  }
}

/** Bound to a catalog: the router comes with each instance. */
class OrderDesk extends HandlerBase.for(shopCatalog) {
  readonly shipped = new Map<string, string>();

  protected override subscriptions() {
    return this.on({
      ORDER_SHIPPED: (event) => void this.shipped.set(event.data.order_id, event.data.carrier),
    });
  }

  protected override async runCycle() {
    await this.emit("ORDER_PLACED", { order_id: "o-2", amount: 250 });
  }
}

/** Named handlers: type them once from the catalog with `EventsOf`, index by event type. */
type ShopEvent = EventsOf<typeof shopCatalog>;

class Auditor extends HandlerBase.for(shopCatalog) {
  protected override subscriptions() {
    return this.on({
      ORDER_PLACED: this.onPlaced,
      // @ts-expect-error -- an ORDER_PLACED handler cannot handle ORDER_SHIPPED
      ORDER_SHIPPED: this.onPlaced,
    });
  }

  private onPlaced = (event: ShopEvent["ORDER_PLACED"]) => {
    expectTypeOf(event.data.amount).toEqualTypeOf<number>();
  };
}

/** The daemon's own configuration is the (optional) type argument of the bound class. */
class Retrier extends HandlerBase.for(shopCatalog)<{ readonly retries: number }> {
  constructor(router: typeof shopRouter) {
    super({ name: "retrier", router, config: { retries: 3 } });
  }
}

const pipelineRouter = createRouter({ catalog: pipelineCatalog });

describe("a user catalog, with no explicit type arguments", () => {
  afterAll(() => Promise.all([shopRouter.shutdown(), pipelineRouter.shutdown()]));

  it("types handler parameters and emits from the catalog the daemon is bound to", () => {
    const shipper = new Shipper();
    expect(shipper.router).toBe(shopRouter);
    expectTypeOf(shipper.router).toEqualTypeOf<Router<typeof shopCatalog>>();
    expectTypeOf(new OrderDesk({ name: "desk", router: shopRouter })).toExtend<Daemon>();
    expectTypeOf(new Auditor({ name: "auditor", router: shopRouter })).toExtend<
      HandlerBase<typeof shopCatalog>
    >();
    expectTypeOf(new Retrier(shopRouter).config.retries).toEqualTypeOf<number>();
  });

  it("refuses a router over another catalog", () => {
    // @ts-expect-error -- the pipeline router does not carry the shop catalog's events
    const wrong = () => new OrderDesk({ name: "desk", router: pipelineRouter });
    void wrong;
  });

  it("has no default catalog to fall back on", () => {
    // @ts-expect-error -- HandlerBase needs its catalog: extend HandlerBase.for(router) instead
    class Bare extends HandlerBase {}
    // @ts-expect-error -- EventOf needs its catalog: it no longer means the pipeline's
    type _Promoted = EventOf<"MODEL_PROMOTED">;
    // @ts-expect-error -- Subscriptions needs its catalog
    type _Map = Subscriptions;
    void Bare;
  });
});

// ---------------------------------------------------------------------------------------------
// The pipeline catalog, and the explicit form `HandlerBase<Catalog, Config>` for library code.

class Typed extends HandlerBase.for(pipelineCatalog) {
  protected override subscriptions() {
    return this.on({
      TRAINING_COMPLETED: (event, ctx) => {
        expectTypeOf(event).toEqualTypeOf<EventOf<"TRAINING_COMPLETED", typeof pipelineCatalog>>();
        expectTypeOf(event.data.loss).toEqualTypeOf<number>();
        expectTypeOf(ctx).toEqualTypeOf<HandlerContext<typeof pipelineCatalog>>();
      },
      // @ts-expect-error -- not an event type of the catalog (TRAINING_COMPLETED is)
      TRAINING_COMPLETE: () => {},
    });
  }

  async emits() {
    await this.emit("QUALITY_ALERT", { config_key: "hex8_2p", quality_score: 0.2, timestamp: 1 });
    // @ts-expect-error -- quality_score is missing
    await this.emit("QUALITY_ALERT", { config_key: "hex8_2p", timestamp: 1 });
    // @ts-expect-error -- an event type of the shop catalog, not of the pipeline's
    await this.emit("ORDER_PLACED", { order_id: "o-1", amount: 1 });
  }
}

const jobCatalog = defineCatalog([
  defineEvent({
    type: "JOB_DONE",
    description: "t",
    data: z.looseObject({ job_id: z.string(), ok: z.boolean() }),
  }),
]);

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

class NeedsArgs extends HandlerBase.for(pipelineCatalog) {
  constructor(router: typeof pipelineRouter) {
    super({ name: "needs_args", router });
  }
}

class NoArgs extends HandlerBase.for(pipelineRouter) {
  constructor() {
    super({ name: "no_args" });
  }
}

describe("typed subscriptions and emits", () => {
  it("types handlers, payloads and emits from the catalog", () => {
    expectTypeOf(new Typed({ name: "typed", router: pipelineRouter })).toExtend<
      HandlerBase<typeof pipelineCatalog>
    >();
    const jobs = createRouter({ catalog: jobCatalog });
    expectTypeOf(new JobWatcher(jobs).config).toEqualTypeOf<{ readonly retries: number }>();
    // @ts-expect-error -- a router over another catalog does not fit
    void new JobWatcher(pipelineRouter);
  });

  it("offers getInstance only to subclasses constructible without arguments", async () => {
    expectTypeOf(NoArgs.getInstance()).toEqualTypeOf<NoArgs>();
    await NoArgs.resetInstance();
    const neverCalled = () => [
      // @ts-expect-error -- NeedsArgs requires a router
      NeedsArgs.getInstance(),
      // @ts-expect-error -- HandlerBase itself is abstract
      HandlerBase.getInstance(),
      // @ts-expect-error -- so is the class HandlerBase.for returns
      HandlerBase.for(pipelineCatalog).getInstance(),
    ];
    void neverCalled;
  });

  it("lets a DaemonManager supervise daemons of any catalog", () => {
    expectTypeOf<JobWatcher>().toExtend<Daemon>();
    expectTypeOf<Typed>().toExtend<Daemon>();
    expectTypeOf<Shipper>().toExtend<Daemon>();
  });
});
