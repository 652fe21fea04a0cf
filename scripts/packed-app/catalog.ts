import { defineCatalog, defineEvent } from "@switchyard/event-schema";
import { z } from "zod";

/** A team's own catalog: nothing here comes from the pipeline catalog. */
export const shopCatalog = defineCatalog([
  defineEvent({
    type: "ORDER_PLACED",
    description: "a customer placed an order",
    durable: true,
    data: z.object({ order_id: z.string(), amount: z.number().positive() }),
  }),
  defineEvent({
    type: "ORDER_SHIPPED",
    description: "the warehouse shipped an order",
    durable: true,
    data: z.object({ order_id: z.string(), carrier: z.enum(["post", "courier"]) }),
  }),
]);
