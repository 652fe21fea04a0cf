import { join } from "node:path";
import { type SqliteTransport, sqliteTransport } from "@switchyard/cross-process-queue";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./program";
import { eventually, runBinary, tempDir } from "./test/fixture";

/** `metrics` and `dashboard`, the commands that serve until stopped, at their edges. */
describe("switchyard metrics and dashboard at the edges", () => {
  const tmp = tempDir();
  let db: string;
  let transport: SqliteTransport;

  beforeAll(async () => {
    db = join(tmp.dir, "coordination.db");
    transport = sqliteTransport({ path: db, pruneIntervalMs: 0 });
    await transport.publish([]);
  });
  afterAll(async () => {
    await transport.close();
    tmp.cleanup();
  });

  /** Run in this process; if it starts serving, stop it, and say so. */
  async function runUntilServing(args: readonly string[]) {
    const controller = new AbortController();
    let stderr = "";
    let stdout = "";
    let code: number | undefined;
    const running = runCli(args, {
      from: "user",
      env: {},
      signal: controller.signal,
      stdout: (text) => void (stdout += text),
      stderr: (text) => void (stderr += text),
    }).then((c) => (code = c));
    const serving = () => /Serving metrics at|Dashboard at/.test(stderr);
    await eventually(() => code !== undefined || serving(), "the command to end or serve");
    const served = serving();
    controller.abort();
    await running;
    return { code: code!, stdout, stderr, served };
  }

  // "" and " " were read as port 0 (`Number("")`), "1e3" as port 1000.
  for (const command of ["metrics", "dashboard"])
    for (const port of ["", " ", "-1", "65536", "80x", "1e3", "0x50"])
      it(`${command} --port ${JSON.stringify(port)} is a usage error, never a server on some port`, async () => {
        const run = await runUntilServing([command, "--db", db, "--port", port]);
        expect(run.served).toBe(false);
        expect(run.code).toBe(2);
        expect(run.stderr).toMatch(/--port/);
      });

  for (const command of ["metrics", "dashboard"])
    it(`${command} stopped by its signal keeps no SIGINT or SIGTERM listener`, async () => {
      const sigint = process.listenerCount("SIGINT");
      const sigterm = process.listenerCount("SIGTERM");
      const run = await runUntilServing([command, "--db", db, "--port", "0"]);
      expect(run.served).toBe(true);
      expect(run.code).toBe(0);
      expect(process.listenerCount("SIGINT")).toBe(sigint);
      expect(process.listenerCount("SIGTERM")).toBe(sigterm);
    });

  it("the real binary refuses an empty --port with exit 2 and one clear line", async () => {
    const run = await runBinary(["metrics", "--db", db, "--port", "", "--once"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/option '--port <port>' argument '' is invalid/);
    expect(run.stderr).toMatch(/Expected a port number from 0 \(any free port\) to 65535/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });
});
