import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type PipelineCatalog, pipelineCatalog } from "@switchyard/event-schema";
import { type Router, createRouter, silentLogger } from "@switchyard/router";
import { afterEach, describe, expect, it } from "vitest";
import { defaultSettings } from "../settings";
import { generationOf } from "../simulation";
import { DataSyncDaemon } from "./data-sync";
import { NpzExportDaemon } from "./npz-export";
import { SelfplayDaemon } from "./selfplay";
import { TrainingDaemon } from "./training";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** A data directory inside a scratch root, so a path escaping it is still inside the root. */
function scratch() {
  const root = mkdtempSync(join(tmpdir(), "switchyard-hostile-"));
  cleanup.push(() => rmSync(root, { recursive: true, force: true }));
  const dataDir = join(root, "data");
  const games = join(dataDir, "selfplay", "hex8_2p", "gen-1.json");
  mkdirSync(join(dataDir, "selfplay", "hex8_2p"), { recursive: true });
  writeFileSync(games, "{}");
  const settings = { ...defaultSettings(), dataDir, failureRate: 0, workMs: 1, poison: false };
  const router: Router<PipelineCatalog> = createRouter({
    catalog: pipelineCatalog,
    logger: silentLogger,
  });
  cleanup.push(() => router.shutdown({ timeoutMs: 100 }));
  return { root, dataDir, games, settings, router };
}

/** The handler failure the daemon recorded: refused for good, not retried. */
const refused = (what: RegExp): unknown =>
  expect.objectContaining({
    kind: "handler",
    name: "UnrecoverableError",
    message: expect.stringMatching(what),
  });

describe("a stage daemon given a hostile payload", () => {
  it("data sync refuses a config_key that climbs out of the training store (../), writing nothing", async () => {
    const { root, dataDir, games, settings, router } = scratch();
    const daemon = new DataSyncDaemon(router, settings);
    cleanup.push(() => daemon.stop());
    await daemon.start();
    await router.publish("NEW_GAMES_AVAILABLE", { config_key: "../escaped", db_path: games });
    await router.drain();
    expect(existsSync(join(dataDir, "escaped"))).toBe(false);
    expect(existsSync(join(root, "escaped"))).toBe(false);
    expect(daemon.recentErrors()).toContainEqual(
      refused(/config_key "\.\.\/escaped" is not a plain name/),
    );
  });

  it("data sync refuses a db_path outside the data directory instead of copying that file", async () => {
    const { root, dataDir, settings, router } = scratch();
    const secret = join(root, "secret.txt");
    writeFileSync(secret, "not game data");
    const daemon = new DataSyncDaemon(router, settings);
    cleanup.push(() => daemon.stop());
    await daemon.start();
    await router.publish("NEW_GAMES_AVAILABLE", { config_key: "hex8_2p", db_path: secret });
    await router.drain();
    expect(existsSync(join(dataDir, "training-store", "hex8_2p", "secret.txt"))).toBe(false);
    expect(daemon.recentErrors()).toContainEqual(
      refused(/db_path .* is outside the data directory/),
    );
  });

  it("NPZ export and training refuse a config_key that climbs out of the data directory", async () => {
    const { root, settings, router } = scratch();
    const exporter = new NpzExportDaemon(router, settings);
    const trainer = new TrainingDaemon(router, settings);
    cleanup.push(
      () => exporter.stop(),
      () => trainer.stop(),
    );
    await Promise.all([exporter.start(), trainer.start()]);
    await router.publish("DATA_SYNC_COMPLETED", {
      source: "selfplay-host",
      target: "store",
      files_synced: 1,
      config_key: "../../escaped",
    });
    await router.publish("NPZ_EXPORT_COMPLETE", {
      config_key: "../../escaped",
      npz_path: "npz/x.npz",
    });
    await router.drain();
    expect(existsSync(join(root, "escaped"))).toBe(false);
    expect(exporter.recentErrors()).toContainEqual(refused(/not a plain name/));
    expect(trainer.recentErrors()).toContainEqual(refused(/not a plain name/));
  });
});

