// In-process: our router's publish → deliver next to emittery and eventemitter3 doing the same
// delivery in the same process, and a hand-written Promise.all dispatch as the ceiling.
import { createEnvelope, pipelineCatalog, uuidv7 } from "@switchyard/event-schema";
import { createRouter } from "@switchyard/router";
import Emittery from "emittery";
import { EventEmitter } from "eventemitter3";
import {
  type GroupResult,
  type Ratio,
  type RunOptions,
  type Target,
  find,
  measure,
} from "./harness";

const BATCH = 1000;
const payload = { config_key: "hex8_2p", model_path: "models/hex8_2p/gen-3.pt", elo: 1612 };

export async function benchRouter(options: RunOptions): Promise<GroupResult> {
  const sink = { count: 0 };
  const handler = async (_event?: unknown) => {
    sink.count++;
  };

  const ours = (
    subscribers: number,
    opts: { validate?: boolean; pattern?: "exact" | "wildcard" } = {},
  ) => {
    const router = createRouter({ catalog: pipelineCatalog, validate: opts.validate ?? true });
    for (let i = 0; i < subscribers; i++) {
      router.subscribe(opts.pattern === "wildcard" ? "MODEL_*" : "MODEL_PROMOTED", handler, {
        name: `s${i}`,
      });
    }
    return async () => {
      for (let i = 0; i < BATCH; i++) await router.publish("MODEL_PROMOTED", payload);
      await router.drain();
    };
  };
  const emittery = (listeners: number) => {
    const emitter = new Emittery();
    for (let i = 0; i < listeners; i++) emitter.on("MODEL_PROMOTED", handler);
    return async () => {
      for (let i = 0; i < BATCH; i++) await emitter.emit("MODEL_PROMOTED", payload);
    };
  };
  // Emittery asked to do the work every router publish does: validate the payload against the
  // catalog and wrap it in an envelope (id, time, source). Shows how much of the gap is that work.
  const emitterySameWork = (listeners: number) => {
    const emitter = new Emittery();
    for (let i = 0; i < listeners; i++) emitter.on("MODEL_PROMOTED", handler);
    return async () => {
      for (let i = 0; i < BATCH; i++) {
        const data = pipelineCatalog.parse("MODEL_PROMOTED", payload);
        await emitter.emit(
          "MODEL_PROMOTED",
          createEnvelope({ type: "MODEL_PROMOTED", source: "bench", data }),
        );
      }
    };
  };
  const ee3 = (listeners: number) => {
    const emitter = new EventEmitter();
    const pending: Promise<void>[] = [];
    for (let i = 0; i < listeners; i++)
      emitter.on("MODEL_PROMOTED", (p: unknown) => void pending.push(handler(p)));
    return async () => {
      for (let i = 0; i < BATCH; i++) emitter.emit("MODEL_PROMOTED", payload);
      await Promise.all(pending.splice(0));
    };
  };
  const handWritten = (listeners: number) => {
    const list = Array.from({ length: listeners }, () => handler);
    return async () => {
      for (let i = 0; i < BATCH; i++) {
        const evt = payload;
        await Promise.all(list.map((l) => l(evt)));
      }
    };
  };

  const figures = await measure(
    "router: publish → deliver (events/s, 1000 per task)",
    {
      "switchyard 1 sub (validation on, default middleware)": ours(1),
      "switchyard 1 sub (validation off)": ours(1, { validate: false }),
      "switchyard 1 sub, wildcard MODEL_*": ours(1, { pattern: "wildcard" }),
      "switchyard 10 subs (validation on)": ours(10),
      "switchyard 10 subs, wildcard": ours(10, { pattern: "wildcard" }),
      "emittery 1.x awaited emit, 1 listener": emittery(1),
      "emittery 1.x awaited emit, 10 listeners": emittery(10),
      "emittery 1.x + validation + envelope per emit, 1 listener": emitterySameWork(1),
      "emittery 1.x + validation + envelope per emit, 10 listeners": emitterySameWork(10),
      "eventemitter3 emit, 1 async listener": ee3(1),
      "eventemitter3 emit, 10 async listeners": ee3(10),
      "hand-written await Promise.all, 1 listener": handWritten(1),
      "hand-written await Promise.all, 10 listeners": handWritten(10),
    },
    BATCH,
    options,
  );

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
  const ratio = (a: number, b: number) => a / b;
  const one = f("switchyard 1 sub (validation on, default middleware)");
  const ten = f("switchyard 10 subs (validation on)");
  const targets: Target[] = [
    {
      group: "router",
      description: "1 subscriber, default middleware ≥ 3× emittery awaited emit",
      met: ratio(one, f("emittery 1.x awaited emit, 1 listener")) >= 3,
      detail: `${ratio(one, f("emittery 1.x awaited emit, 1 listener")).toFixed(2)}×`,
    },
    {
      group: "router",
      description: "1 subscriber ≥ 0.5× hand-written Promise.all dispatch",
      met: ratio(one, f("hand-written await Promise.all, 1 listener")) >= 0.5,
      detail: `${ratio(one, f("hand-written await Promise.all, 1 listener")).toFixed(2)}×`,
    },
    {
      group: "router",
      description: "10 subscribers ≥ 3× emittery awaited emit",
      met: ratio(ten, f("emittery 1.x awaited emit, 10 listeners")) >= 3,
      detail: `${ratio(ten, f("emittery 1.x awaited emit, 10 listeners")).toFixed(2)}×`,
    },
    {
      group: "router",
      description: "validation on costs no more than half the throughput",
      met: ratio(one, f("switchyard 1 sub (validation off)")) >= 0.5,
      detail: `on/off = ${ratio(one, f("switchyard 1 sub (validation off)")).toFixed(2)}`,
    },
    {
      group: "router",
      description: `stalled subscriber: ${memory.published.toLocaleString("en")} events published, heap within the queue bound`,
      met: memory.queueDepth <= 1024 && memory.heapGrowthMb < 64,
      detail: `queue ${memory.queueDepth}/1024, dropped ${memory.dropped}, heap growth ${memory.heapGrowthMb.toFixed(1)} MB`,
    },
  ];
  const ratios: Ratio[] = [
    [
      "1 sub vs emittery",
      "switchyard 1 sub (validation on, default middleware)",
      "emittery 1.x awaited emit, 1 listener",
    ],
    [
      "1 sub vs emittery doing the same work",
      "switchyard 1 sub (validation on, default middleware)",
      "emittery 1.x + validation + envelope per emit, 1 listener",
    ],
    [
      "10 subs vs emittery",
      "switchyard 10 subs (validation on)",
      "emittery 1.x awaited emit, 10 listeners",
    ],
    [
      "10 subs vs emittery doing the same work",
      "switchyard 10 subs (validation on)",
      "emittery 1.x + validation + envelope per emit, 10 listeners",
    ],
    [
      "1 sub vs eventemitter3",
      "switchyard 1 sub (validation on, default middleware)",
      "eventemitter3 emit, 1 async listener",
    ],
  ].map(([description, a, b]) => ({
    group: "router",
    description: `${description}: ${a} / ${b}`,
    value: f(a!) / f(b!),
  }));
  return { figures: [...figures, ...envelope], targets, ratios };
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
