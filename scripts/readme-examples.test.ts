// Docs that run: every ```ts block of every package README (and of the guides listed below) is
// executed as written, with @switchyard/* resolved to the sources. A README example that throws
// fails the build, so does an install line that misses a package the examples import, and so does
// a `console.log(…); // <output>` comment that is not what the line prints.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it, vi } from "vitest";
import {
  codeBlocks,
  importedPackages,
  installedPackages,
  instrument,
  outputMismatches,
  printed,
} from "./readme-check.js";

const root = join(import.meta.dirname, "..");

/** The documents whose examples run: the root README, every package README, the guides. */
const documents = [
  join(root, "README.md"),
  ...readdirSync(join(root, "packages"))
    .map((name) => join(root, "packages", name))
    .filter((dir) => existsSync(join(dir, "README.md")) && existsSync(join(dir, "src")))
    .map((dir) => join(dir, "README.md")),
  join(root, "docs", "own-catalog.md"),
];

declare global {
  var __readmeLog: ((id: number) => (...args: unknown[]) => void) | undefined;
}

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs one example as a module written in `dir` (so its imports resolve as they would for a user
 * there) and returns what each commented console.log line printed that differs from its comment.
 */
const runExample = async (dir: string, name: string, code: string) => {
  const { code: instrumented, expected } = instrument(code);
  const out = join(dir, ".readme-examples");
  mkdirSync(out, { recursive: true });
  scratch.push(out);
  const file = join(out, `${name}.ts`);
  writeFileSync(file, instrumented);
  const prints = new Map<number, string[]>();
  const log = vi.spyOn(console, "log").mockImplementation(() => {});
  globalThis.__readmeLog =
    (id) =>
    (...args) => {
      prints.set(id, [...(prints.get(id) ?? []), printed(args)]);
      console.log(...args);
    };
  try {
    await import(pathToFileURL(file).href);
  } finally {
    log.mockRestore();
    globalThis.__readmeLog = undefined;
  }
  return outputMismatches(expected, prints);
};

describe.each(documents.map((file) => [relative(root, file), file] as const))("%s", (_, file) => {
  const markdown = readFileSync(file, "utf8");
  const dir = dirname(file);
  const blocks = codeBlocks(markdown);
  const runnable = blocks.filter((block) => block.runnable);

  it("has a runnable example", () => {
    // A README whose example is a test file (the testkit) names that file; it is executed by its own suite.
    const executedElsewhere = /see (src\/[\w./-]+\.test\.ts) for the executed version/.exec(
      markdown,
    );
    if (executedElsewhere) expect(existsSync(join(dir, executedElsewhere[1]!))).toBe(true);
    else expect(runnable.length).toBeGreaterThan(0);
  });

  it("installs every package its examples import", () => {
    const manifest = join(dir, "package.json");
    const self =
      basename(file) === "README.md" && existsSync(manifest)
        ? [JSON.parse(readFileSync(manifest, "utf8")).name as string]
        : [];
    const installed = new Set([...self, ...installedPackages(markdown)]);
    const imported = [...new Set(blocks.flatMap((block) => importedPackages(block.code)))];
    expect(
      imported.filter((name) => !installed.has(name)),
      `packages imported by the examples but missing from the \`npm install\` line of ${relative(root, file)}`,
    ).toEqual([]);
  });

  it.each(runnable.map((block, i) => [i + 1, block] as const))(
    "example %i runs and prints what its comments say",
    async (n, block) => {
      // A guide in docs/ belongs to no package: it runs in event-schema, where zod is installed.
      const mismatches = dir.endsWith("docs")
        ? await runExample(join(root, "packages", "event-schema"), `guide-${n}`, block.code)
        : await runExample(dir, `example-${n}`, block.code);
      expect(
        mismatches.map(
          ({ line, expected, printed }) =>
            `line ${block.line + line - 1}: the comment says ${JSON.stringify(expected)}, it printed ${
              printed === undefined ? "nothing" : JSON.stringify(printed)
            }`,
        ),
      ).toEqual([]);
    },
  );
});

describe("the install-line check", () => {
  it("reads the packages of npm install lines, but not of a global install", () => {
    const markdown = [
      "```sh",
      "npm install -D @switchyard/router zod@^4 # the bus",
      "npm install -g pnpm@10 && npm i better-sqlite3",
      "```",
    ].join("\n");
    expect(installedPackages(markdown)).toEqual(["@switchyard/router", "better-sqlite3", "zod"]);
  });

  it("names the packages an example imports, not node builtins or relative paths", () => {
    const code = [
      `import { z } from "zod";`,
      `import { join } from "node:path";`,
      `import fs from "fs";`,
      `import type { Router } from "@switchyard/router/types";`,
      `export { x } from "./x.js";`,
      `const nats = await import("@nats-io/jetstream");`,
    ].join("\n");
    expect(importedPackages(code)).toEqual(["@nats-io/jetstream", "@switchyard/router", "zod"]);
  });
});

describe("the output check", () => {
  const check = (code: string) =>
    runExample(root, `crafted-${Math.random().toString(36).slice(2)}`, code);

  it("accepts a comment that is the printed output, with any spacing and quotes", async () => {
    expect(
      await check(
        [
          `console.log(1 + 1); // 2`,
          `console.log({ a: [1, "x"] }); // → {a:[1, "x"]}`,
          `console.log("ready", true); //   ready   true`,
          `console.log(crypto.randomUUID(), "id"); // …-…  id`,
        ].join("\n"),
      ),
    ).toEqual([]);
  });

  it("reports a comment that is not what the line printed", async () => {
    expect(await check(`const n = 0;\nconsole.log(n, "healthy"); // 1 healthy\n`)).toEqual([
      { line: 2, expected: "1 healthy", printed: "0 healthy" },
    ]);
  });

  it("reads an output comment starting with → on the line below, and no other comment there", async () => {
    expect(await check(`console.log(2);\n// → 3\nconsole.log(4);\n// prose, not output\n`)).toEqual(
      [{ line: 2, expected: "3", printed: "2" }],
    );
  });

  it("reports a commented line that never printed", async () => {
    expect(await check(`if (Date.now() < 0) console.log("never"); // never\n`)).toEqual([
      { line: 1, expected: "never", printed: undefined },
    ]);
  });

  it("compares every print of a line that runs more than once", async () => {
    expect(
      await check(
        `[1, 2].forEach((i) => console.log(i));\nfor (const i of [1, 2]) console.log(i); // 1\n`,
      ),
    ).toEqual([{ line: 2, expected: "1", printed: "1\n2" }]);
  });
});
