// In-process: our router's publish → deliver next to emittery and eventemitter3 doing the same
// delivery in the same process, and a hand-written Promise.all dispatch as the ceiling.
import { createEnvelope, pipelineCatalog, uuidv7 } from "@switchyard/event-schema";
import * as otelApi from "@opentelemetry/api";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { createRouter } from "@switchyard/router";
import Emittery from "emittery";
import { EventEmitter } from "eventemitter3";
import {
  type GroupResult,
  type Ratio,
  type RunOptions,
  type Scaling,
  type Target,
  find,
  measure,
  median,
  pairedRatio,
  withSettings,
} from "./harness";
import { deliveryCounter } from "./listeners";

/** Heap growth (bytes) below which one `heapUsed` reading cannot tell it from noise. */
const HEAP_RESOLUTION = 64 * 1024;

const BATCH = 1000;
const payload = { config_key: "hex8_2p", model_path: "models/hex8_2p/gen-3.pt", elo: 1612 };
/** Every router row: one process, one publisher awaiting each publish, the same payload. */
const COMMON = `in process, 1 publisher awaiting each publish, payload ${JSON.stringify(payload).length} B JSON (3 fields), one distinct no-op async function per listener (each task checks it made listeners × 1000 deliveries)`;
const names = {
  ours1: "switchyard 1 sub, defaults (validation on)",
  ours1Off: "switchyard 1 sub (validation off)",
  ours1Wild: "switchyard 1 sub, wildcard MODEL_*",
  ours1OtelApi: "switchyard 1 sub, OpenTelemetry API without an SDK (no-op)",
  ours1OtelSdk: "switchyard 1 sub, OpenTelemetry SDK tracing + metrics on",
  ours10: "switchyard 10 subs, defaults (validation on)",
  ours10Wild: "switchyard 10 subs, wildcard",
  emittery1: "emittery 1.x await emit, 1 async listener",
  emittery10: "emittery 1.x await emit, 10 async listeners",
  emitterySame1: "emittery 1.x + validation + envelope per emit, 1 listener",
  emitterySame10: "emittery 1.x + validation + envelope per emit, 10 listeners",
  ee3_1: "eventemitter3 emit, 1 async listener",
  ee3_10: "eventemitter3 emit, 10 async listeners",
  floor1: "hand-written await Promise.all, 1 listener (floor)",
  floor10: "hand-written await Promise.all, 10 listeners (floor)",
};

