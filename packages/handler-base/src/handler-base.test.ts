import {
  EventValidationError,
  defineCatalog,
  defineEvent,
  pipelineCatalog,
  type Envelope,
  type EventInput,
  type EventType,
  type PipelineCatalog,
} from "@switchyard/event-schema";
import {
  type HandlerContext,
  type Router,
  NoRouterError,
  RouterClosedError,
  getRouter,
  hasRouter,
  memoryTransport,
  resetRouter,
  sleep,
} from "@switchyard/router";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import type { DedupCheckOptions } from "./dedup";
import { DaemonManager } from "./daemon-manager";
import { DaemonCrashedError, DaemonOptionsError, DaemonStartError } from "./errors";
import {
  type EmitOptions,
  HandlerBase,
  type HandlerBaseOptions,
  type Subscriptions,
} from "./handler-base";
import {
  busyWait,
  closeRouters,
  delay,
  eventually,
  makeRouter,
  manualClock,
  memoryLogger,
  payloads,
  settlesWithin,
} from "./test/fixtures";

type Options = Partial<HandlerBaseOptions<PipelineCatalog>> & { router: Router<PipelineCatalog> };

/** A daemon whose cycle and handlers each test sets, with the protected tools made callable. */
class TestDaemon extends HandlerBase<PipelineCatalog> {
  cycle: (signal: AbortSignal) => void | Promise<void> = () => {};
  handlers: Subscriptions<PipelineCatalog> = {};
  startHook: (signal: AbortSignal) => void | Promise<void> = () => {};
  stopped = 0;

  constructor(options: Options) {
    super({ name: "test_daemon", ...options });
  }

  protected override runCycle(signal: AbortSignal) {
    return this.cycle(signal);
  }

  protected override subscriptions(): Subscriptions<PipelineCatalog> {
    return this.handlers;
  }

  protected override onStart(signal: AbortSignal) {
    return this.startHook(signal);
  }

  protected override onStop() {
    this.stopped++;
  }

  send<T extends EventType<PipelineCatalog>>(
    type: T,
    data: EventInput<T, PipelineCatalog>,
    options?: EmitOptions,
  ) {
    return this.emit(type, data, options);
  }

  seen(event: unknown, options?: DedupCheckOptions) {
    return this.isDuplicateEvent(event, options);
  }
}

const daemons: HandlerBase<PipelineCatalog>[] = [];
function daemon(options: Partial<Options> = {}) {
  const d = new TestDaemon({
    router: options.router ?? makeRouter(),
    cycleIntervalMs: 60_000,
    ...options,
  });
  daemons.push(d);
  return d;
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
  await closeRouters();
});

/** Fake clock for cycle timing: counts then follow the schedule, not the machine's load. */
const fakeClock = () =>
  vi.useFakeTimers({
    toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "performance", "Date"],
  });

