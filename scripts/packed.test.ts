// Packages an outside project installs cleanly: every package is packed as it would be published,
// installed with npm into a temporary project outside the workspace, a two-daemon app with its own
// catalog (and a file importing every package, so that each one's .d.ts is checked) is
// type-checked (moduleResolution nodenext and bundler, lib checks on) and run as two processes, and
// every package is require()d from CommonJS. The workspace's own node_modules are never written to.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const packagesDir = join(root, "packages");
const published = readdirSync(packagesDir)
  .map((name) => join(packagesDir, name))
  .filter((dir) => existsSync(join(dir, "package.json")))
  .map((dir) => ({ dir, manifest: JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) }))
  .filter(({ manifest }) => !manifest.private);

const run = (cmd: string, args: string[], cwd: string, timeout = 300_000) =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout });

/** The version of a dependency as the workspace resolved it (what our own tests ran against). */
const workspaceVersion = (name: string, from: string) =>
  JSON.parse(readFileSync(join(from, "node_modules", name, "package.json"), "utf8"))
    .version as string;

let project: string;
let installLog = "";
/** The workspace's compiled better-sqlite3 binary, as it was before the outside install. */
const workspaceBinary = join(
  realpathSync(join(packagesDir, "cross-process-queue", "node_modules", "better-sqlite3")),
  "build",
  "Release",
  "better_sqlite3.node",
);
const binaryStamp = () => {
  const { ino, mtimeMs, size } = statSync(workspaceBinary);
  return { ino, mtimeMs, size };
};
const workspaceBinaryBefore = binaryStamp();
const children: ChildProcess[] = [];

beforeAll(() => {
  // dist/ must exist: CI builds before testing; locally turbo's cache makes this quick.
  run(
    "pnpm",
    ["turbo", "run", "build", "--filter=./packages/*", "--output-logs=errors-only"],
    root,
    600_000,
  );
  project = mkdtempSync(join(tmpdir(), "switchyard-outside-"));
  const tarballs = join(project, "tarballs");
  const dependencies: Record<string, string> = {};
  for (const { dir, manifest } of published) {
    const out = run("pnpm", ["pack", "--pack-destination", tarballs, "--json"], dir);
    dependencies[manifest.name] = `file:${JSON.parse(out).filename}`;
  }
  const queueDir = join(packagesDir, "cross-process-queue");
  const natsDir = join(packagesDir, "transport-nats");
  // better-sqlite3 compiles from source (~80 s). The app gets its own copy of the registry package
  // the workspace built, binary included, and depends on that copy (`file:vendor/…`). Never on the
  // workspace's directory itself: npm links a `file:` directory and runs its install script in
  // place, which rebuilt the workspace's binary under every other test running meanwhile.
  const sqliteSource = realpathSync(join(queueDir, "node_modules", "better-sqlite3"));
  const sqliteCopy = join(project, "vendor", "better-sqlite3");
  for (const entry of ["package.json", "LICENSE", "binding.gyp", "lib", "src", "deps"])
    cpSync(join(sqliteSource, entry), join(sqliteCopy, entry), { recursive: true });
  cpSync(
    join(sqliteSource, "build", "Release", "better_sqlite3.node"),
    join(sqliteCopy, "build", "Release", "better_sqlite3.node"),
  );
  dependencies["better-sqlite3"] = "file:vendor/better-sqlite3";
  for (const name of ["@nats-io/jetstream", "@nats-io/transport-node"])
    dependencies[name] = workspaceVersion(name, natsDir);
  dependencies.zod = workspaceVersion("zod", join(packagesDir, "event-schema"));
  dependencies.typescript = workspaceVersion("typescript", root);
  dependencies["@types/node"] = workspaceVersion("@types/node", root);
  writeFileSync(
    join(project, "package.json"),
    JSON.stringify({ name: "outside-app", private: true, type: "module", dependencies }, null, 2),
  );
  cpSync(join(import.meta.dirname, "packed-app"), join(project, "src"), { recursive: true });
  const strict = {
    strict: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: false,
    target: "ES2022",
    lib: ["ES2023", "ESNext.Disposable"],
    types: ["node"],
  };
  writeFileSync(
    join(project, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        ...strict,
        module: "nodenext",
        moduleResolution: "nodenext",
        outDir: "dist",
      },
      include: ["src/*.ts"],
    }),
  );
  writeFileSync(
    join(project, "tsconfig.bundler.json"),
    JSON.stringify({
      compilerOptions: { ...strict, module: "esnext", moduleResolution: "bundler", noEmit: true },
      include: ["src/*.ts"],
    }),
  );
  // The testkit's vitest peer is left out (`--legacy-peer-deps`): the app does not run the suite,
  // and the packages the app uses have every peer listed above. `--ignore-scripts`: the one
  // install script the app needs is better-sqlite3's build, and the copy above has its binary.
  const install = spawnSync(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--prefer-offline",
      "--legacy-peer-deps",
      "--ignore-scripts",
    ],
    { cwd: project, encoding: "utf8", timeout: 600_000 },
  );
  if (install.status !== 0)
    throw new Error(`npm install failed:\n${install.stdout}${install.stderr}`);
  installLog = `${install.stdout}${install.stderr}`;
  // The copied binary is for the Node the workspace was built with; compile the copy (inside the
  // temporary project) only if this Node cannot load it.
  const probe = ["-e", 'new (require("better-sqlite3"))(":memory:").close()'];
  if (spawnSync(process.execPath, probe, { cwd: project }).status !== 0)
    run("npm", ["rebuild", "better-sqlite3"], project, 600_000);
}, 900_000);

afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  if (project) rmSync(project, { recursive: true, force: true });
});

describe("the packed packages in a project outside the workspace", { tags: ["slow"] }, () => {
  it("install with npm without any engine warning on our Node floor", () => {
    // @nats-io 3.4 pulls @nats-io/nuid 3, which declares Node >= 22: the NATS peers are capped
    // below 3.4 (>=3.0.0 <3.4.0) so that an install on Node 20.19 is clean.
    expect(installLog.split("\n").filter((line) => line.includes("EBADENGINE"))).toEqual([]);
  });

  it("leave the workspace's own better-sqlite3 binary untouched", () => {
    // Other test files load that binary meanwhile: rebuilding it in place broke them for ~80 s.
    expect(binaryStamp()).toEqual(workspaceBinaryBefore);
  });

  it("type-check a two-daemon app with its own catalog under nodenext", () => {
    expect(() => run("npx", ["tsc", "-p", "tsconfig.json"], project)).not.toThrow();
  });

  it("type-check the same app under moduleResolution bundler", () => {
    expect(() => run("npx", ["tsc", "-p", "tsconfig.bundler.json"], project)).not.toThrow();
  });

  it("run the two daemons as two processes through one SQLite file", async () => {
    const db = join(project, "shop.db");
    const shipper = spawn(process.execPath, ["dist/shipper.js", db], {
      cwd: project,
      stdio: "pipe",
    });
    children.push(shipper);
    let shipperOut = "";
    await new Promise<void>((resolve, reject) => {
      shipper.stdout.on("data", (chunk: Buffer) => {
        shipperOut += chunk.toString();
        if (shipperOut.includes("ready")) resolve();
      });
      shipper.stderr.on("data", (chunk: Buffer) => (shipperOut += chunk.toString()));
      shipper.once("exit", (code) => reject(new Error(`shipper exited ${code}: ${shipperOut}`)));
    });
    const out = run(process.execPath, ["dist/shop.js", db, "20"], project, 60_000);
    expect(JSON.parse(out.trim().split("\n").pop()!)).toEqual({ shipped: 20, courier: 10 });
    shipper.kill("SIGTERM");
  });

  it("load every package with require() from CommonJS", () => {
    const names = published
      .filter(({ manifest }) => JSON.stringify(manifest.exports).includes('"require"'))
      .map(({ manifest }) => manifest.name as string);
    expect(names.length).toBeGreaterThan(0);
    const out = run(process.execPath, ["src/require.cjs", ...names], project);
    const exportsPerPackage = JSON.parse(out) as Record<string, number>;
    for (const name of names) expect(exportsPerPackage[name], name).toBeGreaterThan(0);
  });
});
