// Simulated work: the coordination is real, the ML is not.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { UnrecoverableError, sleep } from "@switchyard/router";

/** A small seeded PRNG (mulberry32): the same seed gives the same run. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Sleep for about `ms` (±30 %), honouring the signal. */
export function work(ms: number, rng: () => number, signal: AbortSignal): Promise<void> {
  return sleep(Math.round(ms * (0.7 + rng() * 0.6)), { signal });
}

/** A transient failure the transport will retry. */
export class TransientFailure extends Error {
  override readonly name = "TransientFailure";
}

/** Throw a TransientFailure with probability `rate`. */
export function maybeFail(rate: number, rng: () => number, what: string): void {
  if (rng() < rate) throw new TransientFailure(`simulated transient failure: ${what}`);
}

/** Write a fake artifact (games, NPZ, model) so the paths in events point at real files. */
export function writeArtifact(path: string, content: unknown): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(content));
  return path;
}

/** The generation number carried in every pipeline payload (an extra field the catalog passes through). */
export function generationOf(data: unknown): number {
  const g = (data as { generation?: unknown } | null)?.generation;
  return typeof g === "number" ? g : 0;
}

/**
 * `dataDir/area/configKey`: where one config's artifacts of one kind live. The config key comes
 * from an event payload, which any publisher can write, so it must be one plain path segment:
 * `"../x"`, `"a/b"`, `".."` or a NUL byte would put files outside `area` (or outside `dataDir`).
 * Such an event is refused with an `UnrecoverableError`: no retry can fix its payload, so it is
 * dead-lettered at once.
 */
export function configDir(dataDir: string, area: string, configKey: string): string {
  if (
    typeof configKey !== "string" ||
    configKey === "" ||
    configKey === "." ||
    configKey === ".." ||
    /[/\\\0]/.test(configKey)
  ) {
    throw new UnrecoverableError(
      `config_key ${JSON.stringify(configKey)} is not a plain name (no "/", "\\", "." or ".."): ` +
        `refusing to write its ${area} files outside ${join(dataDir, area)}`,
    );
  }
  return join(dataDir, area, configKey);
}

/**
 * `path` when it lies inside `dataDir`, else an `UnrecoverableError`: a path read from an event
 * payload (a games database to copy) must not make a daemon read any file of the host.
 */
export function insideDataDir(dataDir: string, path: string, what: string): string {
  const root = resolve(dataDir);
  const target = resolve(root, path);
  const within = relative(root, target);
  if (
    within === "" ||
    within === ".." ||
    within.startsWith(`..${sep}`) ||
    isAbsolute(within) ||
    path.includes("\0")
  ) {
    throw new UnrecoverableError(
      `${what} ${JSON.stringify(path)} is outside the data directory ${root}: refusing to read it`,
    );
  }
  return target;
}
