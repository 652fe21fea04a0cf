// The order desk daemon, its own process: publishes orders, exits once every one has shipped. No
// type argument: the daemon is bound to the catalog, and gets its router when constructed.
import { HandlerBase } from "@switchyard/handler-base";
import { createRouter } from "@switchyard/router";
import { sqliteTransport } from "@switchyard/cross-process-queue";
import { shopCatalog } from "./catalog.js";

const orders = Number(process.argv[3] ?? 20);

class OrderDesk extends HandlerBase.for(shopCatalog) {
  readonly shipped: { [orderId: string]: string } = {};
  #done: (() => void) | undefined;
  readonly done = new Promise((resolve) => (this.#done = () => resolve(undefined)));

  protected override subscriptions() {
    return this.on({
      ORDER_SHIPPED: (event) => {
        this.shipped[event.data.order_id] = event.data.carrier;
        if (Object.keys(this.shipped).length === orders) this.#done?.();
      },
    });
  }

  protected override async runCycle() {
    for (let n = 1; n <= orders; n++)
      await this.emit("ORDER_PLACED", { order_id: `order-${n}`, amount: n * 10 });
  }
}

const router = createRouter({
  catalog: shopCatalog,
  transport: sqliteTransport({ path: process.argv[2]! }),
});
const desk = new OrderDesk({ name: "order_desk", router, cycleIntervalMs: 60_000 });
await desk.start();
await desk.done;
console.log(
  JSON.stringify({
    shipped: Object.keys(desk.shipped).length,
    courier: Object.values(desk.shipped).filter((c) => c === "courier").length,
  }),
);
await desk.stop();
await router.shutdown();
