import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const root = fileURLToPath(new URL(".", import.meta.url));
const dirsOf = (parent: string) =>
  existsSync(`${root}${parent}`)
    ? readdirSync(`${root}${parent}`, { withFileTypes: true })
        .filter((d) => d.isDirectory() && existsSync(`${root}${parent}/${d.name}/src`))
        .map((d) => `${parent}/${d.name}`)
    : [];

const packageDirs = dirsOf("packages");
const projectDirs = [
  ...packageDirs,
  ...dirsOf("apps"),
  ...["benchmarks", "torture"].filter((dir) => existsSync(`${root}${dir}/src`)),
];

// Tests run against src/, never dist/: `pnpm test` needs no build first.
const alias = Object.fromEntries(
  packageDirs.map((dir) => [
    `@switchyard/${dir.slice("packages/".length)}`,
    `${root}${dir}/src/index.ts`,
  ]),
);

const jsonReport = process.env.VITEST_JSON;

export default defineConfig({
  resolve: { alias },
  test: {
    reporters: jsonReport ? ["default", ["json", { outputFile: jsonReport }]] : ["default"],
    tags: [
      {
        name: "slow",
        description:
          "Multi-process, server and end-to-end suites. CI runs them; skip locally with `pnpm test:fast`.",
        timeout: 120_000,
      },
    ],
    projects: [
      ...projectDirs.map((dir) => ({
        extends: true as const,
        test: {
          name: dir.split("/").pop(),
          root: `${root}${dir}`,
          include: ["src/**/*.test.ts", "test/**/*.test.ts"],
        },
      })),
      // README examples of every package, executed as written.
      { extends: true as const, test: { name: "docs", root, include: ["scripts/*.test.ts"] } },
    ],
  },
});
