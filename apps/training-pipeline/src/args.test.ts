import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { DemoUsageError, USAGE, parseDemoArgs } from "./args";

const root = fileURLToPath(new URL("../../../", import.meta.url));

function usageError(args: string[]): DemoUsageError {
  try {
    parseDemoArgs(args);
  } catch (error) {
    if (error instanceof DemoUsageError) return error;
    throw error;
  }
  throw new Error(`no usage error for ${JSON.stringify(args)}`);
}

describe("the demo's command line", () => {
  it("accepts the -- that `pnpm demo -- …` passes on (the npm habit)", () => {
    const parsed = parseDemoArgs(["--", "--db", "/tmp/x.db", "--generations", "2"]);
    expect(parsed).toMatchObject({ help: false, settings: { db: "/tmp/x.db", generations: 2 } });
    expect(parseDemoArgs(["--generations", "2", "--", "--transport", "nats"])).toMatchObject({
      settings: { generations: 2, transport: "nats" },
    });
    expect(parseDemoArgs(["--", "--help"])).toEqual({ help: true });
  });

  it("--otel writes the traces next to the database", () => {
    const parsed = parseDemoArgs(["--otel", "--db", "/tmp/run/coordination.db"]);
    expect(!parsed.help && parsed.settings.otel).toBe(join("/tmp/run", "traces.otlp.jsonl"));
    const without = parseDemoArgs([]);
    expect(!without.help && without.settings.otel).toBeUndefined();
  });

  it("--dashboard takes an optional port: 4000 without one, a number after it, or =<port>", () => {
    const port = (args: string[]) => {
      const parsed = parseDemoArgs(args);
      return parsed.help ? "help" : parsed.dashboard;
    };
    expect(port([])).toBeUndefined();
    expect(port(["--dashboard"])).toBe(4000);
    expect(port(["--dashboard", "--generations", "1"])).toBe(4000);
    expect(port(["--dashboard", "4100", "--generations", "1"])).toBe(4100);
    expect(port(["--dashboard=0"])).toBe(0);
    expect(port(["--", "--dashboard", "0"])).toBe(0);
    expect(usageError(["--dashboard=http"]).message).toMatch(/^--dashboard: "http" is not a port/);
    expect(usageError(["--dashboard", "70000"]).message).toMatch(/^--dashboard: "70000"/);
  });

  it("reads every option, with the defaults for those not given", () => {
    const parsed = parseDemoArgs([
      "--configs",
      "hex8_2p, sq8_4p",
      "--failure-rate",
      "0.3",
      "--seed",
      "11",
      "--no-poison",
      "--kill",
      "evaluation",
      "--timeout",
      "60",
    ]);
    expect(parsed).toMatchObject({
      help: false,
      timeoutMs: 60_000,
      kill: "evaluation",
      settings: {
        configs: ["hex8_2p", "sq8_4p"],
        failureRate: 0.3,
        seed: 11,
        poison: false,
        generations: 3,
        transport: "sqlite",
      },
    });
  });

  it.each([
    [["--bogus"], /Unknown option '--bogus'/],
    [["stray"], /Unexpected argument 'stray'/],
    [["--db"], /Option '--db <value>' argument missing/],
    [["--generations", "0"], /^--generations: "0" is not valid\.$/],
    [["--timeout", ""], /^--timeout: "" is not valid\.$/],
    [["--transport", "kafka"], /^--transport: "kafka" is not sqlite or nats\.$/],
    [["--nats-url", "nats://a:1/x"], /^--nats-url: .* is not a comma-separated list/],
    [["--nats-replicas", "2"], /^--nats-replicas: "2" is not valid\.$/],
  ])("refuses %j with a usage error", (args, message) => {
    expect(usageError(args).message).toMatch(message);
  });
});

describe("the demo process on a bad command line", { timeout: 60_000 }, () => {
  const demo = (...args: string[]) =>
    spawnSync(
      process.execPath,
      ["--import", "tsx", "apps/training-pipeline/src/demo.ts", ...args],
      {
        cwd: root,
        env: { ...process.env, TSX_TSCONFIG_PATH: join(root, "tsconfig.base.json") },
        encoding: "utf8",
        timeout: 60_000,
      },
    );

  it("prints the usage for `pnpm demo -- --help` and exits 0", () => {
    const run = demo("--", "--help");
    expect(run.stderr).toBe("");
    expect(run.stdout.trim()).toBe(USAGE);
    expect(run.status).toBe(0);
  });

  it("answers a usage error with the message and the usage, exit 2, no stack trace", () => {
    const run = demo("--", "--db");
    expect(run.status).toBe(2);
    expect(run.stderr).toContain("Option '--db <value>' argument missing");
    expect(run.stderr).toContain(USAGE);
    expect(run.stderr).not.toMatch(/\n\s+at |ERR_PARSE_ARGS/);
    expect(run.stdout).toBe("");
  });
});
