import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { SqliteTransport } from "@switchyard/cross-process-queue";
import { createEnvelope, pipelineCatalog } from "@switchyard/event-schema";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveTarget } from "./context";
import { createProgram, openTarget, runCli, verifyPipeline } from "./index";
import { formatDuration, formatTable } from "./output";
import {
  type FilledDatabase,
  cli,
  eventually,
  fillDatabase,
  spawnCli,
  tempDir,
} from "./test/fixture";

describe("output helpers", () => {
  it("aligns columns and right-aligns numbers", () => {
    expect(
      formatTable(
        ["name", "n"],
        [
          ["a", 1],
          ["long name", 100],
        ],
      ),
    ).toBe("NAME         N\na            1\nlong name  100\n");
  });

  it("prints missing cells as a dash and cuts long ones, but in the last column", () => {
    const text = formatTable(
      ["a", "b"],
      [
        ["y".repeat(100), "x".repeat(100)],
        [undefined, "x"],
      ],
    );
    expect(text.split("\n")[1]).toBe(`${"y".repeat(71)}…  ${"x".repeat(100)}`);
    expect(text.split("\n")[2]).toMatch(/^- +x$/);
  });

  it("formats durations with at most two units", () => {
    expect(formatDuration(3_600_000)).toBe("1h");
    expect(formatDuration(3_900_000)).toBe("1h 5m");
    expect(formatDuration(42_000)).toBe("42s");
    expect(formatDuration(90_000_000)).toBe("1d 1h");
  });
});

