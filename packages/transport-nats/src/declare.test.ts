import { pipelineCatalog } from "@switchyard/event-schema";
import { type Logger, type Router, createRouter } from "@switchyard/router";
import { afterEach, beforeEach, expect, it } from "vitest";
import { natsTransport } from "./index";
import {
  NATS_URL,
  deleteStream,
  describeIf,
  eventually,
  natsAvailable,
  uniqueNames,
} from "./test/nats";

const training = {
  config_key: "hex8_2p",
  model_path: "models/hex8_2p/v7.pt",
  loss: 0.1,
};

describeIf(await natsAvailable(), "subscribers declared ahead of publishing on NATS", {}, () => {
  let names: { stream: string; prefix: string };
  let routers: Router<typeof pipelineCatalog>[] = [];
  const warnings: string[] = [];
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: (_obj: unknown, msg?: string) => void warnings.push(msg ?? ""),
    error: () => {},
  };

  const router = () => {
    const r = createRouter({
      catalog: pipelineCatalog,
      logger,
      transport: natsTransport({ servers: NATS_URL, ...names, drainTimeoutMs: 1_000 }),
    });
    routers.push(r);
    return r;
  };

  beforeEach(() => {
    names = uniqueNames("declare");
    warnings.length = 0;
  });
  afterEach(async () => {
    await Promise.allSettled(routers.map((r) => r.shutdown()));
    routers = [];
    await deleteStream(NATS_URL, names.stream);
  });

  it("keeps events published after declareSubscriber for a subscriber that starts later", async () => {
    const trainer = router();
    await trainer.declareSubscriber("late-evaluator", "TRAINING_COMPLETED");
    await trainer.publish("TRAINING_COMPLETED", training);

    const seen: string[] = [];
    await router().subscribe(
      "TRAINING_COMPLETED",
      (event) => void seen.push(event.data.config_key),
      { name: "late-evaluator" },
    ).ready;
    await eventually(() => seen.length === 1, "the event published before it subscribed");
    expect(seen).toEqual(["hex8_2p"]);
    expect(warnings.filter((w) => w.includes("no subscriber is registered"))).toEqual([]);
  });

  it("warns once per type when a durable type is published with no subscriber registered", async () => {
    const trainer = router();
    await trainer.publish("TRAINING_COMPLETED", training);
    await trainer.publish("TRAINING_COMPLETED", training);
    await eventually(
      () => warnings.some((w) => w.includes("no subscriber is registered")),
      "the warning about an event kept for nobody",
    );
    expect(warnings.filter((w) => w.includes("TRAINING_COMPLETED was published"))).toHaveLength(1);
  });
});
