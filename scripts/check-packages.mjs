#!/usr/bin/env node
// Packaging checks for every published package: publint (strict) on the packed files and
// are-the-types-wrong on the tarball pnpm would publish (workspace: ranges rewritten), with its
// default profile (ESM and CommonJS) or, for a package that is ESM only on purpose, esm-only.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, rmSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const packDir = join(root, ".pack");
const only = process.argv.slice(2);

const packages = readdirSync(join(root, "packages"), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(root, "packages", d.name, "package.json")))
  .map((d) => join(root, "packages", d.name))
  .filter((dir) => !JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).private)
  .filter((dir) => only.length === 0 || only.some((name) => dir.endsWith(`/${name}`)));

const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });

let failed = 0;
rmSync(packDir, { recursive: true, force: true });
mkdirSync(packDir, { recursive: true });
for (const dir of packages) {
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const { name } = manifest;
  // A package without a `require` export is ESM only on purpose (the testkit: vitest cannot be
  // require()d), and is checked with attw's esm-only profile; every other one with the default.
  const esmOnly = !JSON.stringify(manifest.exports ?? {}).includes('"require"');
  if (!existsSync(join(dir, "dist"))) {
    console.error(`✗ ${name}: no dist/ — run \`pnpm build\` first`);
    failed++;
    continue;
  }
  try {
    run("pnpm", ["exec", "publint", "--strict", "--pack", "pnpm"], dir);
    const out = run("pnpm", ["pack", "--pack-destination", packDir, "--json"], dir);
    const tarball = JSON.parse(out).filename;
    run(
      "pnpm",
      [
        "exec",
        "attw",
        resolve(packDir, tarball),
        ...(esmOnly ? ["--profile", "esm-only"] : []),
        "--format",
        "ascii",
      ],
      dir,
    );
    console.log(`✓ ${name}${esmOnly ? " (ESM only)" : ""}`);
  } catch (error) {
    failed++;
    console.error(`✗ ${name}\n${error.stdout ?? ""}${error.stderr ?? error.message}`);
  }
}
rmSync(packDir, { recursive: true, force: true });
console.log(
  `${packages.length - failed}/${packages.length} packages pass publint --strict and attw (default profile; ESM-only packages: esm-only)`,
);
process.exit(failed ? 1 : 0);