describe("switchyard on a filled database (in process)", () => {
  const tmp = tempDir();
  let filled: FilledDatabase;
  let db: string;

  beforeAll(async () => {
    filled = await fillDatabase(tmp.dir);
    db = filled.path;
  });
  afterAll(async () => {
    await filled?.close();
    tmp.cleanup();
  });

  describe("health", () => {
    it("refuses a malformed threshold as a usage error", async () => {
      const run = await cli(["health", "--db", db, "--stale-after", "soon"]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('--stale-after: "soon" is not a duration');
    });
  });

  it("daemons lists every heartbeat", async () => {
    const run = await cli(["daemons", "--db", db, "--json"]);
    expect(run.json().daemons.map((d: { daemon: string }) => d.daemon)).toEqual([
      "evaluator",
      "promoter",
      "trainer",
    ]);
    const human = await cli(["daemons", "--db", db]);
    expect(human.stdout).toMatch(/promoter\s+running\s+degraded: event loop lag 250 ms/);
  });

  describe("events list", () => {
    it("filters by type, subject, time and limit", async () => {
      const ofType = (
        await cli(["events", "list", "--db", db, "--type", "TRAINING_COMPLETED", "--json"])
      ).json();
      expect(ofType.events).toHaveLength(2);
      const ofSubject = (
        await cli(["events", "list", "--db", db, "--subject", "hex8_2p", "--json"])
      ).json();
      expect(ofSubject.events).toHaveLength(7);
      expect(ofSubject.events[0].id).toBe(filled.ids.distribution);
      const limited = (
        await cli(["events", "list", "--db", db, "--limit", "3", "--since", "1h", "--json"])
      ).json();
      expect(limited.events).toHaveLength(3);
      const future = (
        await cli(["events", "list", "--db", db, "--since", "2999-01-01T00:00:00Z", "--json"])
      ).json();
      expect(future.events).toEqual([]);
    });

    it("prints a table, newest first", async () => {
      const run = await cli(["events", "list", "--db", db, "--subject", "hex8_2p"]);
      const lines = run.stdout.trim().split("\n");
      expect(lines[0]).toMatch(/^SEQ\s+STORED\s+TYPE\s+SUBJECT\s+SOURCE\s+ID$/);
      expect(lines[1]).toContain("MODEL_DISTRIBUTION_COMPLETE");
      expect(lines).toHaveLength(8);
    });

    it("accepts the runbook's lower-case names and suggests the closest for a typo", async () => {
      const lower = await cli([
        "events",
        "list",
        "--db",
        db,
        "--type",
        "training_completed",
        "--json",
      ]);
      expect(lower.json().events).toHaveLength(2);
      const typo = await cli(["events", "list", "--db", db, "--type", "TRAINIG_COMPLETED"]);
      expect(typo.code).toBe(2);
      expect(typo.stderr).toContain('Did you mean "TRAINING_COMPLETED"?');
      expect(typo.stderr).not.toMatch(/\n\s+at /);
    });
  });

  describe("events trace", () => {
    it("says when no event has that id", async () => {
      const run = await cli(["events", "trace", "no-such-id", "--db", db, "--json"]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain("No event with id no-such-id");
      expect(run.json().error.code).toBe("EVENT_NOT_FOUND");
    });
  });

  describe("events tail", () => {
    it("prints stored events from --since and stops after --count", async () => {
      const run = await cli([
        "events",
        "tail",
        "--db",
        db,
        "--since",
        "1h",
        "--count",
        "3",
        "--json",
      ]);
      expect(run.code).toBe(0);
      const lines = run.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { seq: number });
      expect(lines.map((e) => e.seq)).toEqual([1, 2, 3]);
    });

    it("follows new events of one type until the signal stops it", async () => {
      const stop = new AbortController();
      let stdout = "";
      let stderr = "";
      const running = runCli(
        ["events", "tail", "--db", db, "--type", "QUALITY_ALERT", "--interval", "20ms"],
        {
          from: "user",
          env: {},
          signal: stop.signal,
          stdout: (text) => void (stdout += text),
          stderr: (text) => void (stderr += text),
        },
      );
      await eventually(
        () => stderr.includes("Following QUALITY_ALERT events"),
        "the tail to start",
      );
      await filled.transport.publish([
        createEnvelope({
          type: "SELFPLAY_COMPLETE",
          source: "selfplay",
          data: { config_key: "hex8_2p", games: 1 },
        }),
        createEnvelope({
          type: "QUALITY_ALERT",
          source: "monitor",
          data: { config_key: "hex8_2p", quality_score: 0.3 },
        }),
      ]);
      await eventually(() => stdout.includes("QUALITY_ALERT"), "the new event to be printed");
      stop.abort();
      expect(await running).toBe(0);
      expect(stdout).not.toContain("SELFPLAY_COMPLETE");
      expect(stdout.trim().split("\n")).toHaveLength(1);
    });

    it("stops after --for when nothing happens", async () => {
      const started = Date.now();
      const run = await cli([
        "events",
        "tail",
        "--db",
        db,
        "--for",
        "200ms",
        "--type",
        "SPLIT_BRAIN_DETECTED",
      ]);
      expect(run.code).toBe(0);
      expect(run.stdout).toBe("");
      expect(Date.now() - started).toBeLessThan(3000);
    });
  });

  describe("dlq", () => {
    it("inspects one record, and names an unknown id", async () => {
      const run = await cli([
        "dlq",
        "inspect",
        String(filled.deadLetters.router),
        "--db",
        db,
        "--json",
      ]);
      expect(run.json().deadLetter).toMatchObject({
        subscriber: "notifier",
        origin: "router",
        attempts: 3,
      });
      const human = await cli(["dlq", "inspect", String(filled.deadLetters.sqlite), "--db", db]);
      expect(human.stdout).toMatch(/origin\s+sqlite/);
      expect(human.stdout).toContain('"type": "EVALUATION_COMPLETED"');
      const missing = await cli(["dlq", "inspect", "999", "--db", db]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain("No dead letter with id 999");
      const bad = await cli(["dlq", "inspect", "first", "--db", db]);
      expect(bad.code).toBe(2);
    });

    it("reports depth by status, type and subscriber", async () => {
      const stats = (await cli(["dlq", "stats", "--db", db, "--json"])).json();
      expect(stats.depth).toBe(4);
      expect(stats.bySubscriber).toMatchObject({ promoter: 2, notifier: 1, alerter: 1 });
    });

    it("previews a replay with --dry-run and changes nothing", async () => {
      const run = await cli([
        "dlq",
        "replay",
        "--db",
        db,
        "--subscriber",
        "promoter",
        "--dry-run",
        "--json",
      ]);
      expect(run.code).toBe(0);
      expect(run.json().wouldReplay).toHaveLength(2);
      const human = await cli([
        "dlq",
        "replay",
        "--db",
        db,
        "--type",
        "EVALUATION_COMPLETED",
        "--dry-run",
      ]);
      expect(human.stdout).toContain("Would replay 2 dead letters");
    });

    it("refuses to replay an in-process (router) dead letter from another process", async () => {
      // The admin says why it skipped it; the CLI reports the skip (exit 1: nothing replayed).
      const run = await cli(["dlq", "replay", String(filled.deadLetters.router), "--db", db]);
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(
        new RegExp(`(skipped|failed) ${filled.deadLetters.router}: .*in-process`),
      );
      const batch = (
        await cli(["dlq", "replay", "--db", db, "--subscriber", "notifier", "--json"])
      ).json();
      expect(batch.replayed).toEqual([]);
      // Ids are strings on every transport.
      expect([...batch.skipped, ...batch.failed][0].id).toBe(String(filled.deadLetters.router));
    });

    it("needs an id or a filter, not both", async () => {
      expect((await cli(["dlq", "replay", "--db", db])).code).toBe(2);
      expect((await cli(["dlq", "replay", "1", "--type", "MODEL_PROMOTED", "--db", db])).code).toBe(
        2,
      );
    });
  });

  describe("monitor", () => {
    it("counts events per minute", async () => {
      const run = (await cli(["monitor", "throughput", "--db", db, "--json"])).json();
      expect(run.total).toBeGreaterThanOrEqual(16);
      expect(run.perMinute[0].minute).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d$/);
      const human = await cli(["monitor", "throughput", "--db", db, "--window", "30m"]);
      expect(human.stdout).toMatch(/MINUTE \(UTC\)\s+EVENTS/);
      expect(human.stdout).toContain("█");
    });

    it("refuses a --subscriber the transport does not know, for depth as for queue clear", async () => {
      for (const args of [
        ["monitor", "depth", "--subscriber", "nosuch"],
        ["queue", "clear", "--pending", "--subscriber", "nosuch"],
      ]) {
        const run = await cli([...args, "--db", db]);
        expect(run.code, args.join(" ")).not.toBe(0);
        expect(run.stderr, args.join(" ")).toContain('No subscriber named "nosuch"');
        expect(run.stdout, args.join(" ")).not.toContain("Nothing pending");
      }
    });

    it("refuses a throughput window longer than a transport counts per minute, saying how long it may be", async () => {
      const run = await cli(["monitor", "throughput", "--db", db, "--window", "70d"]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('--window: "70d" is too long: at most 69d');
      expect(run.stderr).not.toContain("bucketMs");
      expect((await cli(["monitor", "throughput", "--db", db, "--window", "69d"])).code).toBe(0);
    });
  });

  it("keeps event and dead-letter ids whole in tables on a narrow terminal", async () => {
    const narrow = { COLUMNS: "60" };
    const events = (await cli(["events", "list", "--db", db, "--json"])).json().events as {
      id: string;
    }[];
    const eventTable = await spawnCli(["events", "list", "--db", db], narrow).done;
    expect(eventTable.code, eventTable.stderr).toBe(0);
    expect(eventTable.stdout).toMatch(/…/); // it was narrowed: other columns were cut
    for (const { id } of events) expect(eventTable.stdout).toContain(id);
    const deadLetters = (await cli(["dlq", "list", "--db", db, "--json"])).json().deadLetters as {
      id: string;
      eventId: string;
    }[];
    const stored = deadLetters.find((d) => events.some((e) => e.id === d.eventId))!;
    const trace = await spawnCli(["events", "trace", stored.eventId, "--db", db], narrow).done;
    expect(trace.code, trace.stderr).toBe(0);
    expect(trace.stdout).toMatch(new RegExp(`^${stored.id}\\s`, "m"));
  }, 30_000);

  describe("pipeline verify", () => {
    it("passes when every stage flowed for the config key", async () => {
      const run = await cli(["pipeline", "verify", "hex8_2p", "--db", db]);
      expect(run.code).toBe(0);
      expect(run.stdout.match(/✓/g)).toHaveLength(7);
      expect(run.stdout).toContain("Every stage flowed (7/7)");
    });

    it("fails and names the missing stage (config key from the payload)", async () => {
      const run = await cli(["pipeline", "verify", "sq8_4p", "--db", db, "--json"]);
      expect(run.code).toBe(1);
      const result = run.json();
      expect(result.missing).toEqual(["MODEL_DISTRIBUTION_COMPLETE"]);
      expect(result.stages[0]).toMatchObject({ type: "NEW_GAMES_AVAILABLE", count: 1, ok: true });
      const human = await cli(["pipeline", "verify", "sq8_4p", "--db", db]);
      expect(human.stdout).toMatch(/✗\s+7\. MODEL_DISTRIBUTION_COMPLETE\s+0/);
    });

    it("takes --hours with units like every duration flag, a bare number still meaning hours", async () => {
      const windowOf = async (hours?: string) => {
        const run = await cli([
          "pipeline",
          "verify",
          "hex8_2p",
          "--db",
          db,
          "--json",
          ...(hours === undefined ? [] : ["--hours", hours]),
        ]);
        expect(run.code, run.stderr).toBe(0);
        const { since, until } = run.json() as { since: string; until: string };
        return Date.parse(until) - Date.parse(since);
      };
      expect(await windowOf()).toBe(24 * 3_600_000);
      expect(await windowOf("24h")).toBe(24 * 3_600_000);
      expect(await windowOf("90m")).toBe(90 * 60_000);
      expect(await windowOf("2")).toBe(2 * 3_600_000);
      expect(await windowOf("1d12h")).toBe(36 * 3_600_000);
      const human = await cli(["pipeline", "verify", "hex8_2p", "--db", db, "--hours", "90m"]);
      expect(human.stdout).toContain("of config_key hex8_2p, last 90m:");
      const wrong = await cli(["pipeline", "verify", "hex8_2p", "--db", db, "--hours", "soon"]);
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toContain('--hours: "soon" is not a duration');
      expect(wrong.stderr).toContain("a bare number is hours");
      const help = await cli(["pipeline", "verify", "--help"]);
      expect(help.stdout).toMatch(/--hours <duration>\s+window length[^]*\(default: 24h\)/);
    });

    it("is a function too, over a target or an open inspector", async () => {
      const catalog = pipelineCatalog;
      const result = await verifyPipeline(db, "hex8_2p", { catalog, hours: 1 });
      expect(result.ok).toBe(true);
      expect(result.stages.map((s) => s.count)).toEqual([1, 1, 1, 1, 1, 1, 1]);
      const driver = await openTarget(`sqlite:${db}`, { readOnly: true });
      const earlier = await verifyPipeline(driver.inspector(), "hex8_2p", {
        catalog,
        hours: 1,
        now: Date.now() - 7_200_000,
      });
      // Explicit stages need no catalog.
      const two = await verifyPipeline(driver.inspector(), "hex8_2p", {
        stages: ["TRAINING_COMPLETED", "MODEL_PROMOTED"],
      });
      await driver.close();
      expect(earlier.ok).toBe(false);
      expect(earlier.missing).toHaveLength(7);
      expect(two.stages.map((s) => s.type)).toEqual(["TRAINING_COMPLETED", "MODEL_PROMOTED"]);
      await expect(
        verifyPipeline(join(tmp.dir, "none.db"), "hex8_2p", { catalog }),
      ).rejects.toThrow(/No queue file/);
    });

    it("verifyPipeline has no default catalog: it needs the stages or the catalog to take them from", async () => {
      await expect(verifyPipeline(db, "hex8_2p")).rejects.toThrow(
        /verifyPipeline: say which stages to check: pass `catalog`/,
      );
      await expect(
        verifyPipeline(db, "hex8_2p", { catalog: pipelineCatalog, pipeline: "nope" }),
      ).rejects.toThrow(/--pipeline "nope": the catalog declares no such pipeline/);
    });
  });

  describe("queue", () => {
    it("writes a backup into the directory it is told", async () => {
      const dir = join(tmp.dir, "backups");
      const run = await cli(["queue", "backup", "--db", db, "--dir", dir, "--json"]);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      const backup = run.json().backup as string;
      expect(backup.startsWith(dir)).toBe(true);
      expect(existsSync(backup)).toBe(true);
    });
  });

  it("catalog lists types with durability, alert rules and pipeline stages", async () => {
    const run = (await cli(["catalog", "--json"])).json();
    const byType = Object.fromEntries(run.types.map((t: { type: string }) => [t.type, t]));
    expect(byType.DATA_SYNC_FAILED).toMatchObject({
      durable: true,
      alert: "more than 3 in 1 hour",
    });
    expect(byType.MODEL_DISTRIBUTION_COMPLETE.stage).toBe(7);
  });
});

describe("errors and usage", () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it("names a missing database and says daemons create it", async () => {
    const path = join(tmp.dir, "missing", "coordination.db");
    const run = await cli(["stats", "--db", path]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(
      `error: No queue file at ${path}. Daemons create it on first start (the SQLite ` +
        `transport opens it); start them, or name the file (e.g. sqlite:data/coordination/coordination.db).\n`,
    );
    expect(existsSync(path)).toBe(false);
  });

  it("reads SWITCHYARD_DB when --db is not given", async () => {
    const path = join(tmp.dir, "from-env.db");
    const run = await cli(["stats"], { env: { SWITCHYARD_DB: path } });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(path);
  });

  it("refuses a database from a newer version", async () => {
    const path = join(tmp.dir, "newer.db");
    const t = new SqliteTransport({ path });
    await t.close();
    const raw = new Database(path);
    raw.pragma("user_version = 99");
    raw.close();
    const run = await cli(["subscribers", "--db", path, "--json"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("has schema version 99");
    expect(run.json().error.code).toBe("QUEUE_SCHEMA_TOO_NEW");
  });

  it("refuses a file that is not a coordination database", async () => {
    const empty = join(tmp.dir, "empty.db");
    new Database(empty).close();
    expect((await cli(["stats", "--db", empty])).stderr).toContain("is not a Switchyard queue yet");
    const text = join(tmp.dir, "notes.txt");
    writeFileSync(text, "hello, this is not sqlite at all".repeat(100));
    const run = await cli(["stats", "--db", text]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("not a SQLite database or is corrupt");
  });

  it("chooses the target from --transport, else --db, else $SWITCHYARD_TRANSPORT, else $SWITCHYARD_DB", () => {
    const env = { SWITCHYARD_TRANSPORT: "nats://n:4222/S", SWITCHYARD_DB: "/env.db" };
    expect(resolveTarget({ transport: "nats://x:4222/T" }, env)).toBe("nats://x:4222/T");
    expect(resolveTarget({ db: "/a.db" }, env)).toBe("sqlite:/a.db");
    expect(resolveTarget({}, env)).toBe("nats://n:4222/S");
    expect(resolveTarget({}, { SWITCHYARD_DB: "/env.db" })).toBe("sqlite:/env.db");
    expect(resolveTarget({ transport: "rel/q.db" }, {})).toBe(
      `sqlite:${join(process.cwd(), "rel/q.db")}`,
    );
    expect(resolveTarget({}, {})).toBe(
      `sqlite:${join(process.cwd(), "data/coordination/coordination.db")}`,
    );
    expect(() => resolveTarget({ transport: "sqlite:" }, {})).toThrow(/no SQLite file/);
    expect(() => resolveTarget({ transport: "x.db", db: "y.db" }, {})).toThrow(/not both/);
  });

  it("treats unknown commands and options as usage errors", async () => {
    expect((await cli(["bogus"])).code).toBe(2);
    expect((await cli(["stats", "--nope"])).code).toBe(2);
    expect((await cli(["events"])).code).toBe(2);
  });

  it("shows examples in every command's help", async () => {
    const program = createProgram();
    const leaves: string[][] = [];
    const walk = (command: typeof program, path: string[]) => {
      if (command.commands.length === 0) leaves.push(path);
      for (const sub of command.commands) walk(sub, [...path, sub.name()]);
    };
    walk(program, []);
    expect(leaves.length).toBeGreaterThanOrEqual(18);
    for (const path of leaves) {
      const run = await cli([...path, "--help"]);
      expect(run.code, path.join(" ")).toBe(0);
      expect(run.stdout, path.join(" ")).toContain("Examples:");
      if (path[0] !== "catalog") expect(run.stdout, path.join(" ")).toContain("--db <path>");
      expect(run.stdout, path.join(" ")).toContain("--json");
    }
  });
});
