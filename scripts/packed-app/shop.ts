// The order desk daemon, its own process: publishes orders, exits once every one has shipped.
import { type EventOf } from "@switchyard/event-schema";
import { HandlerBase, type Subscriptions } from "@switchyard/handler-base";
import { type Router, createRouter } from "@switchyard/router";
import { sqliteTransport } from "@switchyard/cross-process-queue";
import { type ShopCatalog, shopCatalog } from "./catalog.js";

const orders = Number(process.argv[3] ?? 20);

class OrderDesk extends HandlerBase<ShopCatalog> {
  readonly shipped = new Map<string, string>();
  #done!: () => void;
  readonly done = new Promise<void>((resolve) => (this.#done = resolve));

  constructor(router: Router<ShopCatalog>) {
    super({ name: "order_desk", router, cycleIntervalMs: 60_000 });
  }

  protected override subscriptions(): Subscriptions<ShopCatalog> {
    return { ORDER_SHIPPED: this.onShipped };
  }

  protected override async runCycle() {
    for (let n = 1; n <= orders; n++)
      await this.emit("ORDER_PLACED", { order_id: `order-${n}`, amount: n * 10 });
  }

  private onShipped = (event: EventOf<"ORDER_SHIPPED", ShopCatalog>) => {
    this.shipped.set(event.data.order_id, event.data.carrier);
    if (this.shipped.size === orders) this.#done();
  };
}

const router = createRouter({
  catalog: shopCatalog,
  transport: sqliteTransport({ path: process.argv[2]! }),
});
const desk = new OrderDesk(router);
await desk.start();
await desk.done;
console.log(
  JSON.stringify({
    shipped: desk.shipped.size,
    courier: [...desk.shipped.values()].filter((c) => c === "courier").length,
  }),
);
await desk.stop();
await router.shutdown();
