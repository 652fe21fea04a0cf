import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type PipelineCatalog, pipelineCatalog } from "@switchyard/event-schema";
import { type Router, createRouter, silentLogger } from "@switchyard/router";
import { afterEach, describe, expect, it } from "vitest";
import { defaultSettings } from "../settings";
import { DataSyncDaemon } from "./data-sync";
import { NpzExportDaemon } from "./npz-export";
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
