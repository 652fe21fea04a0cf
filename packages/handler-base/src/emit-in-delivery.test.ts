import {
  EventValidationError,
  type Envelope,
  type PipelineCatalog,
} from "@switchyard/event-schema";
import {
  type DeadLetterRecord,
  type Router,
  type Transport,
  defineMiddleware,
  memoryTransport,
} from "@switchyard/router";
import { afterEach, describe, expect, it } from "vitest";
import { EmitFailedError } from "./errors";
import { HandlerBase, type Subscriptions } from "./handler-base";
import { closeRouters, eventually, makeRouter, payloads } from "./test/fixtures";

/** A pipeline stage: on TRAINING_COMPLETED it emits EVALUATION_COMPLETED (awaited or not). */
class Stage extends HandlerBase<PipelineCatalog> {
  constructor(
    router: Router<PipelineCatalog>,
    private readonly how: {
      await: boolean;
      payload: "valid" | "invalid";
      /** Emit an invalid event from the first cycle, run at start. */
      cycleEmitsInvalid?: boolean;
    },
  ) {
    super({ name: "evaluator", router, cycleIntervalMs: 60_000 });
  }

  protected override subscriptions(): Subscriptions<PipelineCatalog> {
    return { TRAINING_COMPLETED: this.onTraining };
  }

  private onTraining = async (event: Envelope) => {
    const data =
      this.how.payload === "valid"
        ? payloads.evaluation()
        : ({ config_key: "hex8_2p", elo: "high" } as never);
    const emitting = this.emit("EVALUATION_COMPLETED", data, { causedBy: event });
    if (this.how.await) await emitting;
  };

  protected override async runCycle() {
    if (this.how.cycleEmitsInvalid)
      await this.emit("EVALUATION_COMPLETED", { config_key: "", elo: "x" } as never);
  }
}

/** The memory transport, refusing to store one event type (a transport publish that rejects). */
function refusing(type: string): Transport {
  const inner = memoryTransport();
  return Object.assign(Object.create(inner) as Transport, {
    publish: (envelopes: readonly Envelope[]) =>
      envelopes.some((e) => e.type === type)
        ? Promise.reject(new Error(`transport refuses ${type}`))
        : inner.publish(envelopes),
    subscribe: inner.subscribe.bind(inner),
    stats: inner.stats.bind(inner),
    close: inner.close.bind(inner),
  });
}

const stages: HandlerBase<PipelineCatalog>[] = [];
afterEach(async () => {
  await Promise.all(stages.splice(0).map((s) => s.stop()));
  await closeRouters();
});

