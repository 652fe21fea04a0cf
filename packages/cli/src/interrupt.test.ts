import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { SqliteAdmin } from "@switchyard/cross-process-queue";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type FilledDatabase, cli, cliAbortingOn, fillDatabase, tempDir } from "./test/fixture";

/**
 * A command stopped by its signal before it finished exits 130 (128 + SIGINT, what a shell reports
 * for Ctrl-C): not 0 (done, healthy), not 1 (unhealthy), not 2 (bad input), not 3 (a bug).
 */
describe("a command whose signal is aborted already", () => {
  const tmp = tempDir();
  let filled: FilledDatabase;
  let db: string;

  beforeAll(async () => {
    filled = await fillDatabase(tmp.dir);
    db = join(tmp.dir, "copy.db");
    await filled.copyTo(db);
  });
  afterAll(async () => {
    await filled?.close();
    tmp.cleanup();
  });

  const commands: readonly (readonly string[])[] = [
    ["stats"],
    ["health"],
    ["health", "--watch", "1s"],
    ["events", "list"],
    ["events", "tail", "--count", "1"],
    ["queue", "clear", "--pending", "--yes"],
    ["metrics", "--port", "0"],
    ["dashboard", "--port", "0"],
  ];
  for (const command of commands)
    it(`${command.join(" ")} runs nothing and exits 130, saying it was stopped`, async () => {
      const run = await cli([...command, "--db", db], { signal: AbortSignal.abort() });
      expect(run.code, run.stderr).toBe(130);
      expect(run.stderr).toMatch(/^error: Stopped before it started: its signal was aborted/m);
      expect(run.stderr).not.toContain("unexpected failure");
      expect(run.stdout).toBe("");
    });

  it("clears nothing and takes no backup", async () => {
    const lags = async () =>
      (
        (await cli(["subscribers", "--db", db, "--json"])).json().subscribers as { lag: number }[]
      ).map((s) => s.lag);
    const before = await lags();
    expect(before.some((lag) => lag > 0)).toBe(true);
    const run = await cli(["queue", "clear", "--pending", "--yes", "--db", db], {
      signal: AbortSignal.abort(),
    });
    expect(run.code).toBe(130);
    expect(readdirSync(tmp.dir).filter((f) => f.endsWith(".bak"))).toEqual([]);
    expect(await lags()).toEqual(before);
  });

  it("with --json, prints the reason as the one JSON document", async () => {
    const run = await cli(["stats", "--db", db, "--json"], { signal: AbortSignal.abort() });
    expect(run.code).toBe(130);
    expect(run.json()).toEqual({
      error: { code: "INTERRUPTED", message: expect.stringContaining("Stopped before it started") },
    });
  });

  it("does not even resolve a target that does not exist", async () => {
    const missing = join(tmp.dir, "nowhere", "coordination.db");
    const run = await cli(["stats", "--db", missing], { signal: AbortSignal.abort() });
    expect(run.code).toBe(130);
    expect(existsSync(missing)).toBe(false);
  });
});

describe("a command whose signal aborts before it opens the target", () => {
  const tmp = tempDir();
  let filled: FilledDatabase;

  beforeAll(async () => {
    filled = await fillDatabase(tmp.dir);
  });
  afterAll(async () => {
    await filled?.close();
    tmp.cleanup();
  });

  for (const command of [["stats"], ["health"], ["events", "list"]])
    it(`${command.join(" ")} exits 130, not as unhealthy or an unexpected failure`, async () => {
      const controller = new AbortController();
      // The signal aborts while the command reads where the target is: after it started, before
      // the driver opens (which then refuses to).
      const env = {
        get SWITCHYARD_DB() {
          controller.abort();
          return filled.path;
        },
      } as Record<string, string>;
      const run = await cli(command, { env, signal: controller.signal });
      expect(controller.signal.aborted).toBe(true);
      expect(run.code, run.stderr).toBe(130);
      expect(run.stderr).toMatch(/^error: Stopped before it finished: its signal was aborted/m);
      expect(run.stdout).not.toMatch(/UNHEALTHY/);
    });
});

describe("queue clear whose signal aborts after it opened the target", () => {
  const tmp = tempDir();
  let filled: FilledDatabase;

  beforeAll(async () => {
    filled = await fillDatabase(tmp.dir);
  });
  afterAll(async () => {
    await filled?.close();
    tmp.cleanup();
  });

  it("regression: clears nothing, takes no backup and exits 130", async () => {
    const db = join(tmp.dir, "copy.db");
    await filled.copyTo(db);
    const lags = async () =>
      (
        (await cli(["subscribers", "--db", db, "--json"])).json().subscribers as { lag: number }[]
      ).map((s) => s.lag);
    const before = await lags();
    expect(before.some((lag) => lag > 0)).toBe(true);
    // The built-in catalog's note is written when --type is checked: after the target opened,
    // before the clear.
    const run = await cliAbortingOn(
      ["queue", "clear", "--pending", "--type", "TRAINING_COMPLETED", "--yes", "--db", db],
      /built-in pipeline catalog/,
    );
    expect(run.aborted).toBe(true);
    // Before the fix the clear went on: a backup, the backlog dropped, exit 0.
    expect(run.code, run.stderr).toBe(130);
    expect(readdirSync(tmp.dir).filter((f) => f.endsWith(".bak"))).toEqual([]);
    expect(await lags()).toEqual(before);
  });
});

describe("queue backup whose signal aborts after it opened the target", () => {
  const tmp = tempDir();
  let filled: FilledDatabase;

  beforeAll(async () => {
    filled = await fillDatabase(tmp.dir);
  });
  afterAll(async () => {
    await filled?.close();
    tmp.cleanup();
  });

  it("regression: takes no backup and exits 130", async () => {
    const db = join(tmp.dir, "copy.db");
    await filled.copyTo(db);
    const controller = new AbortController();
    const backup = SqliteAdmin.prototype.backup;
    // `queue backup` writes nothing on stderr before it backs up (no catalog, no snapshot note):
    // the stop comes as the admin's backup is called, the one point between open and copy.
    const spy = vi.spyOn(SqliteAdmin.prototype, "backup").mockImplementation(function (
      this: SqliteAdmin,
      ...args
    ) {
      controller.abort();
      return backup.apply(this, args);
    });
    try {
      const run = await cli(["queue", "backup", "--db", db, "--json"], {
        signal: controller.signal,
      });
      expect(spy).toHaveBeenCalledTimes(1);
      // Before the fix the signal never reached the backup: it was taken, exit 0.
      expect(run.code, run.stderr).toBe(130);
      expect(run.json()).toMatchObject({ error: { code: "INTERRUPTED" } });
      expect(readdirSync(tmp.dir).filter((f) => f.endsWith(".bak"))).toEqual([]);
    } finally {
      spy.mockRestore();
    }
  });
});
