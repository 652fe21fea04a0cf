// The shipper daemon, its own process: ORDER_PLACED in, ORDER_SHIPPED out. No type argument: the
// daemon's catalog is its router's.
import { HandlerBase } from "@switchyard/handler-base";
import { createRouter } from "@switchyard/router";
import { sqliteTransport } from "@switchyard/cross-process-queue";
import { shopCatalog } from "./catalog.js";

const router = createRouter({
  catalog: shopCatalog,
  transport: sqliteTransport({ path: process.argv[2]! }),
});

class Shipper extends HandlerBase.for(router) {
  constructor() {
    super({ name: "shipper", cycleIntervalMs: 60_000 });
  }

  protected override subscriptions() {
    return this.on({
      ORDER_PLACED: async (event) => {
        await this.emit(
          "ORDER_SHIPPED",
          { order_id: event.data.order_id, carrier: event.data.amount > 100 ? "courier" : "post" },
          { causedBy: event },
        );
      },
    });
  }
}

const shipper = new Shipper();
await shipper.start();
console.log("ready");
process.once("SIGTERM", () => {
  void shipper
    .stop()
    .then(() => router.shutdown())
    .then(() => process.exit(0));
});