describe("cycles", () => {
  it("runs runCycle at the interval, start to start, never two at once", async () => {
    fakeClock();
    const d = daemon({ cycleIntervalMs: 30 });
    const starts: number[] = [];
    let running = 0;
    let maxRunning = 0;
    d.cycle = async () => {
      starts.push(performance.now());
      maxRunning = Math.max(maxRunning, ++running);
      await delay(10);
      running--;
    };
    await d.start();
    const t0 = performance.now();
    await vi.advanceTimersByTimeAsync(200); // cycles at 0, 30, … 180, each done 10 ms later
    await d.stop();
    expect(maxRunning).toBe(1);
    expect(starts.map((t) => t - t0)).toEqual([0, 30, 60, 90, 120, 150, 180]);
    expect(d.stats.cyclesRun).toBe(7);
  });

  it("starts the next cycle as soon as an overrunning one ends, still one at a time", async () => {
    const d = daemon({ cycleIntervalMs: 10 });
    const spans: [number, number][] = [];
    d.cycle = async () => {
      const start = performance.now();
      await delay(40);
      spans.push([start, performance.now()]);
    };
    await d.start();
    await eventually(() => spans.length >= 3);
    await d.stop();
    for (let i = 1; i < spans.length; i++)
      expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
  });

  it("keeps running cycles after one throws, counting, logging and recording the failure", async () => {
    const logger = memoryLogger();
    const d = daemon({ cycleIntervalMs: 10, logger });
    let calls = 0;
    d.cycle = () => {
      if (++calls === 1) throw new Error("disk full");
    };
    await d.start();
    await eventually(() => d.stats.cyclesRun >= 3);
    expect(d.status).toBe("running");
    expect(d.stats).toMatchObject({
      cycleFailures: 1,
      errorsCount: 1,
      consecutiveCycleFailures: 0,
    });
    expect(d.recentErrors()).toEqual([
      expect.objectContaining({ kind: "cycle", message: "disk full", name: "Error" }),
    ]);
    expect(logger.lines).toContainEqual(
      expect.objectContaining({ level: "error", msg: expect.stringMatching(/cycle failed/) }),
    );
  });

  it("passes runCycle a signal that stop() aborts, and stop() waits for the running cycle", async () => {
    const d = daemon({ cycleIntervalMs: 10 });
    let cycleStarted = false;
    let cycleEnded = false;
    d.cycle = async (signal) => {
      cycleStarted = true;
      await sleep(10_000, { signal }).catch(() => {});
      await delay(20); // cleanup after the abort, which stop() must wait for
      cycleEnded = true;
    };
    await d.start();
    await eventually(() => cycleStarted);
    const t0 = performance.now();
    await d.stop();
    expect(cycleEnded).toBe(true);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(d.stats.cycleFailures).toBe(0);
  });

  it("does not count a cycle that throws because stop() aborted it as a failure", async () => {
    const d = daemon({ cycleIntervalMs: 10 });
    let started = false;
    d.cycle = (signal) => {
      started = true;
      return sleep(10_000, { signal });
    };
    await d.start();
    await eventually(() => started);
    await d.stop();
    expect(d.stats.cycleFailures).toBe(0);
    expect(d.recentErrors()).toEqual([]);
  });

  it("stops waiting for a cycle that ignores its signal after stopTimeoutMs, with a warning", async () => {
    const logger = memoryLogger();
    const d = daemon({ cycleIntervalMs: 10, stopTimeoutMs: 50, logger });
    let started = false;
    d.cycle = () => {
      started = true;
      return delay(3_000);
    };
    await d.start();
    await eventually(() => started);
    const t0 = performance.now();
    await d.stop();
    // Waiting for the cycle would take 3 s; half of that leaves a loaded machine room.
    expect(performance.now() - t0).toBeLessThan(1_500);
    expect(logger.lines).toContainEqual(
      expect.objectContaining({ level: "warn", msg: expect.stringMatching(/still running/) }),
    );
  });

  it("runs no cycle timer when the subclass does not override runCycle", async () => {
    fakeClock();
    class Quiet extends HandlerBase<PipelineCatalog> {
      constructor(router: Router<PipelineCatalog>) {
        super({ name: "quiet", router, cycleIntervalMs: 5 });
      }
    }
    const d = new Quiet(makeRouter());
    daemons.push(d);
    await d.start();
    await vi.advanceTimersByTimeAsync(1000); // two hundred intervals
    expect(d.stats.cyclesRun).toBe(0);
  });

  it("waits one interval before the first cycle with runCycleOnStart: false", async () => {
    fakeClock();
    const d = daemon({ cycleIntervalMs: 80, runCycleOnStart: false });
    const cycle = vi.fn();
    d.cycle = cycle;
    await d.start();
    await vi.advanceTimersByTimeAsync(79);
    expect(cycle).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(cycle).toHaveBeenCalledTimes(1);
  });

  it("crashes after maxConsecutiveCycleFailures failing cycles in a row, unsubscribes and tells its crash listeners", async () => {
    const router = makeRouter();
    const d = daemon({ router, cycleIntervalMs: 5, maxConsecutiveCycleFailures: 3 });
    d.handlers = { TRAINING_COMPLETED: () => {} };
    d.cycle = () => {
      throw new Error("database locked");
    };
    const crashes: Error[] = [];
    d.onCrash((error) => crashes.push(error));
    await d.start();
    await eventually(() => crashes.length === 1);
    expect(crashes[0]).toBeInstanceOf(DaemonCrashedError);
    expect(crashes[0]).toMatchObject({
      code: "DAEMON_CRASHED",
      consecutiveFailures: 3,
      daemon: "test_daemon",
    });
    expect((crashes[0] as DaemonCrashedError).cause).toEqual(new Error("database locked"));
    expect(d.status).toBe("crashed");
    expect(d.stats.cyclesRun).toBe(3);
    expect(router.listSubscriptions()).toEqual([]);
    expect(d.health()).toMatchObject({ healthy: false, status: "unhealthy" });

    // A crashed daemon can be started again.
    let ok = 0;
    d.cycle = () => void ok++;
    await d.start();
    expect(d.status).toBe("running");
    await eventually(() => ok > 0);
    expect(router.listSubscriptions().map((s) => s.name)).toEqual([
      "test_daemon:TRAINING_COMPLETED",
    ]);
  });

  it("removes a crash listener when its registration is called or disposed", async () => {
    const d = daemon({ cycleIntervalMs: 5, maxConsecutiveCycleFailures: 1 });
    d.cycle = () => {
      throw new Error("boom");
    };
    const removed = vi.fn();
    const disposed = vi.fn();
    const kept = vi.fn();
    d.onCrash(removed)();
    {
      using _registration = d.onCrash(disposed);
    }
    d.onCrash(kept);
    await d.start();
    await eventually(() => kept.mock.calls.length === 1);
    expect(removed).not.toHaveBeenCalled();
    expect(disposed).not.toHaveBeenCalled();
  });
});

