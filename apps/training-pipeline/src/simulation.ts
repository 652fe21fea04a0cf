// Simulated work: the coordination is real, the ML is not.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { UnrecoverableError, sleep } from "@switchyard/router";
import { cutText } from "@switchyard/transport";

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

/**
 * The generation number carried in every pipeline payload (an extra field the catalog passes
 * through), 0 when there is none. Any publisher can write it, and it names files (`gen-3.npz.json`)
 * and orders self-play's runs, so a value that is no generation (negative, fractional, past
 * `Number.MAX_SAFE_INTEGER`, not a number) is refused with an `UnrecoverableError`: no retry can
 * fix the payload.
 */
export function generationOf(data: unknown): number {
  const g = (data as { generation?: unknown } | null)?.generation;
  if (g === undefined) return 0;
  if (typeof g === "number" && Number.isSafeInteger(g) && g >= 0) return g;
  throw new UnrecoverableError(
    `generation ${describe(g)} is not a whole number from 0 to ` +
      `${Number.MAX_SAFE_INTEGER}: refusing the event`,
  );
}

/** Longest config key in UTF-8 bytes: one path segment, which file systems cap at 255 bytes. */
const MAX_NAME_BYTES = 255;

// Characters no config key needs and an operator's terminal acts on: controls (C0, DEL, C1) and
// the bidirectional and line-separator formats (U+202E shows what follows reversed).
const UNPRINTABLE = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** A payload value for a message: a number as such, text through {@link shown}, else its kind. */
function describe(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return shown(value);
  if (value === null) return "null";
  return Array.isArray(value) ? "an array" : `a ${typeof value}`;
}

/** Payload text for a message: cut to 80 characters, JSON-quoted, unprintable characters escaped. */
function shown(text: string): string {
  return JSON.stringify(cutText(text, 80)).replace(
    new RegExp(UNPRINTABLE.source, "gu"),
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * `dataDir/area/configKey`: where one config's artifacts of one kind live. The config key comes
 * from an event payload, which any publisher can write, so it must be one plain path segment:
 * `"../x"`, `"a/b"`, `".."` or a NUL byte would put files outside `area` (or outside `dataDir`);
 * a control or bidirectional character would name a directory that misleads whoever lists it;
 * more than 255 UTF-8 bytes is a name no file system takes (every retry would fail the same).
 * Such an event is refused with an `UnrecoverableError`: no retry can fix its payload, so it is
 * dead-lettered at once.
 */
export function configDir(dataDir: string, area: string, configKey: string): string {
  if (
    typeof configKey !== "string" ||
    configKey === "" ||
    configKey === "." ||
    configKey === ".." ||
    /[/\\]/.test(configKey) ||
    UNPRINTABLE.test(configKey) ||
    Buffer.byteLength(configKey) > MAX_NAME_BYTES
  ) {
    throw new UnrecoverableError(
      `config_key ${describe(configKey)} is not a ` +
        `plain name (no "/", "\\", "." or "..", no control characters, at most ` +
        `${MAX_NAME_BYTES} bytes): ` +
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
      `${what} ${describe(path)} is outside the data directory ${root}: refusing to read it`,
    );
  }
  return target;
}