describe("a stage daemon given a config_key no file system takes", () => {
  it.each([
    ["longer than a file name may be", "k".repeat(300)],
    ["with a control character", "hex8\u001b[2J_2p"],
    ["with a line break", "hex8\n2p"],
    ["with a right-to-left override", "hex8\u202e2p"],
  ])(
    "NPZ export refuses one %s at once (dead letter, no retry), creating nothing",
    async (_, key) => {
      const { dataDir, settings, router } = scratch();
      const exporter = new NpzExportDaemon(router, settings);
      cleanup.push(() => exporter.stop());
      await exporter.start();
      await router.publish("DATA_SYNC_COMPLETED", {
        source: "selfplay-host",
        target: "store",
        files_synced: 1,
        config_key: key,
      });
      await router.drain();
      expect(exporter.recentErrors()).toContainEqual(refused(/config_key .* is not a plain name/));
      expect(existsSync(join(dataDir, "npz"))).toBe(false);
    },
  );
});

describe("a stage daemon given a generation that is no generation number", () => {
  it.each([
    ["negative", -1],
    ["fractional", 1.5],
    ["beyond the safe integers", 1e300],
  ])("training refuses a %s generation at once, writing no model", async (_, generation) => {
    const { dataDir, settings, router } = scratch();
    const trainer = new TrainingDaemon(router, settings);
    cleanup.push(() => trainer.stop());
    await trainer.start();
    await router.publish("NPZ_EXPORT_COMPLETE", {
      config_key: "hex8_2p",
      npz_path: "npz/x.npz",
      generation,
    });
    await router.drain();
    expect(trainer.recentErrors()).toContainEqual(refused(/generation .* is not a whole number/));
    expect(existsSync(join(dataDir, "models"))).toBe(false);
  });

  it("self-play ignores a generation from nowhere instead of ending its run for that config", async () => {
    const { settings, router } = scratch();
    const started: number[] = [];
    router.subscribe("NEW_GAMES_AVAILABLE", (event) => {
      started.push(generationOf(event.data));
    });
    const selfplay = new SelfplayDaemon(router, {
      ...settings,
      configs: ["hex8_2p"],
      generations: 3,
    });
    cleanup.push(() => selfplay.stop());
    await selfplay.start();
    await until(() => started.length === 1);
    await router.publish("MODEL_DISTRIBUTION_COMPLETE", {
      config_key: "hex8_2p",
      model_path: "m",
      hosts: [],
      hosts_updated: 0,
      generation: 1e300,
    });
    await router.publish("MODEL_DISTRIBUTION_COMPLETE", {
      config_key: "hex8_2p",
      model_path: "m",
      hosts: [],
      hosts_updated: 0,
      generation: 1,
    });
    await until(() => started.length === 2);
    expect(started).toEqual([1, 2]);
    expect(selfplay.recentErrors()).toContainEqual(refused(/generation .* is not a whole number/));
  });
});

describe("self-play given a stale end of a generation", () => {
  it("does not start the generation in flight a second time", async () => {
    const { settings, router } = scratch();
    const started: number[] = [];
    router.subscribe("NEW_GAMES_AVAILABLE", (event) => {
      started.push(generationOf(event.data));
    });
    const selfplay = new SelfplayDaemon(router, {
      ...settings,
      configs: ["hex8_2p"],
      generations: 2,
    });
    cleanup.push(() => selfplay.stop());
    await selfplay.start();
    await until(() => started.length === 1);
    const ended = { config_key: "hex8_2p", model_path: "m", generation: 1 };
    await router.publish("MODEL_DISTRIBUTION_COMPLETE", { ...ended, hosts: [], hosts_updated: 0 });
    await until(() => started.length === 2);
    // A second outcome of generation 1 (a redelivered evaluation judged again, a replayed dead
    // letter): generation 2 is already in flight and must stay the only one.
    await router.publish("REGRESSION_DETECTED", {
      ...ended,
      elo_drop: 10,
      current_elo: 1490,
      previous_elo: 1500,
      threshold: 50,
    });
    await router.drain();
    const cycles = selfplay.stats.cyclesRun;
    await until(() => selfplay.stats.cyclesRun >= cycles + 3);
    expect(started).toEqual([1, 2]);
  });
});

/** Wait (at most about 5 s, in 10 ms steps) until `done()` holds. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(done()).toBe(true);
}
