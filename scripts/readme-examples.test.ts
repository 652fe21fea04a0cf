// Docs that run: every ```ts block of every package README is executed as written, with
// @switchyard/* resolved to the sources. A README example that throws fails the build.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it, vi } from "vitest";

const root = join(import.meta.dirname, "..");
const readmes = [
  root,
  ...readdirSync(join(root, "packages"))
    .map((name) => join(root, "packages", name))
    .filter((dir) => existsSync(join(dir, "README.md")) && existsSync(join(dir, "src"))),
];

const blocksOf = (markdown: string) =>
  [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .filter((code) => !code.includes("// not runnable"));

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe.each(readmes)("README of %s", (dir) => {
  const blocks = blocksOf(readFileSync(join(dir, "README.md"), "utf8"));

  it("has a runnable example", () => {
    // A README whose example is a test file (the testkit) names that file; it is executed by its own suite.
    const executedElsewhere = /see (src\/[\w./-]+\.test\.ts) for the executed version/.exec(
      readFileSync(join(dir, "README.md"), "utf8"),
    );
    if (executedElsewhere) expect(existsSync(join(dir, executedElsewhere[1]!))).toBe(true);
    else expect(blocks.length).toBeGreaterThan(0);
  });

  it.each(blocks.map((code, i) => [i + 1, code] as const))(
    "example %i runs without throwing",
    async (n, code) => {
      // Written inside the package so its own dependencies resolve as they would for a user.
      const out = join(dir, ".readme-examples");
      mkdirSync(out, { recursive: true });
      scratch.push(out);
      const file = join(out, `example-${n}.ts`);
      writeFileSync(file, code);
      const log = vi.spyOn(console, "log").mockImplementation(() => {});
      try {
        await import(pathToFileURL(file).href);
      } finally {
        log.mockRestore();
      }
    },
  );
});