describe("an emit that fails inside a delivery", () => {
  it("fails the durable delivery: retried, then dead-lettered with EmitFailedError", async () => {
    const deadLetters: DeadLetterRecord[] = [];
    const router = makeRouter({
      transport: memoryTransport(),
      deadLetter: { deadLetter: (r) => void deadLetters.push(r) },
      subscriptionDefaults: { maxAttempts: 2, backoff: { initialMs: 1, jitter: 0 } },
    });
    const stage = new Stage(router, { await: true, payload: "invalid" });
    stages.push(stage);
    await stage.start();
    const upstream = await router.publish("TRAINING_COMPLETED", payloads.training());
    await eventually(() => deadLetters.length === 1);
    expect(deadLetters[0]).toMatchObject({
      subscriber: "evaluator:TRAINING_COMPLETED",
      attempts: 2,
      reason: "max_attempts",
      envelope: { id: upstream.id },
      error: { name: "EmitFailedError", code: "EMIT_FAILED" },
    });
    expect(deadLetters[0]!.error.message).toContain("failed to emit EVALUATION_COMPLETED");
    expect(deadLetters[0]!.error.message).toContain("elo");
    expect(stage.stats).toMatchObject({ eventsProcessed: 2, emitFailures: 2, errorsCount: 2 });
  });

  it("fails the in-process delivery with the emit's error as cause, and dead-letters it", async () => {
    const deadLetters: DeadLetterRecord[] = [];
    const failures: unknown[] = [];
    const router = makeRouter({
      deadLetter: { deadLetter: (r) => void deadLetters.push(r) },
      middleware: [
        defineMiddleware("custom", function capture(next) {
          return async (event, ctx) => {
            try {
              await next(event, ctx);
            } catch (error) {
              failures.push(error);
              throw error;
            }
          };
        }),
      ],
    });
    const stage = new Stage(router, { await: true, payload: "invalid" });
    stages.push(stage);
    await stage.start();
    await router.publish("TRAINING_COMPLETED", payloads.training());
    await router.drain();
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(EmitFailedError);
    expect((failures[0] as EmitFailedError).cause).toBeInstanceOf(EventValidationError);
    expect(deadLetters).toEqual([
      expect.objectContaining({ error: expect.objectContaining({ name: "EmitFailedError" }) }),
    ]);
  });

  it("fails the delivery when an emit the handler did not await is refused by the transport", async () => {
    const transport = refusing("EVALUATION_COMPLETED");
    const deadLetters: DeadLetterRecord[] = [];
    const router = makeRouter({
      transport,
      deadLetter: { deadLetter: (r) => void deadLetters.push(r) },
      subscriptionDefaults: { maxAttempts: 1 },
    });
    const stage = new Stage(router, { await: false, payload: "valid" });
    stages.push(stage);
    await stage.start();
    await router.publish("TRAINING_COMPLETED", payloads.training());
    await eventually(() => deadLetters.length === 1);
    expect(deadLetters[0]!.error).toMatchObject({ name: "EmitFailedError" });
    expect(deadLetters[0]!.error.message).toContain("transport refuses EVALUATION_COMPLETED");
  });

  it("acknowledges the delivery when its emits succeed", async () => {
    const deadLetters: DeadLetterRecord[] = [];
    const router = makeRouter({
      transport: memoryTransport(),
      deadLetter: { deadLetter: (r) => void deadLetters.push(r) },
    });
    const received: Envelope[] = [];
    await router.subscribe("EVALUATION_COMPLETED", (e) => void received.push(e), {
      name: "next-stage",
    }).ready;
    const stage = new Stage(router, { await: false, payload: "valid" });
    stages.push(stage);
    await stage.start();
    await router.publish("TRAINING_COMPLETED", payloads.training());
    await eventually(() => received.length === 1 && stage.stats.eventsProcessed === 1);
    expect(deadLetters).toEqual([]);
    expect(stage.stats).toMatchObject({ eventsEmitted: 1, emitFailures: 0, errorsCount: 0 });
  });
});

describe("an emit that fails outside a delivery", () => {
  it("stays safe in a handler when it does not name the event it was caused by", async () => {
    const deadLetters: DeadLetterRecord[] = [];
    const router = makeRouter({ deadLetter: { deadLetter: (r) => void deadLetters.push(r) } });
    class Unlinked extends HandlerBase<PipelineCatalog> {
      constructor() {
        super({ name: "unlinked", router, cycleIntervalMs: 60_000 });
      }
      protected override subscriptions(): Subscriptions<PipelineCatalog> {
        return {
          TRAINING_COMPLETED: async () => {
            await this.emit("EVALUATION_COMPLETED", { config_key: "x", elo: "high" } as never);
          },
        };
      }
    }
    const unlinked = new Unlinked();
    stages.push(unlinked);
    await unlinked.start();
    await router.publish("TRAINING_COMPLETED", payloads.training());
    await router.drain();
    expect(deadLetters).toEqual([]);
    expect(unlinked.stats).toMatchObject({ emitFailures: 1, errorsCount: 0, eventsProcessed: 1 });
  });

  it("stays safe in runCycle: counted and logged, the cycle succeeds, the daemon keeps running", async () => {
    const router = makeRouter();
    const stage = new Stage(router, { await: true, payload: "valid", cycleEmitsInvalid: true });
    stages.push(stage);
    await stage.start();
    await eventually(() => stage.stats.cyclesRun === 1);
    expect(stage.status).toBe("running");
    expect(stage.stats).toMatchObject({
      emitFailures: 1,
      successCount: 1,
      errorsCount: 0,
      cycleFailures: 0,
    });
  });
});