describe("handlers", () => {
  it("subscribes each mapped type as `${name}:${type}` and calls the handler with the envelope, ctx and this", async () => {
    const router = makeRouter();
    const d = daemon({ router });
    const calls: { self: unknown; event: Envelope; ctx: HandlerContext }[] = [];
    d.handlers = {
      TRAINING_COMPLETED(event, ctx) {
        calls.push({ self: this, event, ctx });
      },
      EVALUATION_COMPLETED: () => {},
    };
    await d.start();
    expect(router.listSubscriptions().map((s) => s.name)).toEqual([
      "test_daemon:TRAINING_COMPLETED",
      "test_daemon:EVALUATION_COMPLETED",
    ]);
    const sent = await router.publish("TRAINING_COMPLETED", payloads.training());
    await router.drain();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.self).toBe(d);
    expect(calls[0]!.event).toBe(sent);
    expect(calls[0]!.ctx).toMatchObject({
      subscription: "test_daemon:TRAINING_COMPLETED",
      attempt: 1,
      origin: "local",
    });
    expect(d.stats).toMatchObject({ eventsProcessed: 1, successCount: 1, errorsCount: 0 });
    expect(d.stats.lastActivity).toEqual(expect.any(Number));
  });

  it("counts, logs and records a failing handler, rethrows to the router, and keeps other events flowing", async () => {
    const logger = memoryLogger();
    const router = makeRouter();
    const d = daemon({ router, logger });
    const handled: string[] = [];
    d.handlers = {
      EVALUATION_COMPLETED: (event) => {
        if (event.data.elo < 0) throw new RangeError(`negative elo ${event.data.elo}`);
        handled.push(event.data.config_key);
      },
    };
    await d.start();
    await router.publish("EVALUATION_COMPLETED", payloads.evaluation("hex8_2p"));
    const bad = await router.publish("EVALUATION_COMPLETED", payloads.evaluation("sq8_2p", -5));
    await router.publish("EVALUATION_COMPLETED", payloads.evaluation("sq19_4p"));
    await router.drain();
    expect(handled).toEqual(["hex8_2p", "sq19_4p"]);
    expect(d.stats).toMatchObject({ eventsProcessed: 3, successCount: 2, errorsCount: 1 });
    expect(d.recentErrors()).toEqual([
      expect.objectContaining({
        kind: "handler",
        name: "RangeError",
        message: "negative elo -5",
        eventType: "EVALUATION_COMPLETED",
        eventId: bad.id,
      }),
    ]);
    expect(logger.lines).toContainEqual(
      expect.objectContaining({
        level: "error",
        obj: expect.objectContaining({ eventId: bad.id }),
      }),
    );
    // The router saw the failure too: it was rethrown, not swallowed.
    expect(router.getStats()).toMatchObject({ failed: 1, delivered: 2 });
    expect(d.status).toBe("running");
  });

  it("keeps recentErrors bounded, dropping the oldest first", async () => {
    const router = makeRouter();
    const d = daemon({ router, maxRecentErrors: 3 });
    d.handlers = {
      TRAINING_COMPLETED: (event) => {
        throw new Error(`failure ${event.data.loss}`);
      },
    };
    await d.start();
    for (let i = 1; i <= 5; i++)
      await router.publish("TRAINING_COMPLETED", payloads.training("hex8_2p", i));
    await router.drain();
    expect(d.stats.errorsCount).toBe(5);
    expect(d.recentErrors().map((e) => e.message)).toEqual(["failure 3", "failure 4", "failure 5"]);
  });

  it("lets the router's retry policy retry a failed handler, and the retry is not taken for a duplicate", async () => {
    const router = makeRouter({ retry: { attempts: 3, backoff: { initialMs: 1, jitter: 0 } } });
    const d = daemon({ router });
    let attempts = 0;
    const done: number[] = [];
    d.handlers = {
      TRAINING_COMPLETED: (event, ctx) => {
        if (d.seen(event)) return;
        attempts++;
        if (ctx.attempt === 1) throw new Error("transient");
        done.push(ctx.attempt);
      },
    };
    await d.start();
    await router.publish("TRAINING_COMPLETED", payloads.training());
    await router.drain();
    expect(attempts).toBe(2);
    expect(done).toEqual([2]);
    expect(d.stats).toMatchObject({ eventsProcessed: 2, errorsCount: 1, eventsDeduplicated: 0 });
  });

  it("receives durable types from a transport under the stable subscriber name, with redelivery after a failure", async () => {
    const transport = memoryTransport();
    const router = makeRouter({ transport });
    const d = daemon({
      router,
      subscribeOptions: { backoff: { initialMs: 1, jitter: 0 }, maxAttempts: 3 },
    });
    const attempts: { attempt: number; origin: string }[] = [];
    d.handlers = {
      MODEL_PROMOTED: (_event, ctx) => {
        attempts.push({ attempt: ctx.attempt, origin: ctx.origin });
        if (ctx.attempt === 1) throw new Error("not yet");
      },
    };
    await d.start();
    expect(router.listSubscriptions()).toEqual([
      expect.objectContaining({
        name: "test_daemon:MODEL_PROMOTED",
        durableTypes: ["MODEL_PROMOTED"],
        transport: "active",
      }),
    ]);
    await router.publish("MODEL_PROMOTED", {
      config_key: "hex8_2p",
      model_path: "m.pt",
      elo: 1612,
    });
    await eventually(() => d.stats.eventsProcessed === 2);
    expect(attempts).toEqual([
      { attempt: 1, origin: "transport" },
      { attempt: 2, origin: "transport" },
    ]);
    expect(d.stats.errorsCount).toBe(1);
  });

  it("stop() removes the subscriptions and waits for in-flight handlers to finish", async () => {
    const router = makeRouter();
    const d = daemon({ router });
    const log: string[] = [];
    d.handlers = {
      TRAINING_COMPLETED: async () => {
        log.push("start");
        await delay(80);
        log.push("end");
      },
    };
    await d.start();
    await router.publish("TRAINING_COMPLETED", payloads.training());
    await eventually(() => log.length === 1);
    await d.stop();
    log.push("stopped");
    expect(log).toEqual(["start", "end", "stopped"]);
    expect(router.listSubscriptions()).toEqual([]);
    await router.publish("TRAINING_COMPLETED", payloads.training());
    await router.drain();
    expect(log).toEqual(["start", "end", "stopped"]);
    expect(d.stopped).toBe(1);
  });
});

