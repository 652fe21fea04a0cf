import { pipelineCatalog } from "@switchyard/event-schema";
import { type Router, createRouter } from "@switchyard/router";
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

describeIf(await natsAvailable(), "routers on NATS", {}, () => {
  let names: { stream: string; prefix: string };
  let routers: Router<typeof pipelineCatalog>[] = [];

  const router = () => {
    const r = createRouter({
      catalog: pipelineCatalog,
      transport: natsTransport({ servers: NATS_URL, ...names, drainTimeoutMs: 1_000 }),
    });
    routers.push(r);
    return r;
  };

  beforeEach(() => {
    names = uniqueNames("router");
  });
  afterEach(async () => {
    await Promise.allSettled(routers.map((r) => r.shutdown()));
    routers = [];
    await deleteStream(NATS_URL, names.stream);
  });

  it("carries a durable event from one router to another and the reply back", async () => {
    const trainer = router();
    const evaluator = router();
    await evaluator.subscribe(
      "TRAINING_COMPLETED",
      async (event, ctx) => {
        await ctx.publish("EVALUATION_COMPLETED", {
          config_key: event.data.config_key,
          model_path: event.data.model_path,
          elo: 1510,
          games_played: 200,
        });
      },
      { name: "evaluator" },
    ).ready;
    const results: { elo: number; causationid: string | undefined }[] = [];
    await trainer.subscribe(
      "EVALUATION_COMPLETED",
      (event) => void results.push({ elo: event.data.elo, causationid: event.causationid }),
      { name: "promoter" },
    ).ready;

    const sent = await trainer.publish("TRAINING_COMPLETED", {
      config_key: "hex8_2p",
      model_path: "models/hex8_2p/v7.pt",
      loss: 0.42,
    });
    await eventually(() => results.length === 1, "the evaluation to come back");
    expect(results).toEqual([{ elo: 1510, causationid: sent.id }]);

    const stats = await trainer.transport!.stats();
    expect(stats.subscribers.map((s) => s.subscriber).sort()).toEqual(["evaluator", "promoter"]);
  });

  it("acks a durable handler that returns a non-promise value once, without a retry (issue 13 item 2)", async () => {
    const r = router();
    const seen: string[] = [];
    // push() returns a number: TypeScript accepts it where void is expected.
    await r.subscribe("TRAINING_COMPLETED", (event) => seen.push(event.id), { name: "pusher" })
      .ready;
    const sent = await r.publish("TRAINING_COMPLETED", {
      config_key: "hex8_2p",
      model_path: "models/hex8_2p/v8.pt",
      loss: 0.4,
    });
    await eventually(() => seen.length === 1, "the event handled");
    await eventually(
      async () => (await r.transport!.stats()).subscribers.every((s) => s.lag === 0),
      "the delivery acknowledged",
    );
    const stats = await r.transport!.stats();
    expect(seen).toEqual([sent.id]);
    expect(stats.subscribers.find((s) => s.subscriber === "pusher")).toMatchObject({
      redelivered: 0,
      deadLettered: 0,
    });
  });
});
