// The API reference (`pnpm docs:api`, typedoc.json) built as CI builds it: from the TSDoc of every
// public package, with any TypeDoc warning — a broken {@link}, a Markdown link to a missing file,
// an unknown tag — failing the build. Shown to catch a broken link on a package crafted here.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const scratch = mkdtempSync(join(tmpdir(), "switchyard-api-docs-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const publicPackages = readdirSync(join(root, "packages"))
  .map((name) => join(root, "packages", name))
  .filter((dir) => existsSync(join(dir, "src", "index.ts")))
  .map(
    (dir) =>
      JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name: string;
        private?: boolean;
      },
  )
  .filter((manifest) => !manifest.private)
  .map((manifest) => manifest.name);

/** Runs TypeDoc with the repository's typedoc.json and the given extra arguments. */
const typedoc = (args: string[]) => {
  const result = spawnSync("pnpm", ["exec", "typedoc", ...args], {
    cwd: root,
    encoding: "utf8",
    timeout: 110_000,
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
};

describe("the API reference", { tags: ["slow"] }, () => {
  it("builds from every public package's TSDoc with no warning and a page per package", () => {
    const out = join(scratch, "api");
    const { status, output } = typedoc(["--out", out, "--json", join(scratch, "api.json")]);
    expect(status, output).toBe(0);
    expect(output).not.toMatch(/\[warning\]|\[error\]/);
    const project = JSON.parse(readFileSync(join(scratch, "api.json"), "utf8")) as {
      children: { name: string; children?: unknown[] }[];
    };
    expect(project.children.map((c) => c.name).sort()).toEqual([...publicPackages].sort());
    for (const name of publicPackages) {
      const page = join(out, "modules", `${name.replace(/[@/]/g, "_")}.html`);
      expect(existsSync(page), `no page for ${name} at ${page}`).toBe(true);
      expect(readFileSync(page, "utf8")).toContain(name);
      expect(
        project.children.find((c) => c.name === name)?.children?.length,
        `${name} documents no export`,
      ).toBeGreaterThan(0);
    }
  });

  it("fails on a {@link} to a symbol that does not exist", () => {
    // A package of its own, converted with the same options (packageOptions of typedoc.json).
    const pkg = join(scratch, "packages", "broken");
    mkdirSync(join(pkg, "src"), { recursive: true });
    writeFileSync(
      join(pkg, "package.json"),
      JSON.stringify({ name: "@switchyard/broken", version: "0.0.0" }),
    );
    writeFileSync(
      join(pkg, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { strict: true, module: "ESNext", moduleResolution: "Bundler", types: [] },
        include: ["src"],
      }),
    );
    writeFileSync(
      join(pkg, "src", "index.ts"),
      `/** Stops the daemon; see {@link Daemon.stopp} for the rest. */\nexport function stop(): void {}\n`,
    );
    const { status, output } = typedoc([
      "--entryPoints",
      pkg,
      "--out",
      join(scratch, "broken-api"),
    ]);
    expect(status, output).not.toBe(0);
    expect(output).toMatch(/\[warning\].*Daemon\.stopp/);
  });
});
