import { spawnSync } from "node:child_process";
import { EventEmitter } from "node:events";
import { join } from "node:path";
import { sqliteTransport } from "@switchyard/cross-process-queue";
import { createEnvelope } from "@switchyard/event-schema";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exitQuietlyOnBrokenPipe } from "./output";
import { root, tempDir } from "./test/fixture";

/** `switchyard <args> | <reader>` in bash with pipefail: the status is the CLI's unless it is 0. */
function pipeline(args: string, reader: string) {
  const cli = `"${process.execPath}" --import tsx packages/cli/src/bin.ts ${args}`;
  const run = spawnSync("bash", ["-c", `set -o pipefail; ${cli} | ${reader}`], {
    cwd: root,
    env: { ...process.env, TSX_TSCONFIG_PATH: join(root, "tsconfig.base.json") },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe("exitQuietlyOnBrokenPipe", () => {
  it("exits quietly on EPIPE, with the exit code already set, and rethrows anything else", () => {
    const stream = new EventEmitter();
    const exits: number[] = [];
    exitQuietlyOnBrokenPipe([stream], (code) => void exits.push(code));
    const broken = Object.assign(new Error("write EPIPE"), { code: "EPIPE" });
    stream.emit("error", broken);
    expect(exits).toEqual([0]);
    const before = process.exitCode;
    process.exitCode = 1;
    try {
      stream.emit("error", broken);
    } finally {
      process.exitCode = before;
    }
    expect(exits).toEqual([0, 1]);
    const full = Object.assign(new Error("no space left"), { code: "ENOSPC" });
    expect(() => stream.emit("error", full)).toThrow("no space left");
  });
});

describe("switchyard piped to a reader that stops early", { tags: ["slow"] }, () => {
  const tmp = tempDir();
  const db = join(tmp.dir, "coordination.db");

  beforeAll(async () => {
    // One event whose payload is larger than a pipe's buffer: `head -1` exits while the CLI is
    // still writing it.
    const transport = sqliteTransport({ path: db });
    await transport.publish([
      createEnvelope({
        type: "NEW_GAMES_AVAILABLE",
        source: "selfplay",
        data: { config_key: "hex8_2p", new_games: 1, notes: "x".repeat(300_000) },
      }),
    ]);
    await transport.close();
  });
  afterAll(() => tmp.cleanup());

  it("exits 0 without a stack trace when head takes one line of a long output", () => {
    const run = pipeline(`events list --db "${db}" --json`, "head -1");
    expect(run.stderr).not.toMatch(/EPIPE|\n\s+at /);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^[[{]/);
    expect(run.stdout.split("\n")).toHaveLength(2);
  });

  it("exits 0 without a stack trace when the reader reads nothing at all", () => {
    const run = pipeline("--help", "true");
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });
});