describe("dedup", () => {
  it("recognises an event with the same content under another id as a duplicate, and counts it apart", async () => {
    const router = makeRouter();
    const d = daemon({ router });
    const processed: string[] = [];
    d.handlers = {
      TRAINING_COMPLETED: (event) => {
        if (d.seen(event)) return;
        processed.push(event.id);
      },
    };
    await d.start();
    const first = await router.publish("TRAINING_COMPLETED", payloads.training());
    await router.publish("TRAINING_COMPLETED", payloads.training());
    await router.publish("TRAINING_COMPLETED", payloads.training("hex8_2p", 0.5));
    await router.drain();
    expect(processed).toHaveLength(2);
    expect(processed[0]).toBe(first.id);
    expect(d.stats).toMatchObject({ eventsProcessed: 2, successCount: 2, eventsDeduplicated: 1 });
    // The router sees the skip too: the subscription's deduplicated count (and so the metric).
    expect(router.stats().deduplicated).toBe(1);
  });

  it("with keyFields, treats events differing only outside those fields as duplicates", () => {
    const d = daemon();
    const a = {
      type: "TRAINING_COMPLETED",
      data: { config_key: "hex8_2p", model_path: "m.pt", loss: 0.1, timestamp: 1 },
    };
    const b = {
      type: "TRAINING_COMPLETED",
      data: { config_key: "hex8_2p", model_path: "m.pt", loss: 0.1, timestamp: 2 },
    };
    const c = {
      type: "TRAINING_COMPLETED",
      data: { config_key: "hex8_2p", model_path: "n.pt", loss: 0.1, timestamp: 3 },
    };
    const keyFields = ["config_key", "model_path"];
    expect(d.seen(a, { keyFields })).toBe(false);
    expect(d.seen(b, { keyFields })).toBe(true);
    expect(d.seen(c, { keyFields })).toBe(false);
    expect(d.seen({ ...a, type: "EVALUATION_COMPLETED" }, { keyFields })).toBe(false);
  });

  it("forgets an event after the TTL, 5 minutes by default (fake clock)", () => {
    const clock = manualClock();
    const d = daemon({ now: clock.now });
    const event = { type: "MODEL_PROMOTED", data: { config_key: "hex8_2p", elo: 1600 } };
    expect(d.seen(event)).toBe(false);
    clock.advance(299_999);
    expect(d.seen(event)).toBe(true);
    clock.advance(1);
    expect(d.seen(event)).toBe(false);
  });

  it("bounds its memory with dedupMaxEntries, evicting the oldest", () => {
    const d = daemon({ dedupMaxEntries: 2 });
    const e = (n: number) => ({ type: "TRAINING_COMPLETED", data: { n } });
    d.seen(e(1));
    d.seen(e(2));
    d.seen(e(3));
    expect(d.seen(e(3))).toBe(true);
    expect(d.seen(e(2))).toBe(true);
    expect(d.seen(e(1))).toBe(false);
  });

  it("clearDedup() forgets everything and says how many hashes it dropped", () => {
    const d = daemon();
    d.seen({ type: "A", data: { n: 1 } });
    d.seen({ type: "A", data: { n: 2 } });
    expect(d.clearDedup()).toBe(2);
    expect(d.seen({ type: "A", data: { n: 1 } })).toBe(false);
  });
});

describe("emit", () => {
  it("never throws for null options from a JavaScript caller: the event is emitted", async () => {
    const d = daemon();
    const sent = d.send(
      "QUALITY_ALERT",
      { config_key: "hex8_2p", quality_score: 0.3, timestamp: 1 },
      null as unknown as EmitOptions,
    );
    await expect(sent).resolves.toMatchObject({ type: "QUALITY_ALERT", source: "test_daemon" });
    expect(d.stats).toMatchObject({ eventsEmitted: 1, emitFailures: 0 });
  });

  it("publishes with the daemon as source and resolves to the envelope", async () => {
    const router = makeRouter();
    const d = daemon({ router });
    const received: Envelope[] = [];
    router.subscribe("QUALITY_ALERT", (e) => void received.push(e), { name: "observer" });
    const sent = await d.send("QUALITY_ALERT", {
      config_key: "hex8_2p",
      quality_score: 0.3,
      timestamp: 1,
    });
    await router.drain();
    expect(sent).toMatchObject({
      type: "QUALITY_ALERT",
      source: "test_daemon",
      subject: "hex8_2p",
    });
    expect(received).toEqual([sent]);
    expect(d.stats).toMatchObject({ eventsEmitted: 1, emitFailures: 0 });
  });

  it("uses the source option instead of the name when given", async () => {
    const d = daemon({ source: "QualityMonitorDaemon" });
    const sent = await d.send("QUALITY_ALERT", {
      config_key: "hex8_2p",
      quality_score: 0.3,
      timestamp: 1,
    });
    expect(sent?.source).toBe("QualityMonitorDaemon");
  });

  it("never throws: an invalid payload resolves to undefined and counts as a failed emit", async () => {
    const logger = memoryLogger();
    const d = daemon({ logger });
    await d.start();
    const sent = await d.send("QUALITY_ALERT", { config_key: "", quality_score: "low" } as never);
    expect(sent).toBeUndefined();
    expect(d.stats).toMatchObject({
      eventsEmitted: 0,
      emitFailures: 1,
      consecutiveEmitFailures: 1,
    });
    expect(d.recentErrors()).toEqual([
      expect.objectContaining({
        kind: "emit",
        eventType: "QUALITY_ALERT",
        code: "EVENT_VALIDATION_FAILED",
        name: EventValidationError.name,
      }),
    ]);
    expect(logger.lines).toContainEqual(
      expect.objectContaining({
        level: "warn",
        msg: expect.stringMatching(/emitting QUALITY_ALERT failed/),
      }),
    );
    expect(d.health()).toMatchObject({ healthy: false, status: "degraded" });

    await d.send("QUALITY_ALERT", { config_key: "hex8_2p", quality_score: 0.3, timestamp: 1 });
    expect(d.stats).toMatchObject({
      eventsEmitted: 1,
      emitFailures: 1,
      consecutiveEmitFailures: 0,
    });
  });

  it("never throws after the router shut down either", async () => {
    const router = makeRouter();
    const d = daemon({ router });
    await router.shutdown();
    await expect(
      d.send("QUALITY_ALERT", { config_key: "hex8_2p", quality_score: 0.3, timestamp: 1 }),
    ).resolves.toBeUndefined();
    expect(d.recentErrors()[0]).toMatchObject({ code: new RouterClosedError().code });
  });

  it("carries causation from { causedBy }: causationid, correlationid and the trace", async () => {
    const router = makeRouter();
    const d = daemon({ router });
    d.handlers = {
      TRAINING_COMPLETED: async (event) => {
        await d.send("EVALUATION_COMPLETED", payloads.evaluation(event.data.config_key), {
          causedBy: event,
        });
      },
    };
    const evaluations: Envelope[] = [];
    router.subscribe("EVALUATION_COMPLETED", (e) => void evaluations.push(e), { name: "observer" });
    await d.start();
    const training = await router.publish("TRAINING_COMPLETED", payloads.training(), {
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    });
    await router.drain();
    await router.drain();
    expect(evaluations).toHaveLength(1);
    expect(evaluations[0]).toMatchObject({
      source: "test_daemon",
      causationid: training.id,
      correlationid: training.id,
      traceparent: expect.stringMatching(/^00-0af7651916cd43dd8448eb211c80319c-/),
    });
  });
});

