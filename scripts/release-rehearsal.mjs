#!/usr/bin/env node
// Release rehearsal: the release steps of docs/releasing.md run on a scratch copy of the repository
// (the real one is never written): `pnpm version-packages` (changeset version), `pnpm pack` of every
// public package and `pnpm publish -r --dry-run`, then every tarball is checked by
// scripts/release-checks.mjs. Prints one row per package and exits 1 on any problem.
// Needs the packages built (`pnpm build`). `--keep` leaves the scratch copy for a look.
//
// The dry-run publish talks to a throwaway registry on 127.0.0.1 that knows no package: pnpm asks
// the registry which versions already exist, and the answer must neither need the network nor
// depend on what npmjs.com holds today.
/* global console, performance, process */
import { execFile } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { inspectTarball, parseChangeset } from "./release-checks.mjs";

const root = resolve(import.meta.dirname, "..");
const keep = process.argv.includes("--keep");
const started = performance.now();
const exec = promisify(execFile);
const run = (cmd, args, cwd, timeout = 60_000) =>
  exec(cmd, args, { cwd, timeout, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, CI: "1" } });
const BUMPS = ["none", "patch", "minor", "major"];
const readJson = (path) => JSON.parse(readFileSync(path, "utf8"));

const packageDirs = readdirSync(join(root, "packages"))
  .map((name) => join("packages", name))
  .filter((dir) => existsSync(join(root, dir, "package.json")));
const publicDirs = packageDirs.filter((dir) => !readJson(join(root, dir, "package.json")).private);
const unbuilt = publicDirs.filter((dir) => !existsSync(join(root, dir, "dist")));
if (unbuilt.length) {
  console.error(`✗ no dist/ in ${unbuilt.join(", ")}: run \`pnpm build\` first`);
  process.exit(1);
}