export async function benchRouter(options: RunOptions): Promise<GroupResult> {
  const { listenersOf, counted: countedOf } = deliveryCounter();
  const counted = (listeners: number, task: () => Promise<void>) =>
    countedOf(listeners, BATCH, task);

  // Tracing and metrics on: the real SDK recording every span and instrument (spans are sampled
  // and ended, then dropped: no processor, so no export cost is measured), against the API alone.
  const sdkTelemetry = {
    api: otelApi,
    tracer: new BasicTracerProvider().getTracer("bench"),
    meter: new MeterProvider().getMeter("bench"),
  };
  const ours = (
    subscribers: number,
    opts: {
      validate?: boolean;
      pattern?: "exact" | "wildcard";
      otel?: "api" | "sdk";
    } = {},
  ) => {
    const router = createRouter({
      catalog: pipelineCatalog,
      validate: opts.validate ?? true,
      ...(opts.otel === "api" ? { openTelemetry: { api: otelApi } } : {}),
      ...(opts.otel === "sdk" ? { openTelemetry: sdkTelemetry } : {}),
    });
    for (const [i, listener] of listenersOf(subscribers).entries()) {
      router.subscribe(opts.pattern === "wildcard" ? "MODEL_*" : "MODEL_PROMOTED", listener, {
        name: `s${i}`,
      });
    }
    return counted(subscribers, async () => {
      for (let i = 0; i < BATCH; i++) await router.publish("MODEL_PROMOTED", payload);
      await router.drain();
    });
  };
  const emittery = (listeners: number) => {
    const emitter = new Emittery();
    for (const listener of listenersOf(listeners)) emitter.on("MODEL_PROMOTED", listener);
    return counted(listeners, async () => {
      for (let i = 0; i < BATCH; i++) await emitter.emit("MODEL_PROMOTED", payload);
    });
  };
  // Emittery asked to do the work every router publish does: validate the payload against the
  // catalog and wrap it in an envelope (id, time, source). Shows how much of the gap is that work.
  const emitterySameWork = (listeners: number) => {
    const emitter = new Emittery();
    for (const listener of listenersOf(listeners)) emitter.on("MODEL_PROMOTED", listener);
    return counted(listeners, async () => {
      for (let i = 0; i < BATCH; i++) {
        const data = pipelineCatalog.parse("MODEL_PROMOTED", payload);
        await emitter.emit(
          "MODEL_PROMOTED",
          createEnvelope({ type: "MODEL_PROMOTED", source: "bench", data }),
        );
      }
    });
  };
  const ee3 = (listeners: number) => {
    const emitter = new EventEmitter();
    const pending: Promise<void>[] = [];
    for (const listener of listenersOf(listeners))
      emitter.on("MODEL_PROMOTED", (p: unknown) => void pending.push(listener(p)));
    return counted(listeners, async () => {
      for (let i = 0; i < BATCH; i++) emitter.emit("MODEL_PROMOTED", payload);
      await Promise.all(pending.splice(0));
    });
  };
  const handWritten = (listeners: number) => {
    const list = listenersOf(listeners);
    return counted(listeners, async () => {
      for (let i = 0; i < BATCH; i++) {
        const evt = payload;
        await Promise.all(list.map((l) => l(evt)));
      }
    });
  };

  const measured = await measure(
    "router: publish → deliver (events/s, 1000 per task)",
    {
      [names.ours1]: ours(1),
      [names.ours1Off]: ours(1, { validate: false }),
      [names.ours1Wild]: ours(1, { pattern: "wildcard" }),
      [names.ours1OtelApi]: ours(1, { otel: "api" }),
      [names.ours1OtelSdk]: ours(1, { otel: "sdk" }),
      [names.ours10]: ours(10),
      [names.ours10Wild]: ours(10, { pattern: "wildcard" }),
      [names.emittery1]: emittery(1),
      [names.emittery10]: emittery(10),
      [names.emitterySame1]: emitterySameWork(1),
      [names.emitterySame10]: emitterySameWork(10),
      [names.ee3_1]: ee3(1),
      [names.ee3_10]: ee3(10),
      [names.floor1]: handWritten(1),
      [names.floor10]: handWritten(10),
    },
    BATCH,
    options,
    // Five rounds, every ratio the median of per-round ratios: in single runs the medians of
    // three rounds put ours 1 sub against emittery 1 at 1.86× and 2.17× on the same code and day.
    { rounds: 5 },
  );
  const settingsOf = (listeners: number, extra: string) =>
    `${listeners} listener${listeners > 1 ? "s" : ""}, ${extra}; ${COMMON}`;
  const figures = withSettings(measured, {
    [names.ours1]: settingsOf(
      1,
      "`createRouter()` defaults: validation on, default middleware, envelope per publish",
    ),
    [names.ours1Off]: settingsOf(1, "`validate: false`, default middleware, envelope per publish"),
    [names.ours1Wild]: settingsOf(1, "pattern `MODEL_*`, validation on"),
    [names.ours1OtelApi]: settingsOf(
      1,
      "defaults + `openTelemetry: { api }` with no SDK registered (no-op tracer and meter)",
    ),
    [names.ours1OtelSdk]: settingsOf(
      1,
      "defaults + `openTelemetry` with the SDK's BasicTracerProvider (always-on sampler, no span processor) and MeterProvider (no reader)",
    ),
    [names.ours10]: settingsOf(
      10,
      "`createRouter()` defaults: validation on, default middleware, envelope per publish",
    ),
    [names.ours10Wild]: settingsOf(10, "pattern `MODEL_*`, validation on"),
    [names.emittery1]: settingsOf(
      1,
      "`await emitter.emit()`, its defaults (no validation, no envelope)",
    ),
    [names.emittery10]: settingsOf(
      10,
      "`await emitter.emit()`, its defaults (no validation, no envelope)",
    ),
    [names.emitterySame1]: settingsOf(
      1,
      "`catalog.parse()` + `createEnvelope()` before each `await emit()`",
    ),
    [names.emitterySame10]: settingsOf(
      10,
      "`catalog.parse()` + `createEnvelope()` before each `await emit()`",
    ),
    [names.ee3_1]: settingsOf(
      1,
      "synchronous `emit()`, handler promises awaited once per 1000 (not per publish)",
    ),
    [names.ee3_10]: settingsOf(
      10,
      "synchronous `emit()`, handler promises awaited once per 1000 (not per publish)",
    ),
    [names.floor1]: settingsOf(
      1,
      "`await Promise.all(listeners.map(l => l(payload)))`, no validation, no envelope",
    ),
    [names.floor10]: settingsOf(
      10,
      "`await Promise.all(listeners.map(l => l(payload)))`, no validation, no envelope",
    ),
  });

  const envelope = await measure(
    "envelope creation (ops/s, 1000 per task)",
    {
      "uuidv7()": async () => {
        for (let i = 0; i < BATCH; i++) uuidv7();
      },
      "new Date().toISOString()": async () => {
        for (let i = 0; i < BATCH; i++) new Date().toISOString();
      },
      "createEnvelope()": async () => {
        for (let i = 0; i < BATCH; i++)
          createEnvelope({ type: "MODEL_PROMOTED", source: "bench", data: payload });
      },
      "catalog.parse(MODEL_PROMOTED)": async () => {
        for (let i = 0; i < BATCH; i++) pipelineCatalog.parse("MODEL_PROMOTED", payload);
      },
    },
    BATCH,
    options,
  );

  const memory = stalledSubscriberMemory(options.quick ? 50_000 : 1_000_000);

  const f = (name: string) => find(figures, name).value;
  /** The median of per-round ratios: the two rows of each round ran in the same stretch of time. */
  const ratio = (a: string, b: string) =>
    pairedRatio(find(figures, a).perRun ?? [f(a)], find(figures, b).perRun ?? [f(b)]);
  const one = f(names.ours1);
  const ten = f(names.ours10);
  const vsEmittery1 = ratio(names.ours1, names.emittery1);
  const vsEmittery10 = ratio(names.ours10, names.emittery10);
  const vsFloor10 = ratio(names.ours10, names.floor10);
  // Where the 10-subscriber gap to the floor is: seconds per publish, split into the 1-subscriber
  // cost and what each of the 9 further subscribers adds.
  const perPublish = (rate: number) => 1 / rate;
  const floor1 = perPublish(f(names.floor1));
  const perSubOurs = (perPublish(ten) - perPublish(one)) / 9;
  const perSubFloor = (perPublish(f(names.floor10)) - floor1) / 9;
  /** Ours against the floor at 10 if our 1-subscriber publish cost no more than the floor's. */
  const capFloor10 = perPublish(f(names.floor10)) / (floor1 + 9 * perSubOurs);
  const ns = (seconds: number) => `${(seconds * 1e9).toFixed(0)} ns`;
  const onOff = ratio(names.ours1, names.ours1Off);
  const targets: Target[] = [
    {
      group: "router",
      description: `router, 1 async subscriber, defaults (validation on) ≥ 2× emittery \`await emit\`, 1 async listener`,
      met: vsEmittery1 >= 2,
      detail: `${vsEmittery1.toFixed(2)}×`,
    },
    {
      group: "router",
      description: `router, 10 async subscribers, defaults ≥ 1.2× emittery \`await emit\`, 10 async listeners`,
      met: vsEmittery10 >= 1.2,
      detail: `${vsEmittery10.toFixed(2)}×`,
    },
    {
      group: "router",
      description:
        "router, 10 async subscribers, defaults ≈ 0.7× the hand-written `Promise.all` floor (≥ 0.7×)",
      met: vsFloor10 >= 0.7,
      detail:
        `${vsFloor10.toFixed(2)}× (each subscriber past the first adds ${ns(perSubOurs)} per publish to ours, ${ns(perSubFloor)} to the floor: ` +
        `a worker slot, a delivery context, counters, a duration sample and the settle of its promise against a call and a \`Promise.all\` slot; ` +
        `with nothing else of ours, at the floor's 1-subscriber cost, that alone would make ${capFloor10.toFixed(2)}×)`,
    },
    {
      group: "router",
      description: "validation on costs no more than half the throughput (1 sub, on / off)",
      met: onOff >= 0.5,
      detail: `on/off = ${onOff.toFixed(2)}`,
    },
    {
      group: "router",
      description: `stalled subscriber: ${memory.published.toLocaleString("en")} events published, heap within the queue bound`,
      met: memory.queueDepth <= 1024 && memory.heapGrowthMb < 64,
      detail: `queue ${memory.queueDepth}/1024, dropped ${memory.dropped}, heap growth ${memory.heapGrowthMb.toFixed(1)} MB`,
    },
  ];
  const same = "same settings";
  const ratios: Ratio[] = (
    [
      [
        `1 sub vs emittery (${same}; ours also validates and builds an envelope)`,
        names.ours1,
        names.emittery1,
      ],
      [`1 sub vs emittery doing the same work (${same})`, names.ours1, names.emitterySame1],
      [`1 sub, OpenTelemetry API without SDK vs off (${same})`, names.ours1OtelApi, names.ours1],
      [
        `1 sub, OpenTelemetry SDK tracing + metrics vs off (${same})`,
        names.ours1OtelSdk,
        names.ours1,
      ],
      [
        `1 sub vs the floor (${same}; the floor does no validation, no envelope)`,
        names.ours1,
        names.floor1,
      ],
      [
        `10 subs vs emittery (${same}; ours also validates and builds an envelope)`,
        names.ours10,
        names.emittery10,
      ],
      [`10 subs vs emittery doing the same work (${same})`, names.ours10, names.emitterySame10],
      [
        `10 subs vs the floor (${same}; the floor does no validation, no envelope)`,
        names.ours10,
        names.floor10,
      ],
      [
        "1 sub vs eventemitter3 (**not the same settings**: eventemitter3 awaits once per 1000 emits, ours awaits each publish)",
        names.ours1,
        names.ee3_1,
      ],
    ] as const
  ).map(([description, a, b]) => ({
    group: "router",
    description: `${description}; median of per-round ratios: ${a} / ${b}`,
    value: ratio(a, b),
  }));
  const scaling = await subscriptionScaling(options.quick);
  const perCall = `in process, ${BATCH} calls per task, payload ${JSON.stringify(payload).length} B JSON (3 fields) where one is used: the per-publish work the router does before delivery`;
  return {
    figures: [...figures, ...envelope.map((e) => ({ ...e, settings: perCall }))],
    targets,
    ratios,
    scaling,
  };
}

