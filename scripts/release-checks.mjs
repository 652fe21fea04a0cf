// What a release tarball must look like, as one function over the tarball's contents, so the
// release rehearsal (scripts/release-rehearsal.mjs) and its test share the exact rules.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Files a tarball may hold besides `dist/**`: the manifest, the README, the changelog, the licence. */
export const TOP_LEVEL_FILES = Object.freeze([
  "package.json",
  "README.md",
  "CHANGELOG.md",
  "LICENSE",
]);

const DEPENDENCY_FIELDS = [
  "dependencies",
  "peerDependencies",
  "devDependencies",
  "optionalDependencies",
];
const BUMPS = ["none", "patch", "minor", "major"];
const TEST_FILE =
  /(^|\/)(__tests__|__mocks__)\/|\.(test|spec)\.[cm]?[jt]sx?$|\.(test|spec)\.d\.[cm]?ts$/;
const SOURCE_MAPPING_URL = /\/\/# sourceMappingURL=(\S+)\s*$/;

/**
 * The bump between two `x.y.z` versions: `"major"`, `"minor"`, `"patch"` or `"none"`.
 * @example bumpBetween("0.0.0", "0.1.0") // "minor"
 */
export function bumpBetween(from, to) {
  const [a, b] = [from, to].map((v) => String(v).split(/[-+]/)[0].split(".").map(Number));
  if (b[0] !== a[0]) return "major";
  if (b[1] !== a[1]) return "minor";
  if (b[2] !== a[2]) return "patch";
  return "none";
}

/**
 * The `.changeset/*.md` files of a repository, parsed: for each, the bump it asks per package and
 * the first line of its summary (what changesets writes as the changelog bullet).
 */
export function parseChangeset(text) {
  const match = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?([\s\S]*)$/.exec(text);
  if (!match) return undefined;
  const releases = {};
  for (const line of match[1].split(/\r?\n/)) {
    const entry = /^\s*["']?([^"':\s]+)["']?\s*:\s*(major|minor|patch|none)\s*$/.exec(line);
    if (entry) releases[entry[1]] = entry[2];
  }
  const summary = match[2].trim();
  return { releases, firstLine: summary.split(/\r?\n/)[0].trim() };
}

/**
 * Check one packed package against the release rules and return its problems (empty: releasable).
 *
 * - the manifest has no `workspace:` range left (any dependency field) and each sibling range
 *   (`siblings`) names the sibling's version being released, and its own version is `version`;
 * - the files are `package.json`, `README.md`, `CHANGELOG.md`, `LICENSE`, `dist/**` and the
 *   manifest's `bin` targets only: no
 *   test file, no `src/`, and a source map only if it embeds its sources (`sourcesContent`), so it
 *   never points at files the tarball does not have; every `sourceMappingURL` resolves;
 * - every `exports` / `main` / `module` / `types` / `bin` target is in the tarball;
 * - `CHANGELOG.md` has a `## <version>` section holding each pending changeset's first line;
 * - the bump is no larger than the changesets asked (a patch for a dependency update), which
 *   catches changesets turning a package major because a peer dependency left its range.
 *
 * @param input.entries - paths inside the tarball, without the leading `package/`
 * @param input.read - reads one of `entries` as UTF-8
 * @param input.expected - what the release should contain; every field optional
 * @returns problems, each a sentence naming the file or field and what to do
 */
