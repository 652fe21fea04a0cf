// Types of scripts/release-checks.mjs, for the tests that call it.

/** What a release should contain; every field optional. */
export interface ReleaseExpectations {
  /** The version being released. */
  readonly version?: string;
  /** The version before `changeset version`. */
  readonly previousVersion?: string;
  /** Each workspace package's version being released, by name. */
  readonly siblings?: Readonly<Record<string, string>>;
  /** First lines of the pending changesets naming this package. */
  readonly changelogEntries?: readonly string[];
  /** The largest bump the pending changesets ask for this package. */
  readonly requestedBump?: "major" | "minor" | "patch" | "none";
}

/** A packed package: its files (without `package/`), its size in bytes and its problems. */
export interface TarballReport {
  readonly entries: string[];
  readonly size: number;
  readonly problems: string[];
}

export const TOP_LEVEL_FILES: readonly string[];
export function bumpBetween(from: string, to: string): "major" | "minor" | "patch" | "none";
export function parseChangeset(
  text: string,
): { releases: Record<string, string>; firstLine: string } | undefined;
export function checkPackedPackage(input: {
  entries: readonly string[];
  read: (path: string) => string;
  expected?: ReleaseExpectations;
}): string[];
export function rangeNames(range: string, version: string): boolean;
export function exportTargets(manifest: Record<string, unknown>): string[];
export function inspectTarball(tarball: string, expected?: ReleaseExpectations): TarballReport;
