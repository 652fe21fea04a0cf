import { spawnSync } from "node:child_process";
import {
  accessSync,
  constants,
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const pkg = join(import.meta.dirname, "..");
const manifest = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")) as {
  bin: Record<string, string>;
  files: string[];
};
const launcher = join(pkg, manifest.bin.switchyard!);
const built = existsSync(join(pkg, "dist", "bin.js"));
const scratch = mkdtempSync(join(tmpdir(), "switchyard-launcher-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("the switchyard executable a package manager links", () => {
  it("exists in the source tree and ships, so a fresh install links it before any build", () => {
    expect(manifest.bin.switchyard).toBe("./bin/switchyard.js");
    expect(() => accessSync(launcher, constants.X_OK)).not.toThrow();
    expect(manifest.files).toContain("bin");
  });

  it("is a dependency of the workspace root, so `pnpm exec switchyard` finds it there", () => {
    const root = join(pkg, "..", "..");
    const rootManifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
      devDependencies?: Record<string, string>;
    };
    expect(rootManifest.devDependencies?.["@switchyard/cli"]).toMatch(/^workspace:/);
    // pnpm install linked it (tests run after an install).
    expect(existsSync(join(root, "node_modules", ".bin", "switchyard"))).toBe(true);
  });

  it("says to build first, and exits 2, when the CLI is not built", () => {
    cpSync(launcher, join(scratch, "bin", "switchyard.js"));
    const run = spawnSync(process.execPath, [join(scratch, "bin", "switchyard.js"), "--help"], {
      encoding: "utf8",
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/not built.*pnpm build/);
  });

  // CI builds before it tests; a local run without a build has nothing to run.
  it.skipIf(!built && process.env.CI !== "true")("runs the built CLI", () => {
    const run = spawnSync(process.execPath, [launcher, "--version"], { encoding: "utf8" });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