function stalledSubscriberMemory(count: number) {
  const router = createRouter({ catalog: pipelineCatalog });
  router.subscribe("MODEL_PROMOTED", () => new Promise(() => {}), {
    name: "stalled",
    overflow: "drop-oldest",
    timeoutMs: 0,
  });
  globalThis.gc?.();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < count; i++) void router.publish("MODEL_PROMOTED", payload);
  globalThis.gc?.();
  const after = process.memoryUsage().heapUsed;
  const sub = router.getStats().subscriptions[0]!;
  void router.shutdown({ timeoutMs: 0 });
  return {
    published: count,
    queueDepth: sub.queueDepth,
    dropped: sub.dropped,
    heapGrowthMb: (after - before) / 2 ** 20,
  };
}

/**
 * Publish cost against subscription count: N subscriptions all on the published type (every
 * publish delivers N times), and 1 matching among N on another type (the publish should not pay
 * for subscriptions it does not reach). Bounded: each point publishes until ~20,000 deliveries
 * (2,000 in quick mode) or 400 ms, whichever comes first, at least once.
 */
async function subscriptionScaling(quick: boolean): Promise<Scaling[]> {
  const sizes = quick ? [1, 10, 100, 1000] : [1, 10, 100, 1000, 10_000];
  const runs = quick ? 1 : 3;
  const deliveries = quick ? 2_000 : 20_000;
  const budgetMs = quick ? 100 : 400;
  const warmup = quick ? 20 : 200;
  // At 10,000 subscriptions the delivery budget is 2 publishes: too few to time (the first
  // touches of every subscription's state dominate). Every point times at least this many.
  const minPublishes = quick ? 5 : 30;
  const handler = async () => {};
  const time = async (subs: number, matching: number) => {
    const samples: number[] = [];
    const subscribeUs: number[] = [];
    let heapB = Number.NaN;
    for (let r = 0; r < runs; r++) {
      const router = createRouter({ catalog: pipelineCatalog });
      globalThis.gc?.();
      const before = process.memoryUsage().heapUsed;
      const t0 = performance.now();
      for (let i = 0; i < subs; i++)
        router.subscribe(i < matching ? "MODEL_PROMOTED" : "TRAINING_COMPLETED", handler, {
          name: `s${i}`,
        });
      subscribeUs.push(((performance.now() - t0) * 1000) / subs);
      globalThis.gc?.();
      const grown = process.memoryUsage().heapUsed - before;
      // One heap reading moves by tens of KiB on its own: a smaller growth says nothing.
      heapB = grown >= HEAP_RESOLUTION ? grown / subs : Number.NaN;
      const cap = Math.max(minPublishes, Math.ceil(deliveries / matching));
      // Warm-up before timing (bounded like the timed part).
      for (let i = 0; i < Math.min(cap, warmup); i++)
        await router.publish("MODEL_PROMOTED", payload);
      await router.drain();
      const start = performance.now();
      let published = 0;
      while (published < cap && performance.now() - start < budgetMs) {
        await router.publish("MODEL_PROMOTED", payload);
        published++;
      }
      await router.drain();
      samples.push(((performance.now() - start) * 1000) / published);
      await router.shutdown({ timeoutMs: 1_000 });
    }
    return { us: median(samples), heapB, subscribeUs: median(subscribeUs) };
  };
  const rows: string[][] = [];
  const all: [number, number][] = [];
  const one: [number, number][] = [];
  const subscribe: [number, number][] = [];
  await time(1, 1); // JIT warm-up for the whole curve; discarded
  for (const n of sizes) {
    const a = await time(n, n);
    const b = await time(n, 1);
    all.push([n, a.us]);
    one.push([n, b.us]);
    rows.push([
      n.toLocaleString("en"),
      a.us.toFixed(2),
      ((a.us * 1000) / n).toFixed(0),
      b.us.toFixed(2),
      Number.isFinite(a.heapB) ? (a.heapB / 1024).toFixed(2) : "—",
      a.subscribeUs.toFixed(1),
    ]);
    subscribe.push([n, a.subscribeUs]);
  }
  const growth = one.at(-1)![1] / one[0]![1];
  return [
    {
      title: "router: publish cost against subscription count",
      settings:
        `\`createRouter({ catalog })\` defaults (validation on); in process, 1 publisher awaiting each publish, payload ${JSON.stringify(payload).length} B JSON (3 fields), one no-op async handler shared by the N subscriptions (the router delivers to each subscription, whatever its function); each point publishes until ${deliveries.toLocaleString("en")} deliveries (at least ${minPublishes} publishes) or ${budgetMs} ms (at least once), after up to ${warmup} warm-up publishes; ` +
        `median of ${runs} run${runs > 1 ? "s" : ""}; time per publish includes \`drain()\` of its deliveries. Heap per subscription: heap growth over subscribing N (the router made before), divided by N (${globalThis.gc ? "after gc" : "no --expose-gc: noisy below 1,000"}); — where the growth is under ${HEAP_RESOLUTION / 1024} KiB, below what one heap reading resolves.`,
      columns: [
        "subscriptions",
        "µs per publish, all N on the published type",
        "ns per delivery, all N",
        "µs per publish, 1 of N on the published type",
        "heap per subscription (KiB)",
        "µs per subscribe() call, subscribing N",
      ],
      rows,
      chart: {
        title: "router: µs per publish vs subscriptions",
        x: "subscriptions",
        y: "µs per publish",
        series: [
          { name: "1 of N matches", points: one },
          { name: "all N match (÷ N, per delivery)", points: all.map(([n, us]) => [n, us / n]) },
        ],
      },
      reading:
        `With 1 of N subscriptions matching, publish cost at ${sizes.at(-1)!.toLocaleString("en")} subscriptions / at ${sizes[0]}: ${growth.toFixed(2)}× ` +
        "(flat means the type index keeps non-matching subscriptions off the publish path). With all N matching the cost is N deliveries: the per-delivery column should stay flat. " +
        `Per delivery, at ${sizes.at(-1)!.toLocaleString("en")} / at ${sizes.at(-2)!.toLocaleString("en")} subscriptions all matching: ${(all.at(-1)![1] / sizes.at(-1)! / (all.at(-2)![1] / sizes.at(-2)!)).toFixed(2)}× ` +
        "(where it rises: each publish touches every subscription's own state once — its object, worker slot, counters, 8 KiB duration window — and at 10,000 that working set no longer fits the CPU caches; ruled out: garbage collection, 10 scavenges taking 7–9 ms of a 125–160 ms run of 10,000 × 20 publishes, and the duration window's size, 16 samples instead of 1,024 changed nothing). " +
        `subscribe() per call, at ${sizes.at(-1)!.toLocaleString("en")} / at ${sizes.at(-2)!.toLocaleString("en")} subscriptions: ${(subscribe.at(-1)![1] / subscribe.at(-2)![1]).toFixed(1)}× (≈ 1: setting up N is linear; ≈ 10: each subscribe walks the existing ones, so setting up N is quadratic).`,
    },
  ];
}
