import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineCatalog, defineEvent } from "./define";
import { isCatalog } from "./pipelines";
import { pipelineCatalog, pipelineStages } from "./catalog/pipeline";

const OrderPlaced = defineEvent({
  type: "ORDER_PLACED",
  description: "A customer placed an order",
  durable: true,
  data: z.looseObject({ order_id: z.string(), amount: z.number() }),
});
const OrderShipped = defineEvent({
  type: "ORDER_SHIPPED",
  description: "The order left the warehouse",
  durable: true,
  data: z.looseObject({ order_id: z.string() }),
});
const fulfilment = {
  name: "fulfilment",
  key: "order_id",
  stages: ["ORDER_PLACED", "ORDER_SHIPPED"],
} as const;

describe("pipelines declared by a catalog", () => {
  it("keeps the declared pipelines, in order, and finds them by name", () => {
    const shop = defineCatalog([OrderPlaced, OrderShipped], { pipelines: [fulfilment] });
    expect(shop.pipelines).toEqual([fulfilment]);
    expect(shop.pipeline()).toEqual(fulfilment);
    expect(shop.pipeline("fulfilment")?.stages).toEqual(["ORDER_PLACED", "ORDER_SHIPPED"]);
    expect(shop.pipeline("returns")).toBeUndefined();
  });

  it("has no pipeline unless one is declared", () => {
    const shop = defineCatalog([OrderPlaced, OrderShipped]);
    expect(shop.pipelines).toEqual([]);
    expect(shop.pipeline()).toBeUndefined();
  });

  it("adds pipelines with withPipelines and keeps them through extend", () => {
    const shop = defineCatalog([OrderPlaced]).withPipelines([
      { name: "orders", key: "order_id", stages: ["ORDER_PLACED"] },
    ]);
    const more = shop.extend([OrderShipped]);
    expect(more.pipelines.map((p) => p.name)).toEqual(["orders"]);
    const both = more.withPipelines([fulfilment]);
    expect(both.pipelines.map((p) => p.name)).toEqual(["orders", "fulfilment"]);
  });

  it("refuses a stage that is not an event type of the catalog, suggesting the closest", () => {
    expect(() =>
      defineCatalog([OrderPlaced, OrderShipped], {
        pipelines: [
          {
            name: "fulfilment",
            key: "order_id",
            // @ts-expect-error ORDER_SHIPED is not an event type of this catalog
            stages: ["ORDER_PLACED", "ORDER_SHIPED"],
          },
        ],
      }),
    ).toThrow(
      'defineCatalog: pipeline "fulfilment": stage "ORDER_SHIPED" is not an event type of the catalog. Did you mean "ORDER_SHIPPED"?',
    );
    expect(() =>
      defineCatalog([OrderPlaced]).withPipelines([
        // @ts-expect-error NOPE is not an event type of this catalog
        { name: "x", key: "order_id", stages: ["NOPE"] },
      ]),
    ).toThrow(/stage "NOPE" is not an event type of the catalog/);
  });

  it("refuses a pipeline without stages, with a repeated stage, a bad key or a duplicate name", () => {
    const shop = defineCatalog([OrderPlaced, OrderShipped]);
    expect(() => shop.withPipelines([{ name: "a", key: "order_id", stages: [] }])).toThrow(
      /pipeline "a" has no stages/,
    );
    expect(() =>
      shop.withPipelines([
        { name: "a", key: "order_id", stages: ["ORDER_PLACED", "ORDER_PLACED"] },
      ]),
    ).toThrow(/stage ORDER_PLACED is listed twice/);
    expect(() =>
      shop.withPipelines([{ name: "a", key: "order id'", stages: ["ORDER_PLACED"] }]),
    ).toThrow(/key "order id'" is not a payload field name/);
    expect(() => shop.withPipelines([fulfilment, fulfilment])).toThrow(
      /pipeline "fulfilment" is declared twice/,
    );
  });

  it("declares the training pipeline in the reference pipeline catalog", () => {
    const training = pipelineCatalog.pipeline("training");
    expect(training?.key).toBe("config_key");
    expect(training?.stages[0]).toBe("NEW_GAMES_AVAILABLE");
    expect(training?.stages.at(-1)).toBe("MODEL_DISTRIBUTION_COMPLETE");
    expect(pipelineStages).toBe(training?.stages);
  });

  it("recognises a catalog by its shape", () => {
    expect(isCatalog(pipelineCatalog)).toBe(true);
    expect(isCatalog({ types: [] })).toBe(false);
    expect(isCatalog(null)).toBe(false);
  });
});
