// The release rehearsal (docs/releasing.md) run as CI runs it, and the tarball rules it applies
// shown to catch what they are meant to catch, on tarballs crafted here.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type ReleaseExpectations, inspectTarball as inspect } from "./release-checks.mjs";

const root = join(import.meta.dirname, "..");

/** What the rehearsal must leave alone: each package's version and the pending changesets. */
const repoState = () => ({
  versions: readdirSync(join(root, "packages")).map((name) => {
    const path = join(root, "packages", name, "package.json");
    return (JSON.parse(readFileSync(path, "utf8")) as { version: string }).version;
  }),
  changesets: readdirSync(join(root, ".changeset")).sort(),
});

describe("the release rehearsal", { tags: ["slow"] }, () => {
  it("versions, packs and dry-run publishes every package with no problem, in a scratch copy", () => {
    const before = repoState();
    const result = spawnSync(process.execPath, [join(root, "scripts/release-rehearsal.mjs")], {
      cwd: root,
      encoding: "utf8",
      timeout: 110_000,
    });
    const output = `${result.stdout}${result.stderr}`;
    expect(result.status, output).toBe(0);
    expect(output).toContain("release rehearsal passed");
    for (const name of readdirSync(join(root, "packages")))
      expect(output).toMatch(new RegExp(`^@switchyard/${name} .* ok\\s*$`, "m"));
    expect(repoState()).toEqual(before);
  });
});

describe("the release tarball checks", () => {
  const scratch = mkdtempSync(join(tmpdir(), "switchyard-release-checks-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  /** A .tgz laid out as npm publishes it: every file under `package/`. */
  const tarball = (name: string, files: Record<string, string>) => {
    const dir = join(scratch, name);
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, "package", path)), { recursive: true });
      writeFileSync(join(dir, "package", path), text);
    }
    execFileSync("tar", ["-czf", `${dir}.tgz`, "-C", dir, "package"]);
    return `${dir}.tgz`;
  };
  const manifest = (fields: Record<string, unknown> = {}) =>
    JSON.stringify({
      name: "@switchyard/example",
      version: "0.2.0",
      exports: { ".": { types: "./dist/index.d.ts", default: "./dist/index.js" } },
      ...fields,
    });
  const map = JSON.stringify({ version: 3, sources: ["../src/index.ts"], mappings: "" });
  const releasable = {
    "package.json": manifest({ peerDependencies: { "@switchyard/router": "^0.3.0" } }),
    "README.md": "# example\n",
    LICENSE: "MIT\n",
    "CHANGELOG.md": "# @switchyard/example\n\n## 0.2.0\n\n### Minor Changes\n\n- Adds examples.\n",
    "dist/index.js": "export {};\n//# sourceMappingURL=index.js.map\n",
    "dist/index.js.map": JSON.stringify({ ...JSON.parse(map), sourcesContent: ["export {};"] }),
    "dist/index.d.ts": "export {};\n",
  };
  const expected: ReleaseExpectations = {
    version: "0.2.0",
    previousVersion: "0.1.0",
    siblings: { "@switchyard/example": "0.2.0", "@switchyard/router": "0.3.0" },
    changelogEntries: ["Adds examples."],
    requestedBump: "minor",
  };

  it("find nothing wrong with a tarball of dist, README, CHANGELOG, LICENSE and package.json", () => {
    expect(inspect(tarball("releasable", releasable), expected).problems).toEqual([]);
  });

  it("report workspace: ranges left in dependencies, peer and dev dependencies", () => {
    const packed = tarball("workspace-ranges", {
      ...releasable,
      "package.json": manifest({
        dependencies: { "@switchyard/router": "workspace:^" },
        peerDependencies: { "@switchyard/router": "workspace:^" },
        devDependencies: { "@switchyard/router": "workspace:*" },
      }),
    });
    expect(inspect(packed, expected).problems).toEqual([
      'dependencies.@switchyard/router is still "workspace:^": pack with pnpm so it is rewritten',
      'peerDependencies.@switchyard/router is still "workspace:^": pack with pnpm so it is rewritten',
      'devDependencies.@switchyard/router is still "workspace:*": pack with pnpm so it is rewritten',
    ]);
  });

  it("report a sibling range left at the version before the release", () => {
    const packed = tarball("stale-range", {
      ...releasable,
      "package.json": manifest({ peerDependencies: { "@switchyard/router": "^0.2.0" } }),
    });
    expect(inspect(packed, expected).problems).toEqual([
      'peerDependencies.@switchyard/router is "^0.2.0" but @switchyard/router is released as 0.3.0',
    ]);
  });

  it("report test files, src/, stray files, a missing changelog and a map without its sources", () => {
    const { "CHANGELOG.md": _changelog, ...withoutChangelog } = releasable;
    const packed = tarball("leaky", {
      ...withoutChangelog,
      "src/x.test.ts": "test('x', () => {});\n",
      "src/index.ts": "export {};\n",
      "dist/index.test.js": "\n",
      "tsconfig.json": "{}\n",
      "dist/index.js.map": map,
    });
    expect(inspect(packed, expected).problems.sort()).toEqual(
      [
        'CHANGELOG.md is not in the tarball: add it to "files"',
        "test file src/x.test.ts is in the tarball",
        "source file src/index.ts is in the tarball",
        "test file dist/index.test.js is in the tarball",
        "tsconfig.json is in the tarball: only dist/, package.json, README.md, CHANGELOG.md, LICENSE ship",
        "source map dist/index.js.map points at ../src/index.ts without embedding it (sourcesContent)",
      ].sort(),
    );
  });

  it("report an export target missing from the tarball and a changelog without the release", () => {
    const packed = tarball("unexported", {
      ...releasable,
      "package.json": manifest({ main: "./dist/index.cjs" }),
      "CHANGELOG.md": "# @switchyard/example\n\n## 0.1.0\n\n- Adds examples.\n",
    });
    expect(inspect(packed, expected).problems).toEqual([
      "export target ./dist/index.cjs is not in the tarball",
      'CHANGELOG.md has no "## 0.2.0" section',
    ]);
  });

  it("report a major release that no changeset asked for", () => {
    const packed = tarball("accidental-major", {
      ...releasable,
      "package.json": manifest({ version: "1.0.0" }),
      "CHANGELOG.md": "# @switchyard/example\n\n## 1.0.0\n\n- Adds examples.\n",
    });
    const [problem, ...others] = inspect(packed, { ...expected, version: "1.0.0" }).problems;
    expect(others).toEqual([]);
    expect(problem).toMatch(
      /^released as a major \(0\.1\.0 → 1\.0\.0\) but its changesets ask for minor/,
    );
  });
});
