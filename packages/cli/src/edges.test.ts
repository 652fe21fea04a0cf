import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { sqliteTransport } from "@switchyard/cross-process-queue";
import { SqliteDeadLetterStore } from "@switchyard/dlq";
import { createEnvelope, pipelineStages } from "@switchyard/event-schema";
import { UnrecoverableError } from "@switchyard/transport";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeError, limitDepth } from "./output";
import { type CliRun, type FilledDatabase, cli, fillDatabase, root, tempDir } from "./test/fixture";

/**
 * The CLI at the edges (issue 13): rows written by hand or by other programs, payloads nested
 * deeper than any stack, windows longer than retention, files it may read but not write next to.
 */

const HOUR = 3_600_000;

describe("switchyard on damaged rows", () => {
  const tmp = tempDir();
  let filled: FilledDatabase;
  let db: string;

  beforeAll(async () => {
    filled = await fillDatabase(tmp.dir);
    db = join(tmp.dir, "damaged.db");
    await filled.copyTo(db);
    const raw = new Database(db);
    raw.prepare(`UPDATE subscribers SET types = 'not json' WHERE name = 'idle'`).run();
    raw.prepare(`UPDATE daemon_heartbeats SET health = '{bad' WHERE daemon = 'trainer'`).run();
    raw.prepare(`UPDATE deliveries SET last_error = 'zz' WHERE subscriber = 'flaky'`).run();
    // The promotion's extensions hold its causationid: the chain from the training passes it.
    raw.prepare(`UPDATE events SET extensions = '{x' WHERE id = ?`).run(filled.ids.promotion);
    raw.prepare(`UPDATE events SET payload = 'oops' WHERE id = ?`).run(filled.ids.distribution);
    // An sq8_4p event with its config key in the payload only, which is not JSON.
    raw
      .prepare(
        `UPDATE events SET payload = 'oops', subject = NULL WHERE type = 'NPZ_EXPORT_COMPLETE' AND subject = 'sq8_4p'`,
      )
      .run();
    raw.close();
  });
  afterAll(async () => {
    await filled?.close();
    tmp.cleanup();
  });

  it("subscribers shows a subscriber whose types are not JSON as damaged, and the others", async () => {
    const run = await cli(["subscribers", "--db", db, "--json"]);
    expect(run.code).toBe(0);
    const subscribers = run.json().subscribers as { subscriber: string; damaged?: string }[];
    expect(subscribers.map((s) => s.subscriber)).toEqual([
      "evaluator",
      "flaky",
      "idle",
      "promoter",
      "slow",
    ]);
    expect(subscribers.find((s) => s.subscriber === "idle")).toMatchObject({
      types: [],
      damaged: expect.stringMatching(/subscribers\.types of "idle" is not JSON/),
    });
    expect(subscribers.filter((s) => s.damaged !== undefined)).toHaveLength(1);

    const text = await cli(["subscribers", "--db", db]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^idle .*DAMAGED$/m);
    expect(text.stdout).toMatch(/1 damaged row .*\n {2}subscriber idle: subscribers\.types/);
  });

  it("daemons shows a heartbeat whose health is not JSON as damaged, and the others", async () => {
    const run = await cli(["daemons", "--db", db, "--json"]);
    expect(run.code).toBe(0);
    const daemons = run.json().daemons as { daemon: string; damaged?: string; health: unknown }[];
    expect(daemons.map((d) => d.daemon)).toEqual(["evaluator", "promoter", "trainer"]);
    expect(daemons.find((d) => d.daemon === "trainer")).toMatchObject({
      health: null,
      damaged: expect.stringMatching(/daemon_heartbeats\.health of "trainer" is not JSON/),
    });
    const text = await cli(["daemons", "--db", db]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^trainer +running +DAMAGED/m);
  });

  it("health warns about each damaged row and still runs every other check", async () => {
    const run = await cli(["health", "--db", db, "--json"]);
    // Unhealthy for the fixture's stale daemon and firing alert, not for the damaged rows.
    expect(run.code).toBe(1);
    const checks = run.json().checks as { check: string; status: string; message: string }[];
    expect(checks.find((c) => c.check === "daemon:trainer")).toMatchObject({
      status: "degraded",
      message: expect.stringMatching(/DAMAGED.*health of "trainer" is not JSON/),
    });
    expect(checks.find((c) => c.check === "subscriber:idle")).toMatchObject({
      status: "degraded",
    });
    expect(checks.find((c) => c.check === "daemon:evaluator")?.status).toBe("unhealthy");
    expect(checks.map((c) => c.check)).toEqual(
      expect.arrayContaining(["backlog", "dead-letters", "alert:TRAINING_FAILED"]),
    );
  });

  it("stats counts damaged rows like the others", async () => {
    const run = await cli(["stats", "--db", db, "--json"]);
    expect(run.code).toBe(0);
    expect(run.json()).toMatchObject({ subscribers: 5, daemons: 3 });
  });

  it("events trace shows a delivery whose last error is not JSON as damaged", async () => {
    const run = await cli(["events", "trace", filled.ids.training, "--db", db, "--json"]);
    expect(run.code).toBe(0);
    const report = run.json();
    expect(
      report.deliveries.find((d: { subscriber: string }) => d.subscriber === "flaky"),
    ).toMatchObject({ damaged: expect.stringMatching(/deliveries\.last_error .* is not JSON/) });
    const text = await cli(["events", "trace", filled.ids.training, "--db", db]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^flaky +retrying at \S+ +1 .*DAMAGED$/m);
    expect(text.stdout).toMatch(/delivery to flaky: deliveries\.last_error/);
  });

  it("events trace follows the causes past an event whose extensions are not JSON", async () => {
    const run = await cli(["events", "trace", filled.ids.training, "--db", db, "--json"]);
    expect(run.code).toBe(0);
    // The promotion's causationid is unreadable, so the chain stops there instead of failing.
    expect(run.json().caused[0].event.id).toBe(filled.ids.evaluation);
    expect(run.json().caused[0].caused).toEqual([]);

    const promotion = await cli(["events", "trace", filled.ids.promotion, "--db", db, "--json"]);
    expect(promotion.code).toBe(0);
    expect(promotion.json().event.damaged).toMatch(/extensions is not JSON/);
  });

  it("events list marks an event whose payload is not JSON and lists the rest", async () => {
    const run = await cli(["events", "list", "--db", db, "--limit", "100"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/MODEL_DISTRIBUTION_COMPLETE \(DAMAGED\) +hex8_2p/);
    expect(run.stdout).toMatch(
      new RegExp(
        `event ${filled.ids.distribution} \\(seq \\d+\\): .*cannot be decoded: its payload is not JSON`,
      ),
    );
    const json = await cli(["events", "list", "--db", db, "--limit", "100", "--json"]);
    expect(json.json().events).toHaveLength(16);
    expect(run.stdout).toMatch(/^ *\d+ .*NPZ_EXPORT_COMPLETE \(DAMAGED\) +- +pipeline/m);
  });

  it("pipeline verify counts a damaged event by its subject, and not at all without one", async () => {
    const hex = await cli(["pipeline", "verify", "hex8_2p", "--db", db, "--json"]);
    expect(hex.code).toBe(0);
    expect(hex.json().missing).toEqual([]);
    // Its config key is in the payload it cannot read: the stage shows as missing, no failure.
    const sq = await cli(["pipeline", "verify", "sq8_4p", "--db", db, "--json"]);
    expect(sq.stderr).not.toMatch(/error/);
    expect(sq.code).toBe(1);
    expect(sq.json().missing).toEqual(["NPZ_EXPORT_COMPLETE", "MODEL_DISTRIBUTION_COMPLETE"]);
  });
});

describe("switchyard on text that would command the terminal", () => {
  // A subject, a payload string and a handler's error message holding what a terminal obeys: clear
  // the screen, retitle the window (OSC … BEL), a carriage return, a one-byte C1 CSI, a
  // right-to-left override. An operator listing them must see them, not have them run.
  const hostile = "x\u001b[2J\u001b]0;owned\u0007\rtail\u009b2J\u202eevil";
  /** Raw characters a terminal would obey: any C0 but tab and newline, DEL, C1, bidi controls. */
  // eslint-disable-next-line no-control-regex -- the control characters are what is tested
  const obeyed = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
  const tmp = tempDir();
  let path: string;
  let id: string;

  beforeAll(async () => {
    path = join(tmp.dir, "hostile.db");
    const store = new SqliteDeadLetterStore({ path });
    const transport = sqliteTransport({ path, pruneIntervalMs: 0, deadLetter: store });
    await transport.register("worker", ["TRAINING_COMPLETED"]);
    const event = createEnvelope({
      type: "TRAINING_COMPLETED",
      source: "trainer",
      subject: hostile,
      data: { config_key: "hex8_2p", note: hostile },
    });
    id = event.id;
    await transport.publish([event]);
    let failed = false;
    const sub = await transport.subscribe({
      subscriber: "worker",
      types: ["TRAINING_COMPLETED"],
      handler: async () => {
        failed = true;
        throw new UnrecoverableError(hostile);
      },
    });
    const deadline = Date.now() + 5_000;
    while (!failed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await sub.close();
    if (!failed) throw new Error("the handler never ran: no dead letter to show");
    await transport.close();
    store.close();
  });
  afterAll(() => tmp.cleanup());

  it("events list, events trace, dlq list, dlq inspect and subscribers show it escaped", async () => {
    const dlq = await cli(["dlq", "list", "--db", path, "--json"]);
    const deadLetterId = String(dlq.json().deadLetters[0].id);
    expect(dlq.json().deadLetters[0].error.message).toBe(hostile);
    const runs = [
      await cli(["events", "list", "--db", path]),
      await cli(["events", "trace", id, "--db", path]),
      await cli(["dlq", "list", "--db", path]),
      await cli(["dlq", "inspect", deadLetterId, "--db", path]),
      await cli(["subscribers", "--db", path]),
    ];
    for (const run of runs) {
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).not.toMatch(obeyed);
      expect(run.stderr).not.toMatch(obeyed);
    }
    // In a table cell, whitespace (the carriage return among it) is one space, as for any cell.
    expect(runs[0]!.stdout).toContain("x\\x1b[2J\\x1b]0;owned\\x07 tail");
    expect(runs[1]!.stdout).toContain("\\x9b2J\\u202eevil");
    expect(runs[3]!.stdout).toContain("x\\x1b[2J");
  });

  it("--json keeps the text whole: it parses back to what was stored", async () => {
    const run = await cli(["events", "list", "--db", path, "--json"]);
    expect(run.stdout).not.toMatch(obeyed);
    expect(run.json().events[0].subject).toBe(hostile);
    expect(run.json().events[0].envelope.data.note).toBe(hostile);
  });
});

describe("switchyard on a payload nested 100,000 deep", () => {
  const tmp = tempDir();
  let path: string;
  let id: string;

  beforeAll(async () => {
    path = join(tmp.dir, "deep.db");
    const transport = sqliteTransport({ path, pruneIntervalMs: 0 });
    const event = createEnvelope({
      type: "TRAINING_COMPLETED",
      source: "trainer",
      subject: "hex8_2p",
      data: { config_key: "hex8_2p" },
    });
    id = event.id;
    await transport.publish([event]);
    await transport.close();
    // Another program wrote it: the transport itself refuses to serialise such a payload.
    const raw = new Database(path);
    raw
      .prepare(`UPDATE events SET payload = ? WHERE id = ?`)
      .run(`${"[".repeat(100_000)}${"]".repeat(100_000)}`, id);
    raw.close();
  });
  afterAll(() => tmp.cleanup());

  it("events trace prints it cut at the depth limit instead of overflowing the stack", async () => {
    const text = await cli(["events", "trace", id, "--db", path]);
    expect(text.stderr).not.toMatch(/error/);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^data +\[\[\[\[.*nested deeper than 64 levels, not shown/m);

    const json = await cli(["events", "trace", id, "--db", path, "--json"]);
    expect(json.code).toBe(0);
    let data = json.json().event.envelope.data as unknown;
    let depth = 0;
    while (Array.isArray(data)) [data, depth] = [data[0], depth + 1];
    expect(data).toMatch(/nested deeper than 64 levels/);
    expect(depth).toBeLessThan(64);
  });

  it("events list and tail print it too", async () => {
    const list = await cli(["events", "list", "--db", path, "--json"]);
    expect(list.code).toBe(0);
    expect(list.json().events[0].id).toBe(id);
    const tail = await cli(["events", "tail", "--since", "1h", "--count", "1", "--db", path]);
    expect(tail.code).toBe(0);
    expect(tail.stdout).toMatch(/nested deeper than 64 levels/);
  });

  it("limitDepth keeps shallow values as they are", () => {
    const value = { a: [1, { b: "c" }], at: new Date(0), n: null };
    expect(limitDepth(value)).toEqual({
      a: [1, { b: "c" }],
      at: "1970-01-01T00:00:00.000Z",
      n: null,
    });
    expect(limitDepth({ a: { b: { c: 1 } } }, 2)).toEqual({
      a: { b: "…(nested deeper than 64 levels, not shown)" },
    });
  });
});

describe("events tail on a database no process has open", () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it("sees an event published after it started, though it reads snapshots", async () => {
    const path = join(tmp.dir, "quiet.db");
    const publish = async (type: string) => {
      const transport = sqliteTransport({ path, pruneIntervalMs: 0 });
      await transport.publish([createEnvelope({ type, source: "t", subject: "k", data: {} })]);
      // Closed cleanly: no -wal left, so the next read is a snapshot again.
      await transport.close();
    };
    await publish("TRAINING_COMPLETED");
    const tail = cli(["events", "tail", "--count", "1", "--for", "20s", "--db", path]);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await publish("MODEL_PROMOTED");
    const run = await tail;
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/following a snapshot/);
    expect(run.stdout).toMatch(/MODEL_PROMOTED/);
    expect(run.stdout).not.toMatch(/TRAINING_COMPLETED/);
  }, 30_000);
});

describe("pipeline verify over a window longer than retention", () => {
  const tmp = tempDir();
  let path: string;

  beforeAll(async () => {
    path = join(tmp.dir, "pruned.db");
    const transport = sqliteTransport({ path, pruneIntervalMs: 0 });
    // Yesterday's run through every stage; then the transport prunes as it would 30 h later
    // (24 h retention): every event but the newest, which always stays, is gone.
    await transport.publish(
      pipelineStages.map((type) =>
        createEnvelope({
          type,
          source: "pipeline",
          subject: "hex8_2p",
          data: { config_key: "hex8_2p" },
        }),
      ),
    );
    const removed = await transport.prune({ now: Date.now() + 30 * HOUR });
    expect(removed.events).toBe(pipelineStages.length - 1);
    await transport.close();
  });
  afterAll(() => tmp.cleanup());

  it("warns that the window reaches past the pruned events and marks those stages unknown, not missing", async () => {
    const run = await cli([
      "pipeline",
      "verify",
      "hex8_2p",
      "--hours",
      "48",
      "--db",
      path,
      "--json",
    ]);
    const result = run.json();
    expect(result.warnings).toEqual([expect.stringMatching(/older events were removed/)]);
    expect(Date.parse(result.coveredSince)).toBeGreaterThan(Date.parse(result.since));
    const last = pipelineStages[pipelineStages.length - 1]!;
    expect(
      result.stages.filter((s: { ok: boolean }) => s.ok).map((s: { type: string }) => s.type),
    ).toEqual([last]);
    expect(result.stages.filter((s: { uncertain?: true }) => s.uncertain)).toHaveLength(
      pipelineStages.length - 1,
    );
    // Not verified: still exit 1, but saying why.
    expect(run.code).toBe(1);

    const text = await cli(["pipeline", "verify", "hex8_2p", "--hours", "48", "--db", path]);
    expect(text.stdout).not.toMatch(/✗/);
    expect(text.stdout).toMatch(/^\?\s+1\. /m);
    expect(text.stdout).toMatch(
      /Warning: The 48 h window starts before .* older events were removed by the sqlite transport's retention/,
    );
    expect(text.stdout).toMatch(
      /no event since .* \(older ones pruned, so not known for the whole window\)/,
    );
  });

  it("does not warn when no event was ever pruned", async () => {
    const fresh = join(tmp.dir, "fresh.db");
    const transport = sqliteTransport({ path: fresh, pruneIntervalMs: 0 });
    await transport.publish([
      createEnvelope({ type: pipelineStages[0]!, source: "p", subject: "k", data: {} }),
    ]);
    await transport.close();
    const run = await cli(["pipeline", "verify", "k", "--hours", "48", "--db", fresh, "--json"]);
    expect(run.code).toBe(1);
    expect(run.json().warnings).toEqual([]);
    expect(run.json().coveredSince).toBe(run.json().since);
    expect(run.json().stages.some((s: { uncertain?: true }) => s.uncertain)).toBe(false);
  });
});

/** The real binary as another user (root can write anywhere, so the test drops to `nobody`). */
function runAs(uid: number, args: readonly string[]): Promise<CliRun> {
  const child = spawn(process.execPath, ["--import", "tsx", "packages/cli/src/bin.ts", ...args], {
    cwd: root,
    uid,
    gid: uid,
    env: { ...process.env, TSX_TSCONFIG_PATH: join(root, "tsconfig.base.json"), HOME: "/tmp" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({
        code: code ?? -1,
        stdout,
        stderr,
        json: () => JSON.parse(stdout) as unknown,
      }),
    );
  });
}

describe("read commands on a file in a directory they cannot write", { tags: ["slow"] }, () => {
  const tmp = tempDir();
  const dir = join(tmp.dir, "readonly");
  const path = join(dir, "coordination.db");
  const asRoot = process.getuid?.() === 0;
  const NOBODY = 65534;

  beforeAll(async () => {
    mkdirSync(dir);
    const transport = sqliteTransport({ path, pruneIntervalMs: 0 });
    await transport.publish([
      createEnvelope({ type: "TRAINING_COMPLETED", source: "t", subject: "k", data: {} }),
    ]);
    await transport.close();
    const store = new SqliteDeadLetterStore({ path });
    for (const subscriber of ["evaluator", "promoter"])
      await store.deadLetter({
        envelope: createEnvelope({
          type: "TRAINING_COMPLETED",
          source: "t",
          subject: "k",
          data: {},
        }),
        subscriber,
        reason: "max_attempts",
        attempts: 3,
        error: { name: "Error", message: "disk full" },
        failedAt: new Date().toISOString(),
        origin: "sqlite",
      });
    store.close();
    // Closed cleanly: no -wal or -shm left, so a reader would have to create the -shm.
    expect(existsSync(`${path}-shm`)).toBe(false);
    chmodSync(tmp.dir, 0o755);
    chmodSync(path, 0o644);
    // Not writable by the reader: by nobody as root (root ignores modes), by anyone otherwise.
    chmodSync(dir, asRoot ? 0o755 : 0o555);
  });
  afterAll(() => {
    chmodSync(dir, 0o755);
    tmp.cleanup();
  });

  const run = (args: readonly string[]) => (asRoot ? runAs(NOBODY, args) : cli(args));

  it("reads a snapshot and says so", async () => {
    const list = await run(["events", "list", "--db", path, "--json"]);
    expect(list.stderr).toMatch(
      /note: reading a copy of .*coordination\.db.*\(snapshot of sqlite:/,
    );
    expect(list.code).toBe(0);
    expect((list.json() as { events: unknown[] }).events).toHaveLength(1);
    // Nothing was written next to the file.
    expect(existsSync(`${path}-shm`)).toBe(false);
  });

  it("dlq replay --dry-run lists what would be replayed and writes nothing", async () => {
    const dry = await run([
      "dlq",
      "replay",
      "--subscriber",
      "evaluator",
      "--dry-run",
      "--db",
      path,
      "--json",
    ]);
    expect(dry.stderr).not.toMatch(/cannot be written|^error/m);
    expect(dry.code).toBe(0);
    const report = dry.json() as { dryRun: boolean; matched: number; wouldReplay: string[] };
    expect(report).toMatchObject({ dryRun: true, matched: 1, replayed: [], failed: [] });
    expect(report.wouldReplay).toHaveLength(1);
    const list = await run(["dlq", "list", "--db", path, "--json"]);
    const listed = (list.json() as { deadLetters: { id: string; subscriber: string }[] })
      .deadLetters;
    expect(report.wouldReplay).toEqual(
      listed.filter((d) => d.subscriber === "evaluator").map((d) => d.id),
    );
    expect(existsSync(`${path}-shm`)).toBe(false);
  });

  it("events tail follows a snapshot by reading a fresh copy at each poll, and says so", async () => {
    const tail = await run(["events", "tail", "--since", "1h", "--count", "1", "--db", path]);
    expect(tail.code).toBe(0);
    expect(tail.stderr).toMatch(/note: following a snapshot: a fresh copy is read every 1s/);
    expect(tail.stdout).toMatch(/TRAINING_COMPLETED/);
    expect(existsSync(`${path}-shm`)).toBe(false);
  });
});

describe("exit codes", () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());
  const missing = () => join(tmp.dir, "nowhere", "coordination.db");

  it("exits 3 on an unexpected failure, so it is not read as an unhealthy system (1)", async () => {
    const path = join(tmp.dir, "broken.db");
    const transport = sqliteTransport({ path, pruneIntervalMs: 0 });
    await transport.close();
    const raw = new Database(path);
    raw.exec(`DROP TABLE daemon_heartbeats`);
    raw.close();
    const run = await cli(["daemons", "--db", path]);
    expect(run.stderr).toMatch(/^error: unexpected failure: no such table: daemon_heartbeats/m);
    expect(run.code).toBe(3);
    expect(describeError(new Error("boom")).exitCode).toBe(3);
  });

  // A target that is not there is an input error (2) for every command but health, which reports
  // it as an unhealthy check (1), the same verdict as an unreachable NATS server.
  it.each([
    [["stats"]],
    [["subscribers"]],
    [["daemons"]],
    [["events", "list"]],
    [["events", "trace", "x"]],
    [["events", "tail", "--count", "1"]],
    [["dlq", "list"]],
    [["dlq", "stats"]],
    [["dlq", "inspect", "1"]],
    [["dlq", "replay", "1"]],
    [["dlq", "purge", "--older-than", "7d", "--yes"]],
    [["monitor", "throughput"]],
    [["monitor", "failures"]],
    [["monitor", "depth"]],
    [["pipeline", "verify", "k"]],
    [["queue", "backup"]],
    [["queue", "clear", "--pending", "--yes"]],
  ])(
    "%j names a database that does not exist, without a stack, exits 2 and creates nothing",
    async (args) => {
      const run = await cli([...args, "--db", missing()]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/^error: No queue file at .*nowhere/m); // after the built-in catalog note, if any
      expect(run.stderr).not.toMatch(/\n\s+at /);
      const json = await cli([...args, "--db", missing(), "--json"]);
      expect(json.code).toBe(2);
      expect(json.json().error.code).toBe("QUEUE_FILE_NOT_FOUND");
      expect(existsSync(missing())).toBe(false);
    },
  );

  it("health reports a database that does not exist as unhealthy (exit 1), with a report", async () => {
    const run = await cli(["health", "--db", missing(), "--json"]);
    expect(run.code).toBe(1);
    expect(run.json()).toMatchObject({
      status: "unhealthy",
      checks: [{ check: "transport", status: "unhealthy" }],
    });
    expect(run.json().checks[0].message).toMatch(/No queue file at .*nowhere/);
  });

  it("health reports an unreachable NATS server as unhealthy; other commands exit 2 naming it", async () => {
    const health = await cli(["health", "--transport", "nats://127.0.0.1:1/S", "--json"]);
    expect(health.code).toBe(1);
    expect(health.json().checks[0]).toMatchObject({ check: "transport", status: "unhealthy" });
    const trace = await cli([
      "events",
      "trace",
      "x",
      "--transport",
      "nats://127.0.0.1:1/S",
      "--json",
    ]);
    expect(trace.code).toBe(2);
    expect(trace.json().error.code).toBe("NATS_UNREACHABLE");
  });

  it("an unknown scheme is a usage error listing the known ones", async () => {
    const run = await cli(["events", "list", "--transport", "kafka://broker:9092"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("Known: sqlite:…, nats:…");
  });

  it("--transport and --db together is a usage error", async () => {
    const run = await cli(["stats", "--transport", "nats://127.0.0.1:4222/S", "--db", missing()]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("not both");
  });
});
