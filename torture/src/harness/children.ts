import { type ChildProcess, spawn } from "node:child_process";
import { openSync, closeSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CHILDREN = fileURLToPath(new URL("../children/", import.meta.url));

/** How a child process ended. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A torture child process (TypeScript run through tsx), talking to the parent over IPC. */
export interface Child {
  readonly label: string;
  readonly process: ChildProcess;
  readonly pid: number;
  /** Where its stderr goes (crashes, stack traces). */
  readonly stderrFile: string;
  /** Resolves when it exited. */
  readonly exited: Promise<Exit>;
  /** Messages received so far. */
  readonly messages: unknown[];
  /** Whether it is still running. */
  alive(): boolean;
  /** Wait for a message matching `predicate`, failing after `timeoutMs` or if the child exits first. */
  next<T = unknown>(predicate: (m: unknown) => boolean, timeoutMs?: number): Promise<T>;
  send(message: unknown): void;
  kill(signal: NodeJS.Signals): void;
}

/**
 * Start `children/<file>` with `node --import tsx`, the JSON `config` as its only argument. Each
 * start costs about a second of CPU (tsx compiles the workspace sources). stdout is ignored,
 * stderr goes to `stderrFile`; the IPC channel doubles as an orphan guard (the child exits when
 * its parent goes away).
 */
export function startChild(file: string, config: unknown, stderrFile: string, label = file): Child {
  const err = openSync(stderrFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      ["--import", "tsx", `${CHILDREN}${file}`, JSON.stringify(config)],
      {
        cwd: ROOT,
        env: { ...process.env, TSX_TSCONFIG_PATH: `${ROOT}tsconfig.base.json` },
        stdio: ["ignore", "ignore", err, "ipc"],
      },
    );
  } finally {
    closeSync(err);
  }
  const messages: unknown[] = [];
  const waiters = new Set<() => void>();
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) =>
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      for (const w of waiters) w();
      resolve(exit);
    }),
  );
  child.on("message", (m) => {
    messages.push(m);
    for (const w of waiters) w();
  });
  // A child that dies closes the channel; nothing to do, `exited` reports it.
  child.on("error", () => {});
  return {
    label,
    process: child,
    pid: child.pid ?? -1,
    stderrFile,
    exited,
    messages,
    alive: () => exit === undefined,
    next<T>(predicate: (m: unknown) => boolean, timeoutMs = 30_000): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const check = () => {
          const found = messages.find(predicate);
          if (found !== undefined) {
            done();
            resolve(found as T);
          } else if (exit) {
            done();
            reject(
              new Error(
                `${label} (pid ${child.pid}) exited (${exit.code ?? exit.signal}) before the awaited message`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(`${label} (pid ${child.pid}): no awaited message within ${timeoutMs} ms`),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    send(message: unknown) {
      if (exit === undefined && child.connected) child.send(message as never);
    },
    kill(signal: NodeJS.Signals) {
      if (exit === undefined) child.kill(signal);
    },
  };
}

/** The `{ ready: true }` message every torture child sends once it is subscribed or set up. */
export const isReady = (m: unknown): boolean =>
  typeof m === "object" && m !== null && (m as { ready?: unknown }).ready === true;

/** SIGKILL whatever still runs and wait for every child to be gone (for `finally` blocks). */
export async function reapAll(children: readonly Child[]): Promise<void> {
  for (const c of children) c.kill("SIGKILL");
  await Promise.all(children.map((c) => c.exited));
}
