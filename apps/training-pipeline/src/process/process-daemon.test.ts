import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { defaultSettings } from "../settings";
import { ProcessDaemon } from "./process-daemon";

const dirs: string[] = [];
const pids: number[] = [];
afterEach(() => {
  // A failing run must not leave its child behind.
  for (const pid of pids.splice(0)) if (alive(pid)) process.kill(pid, "SIGKILL");
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe("ProcessDaemon", () => {
  it(
    "kills a child that misses its ready timeout and ignores its late ready",
    { timeout: 20_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "switchyard-process-daemon-"));
      dirs.push(dir);
      // A daemon that starts slowly, shrugs off SIGTERM and would go on working once "ready".
      const script = join(dir, "slow-child.mjs");
      writeFileSync(
        script,
        [
          'process.on("SIGTERM", () => process.stderr.write("child ignored SIGTERM\\n"));',
          "setTimeout(() => {",
          '  process.send({ type: "ready" });',
          '  process.stderr.write("child sent ready\\n");',
          "}, 1200);",
          "setInterval(() => {}, 1000);",
        ].join("\n"),
      );
      const logFile = join(dir, "daemons.log");
      const log = createWriteStream(logFile);
      const daemon = new ProcessDaemon("slow", defaultSettings(), log, {
        readyTimeoutMs: 800,
        killGraceMs: 2_000,
        args: [script],
      });

      await expect(daemon.start()).rejects.toThrow(/slow did not report ready within 800 ms/);
      const pid = daemon.pid;
      expect(pid).toBeTypeOf("number");
      pids.push(pid!);

      // The late ready arrives while the child is still in its SIGTERM grace: it must not count.
      const logged = () => readFileSync(logFile, "utf8");
      await until(() => logged().includes("child sent ready"), 5_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(daemon.status).not.toBe("running");
      expect(daemon.startedAt).toBeNull();

      // …and the grace ends in SIGKILL: no orphan goes on doing the daemon's work.
      await until(() => !alive(pid!), 6_000);
      expect(logged()).toContain("child ignored SIGTERM");
      expect(daemon.status).toBe("crashed");
      await new Promise<void>((resolve) => log.end(resolve));
    },
  );
});