describe("log lines about a delivery", () => {
  it("carry the delivery's traceId: handler failed and emit failed", async () => {
    const logger = memoryLogger();
    const router = makeRouter();
    const d = daemon({ router, logger });
    d.handlers = {
      TRAINING_COMPLETED: async (event) => {
        // An invalid payload: the emit fails, and with it this delivery.
        await d.send("QUALITY_ALERT", { config_key: "", quality_score: "low" } as never, {
          causedBy: event,
        });
      },
    };
    await d.start();
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    await router.publish("TRAINING_COMPLETED", payloads.training(), {
      traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
    });
    await router.drain();
    expect(logger.lines).toContainEqual(
      expect.objectContaining({
        level: "warn",
        obj: expect.objectContaining({ traceId }),
        msg: expect.stringMatching(/emitting QUALITY_ALERT failed/),
      }),
    );
    expect(logger.lines).toContainEqual(
      expect.objectContaining({
        level: "error",
        obj: expect.objectContaining({ traceId }),
        msg: expect.stringMatching(/handler for TRAINING_COMPLETED failed/),
      }),
    );
  });
});

describe("stats and health", () => {
  it("reports successRate over deliveries and cycles, and 1 before any work", async () => {
    const router = makeRouter();
    const d = daemon({ router });
    expect(d.stats).toEqual({
      eventsProcessed: 0,
      eventsDeduplicated: 0,
      successCount: 0,
      errorsCount: 0,
      successRate: 1,
      lastActivity: null,
      cyclesRun: 0,
      cycleFailures: 0,
      consecutiveCycleFailures: 0,
      eventsEmitted: 0,
      emitFailures: 0,
      consecutiveEmitFailures: 0,
    });
    let n = 0;
    d.handlers = {
      TRAINING_COMPLETED: () => {
        if (++n % 4 === 0) throw new Error("every fourth fails");
      },
    };
    await d.start(); // the first cycle (a no-op) succeeds: 1 unit of work
    await eventually(() => d.stats.cyclesRun === 1);
    for (let i = 0; i < 8; i++)
      await router.publish("TRAINING_COMPLETED", payloads.training("hex8_2p", i));
    await router.drain();
    expect(d.stats).toMatchObject({
      eventsProcessed: 8,
      successCount: 7,
      errorsCount: 2,
      successRate: 7 / 9,
    });
    expect(JSON.parse(JSON.stringify(d.stats))).toEqual(d.stats);
  });

  it("is healthy while running without problems, and unhealthy when stopped", async () => {
    const d = daemon();
    expect(d.health()).toMatchObject({
      healthy: false,
      status: "unhealthy",
      message: "daemon is stopped",
    });
    await d.start();
    const health = d.health();
    expect(health).toMatchObject({ healthy: true, status: "healthy" });
    expect(health.details).toMatchObject({
      daemon: "test_daemon",
      status: "running",
      eventsProcessed: 0,
    });
    await d.stop();
    expect(d.health().status).toBe("unhealthy");
  });

  it("turns degraded when more than maxErrorRate of the recent deliveries failed", async () => {
    const router = makeRouter();
    const d = daemon({ router, maxErrorRate: 0.25 });
    let fail = false;
    d.handlers = {
      TRAINING_COMPLETED: () => {
        if (fail) throw new Error("nope");
      },
    };
    await d.start();
    for (let i = 0; i < 4; i++)
      await router.publish("TRAINING_COMPLETED", payloads.training("hex8_2p", i));
    await router.drain();
    expect(d.health().healthy).toBe(true);
    fail = true;
    for (let i = 0; i < 3; i++)
      await router.publish("TRAINING_COMPLETED", payloads.training("hex8_2p", 10 + i));
    await router.drain();
    const health = d.health();
    expect(health).toMatchObject({ healthy: false, status: "degraded" });
    expect(health.message).toMatch(/% of the last \d+ deliveries and cycles failed/);
  });

  it("turns degraded while the last cycle failed", async () => {
    const d = daemon({ cycleIntervalMs: 10, maxErrorRate: 1 });
    let fail = true;
    d.cycle = () => {
      if (fail) throw new Error("upstream down");
    };
    await d.start();
    await eventually(() => d.stats.cycleFailures >= 1);
    expect(d.health()).toMatchObject({
      status: "degraded",
      message: expect.stringMatching(/cycle\(s\) failed: upstream down/),
    });
    fail = false;
    await eventually(() => d.stats.consecutiveCycleFailures === 0);
    expect(d.health().status).toBe("healthy");
  });

  it("detects event-loop lag when a handler blocks the loop, and turns degraded", async () => {
    const router = makeRouter();
    const d = daemon({ router, lagThresholdMs: 100 });
    d.handlers = { TRAINING_COMPLETED: () => busyWait(300) };
    await d.start();
    // The delay monitor (a native 10 ms timer, which fake timers cannot drive) measures from its
    // second tick on; a 30 ms timer runs only after the ticks due at 10 and 20 ms, whatever the load.
    await delay(30);
    expect(d.health().healthy).toBe(true);
    await router.publish("TRAINING_COMPLETED", payloads.training());
    await router.drain();
    // The lag monitor's timer fires late after the block and records the delay.
    await eventually(() => d.health().status === "degraded");
    const health = d.health();
    expect(health).toMatchObject({ healthy: false, status: "degraded" });
    expect(health.message).toMatch(/event loop blocked for up to \d+ ms \(threshold 100 ms\)/);
    expect(health.details.eventLoopLagMaxMs).toBeGreaterThanOrEqual(200);
  });

  it("lets a subclass override health, building on the default", async () => {
    class Backlogged extends HandlerBase<PipelineCatalog> {
      backlog = 0;
      constructor(router: Router<PipelineCatalog>) {
        super({ name: "backlogged", router });
      }
      override health() {
        const base = super.health();
        if (this.backlog <= 100) return base;
        return {
          ...base,
          healthy: false,
          status: "degraded" as const,
          message: `backlog ${this.backlog}`,
        };
      }
    }
    const d = new Backlogged(makeRouter());
    daemons.push(d);
    await d.start();
    expect(d.health().healthy).toBe(true);
    d.backlog = 500;
    expect(d.health()).toMatchObject({
      healthy: false,
      status: "degraded",
      message: "backlog 500",
    });
    // The deprecated name answers with the override too, and so does a manager of the daemon.
    expect(d.healthCheck()).toMatchObject({ status: "degraded", message: "backlog 500" });
    const manager = new DaemonManager();
    manager.register(d);
    expect(manager.health()).toMatchObject({
      status: "degraded",
      message: expect.stringContaining("backlogged: backlog 500"),
    });
  });
});