const copy = mkdtempSync(join(tmpdir(), "switchyard-release-"));
const problems = [];
let published; // name → version, as `pnpm publish --dry-run` reported them
const rows = [];
const registry = createServer((_request, response) => {
  response.writeHead(404, { "content-type": "application/json" });
  response.end(JSON.stringify({ error: "not found" }));
});
try {
  // 1. The scratch copy: tracked and new (not ignored) files as they are in the working tree, the
  // built dist/ folders, and the root node_modules linked (the changesets CLI lives there).
  const { stdout: listed } = await run(
    "git",
    ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    root,
  );
  for (const file of listed.split("\0")) {
    // Deleted in the working tree, or a node_modules link that `node_modules/` does not ignore.
    if (!file || !existsSync(join(root, file)) || /(^|\/)node_modules(\/|$)/.test(file)) continue;
    mkdirSync(dirname(join(copy, file)), { recursive: true });
    cpSync(join(root, file), join(copy, file));
  }
  for (const dir of publicDirs)
    cpSync(join(root, dir, "dist"), join(copy, dir, "dist"), { recursive: true });
  symlinkSync(join(root, "node_modules"), join(copy, "node_modules"));
  // pnpm rewrites `workspace:` ranges from the version of the linked sibling, so each package links
  // its siblings inside the copy (the real repo's links would give the pre-release versions).
  const dirOf = Object.fromEntries(
    packageDirs.map((dir) => [readJson(join(copy, dir, "package.json")).name, dir]),
  );
  for (const dir of packageDirs) {
    const manifest = readJson(join(copy, dir, "package.json"));
    const deps = ["dependencies", "peerDependencies", "devDependencies", "optionalDependencies"]
      .flatMap((field) => Object.entries(manifest[field] ?? {}))
      .filter(([name, range]) => String(range).startsWith("workspace:") && dirOf[name]);
    for (const [name] of new Map(deps)) {
      const link = join(copy, dir, "node_modules", name);
      if (existsSync(link)) continue;
      mkdirSync(dirname(link), { recursive: true });
      symlinkSync(relative(dirname(link), join(copy, dirOf[name])), link);
    }
  }

  // 2. What the pending changesets ask for, then `changeset version`.
  const requested = {};
  const entries = {};
  const changesetDir = join(copy, ".changeset");
  for (const file of readdirSync(changesetDir).filter(
    (f) => f.endsWith(".md") && f !== "README.md",
  )) {
    const changeset = parseChangeset(readFileSync(join(changesetDir, file), "utf8"));
    for (const [name, bump] of Object.entries(changeset?.releases ?? {})) {
      if (BUMPS.indexOf(bump) > BUMPS.indexOf(requested[name] ?? "none")) requested[name] = bump;
      (entries[name] ??= []).push(changeset.firstLine);
    }
  }
  const versionsIn = () =>
    Object.fromEntries(
      publicDirs.map((dir) => {
        const { name, version } = readJson(join(copy, dir, "package.json"));
        return [name, version];
      }),
    );
  const before = versionsIn();
  await run("pnpm", ["version-packages"], copy);
  const after = versionsIn();

  // 3. A tarball per public package, as `pnpm publish` would upload it.
  const tarballDir = join(copy, ".rehearsal");
  const tarballs = {};
  const queue = [...publicDirs];
  const packer = async () => {
    for (let dir = queue.shift(); dir; dir = queue.shift()) {
      const { stdout } = await run(
        "pnpm",
        ["pack", "--pack-destination", tarballDir, "--json"],
        join(copy, dir),
      );
      const packed = JSON.parse(stdout);
      tarballs[packed.name] = packed.filename;
    }
  };
  await Promise.all([packer(), packer()]);

  // 4. The publish command itself, dry: it must go through and name every package at its new version.
  await new Promise((ready) => registry.listen(0, "127.0.0.1", ready));
  const url = `http://127.0.0.1:${registry.address().port}/`;
  try {
    const { stdout, stderr } = await run(
      "pnpm",
      ["publish", "-r", "--dry-run", "--no-git-checks", "--registry", url],
      copy,
      90_000,
    );
    published = new Map(
      [...`${stdout}\n${stderr}`.matchAll(/^\+ (@?[^@\s]+)@(\S+)$/gm)].map((m) => [m[1], m[2]]),
    );
  } catch (error) {
    problems.push(`pnpm publish -r --dry-run failed: ${error.stderr || error.message}`.trim());
  }

  // 5. Every tarball against the rules.
  for (const [name, version] of Object.entries(after)) {
    const tarball = tarballs[name];
    const result = inspectTarball(tarball, {
      version,
      previousVersion: before[name],
      siblings: after,
      changelogEntries: entries[name] ?? [],
      requestedBump: requested[name],
    });
    if (published && published.get(name) !== version)
      result.problems.push(`pnpm publish --dry-run did not publish ${name}@${version}`);
    rows.push({ name, before: before[name], version, ...result });
  }
} catch (error) {
  problems.push(`${error.cmd ?? "rehearsal"} failed: ${error.stderr || error.message}`.trim());
} finally {
  registry.close();
  if (!keep) rmSync(copy, { recursive: true, force: true });
}

const table = [
  ["package", "version", "files", "size", "problems"],
  ...rows.map((r) => [
    r.name,
    `${r.before} → ${r.version}`,
    String(r.entries.length),
    `${(r.size / 1024).toFixed(1)} kB`,
    r.problems.length ? String(r.problems.length) : "ok",
  ]),
];
const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
for (const row of table) console.log(row.map((cell, i) => cell.padEnd(widths[i])).join("  "));
for (const r of rows) for (const problem of r.problems) console.log(`✗ ${r.name}: ${problem}`);
for (const problem of problems) console.log(`✗ ${problem}`);
const failed = problems.length + rows.filter((r) => r.problems.length).length;
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(
  failed
    ? `release rehearsal failed (${seconds} s)${keep ? `; scratch copy kept in ${copy}` : ""}`
    : `release rehearsal passed: ${rows.length} packages, changeset version + pnpm pack + pnpm publish -r --dry-run (${seconds} s)${keep ? `; scratch copy in ${copy}` : ""}`,
);
process.exit(failed ? 1 : 0);
