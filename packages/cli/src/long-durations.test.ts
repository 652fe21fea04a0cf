import { join } from "node:path";
import { type SqliteTransport, sqliteTransport } from "@switchyard/cross-process-queue";
import { createEnvelope } from "@switchyard/event-schema";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "./program";
import { eventually, tempDir } from "./test/fixture";

/**
 * Durations longer than a Node timer takes (2^31 − 1 ms, about 24.8 days): `setTimeout` fires
 * such a delay after 1 ms, with a `TimeoutOverflowWarning`. `--for 30d` must still follow for 30
 * days, and `--interval 30d` and `--watch 30d` must wait, not poll or redraw every millisecond.
 */

const alert = () =>
  createEnvelope({
    type: "QUALITY_ALERT",
    source: "monitor",
    data: { config_key: "hex8_2p", quality_score: 0.3 },
  });

describe("switchyard with durations longer than a timer takes", () => {
  const tmp = tempDir();
  let db: string;
  let transport: SqliteTransport;
  let warnings: Error[];
  const onWarning = (warning: Error) => void warnings.push(warning);

  beforeAll(async () => {
    db = join(tmp.dir, "coordination.db");
    // Kept open, so the CLI reads the file in place rather than a snapshot.
    transport = sqliteTransport({ path: db, pruneIntervalMs: 0 });
    await transport.publish([alert()]);
  });
  afterAll(async () => {
    await transport.close();
    tmp.cleanup();
  });
  beforeEach(() => {
    warnings = [];
    process.on("warning", onWarning);
  });
  afterEach(() => void process.off("warning", onWarning));

  /** Start the CLI in this process; `stop()` aborts it and resolves to its exit code. */
  function start(args: readonly string[]) {
    const controller = new AbortController();
    const output = { stdout: "", stderr: "" };
    let settled = false;
    const running = runCli(args, {
      from: "user",
      env: {},
      signal: controller.signal,
      stdout: (text) => void (output.stdout += text),
      stderr: (text) => void (output.stderr += text),
    }).finally(() => (settled = true));
    return {
      output,
      settled: () => settled,
      stop: () => {
        controller.abort();
        return running;
      },
    };
  }

  const overflowWarnings = () => warnings.filter((w) => w.name === "TimeoutOverflowWarning");

  it("events tail --for 30d keeps following, and prints what is published meanwhile", async () => {
    const tail = start(["events", "tail", "--db", db, "--for", "30d", "--interval", "20ms"]);
    await eventually(() => tail.output.stderr.includes("for at most 30d"), "the tail to start");
    await transport.publish([alert()]);
    await eventually(
      () => tail.output.stdout.includes("QUALITY_ALERT") || tail.settled(),
      "the new event, or the end of the tail",
    );
    expect(tail.settled()).toBe(false);
    expect(tail.output.stdout).toContain("QUALITY_ALERT");
    expect(await tail.stop()).toBe(0);
    expect(overflowWarnings()).toEqual([]);
  });

  it("events tail --interval 30d waits between polls instead of polling every millisecond", async () => {
    const tail = start(["events", "tail", "--db", db, "--interval", "30d"]);
    await eventually(() => tail.output.stderr.includes("Ctrl-C to stop"), "the tail to start");
    // A poll that overflowed would be armed (and warn) on the next tick already.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await tail.stop()).toBe(0);
    expect(overflowWarnings()).toEqual([]);
  });

  it("subscribers --watch 30d draws once and waits, instead of redrawing every millisecond", async () => {
    const watch = start(["subscribers", "--db", db, "--watch", "30d", "--json"]);
    await eventually(() => watch.output.stdout.includes("subscribers"), "the first frame");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await watch.stop()).toBe(0);
    // One JSON document per run: only the first one was drawn.
    expect(watch.output.stdout.match(/"subscribers"/g)).toHaveLength(1);
    expect(overflowWarnings()).toEqual([]);
  });
});