export function checkPackedPackage({ entries, read, expected = {} }) {
  const problems = [];
  const has = new Set(entries);
  // An executable may live outside dist/ (the CLI's bin/ launcher, linkable before a build).
  const binTargets = new Set();
  if (has.has("package.json")) {
    try {
      const { bin } = JSON.parse(read("package.json"));
      for (const target of Object.values(typeof bin === "string" ? { bin } : (bin ?? {})))
        binTargets.add(String(target).replace(/^\.\//, ""));
    } catch {
      // reported below, where the manifest is read for its fields
    }
  }
  for (const file of TOP_LEVEL_FILES)
    if (!has.has(file)) problems.push(`${file} is not in the tarball: add it to "files"`);
  for (const path of entries) {
    if (TEST_FILE.test(path)) problems.push(`test file ${path} is in the tarball`);
    else if (/(^|\/)src\//.test(path)) problems.push(`source file ${path} is in the tarball`);
    else if (!TOP_LEVEL_FILES.includes(path) && !path.startsWith("dist/") && !binTargets.has(path))
      problems.push(`${path} is in the tarball: only dist/, ${TOP_LEVEL_FILES.join(", ")} ship`);
    else if (path.endsWith(".map")) problems.push(...checkSourceMap(path, read));
    else if (/\.[cm]?js$/.test(path)) {
      const url = SOURCE_MAPPING_URL.exec(read(path))?.[1];
      if (url && !url.startsWith("data:")) {
        const target = join(path, "..", url);
        if (!has.has(target))
          problems.push(`${path} names the source map ${target}, which is missing`);
      }
    }
  }
  if (!has.has("package.json")) return problems;

  let manifest;
  try {
    manifest = JSON.parse(read("package.json"));
  } catch (error) {
    return [...problems, `package.json does not parse: ${error.message}`];
  }
  const {
    version,
    previousVersion,
    siblings = {},
    changelogEntries = [],
    requestedBump,
  } = expected;
  if (version !== undefined && manifest.version !== version)
    problems.push(`package.json has version ${manifest.version}, expected ${version}`);
  let workspaceRanges = 0;
  for (const field of DEPENDENCY_FIELDS) {
    for (const [dep, range] of Object.entries(manifest[field] ?? {})) {
      if (String(range).startsWith("workspace:")) {
        workspaceRanges++;
        problems.push(`${field}.${dep} is still "${range}": pack with pnpm so it is rewritten`);
      } else if (dep in siblings && !rangeNames(String(range), siblings[dep]))
        problems.push(`${field}.${dep} is "${range}" but ${dep} is released as ${siblings[dep]}`);
    }
  }
  // Anywhere else (overrides, a nested field): one mention is enough.
  if (workspaceRanges === 0 && JSON.stringify(manifest).includes('"workspace:'))
    problems.push(`package.json still holds a workspace: range outside the dependency fields`);

  for (const target of exportTargets(manifest)) {
    const path = target.replace(/^\.\//, "");
    const found = path.includes("*")
      ? entries.some((e) => globToRegExp(path).test(e))
      : has.has(path);
    if (!found) problems.push(`export target ${target} is not in the tarball`);
  }

  if (has.has("CHANGELOG.md") && version !== undefined && version !== previousVersion) {
    const changelog = read("CHANGELOG.md");
    const start = changelog.search(new RegExp(`^## ${version.replace(/\./g, "\\.")}\\s*$`, "m"));
    if (start < 0) problems.push(`CHANGELOG.md has no "## ${version}" section`);
    else {
      const body = changelog.slice(start + 3);
      const next = body.search(/^## /m);
      const section = next < 0 ? body : body.slice(0, next);
      for (const line of changelogEntries)
        if (!section.includes(line))
          problems.push(
            `CHANGELOG.md ${version} lacks the changeset entry "${line.slice(0, 60)}…"`,
          );
    }
  }
  if (previousVersion !== undefined && version !== undefined) {
    const actual = bumpBetween(previousVersion, version);
    const allowed = requestedBump ?? "patch";
    if (BUMPS.indexOf(actual) > Math.max(BUMPS.indexOf(allowed), BUMPS.indexOf("patch")))
      problems.push(
        `released as a ${actual} (${previousVersion} → ${version}) but its changesets ask for ` +
          `${requestedBump ?? "nothing"}: changesets makes a package major when a sibling it ` +
          `declares as a peer dependency leaves the peer range (^0.x.y admits no minor bump); ` +
          `widen the peer range or add a major changeset on purpose`,
      );
  }
  return problems;
}

/**
 * Whether a sibling range names the version being released. `^x.y.z`, `~x.y.z` and `x.y.z` (what
 * pnpm writes for `workspace:^`, `workspace:~`, `workspace:*`) must name it exactly, so a range
 * left behind at an older version is caught; a range of comparators (`>=0.1.0 <1`, what a
 * `workspace:>=0.1.0 <1` peer publishes as) must admit it.
 */
export function rangeNames(range, version) {
  if (/^[\^~]?\d+\.\d+\.\d+(-[\w.]+)?$/.test(range)) return range.replace(/^[\^~]/, "") === version;
  const ops = {
    ">=": (c) => c >= 0,
    ">": (c) => c > 0,
    "<=": (c) => c <= 0,
    "<": (c) => c < 0,
    "=": (c) => c === 0,
  };
  return range.split("||").some((set) =>
    set
      .trim()
      .split(/\s+/)
      .every((comparator) => {
        const m = /^(>=|<=|>|<|=)?v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(comparator);
        if (!m) return false;
        const want = [m[2], m[3] ?? 0, m[4] ?? 0].map(Number);
        const have = version.split(/[-+]/)[0].split(".").map(Number);
        const cmp = have[0] - want[0] || have[1] - want[1] || have[2] - want[2];
        return ops[m[1] ?? "="](cmp);
      }),
  );
}

/** A source map ships only if it embeds every source: a map pointing at `src/` that is not shipped is broken. */
function checkSourceMap(path, read) {
  let map;
  try {
    map = JSON.parse(read(path));
  } catch (error) {
    return [`source map ${path} does not parse: ${error.message}`];
  }
  const sources = map.sources ?? [];
  const embedded = map.sourcesContent ?? [];
  const missing = sources.filter((_, i) => typeof embedded[i] !== "string");
  return missing.length === 0
    ? []
    : [`source map ${path} points at ${missing[0]} without embedding it (sourcesContent)`];
}

/** Every file the manifest points consumers at: `exports` leaves, `main`, `module`, `types`, `bin`. */
export function exportTargets(manifest) {
  const targets = new Set();
  const walk = (node) => {
    if (typeof node === "string") targets.add(node);
    else if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === "object") Object.values(node).forEach(walk);
  };
  walk(manifest.exports);
  for (const field of ["main", "module", "types", "typings"])
    if (typeof manifest[field] === "string") targets.add(manifest[field]);
  walk(typeof manifest.bin === "string" ? manifest.bin : Object.values(manifest.bin ?? {}));
  return [...targets];
}

function globToRegExp(pattern) {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${escaped}$`);
}

/**
 * Unpack a `.tgz` as npm would publish it and check it with {@link checkPackedPackage}.
 * @returns the tarball's files (without `package/`), its size in bytes and its problems
 */
export function inspectTarball(tarball, expected = {}) {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-tarball-"));
  try {
    const listed = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" })
      .split("\n")
      .filter((line) => line && !line.endsWith("/"));
    const outside = listed.filter((line) => !line.startsWith("package/"));
    execFileSync("tar", ["-xzf", tarball, "-C", dir]);
    const entries = listed.filter((line) => line.startsWith("package/")).map((l) => l.slice(8));
    const read = (path) => readFileSync(join(dir, "package", path), "utf8");
    const problems = [
      ...outside.map((line) => `${line} is outside the package/ folder of the tarball`),
      ...checkPackedPackage({ entries, read, expected }),
    ];
    return { entries, size: statSync(tarball).size, problems };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
