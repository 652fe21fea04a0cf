import type { EventOf, PipelineCatalog } from "@switchyard/event-schema";
import { getRouter, resetRouter } from "@switchyard/router";
import { afterEach, describe, expect, it } from "vitest";
import { closeRouters, eventually, makeRouter, memoryLogger, payloads } from "../test/fixtures";
import { QualityMonitorDaemon, getQualityMonitor } from "./quality-monitor";

const monitors: QualityMonitorDaemon[] = [];
function monitor(options: ConstructorParameters<typeof QualityMonitorDaemon>[0] = {}) {
  const m = new QualityMonitorDaemon({ router: makeRouter(), cycleIntervalMs: 20, ...options });
  monitors.push(m);
  return m;
}

afterEach(async () => {
  await Promise.all(monitors.splice(0).map((m) => m.stop()));
  await QualityMonitorDaemon.resetInstance();
  await resetRouter();
  await closeRouters();
});

describe("the quality monitor example", () => {
  it("records the latest quality score per config and skips duplicate SELFPLAY_COMPLETE events", async () => {
    const router = makeRouter();
    const m = monitor({ router });
    await m.start();
    await router.publish("SELFPLAY_COMPLETE", payloads.selfplay("hex8_2p", 0.9));
    await router.publish("SELFPLAY_COMPLETE", payloads.selfplay("hex8_2p", 0.9));
    await router.publish("SELFPLAY_COMPLETE", payloads.selfplay("sq8_2p", 0.7));
    await router.drain();
    expect(Object.fromEntries(m.qualityScores)).toEqual({ hex8_2p: 0.9, sq8_2p: 0.7 });
    expect(m.stats).toMatchObject({ eventsProcessed: 2, eventsDeduplicated: 1 });
  });

  it("emits QUALITY_ALERT once when a config drops below the threshold", async () => {
    const router = makeRouter();
    const alerts: EventOf<"QUALITY_ALERT", PipelineCatalog>[] = [];
    router.subscribe("QUALITY_ALERT", (e) => void alerts.push(e), { name: "alerts" });
    const m = monitor({ router });
    await m.start();
    await router.publish("SELFPLAY_COMPLETE", payloads.selfplay("hex8_2p", 0.3));
    await eventually(() => alerts.length === 1);
    await eventually(() => m.stats.cyclesRun >= 4);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({
      source: "quality_monitor",
      data: {
        config_key: "hex8_2p",
        quality_score: 0.3,
        threshold: 0.5,
        timestamp: expect.any(Number),
      },
    });
  });

  it("logs new games per board through the delivery context", async () => {
    const logger = memoryLogger();
    const router = makeRouter({ logger });
    const m = monitor({ router });
    await m.start();
    await router.publish("NEW_GAMES_AVAILABLE", { config_key: "hex8_2p", new_games: 12 });
    await router.drain();
    expect(m.stats.eventsProcessed).toBe(1);
    expect(logger.lines).toContainEqual({
      level: "info",
      msg: "new games for hex8 2p",
      obj: expect.objectContaining({
        subscription: "quality_monitor:NEW_GAMES_AVAILABLE",
        boardType: "hex8",
        numPlayers: 2,
        newGames: 12,
      }),
    });
  });

  it("overrides health: degraded when several configs are low quality", async () => {
    const router = makeRouter();
    const m = monitor({ router, config: { maxLowQualityConfigs: 2 } });
    await m.start();
    expect(m.health()).toMatchObject({ healthy: true, message: "Monitoring 0 configs" });
    await router.publish("SELFPLAY_COMPLETE", payloads.selfplay("hex8_2p", 0.1));
    await router.publish("SELFPLAY_COMPLETE", payloads.selfplay("sq8_2p", 0.2));
    await eventually(() => m.stats.eventsEmitted === 2);
    const health = m.health();
    expect(health).toMatchObject({ healthy: false, status: "degraded" });
    expect(health.message).toMatch(/2 configs have low-quality self-play data/);
    expect(health.details).toMatchObject({
      configs_monitored: 2,
      low_quality_configs: ["hex8_2p", "sq8_2p"],
    });
  });

  it("is one shared instance over the process-wide router through getQualityMonitor()", () => {
    const shared = getQualityMonitor();
    expect(getQualityMonitor()).toBe(shared);
    expect(shared.router).toBe(getRouter());
    expect(shared.cycleIntervalMs).toBe(300_000);
  });
});
