// What every torture child shares: its log file, a logger writing errors to it, IPC helpers,
// and the orphan guard.
import { appendFileSync } from "node:fs";
import type { Logger } from "@switchyard/router";

/** The child's configuration: the one JSON argument. */
export function config<T>(): T {
  const arg = process.argv[2];
  if (!arg) throw new Error("usage: <child>.ts '<config json>'");
  return JSON.parse(arg) as T;
}

/** Append one line to the child's own log (a SIGKILL loses at most this line). */
export function logger(file: string): { line: (text: string) => void; logger: Logger } {
  const line = (text: string) => appendFileSync(file, `${text}\n`);
  const text = (obj: unknown, msg?: string) => {
    const err = (obj as { err?: { code?: unknown; message?: unknown } } | null)?.err;
    const code = typeof err?.code === "string" ? err.code : "";
    const message = typeof err?.message === "string" ? err.message : "";
    const detail = err ? ` [${code}] ${message}` : "";
    return `${msg ?? (typeof obj === "string" ? obj : JSON.stringify(obj))}${detail}`.replaceAll(
      "\n",
      " ",
    );
  };
  return {
    line,
    logger: {
      debug: () => {},
      info: () => {},
      warn: (obj, msg) => line(`warn ${text(obj, msg)}`),
      // The router logs a handler's failure at error level; the poison events fail by design
      // (UnrecoverableError), so those lines are not errors of the run.
      error: (obj, msg) => {
        const t = text(obj, msg);
        line(`${t.includes("rejected by design") ? "warn" : "error"} ${t}`);
      },
    },
  };
}

/** Send a message to the parent, if it still listens. */
export function send(message: unknown): void {
  if (process.connected) process.send?.(message);
}

/** Resolve on the parent's message `wanted`. */
export function onMessage(wanted: string, then: () => Promise<void> | void): void {
  process.on("message", (m) => {
    if (m === wanted) void then();
  });
}

/** Exit when the parent goes away (no orphans), and log anything uncaught before dying. */
export function guard(line: (text: string) => void): void {
  process.on("disconnect", () => process.exit(0));
  const crash = (kind: string) => (error: unknown) => {
    line(`error ${kind}: ${String((error as Error)?.stack ?? error).replaceAll("\n", " | ")}`);
    process.exit(70);
  };
  process.on("uncaughtException", crash("uncaught exception"));
  process.on("unhandledRejection", crash("unhandled rejection"));
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
