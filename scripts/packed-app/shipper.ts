// The shipper daemon, its own process: ORDER_PLACED in, ORDER_SHIPPED out.
import { type EventOf } from "@switchyard/event-schema";
import { HandlerBase, type Subscriptions } from "@switchyard/handler-base";
import { type Router, createRouter } from "@switchyard/router";
import { sqliteTransport } from "@switchyard/cross-process-queue";
import { type ShopCatalog, shopCatalog } from "./catalog.js";

class Shipper extends HandlerBase<ShopCatalog> {
  constructor(router: Router<ShopCatalog>) {
    super({ name: "shipper", router, cycleIntervalMs: 60_000 });
  }

  protected override subscriptions(): Subscriptions<ShopCatalog> {
    return { ORDER_PLACED: this.onOrderPlaced };
  }

  private onOrderPlaced = async (event: EventOf<"ORDER_PLACED", ShopCatalog>) => {
    await this.emit(
      "ORDER_SHIPPED",
      { order_id: event.data.order_id, carrier: event.data.amount > 100 ? "courier" : "post" },
      { causedBy: event },
    );
  };
}

const router = createRouter({
  catalog: shopCatalog,
  transport: sqliteTransport({ path: process.argv[2]! }),
});
const shipper = new Shipper(router);
await shipper.start();
console.log("ready");
process.once("SIGTERM", () => {
  void shipper
    .stop()
    .then(() => router.shutdown())
    .then(() => process.exit(0));
});