describe("lifecycle", () => {
  it("start() and stop() are idempotent: repeated calls return the same promise", async () => {
    const router = makeRouter();
    const d = daemon({ router });
    d.handlers = { TRAINING_COMPLETED: () => {} };
    const a = d.start();
    expect(d.start()).toBe(a);
    await a;
    expect(d.start()).toBe(a);
    expect(router.listSubscriptions()).toHaveLength(1);
    const s = d.stop();
    expect(d.stop()).toBe(s);
    await s;
    expect(d.stop()).toBe(s);
    expect(d.stopped).toBe(1);
    expect(d.status).toBe("stopped");
  });

  it("stops at the end of an `await using` scope", async () => {
    const router = makeRouter();
    let stoppedInside: unknown;
    {
      await using d = new TestDaemon({ router });
      d.handlers = { TRAINING_COMPLETED: () => {} };
      await d.start();
      stoppedInside = d.status;
    }
    expect(stoppedInside).toBe("running");
    expect(router.listSubscriptions()).toEqual([]);
  });

  it("can be started again after stop()", async () => {
    const router = makeRouter();
    const d = daemon({ router });
    const seen: number[] = [];
    d.handlers = { TRAINING_COMPLETED: (e) => void seen.push(e.data.loss) };
    await d.start();
    await d.stop();
    await d.start();
    await router.publish("TRAINING_COMPLETED", payloads.training("hex8_2p", 7));
    await router.drain();
    expect(seen).toEqual([7]);
    expect(d.status).toBe("running");
  });

  it("rolls back and rejects with DaemonStartError when onStart throws, and can be started again", async () => {
    const router = makeRouter();
    const d = daemon({ router });
    d.handlers = { TRAINING_COMPLETED: () => {} };
    d.startHook = () => {
      throw new Error("no database");
    };
    const error = await d.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DaemonStartError);
    expect(error).toMatchObject({ code: "DAEMON_START_FAILED", cause: new Error("no database") });
    expect(d.status).toBe("crashed");
    expect(router.listSubscriptions()).toEqual([]);
    expect(d.recentErrors()).toEqual([
      expect.objectContaining({ kind: "start", message: "no database" }),
    ]);
    d.startHook = () => {};
    await d.start();
    expect(d.status).toBe("running");
  });

  it("rejects start() for an event type the router's catalog lacks, naming it", async () => {
    class Misspelt extends HandlerBase<PipelineCatalog> {
      constructor(router: Router<PipelineCatalog>) {
        super({ name: "misspelt", router });
      }
      protected override subscriptions() {
        return { TRAINING_COMPLETE: () => {} } as Subscriptions<PipelineCatalog>;
      }
    }
    const d = new Misspelt(makeRouter());
    daemons.push(d);
    await expect(d.start()).rejects.toThrow(/TRAINING_COMPLETE.*Did you mean "TRAINING_COMPLETED"/);
  });

  it("makes a start still in onStart reject when stop() is called, leaving the daemon stopped", async () => {
    const d = daemon();
    let inOnStart = false;
    d.startHook = (signal) => {
      inOnStart = true;
      return sleep(10_000, { signal });
    };
    const starting = d.start();
    await eventually(() => inOnStart);
    await d.stop();
    await expect(starting).rejects.toBeInstanceOf(DaemonStartError);
    expect(d.status).toBe("stopped");
  });

  it("rejects invalid options with DaemonOptionsError naming the option", () => {
    const router = makeRouter();
    expect(() => new TestDaemon({ router, name: "" })).toThrow(DaemonOptionsError);
    expect(() => new TestDaemon({ router, cycleIntervalMs: 0 })).toThrow(
      /cycleIntervalMs must be a positive number of ms, got 0/,
    );
    expect(() => new TestDaemon({ router, maxErrorRate: 2 })).toThrow(
      expect.objectContaining({ option: "maxErrorRate" }),
    );
    expect(() => new TestDaemon({ router, maxConsecutiveCycleFailures: Infinity })).not.toThrow();
  });

  it.each([
    ["an empty source", { source: "" }, "source"],
    ["a name with an unpaired surrogate", { name: "daemon_\uD800" }, "name"],
    ["a source with an unpaired surrogate", { source: "src_\uDC00" }, "source"],
    ["a now that is not a function", { now: 1_700_000_000_000 }, "now"],
    ["a misspelt publishes type", { publishes: ["QUALITY_ALRET"] }, "publishes"],
    ["publishes that is a string", { publishes: "QUALITY_ALERT" }, "publishes"],
  ])(
    "rejects %s with DaemonOptionsError naming the option, rather than failing later",
    (_what, bad, option) => {
      const router = makeRouter();
      const make = () => new TestDaemon({ router, ...(bad as unknown as Partial<Options>) });
      expect(make).toThrow(DaemonOptionsError);
      expect(make).toThrow(expect.objectContaining({ option }));
    },
  );
});

