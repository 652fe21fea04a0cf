import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const script = fileURLToPath(new URL("./test/daemon-process.ts", import.meta.url));

/** Start the daemon process; resolve its output lines and exit once it ends. */
function startDaemonProcess() {
  // tsx runs the TypeScript sources, resolving @switchyard/* through the base tsconfig's paths.
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: root,
    env: { ...process.env, TSX_TSCONFIG_PATH: `${root}tsconfig.base.json` },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = "";
  let buffered = "";
  const waiters: { match: (line: Record<string, unknown>) => boolean; resolve: () => void }[] = [];
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
      buffered = buffered.slice(nl + 1);
      lines.push(line);
      for (const w of waiters.filter((w) => w.match(line))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  const waitFor = (event: string) =>
    new Promise<void>((resolve, reject) => {
      if (lines.some((l) => l.event === event)) return resolve();
      waiters.push({ match: (l) => l.event === event, resolve });
      void exited.then(() =>
        reject(new Error(`the daemon process exited before "${event}"; stderr:\n${stderr}`)),
      );
    });
  return { child, lines, exited, waitFor, stderr: () => stderr };
}

describe("a daemon process", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(
      `stops gracefully on a real ${signal}: the in-flight handler finishes, then the process exits 0 by itself`,
      { tags: ["slow"] },
      async () => {
        const daemon = startDaemonProcess();
        await daemon.waitFor("handler-start");
        daemon.child.kill(signal);
        const exit = await daemon.exited;
        expect(daemon.stderr()).toBe("");
        expect(exit).toEqual({ code: 0, signal: null });
        const events = daemon.lines.map((l) => l.event);
        expect(events.indexOf("handler-end")).toBeGreaterThan(events.indexOf("handler-start"));
        const afterEnd = daemon.lines.slice(events.indexOf("handler-end"));
        expect(afterEnd.filter((l) => l.event === "cycle")).toEqual([]); // no new work after the signal
        expect(daemon.lines.filter((l) => l.event === "heartbeat").at(-1)).toEqual({
          event: "heartbeat",
          status: "stopped",
        });
        expect(daemon.lines.at(-1)).toEqual({
          event: "exited-cleanly",
          sigtermListeners: 0,
          sigintListeners: 0,
        });
      },
    );
  }
});
