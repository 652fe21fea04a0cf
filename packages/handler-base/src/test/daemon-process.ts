// A daemon process for process.test.ts, run by Node with the TypeScript loader in ./fixtures:
// one daemon under a DaemonManager, a slow handler in flight, until SIGTERM or SIGINT.
// It reports what happens as JSON lines on stdout.
import { pipelineCatalog, type PipelineCatalog } from "@switchyard/event-schema";
import { type Router, createRouter, sleep } from "@switchyard/router";
import { DaemonManager } from "../daemon-manager";
import { HandlerBase, type Subscriptions } from "../handler-base";

const say = (line: Record<string, unknown>) =>
  void process.stdout.write(`${JSON.stringify(line)}\n`);

class Worker extends HandlerBase<PipelineCatalog> {
  constructor(router: Router<PipelineCatalog>) {
    super({ name: "worker", router, cycleIntervalMs: 50 });
  }

  protected override runCycle() {
    say({ event: "cycle" });
  }

  protected override subscriptions(): Subscriptions<PipelineCatalog> {
    return {
      TRAINING_COMPLETED: async (event) => {
        say({ event: "handler-start", config_key: event.data.config_key });
        await sleep(400);
        say({ event: "handler-end", config_key: event.data.config_key });
      },
    };
  }
}

const router = createRouter({ catalog: pipelineCatalog });
const manager = new DaemonManager({
  daemons: [new Worker(router)],
  heartbeatSink: { write: (beat) => say({ event: "heartbeat", status: beat.status }) },
  heartbeatIntervalMs: 100,
});
const running = manager.run();
await manager.startAll();
await router.publish("TRAINING_COMPLETED", {
  config_key: "hex8_2p",
  model_path: "m.pt",
  loss: 0.1,
});
await running;
await router.shutdown();
say({
  event: "exited-cleanly",
  sigtermListeners: process.listenerCount("SIGTERM"),
  sigintListeners: process.listenerCount("SIGINT"),
});