describe("singletons", () => {
  class Alpha extends HandlerBase.for(pipelineCatalog) {
    constructor() {
      super({ name: "alpha" });
    }
  }
  class Beta extends HandlerBase.for(pipelineCatalog) {
    constructor() {
      super({ name: "beta" });
    }
  }
  class AlphaPrime extends Alpha {}

  afterAll(async () => {
    await Promise.all([Alpha.resetInstance(), Beta.resetInstance(), AlphaPrime.resetInstance()]);
    await resetRouter();
  });

  it("getInstance() returns one shared instance per subclass, over the process-wide router", () => {
    const alpha = Alpha.getInstance();
    expect(Alpha.getInstance()).toBe(alpha);
    expect(Beta.getInstance()).not.toBe(alpha);
    expect(Beta.getInstance()).toBeInstanceOf(Beta);
    expect(AlphaPrime.getInstance()).not.toBe(alpha);
    expect(AlphaPrime.getInstance()).toBeInstanceOf(AlphaPrime);
    expect(alpha.router).toBe(getRouter());
  });

  it("resetInstance() stops the shared instance and the next getInstance() makes a new one", async () => {
    const before = Alpha.getInstance();
    await before.start();
    await Alpha.resetInstance();
    expect(before.status).toBe("stopped");
    expect(Alpha.hasInstance()).toBe(false);
    const after = Alpha.getInstance();
    expect(after).not.toBe(before);
    expect(Beta.hasInstance()).toBe(true);
  });

  it("still allows direct construction with an injected router", () => {
    const router = makeRouter();
    const d = new TestDaemon({ router });
    expect(d.router).toBe(router);
    expect(TestDaemon.hasInstance()).toBe(false);
  });
});

describe("HandlerBase.for", () => {
  const jobs = defineCatalog([
    defineEvent({ type: "JOB_DONE", description: "t", data: z.looseObject({ id: z.string() }) }),
  ]);

  afterEach(() => resetRouter());

  it("binds a router: daemons default to it and handle its events", async () => {
    const router = makeRouter();
    class Watcher extends HandlerBase.for(router) {
      readonly seen: number[] = [];
      constructor() {
        super({ name: "watcher" });
      }
      protected override subscriptions() {
        return this.on({ TRAINING_COMPLETED: (event) => void this.seen.push(event.data.loss) });
      }
    }
    const watcher = new Watcher();
    daemons.push(watcher);
    expect(watcher.router).toBe(router);
    expect(watcher).toBeInstanceOf(HandlerBase);
    await watcher.start();
    await router.publish("TRAINING_COMPLETED", payloads.training("hex8_2p", 0.25));
    await router.drain();
    expect(watcher.seen).toEqual([0.25]);
  });

  it("returns one class per catalog or router", () => {
    const router = makeRouter();
    expect(HandlerBase.for(pipelineCatalog)).toBe(HandlerBase.for(pipelineCatalog));
    expect(HandlerBase.for(router)).toBe(HandlerBase.for(router));
    expect(HandlerBase.for(router)).not.toBe(HandlerBase.for(pipelineCatalog));
  });

  it("prefers the router option over the bound router", () => {
    const bound = makeRouter();
    const injected = makeRouter();
    class Daemon extends HandlerBase.for(bound) {}
    expect(new Daemon({ name: "d", router: injected }).router).toBe(injected);
  });

  it("creates the process-wide router over the bound catalog when none exists", () => {
    class Jobs extends HandlerBase.for(jobs) {}
    expect(hasRouter()).toBe(false);
    const d = new Jobs({ name: "jobs" });
    expect(d.router).toBe(getRouter());
    expect(d.router.catalog).toBe(jobs);
  });

  it("refuses a process-wide router whose catalog lacks the bound catalog's types, naming them", () => {
    getRouter({ catalog: pipelineCatalog });
    class Jobs extends HandlerBase.for(jobs) {}
    expect(() => new Jobs({ name: "jobs" })).toThrow(DaemonOptionsError);
    expect(() => new Jobs({ name: "jobs" })).toThrow(/HandlerBase\(jobs\).*router.*lacks JOB_DONE/);
  });

  it("rejects what is neither a catalog nor a router", () => {
    expect(() => HandlerBase.for({} as typeof jobs)).toThrow(DaemonOptionsError);
  });

  it("leaves a subclass of HandlerBase itself without a router to getRouter(), which has no default", () => {
    class Unbound extends HandlerBase<PipelineCatalog> {}
    expect(() => new Unbound({ name: "unbound" })).toThrow(NoRouterError);
  });
});

