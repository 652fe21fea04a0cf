import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** The part of esbuild's API used here (esbuild is reached through tsup, which depends on it). */
interface EsbuildPlugin {
  name: string;
  setup(build: {
    onResolve(
      options: { filter: RegExp },
      callback: (args: { path: string }) => { path: string; external?: boolean },
    ): void;
  }): void;
}
interface Esbuild {
  build(options: Record<string, unknown> & { plugins?: EsbuildPlugin[] }): Promise<unknown>;
}

const packageDir = resolve(import.meta.dirname, "../..");
const packagesDir = resolve(packageDir, "..");

/**
 * Bundle `src/test/child.ts` with this package's sources and its `@switchyard/*` siblings (from
 * their `src/`) into one ESM file Node can run, leaving the native better-sqlite3 outside.
 * Returns the bundle's path and a cleanup.
 */
export async function bundleChild(): Promise<{ file: string; cleanup: () => void }> {
  const require = createRequire(join(packageDir, "package.json"));
  const esbuildEntry = createRequire(require.resolve("tsup")).resolve("esbuild");
  const esbuild = (await import(pathToFileURL(esbuildEntry).href)) as Esbuild;
  const betterSqlite3 = pathToFileURL(require.resolve("better-sqlite3")).href;
  const outdir = mkdtempSync(join(tmpdir(), "cpq-child-"));
  await esbuild.build({
    entryPoints: [join(packageDir, "src/test/child.ts")],
    outfile: join(outdir, "child.mjs"),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "error",
    plugins: [
      {
        name: "switchyard-sources",
        setup(build) {
          build.onResolve({ filter: /^@switchyard\/[a-z-]+$/ }, (args) => ({
            path: join(packagesDir, args.path.slice("@switchyard/".length), "src/index.ts"),
          }));
          build.onResolve({ filter: /^better-sqlite3$/ }, () => ({
            path: betterSqlite3,
            external: true,
          }));
        },
      },
    ],
  });
  return {
    file: join(outdir, "child.mjs"),
    cleanup: () => rmSync(outdir, { recursive: true, force: true }),
  };
}

/** A running child with helpers to await its messages. */
export interface Child {
  readonly process: ChildProcess;
  /** The next message matching `predicate` (rejects if the child exits first or after `timeoutMs`). */
  next<T>(predicate: (message: unknown) => boolean, timeoutMs?: number): Promise<T>;
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | NodeJS.Signals | null>;
}

/** Start the bundled child in `mode` on the queue at `path`. */
export function startChild(
  file: string,
  mode: string,
  path: string,
  options: Record<string, number> = {},
): Child {
  const child = fork(file, [mode, path, JSON.stringify(options)], {
    execArgv: [],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const messages: unknown[] = [];
  const waiters = new Set<(m: unknown) => boolean>();
  child.on("message", (m) => {
    for (const w of waiters) if (w(m)) return;
    messages.push(m);
  });
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.on("exit", (code, signal) => resolve(signal ?? code)),
  );
  return {
    process: child,
    exited,
    next<T>(predicate: (message: unknown) => boolean, timeoutMs = 20_000): Promise<T> {
      const queued = messages.findIndex(predicate);
      if (queued >= 0) return Promise.resolve(messages.splice(queued, 1)[0] as T);
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`child ${mode} sent no expected message within ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter = (m: unknown) => {
          if (!predicate(m)) return false;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(m as T);
          return true;
        };
        waiters.add(waiter);
        void exited.then((code) => {
          if (!waiters.has(waiter)) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          reject(
            new Error(`child ${mode} exited (${String(code)}) before sending the expected message`),
          );
        });
      });
    },
  };
}