describe("misbehaving daemon code", () => {
  it("stop() during a start whose onStart ignores its signal resolves at once, and the start rejects", async () => {
    // Not in `daemons`: before the fix its stop() never settles, which would hang afterEach.
    const d = new TestDaemon({ router: makeRouter(), cycleIntervalMs: 60_000 });
    let inOnStart = false;
    d.startHook = () => {
      inOnStart = true;
      return new Promise<void>(() => {}); // never settles, never looks at the signal
    };
    const starting = d.start();
    starting.catch(() => {});
    await eventually(() => inOnStart);
    expect(await settlesWithin(d.stop(), 1_000)).toBe(true);
    await expect(starting).rejects.toBeInstanceOf(DaemonStartError);
    expect(d.status).toBe("stopped");
  });

  it("stop() gives up on an onStop() that never settles after stopTimeoutMs, with a warning", async () => {
    const logger = memoryLogger();
    // Not in `daemons`: before the fix its stop() never settles, which would hang afterEach.
    class HangingStop extends HandlerBase<PipelineCatalog> {
      protected override onStop() {
        return new Promise<void>(() => {}); // a connection that never closes
      }
    }
    const d = new HangingStop({
      name: "hanging_stop",
      router: makeRouter(),
      stopTimeoutMs: 50,
      logger,
    });
    await d.start();
    expect(await settlesWithin(d.stop(), 1_000)).toBe(true);
    expect(d.status).toBe("stopped");
    expect(logger.lines).toContainEqual(
      expect.objectContaining({ level: "warn", msg: expect.stringMatching(/onStop\(\).*50 ms/) }),
    );
  });

  it("never runs two cycles at once, even when start() follows a stop() that gave up on a hung cycle", async () => {
    const d = daemon({ cycleIntervalMs: 10, stopTimeoutMs: 30 });
    let running = 0;
    let most = 0;
    let calls = 0;
    d.cycle = async () => {
      running++;
      most = Math.max(most, running);
      calls++;
      await delay(calls === 1 ? 300 : 5); // the first ignores its signal and overruns stop()
      running--;
    };
    await d.start();
    await eventually(() => calls === 1);
    await d.stop(); // gives up on the first cycle after 30 ms
    await d.start();
    await eventually(() => calls >= 3, 3_000);
    expect(most).toBe(1);
  });

  it.each(["cycleIntervalMs", "stopTimeoutMs", "lagWindowMs"])(
    "rejects a %s longer than a timer can wait (2^31 - 1 ms, about 24.8 days) with DaemonOptionsError",
    (option) => {
      // Node fires a longer timer after 1 ms: a 30-day cycle would run every millisecond.
      const make = () => daemon({ [option]: 30 * 24 * 3_600_000 });
      expect(make).toThrow(DaemonOptionsError);
      expect(make).toThrow(new RegExp(`option ${option} must be .*at most 2147483647`));
      expect(() => daemon({ [option]: 2 ** 31 - 1, runCycleOnStart: false })).not.toThrow();
    },
  );

  it("keeps a huge error message cut in recentErrors() and in health, so heartbeats stay small", async () => {
    const d = daemon({ cycleIntervalMs: 60_000 });
    const huge = `${"x".repeat(1_000_000)}end`;
    d.cycle = () => {
      throw new Error(huge);
    };
    await d.start();
    await eventually(() => d.stats.cycleFailures === 1, 2_000);
    const [record] = d.recentErrors();
    expect(record!.message).toBe(`${"x".repeat(2000)}… (998003 more characters)`);
    const health = d.health();
    expect(JSON.stringify(health).length).toBeLessThan(5_000);
    expect(JSON.stringify(health)).toContain("(998003 more characters)");
  });

  it.each([
    [
      "an Error whose message getter throws",
      () =>
        Object.defineProperty(new Error("unreadable"), "message", {
          get() {
            throw new Error("message getter failed");
          },
        }),
    ],
    [
      "a revoked Proxy",
      () => {
        const { proxy, revoke } = Proxy.revocable({}, {});
        revoke();
        return proxy;
      },
    ],
  ])(
    "counts a cycle that throws %s as failed, and the next cycles still run",
    async (_, poison) => {
      const d = daemon({ cycleIntervalMs: 10 });
      let calls = 0;
      d.cycle = () => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- throwing what cannot be read is the point
        if (++calls === 1) throw poison();
      };
      await d.start();
      await eventually(() => d.stats.cyclesRun >= 3, 2_000);
      expect(d.stats).toMatchObject({ cycleFailures: 1, consecutiveCycleFailures: 0 });
      expect(d.recentErrors()).toEqual([
        expect.objectContaining({ kind: "cycle", message: expect.any(String) }),
      ]);
    },
  );
});
