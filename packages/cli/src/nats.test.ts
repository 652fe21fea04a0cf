import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { SqliteHeartbeatSink } from "@switchyard/cross-process-queue";
import { SqliteDeadLetterStore } from "@switchyard/dlq";
import { type Envelope, createEnvelope, pipelineStages } from "@switchyard/event-schema";
import { UnrecoverableError } from "@switchyard/router";
import {
  type NatsHeartbeat,
  type NatsTransport,
  heartbeatStreamName,
  natsHeartbeatSink,
  natsTransport,
} from "@switchyard/transport-nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The NATS suites' shared helpers: under CI=true an unreachable server fails instead of skipping.
import {
  NATS_URL,
  deleteStream,
  describeIf,
  eventually,
  natsAvailable,
  uniqueNames,
} from "../../transport-nats/src/test/nats";
import { cli, tempDir } from "./test/fixture";

const available = await natsAvailable();

/** `--transport nats` and where the stream is. */
const natsArgs = (names: { stream: string; prefix: string }) => [
  "--transport",
  "nats",
  "--nats-url",
  NATS_URL,
  "--stream",
  names.stream,
  "--prefix",
  names.prefix,
];

const stage = (type: string, configKey: string, data: object, cause?: Envelope): Envelope =>
  createEnvelope({
    type,
    source: `${type.toLowerCase()}_daemon`,
    data: { config_key: configKey, ...data },
    ...(cause ? { causationid: cause.id } : {}),
  });

describe("commands against NATS JetStream", () => {
  it.each([[["pipeline", "verify", "hex8_2p"]], [["daemons"]]])(
    "says clearly when NATS cannot be reached (%j)",
    async (command) => {
      const run = await cli([
        ...command,
        "--transport",
        "nats",
        "--nats-url",
        "nats://127.0.0.1:1",
        "--json",
      ]);
      expect(run.code).toBe(2);
      expect(run.json()).toMatchObject({ error: { code: "NATS_UNREACHABLE" } });
    },
  );

  it("refuses a transport it does not know", async () => {
    const run = await cli(["events", "list", "--transport", "kafka"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--transport: "kafka" is not sqlite or nats.');
  });
});

describeIf(available, "pipeline verify and subscribers on NATS", { tags: ["slow"] }, () => {
  const names = uniqueNames("clipipeline");
  const nats = natsArgs(names);

  beforeAll(async () => {
    // A stream that keeps its messages, one subscriber, and a full pipeline run for hex8_2p except distribution.
    const transport = natsTransport({ servers: NATS_URL, ...names, retention: "limits" });
    // Registered, then gone: what is published next waits for it (its lag).
    await (
      await transport.subscribe({
        subscriber: "promoter",
        types: ["EVALUATION_COMPLETED"],
        handler: async () => {},
      })
    ).close();
    const data = {
      config_key: "hex8_2p",
      model_path: "m.pt",
      elo: 1600,
      loss: 0.2,
      games_played: 10,
      source: "a",
      target: "b",
      files_synced: 1,
      npz_path: "x.npz",
    };
    await transport.publish(
      pipelineStages
        .filter((t) => t !== "MODEL_DISTRIBUTION_COMPLETE")
        .map((type) => createEnvelope({ type, source: "test", data })),
    );
    await transport.publish([
      createEnvelope({ type: "EVALUATION_COMPLETED", source: "test", data }),
    ]);
    await transport.close();
  }, 30_000);
  afterAll(() => deleteStream(NATS_URL, names.stream));

  it("verifies the pipeline flow from the stream, naming the stage that did not flow", async () => {
    const run = await cli(["pipeline", "verify", "hex8_2p", ...nats, "--json"]);
    expect(run.code).toBe(1);
    expect(run.json()).toMatchObject({ ok: false, missing: ["MODEL_DISTRIBUTION_COMPLETE"] });
    const stages = (run.json().stages as { type: string; count: number }[]).map((s) => [
      s.type,
      s.count,
    ]);
    expect(stages).toContainEqual(["EVALUATION_COMPLETED", 2]);
    expect(
      (await cli(["pipeline", "verify", "square8_4p", ...nats, "--json"])).json(),
    ).toMatchObject({ ok: false });
  });

  it("lists subscribers with their lag from the consumers", async () => {
    const run = await cli(["subscribers", ...nats, "--json"]);
    expect(run.code).toBe(0);
    expect(run.json().subscribers).toEqual([
      expect.objectContaining({ name: "promoter", types: ["EVALUATION_COMPLETED"], lag: 2 }),
    ]);
  });
});

/**
 * One stream through the real transport: hex8_2p's chain NEW_GAMES_AVAILABLE → … →
 * MODEL_PROMOTED linked by causationid; `evaluator` acks TRAINING_COMPLETED, `promoter`
 * dead-letters EVALUATION_COMPLETED into a SqliteDeadLetterStore (and one replay of it is on the
 * stream), `idle` is registered for NEW_GAMES_AVAILABLE but not running. Then a TRAINING_FAILED,
 * an event with a non-UUIDv7 id, a message that is not an envelope, and 300 SELFPLAY_COMPLETE
 * events of other configs, so the oldest events lie far behind the newest.
 */
describeIf(available, "events and health on NATS", { tags: ["slow"] }, () => {
  const names = uniqueNames("clievents");
  const nats = natsArgs(names);
  const tmp = tempDir();
  const db = join(tmp.dir, "coordination.db");
  let transport: NatsTransport;
  let store: SqliteDeadLetterStore;
  const games = stage("NEW_GAMES_AVAILABLE", "hex8_2p", { new_games: 500 });
  const sync = stage("DATA_SYNC_COMPLETED", "hex8_2p", { files_synced: 3 }, games);
  const training = stage("TRAINING_COMPLETED", "hex8_2p", { model_path: "g7.pt", loss: 0.2 }, sync);
  const evaluation = stage(
    "EVALUATION_COMPLETED",
    "hex8_2p",
    { model_path: "g7.pt", elo: 1612 },
    training,
  );
  const promotion = stage(
    "MODEL_PROMOTED",
    "hex8_2p",
    { model_path: "g7.pt", elo: 1612 },
    evaluation,
  );
  const other = stage("TRAINING_COMPLETED", "sq8_4p", { model_path: "sq.pt", loss: 0.3 });
  const failure = stage("TRAINING_FAILED", "sq8_4p", { error: "CUDA out of memory" });
  const custom = createEnvelope({
    id: "run-42-training",
    type: "TRAINING_COMPLETED",
    source: "legacy_trainer",
    data: { config_key: "hex8_3p", model_path: "h3.pt", loss: 0.4 },
  });
  // A type the catalog does not define: the stream has it, so `--type` accepts it.
  const backfill = createEnvelope({ type: "BACKFILL_STARTED", source: "ops", data: { days: 3 } });

  beforeAll(async () => {
    // Heartbeats and dead letters stay in a SQLite file, as the demo keeps them on NATS.
    const sink = new SqliteHeartbeatSink({ path: db });
    const beat = (daemon: string, ageMs: number) =>
      sink.write({
        daemon,
        pid: 4242,
        host: "gpu-1",
        status: "running",
        health: { healthy: true, status: "healthy", message: `${daemon} is running`, details: {} },
        stats: {},
        startedAt: new Date(Date.now() - 3_600_000).toISOString(),
        at: new Date(Date.now() - ageMs).toISOString(),
      });
    beat("trainer", 0);
    beat("evaluator", 600_000);
    await sink.close();
    store = new SqliteDeadLetterStore({ path: db });
    transport = natsTransport({
      servers: NATS_URL,
      ...names,
      retention: "limits",
      deadLetter: store,
      drainTimeoutMs: 500,
      pullExpiresMs: 1_000,
    });
    await (
      await transport.subscribe({
        subscriber: "idle",
        types: ["NEW_GAMES_AVAILABLE"],
        handler: async () => {},
      })
    ).close();
    let acked = 0;
    const evaluator = await transport.subscribe({
      subscriber: "evaluator",
      types: ["TRAINING_COMPLETED"],
      handler: async () => void acked++,
    });
    let promoted = 0;
    const promoter = await transport.subscribe({
      subscriber: "promoter",
      types: ["EVALUATION_COMPLETED"],
      handler: async () => {
        promoted++;
        throw new UnrecoverableError("elo missing from payload");
      },
    });
    await transport.publish([games, sync, training, evaluation, promotion, other, failure]);
    await transport.publish([custom, backfill]);
    await eventually(
      () => acked === 3 && promoted === 1 && store.list({ subscriber: "promoter" }).length === 1,
      "the acks and the dead letter",
    );
    // The dead letter replayed to promoter: a copy on its replay subject, not a new event.
    await transport.requeue("promoter", evaluation);
    await eventually(() => promoted === 2, "the replay");
    await Promise.all([evaluator.close(), promoter.close()]);
    const nc = await connect({ servers: NATS_URL });
    try {
      await jetstream(nc).publish(
        `${names.prefix}.TRAINING_COMPLETED`,
        new TextEncoder().encode("not json"),
        { msgID: "garbage-1" },
      );
    } finally {
      await nc.close();
    }
    await transport.publish(
      Array.from({ length: 300 }, (_, i) =>
        stage("SELFPLAY_COMPLETE", `noise_${i % 7}`, { games_played: i }),
      ),
    );
  }, 60_000);
  afterAll(async () => {
    await transport?.close();
    store?.close();
    await deleteStream(NATS_URL, names.stream);
    tmp.cleanup();
  });

  describe("events list", () => {
    it("lists the newest events first, in the shape the SQLite listing has", async () => {
      const run = await cli(["events", "list", ...nats, "--limit", "3", "--json"]);
      expect(run.code).toBe(0);
      const { events } = run.json();
      expect(events).toHaveLength(3);
      expect(events.map((e: { type: string }) => e.type)).toEqual([
        "SELFPLAY_COMPLETE",
        "SELFPLAY_COMPLETE",
        "SELFPLAY_COMPLETE",
      ]);
      expect(events[0].seq).toBeGreaterThan(events[1].seq);
      expect(Object.keys(events[0]).sort()).toEqual(
        ["createdAt", "envelope", "id", "seq", "source", "subject", "time", "type"].sort(),
      );
    });

    it("filters by type, subject, time and limit, reaching back past newer events", async () => {
      const ofType = (
        await cli(["events", "list", ...nats, "--type", "training_completed", "--json"])
      ).json().events;
      // The garbage message, the event with a custom id, sq8_4p and hex8_2p: newest first.
      expect(ofType.map((e: { id: string }) => e.id)).toEqual([
        "garbage-1",
        custom.id,
        other.id,
        training.id,
      ]);
      expect(ofType[0].payloadError).toContain("is not JSON");
      expect(ofType[1]).toMatchObject({ subject: "hex8_3p", source: "legacy_trainer" });

      const ofSubject = (
        await cli(["events", "list", ...nats, "--subject", "hex8_2p", "--limit", "50", "--json"])
      ).json().events;
      // Five events, not six: the replay of the evaluation is no publish.
      expect(ofSubject.map((e: { id: string }) => e.id)).toEqual(
        [promotion, evaluation, training, sync, games].map((e) => e.id),
      );
      expect(ofSubject[0].envelope.causationid).toBe(evaluation.id);

      const limited = (
        await cli(["events", "list", ...nats, "--subject", "hex8_2p", "--limit", "2", "--json"])
      ).json().events;
      expect(limited.map((e: { id: string }) => e.id)).toEqual([promotion.id, evaluation.id]);

      const recent = (await cli(["events", "list", ...nats, "--since", "1h", "--json"])).json()
        .events;
      expect(recent).toHaveLength(20);
      const future = (
        await cli(["events", "list", ...nats, "--since", "2999-01-01T00:00:00Z", "--json"])
      ).json().events;
      expect(future).toEqual([]);
    });

    it("prints the same table as on SQLite", async () => {
      const run = await cli(["events", "list", ...nats, "--subject", "hex8_2p"]);
      const lines = run.stdout.trim().split("\n");
      expect(lines[0]).toMatch(/^SEQ\s+STORED\s+TYPE\s+SUBJECT\s+SOURCE\s+ID$/);
      expect(lines[1]).toMatch(/^\s*5\s+\S+Z\s+MODEL_PROMOTED\s+hex8_2p\s+model_promoted_daemon\s/);
      expect(lines).toHaveLength(6);
    });

    it("suggests the closest event type for a typo, and accepts a type only the stream has", async () => {
      const typo = await cli(["events", "list", ...nats, "--type", "TRAINIG_COMPLETED"]);
      expect(typo.code).toBe(2);
      expect(typo.stderr).toContain('Did you mean "TRAINING_COMPLETED"?');
      const stored = await cli(["events", "list", ...nats, "--type", "BACKFILL_STARTED", "--json"]);
      expect(stored.json().events.map((e: { id: string }) => e.id)).toEqual([backfill.id]);
      const unknown = await cli(["events", "list", ...nats, "--type", "BACKFILL_FINISHED"]);
      expect(unknown.code).toBe(2);
    });

    it("says which stream is missing", async () => {
      const run = await cli([
        "events",
        "list",
        ...natsArgs({ stream: `${names.stream}_MISSING`, prefix: names.prefix }),
        "--json",
      ]);
      expect(run.code).toBe(2);
      expect(run.json().error).toMatchObject({ code: "NATS_STREAM_NOT_FOUND" });
      expect(run.stderr).toContain(`No stream ${names.stream}_MISSING`);
    });
  });

  describe("events trace", () => {
    it("shows each subscriber's delivery from its consumer and the chain of caused events", async () => {
      const run = await cli(["events", "trace", games.id, ...nats, "--json"]);
      expect(run.code).toBe(0);
      const trace = run.json();
      expect(trace).toMatchObject({
        transport: "nats",
        stream: names.stream,
        event: { id: games.id, seq: 1, type: "NEW_GAMES_AVAILABLE" },
        deliveries: [{ subscriber: "idle", status: "pending", eventSeq: 1 }],
        deadLetters: [],
        deadLettersChecked: false,
      });
      const chain: string[] = [];
      for (let level = trace.caused; level.length > 0; level = level[0].caused)
        chain.push(level[0].event.id);
      // --depth 3 (the default): sync, training, evaluation; not the promotion.
      expect(chain).toEqual([sync.id, training.id, evaluation.id]);
      expect(trace.caused[0].caused[0].deliveries).toEqual([
        expect.objectContaining({ subscriber: "evaluator", status: "acked" }),
      ]);

      const shallow = (
        await cli(["events", "trace", training.id, ...nats, "--depth", "1", "--json"])
      ).json();
      expect(shallow.caused.map((c: { event: { id: string } }) => c.event.id)).toEqual([
        evaluation.id,
      ]);
      expect(shallow.caused[0].caused).toEqual([]);
    });

    it("reads the dead letters from the --db file and marks those deliveries dead", async () => {
      const run = await cli(["events", "trace", evaluation.id, ...nats, "--db", db, "--json"]);
      expect(run.code).toBe(0);
      const trace = run.json();
      expect(trace.deadLettersChecked).toBe(true);
      expect(trace.deadLetters).toEqual([
        expect.objectContaining({ subscriber: "promoter", reason: "unrecoverable" }),
      ]);
      expect(trace.deliveries).toEqual([
        expect.objectContaining({ subscriber: "promoter", status: "dead" }),
      ]);
      expect(trace.caused[0].event.id).toBe(promotion.id);
    });

    it("prints deliveries, dead letters and the causal tree for people", async () => {
      const run = await cli(["events", "trace", evaluation.id, ...nats, "--db", db]);
      expect(run.stdout).toMatch(/promoter\s+dead \(terminated, in the DLQ\)/);
      expect(run.stdout).toMatch(/DEAD LETTER\s+SUBSCRIBER/);
      expect(run.stdout).toContain("└─ MODEL_PROMOTED");
      const withoutDb = await cli(["events", "trace", games.id, ...nats]);
      expect(withoutDb.stdout).toMatch(/idle\s+pending \(not delivered yet\)/);
      expect(withoutDb.stdout).toContain("Dead letters not checked");
      expect(withoutDb.stdout).toContain("   └─ TRAINING_COMPLETED");
    });

    it("finds an event whose id is not a UUIDv7", async () => {
      const run = await cli(["events", "trace", custom.id, ...nats, "--json"]);
      expect(run.code).toBe(0);
      expect(run.json().event).toMatchObject({ id: custom.id, subject: "hex8_3p" });
    });

    it("says when no event has that id", async () => {
      const run = await cli(["events", "trace", "no-such-id", ...nats, "--json"]);
      expect(run.code).toBe(2);
      expect(run.json().error.code).toBe("EVENT_NOT_FOUND");
      expect(run.stderr).toContain(`No event with id no-such-id in stream ${names.stream}`);
    });
  });

  it("leaves no consumer behind: the readers it creates are deleted", async () => {
    await cli(["events", "list", ...nats, "--since", "1h"]);
    await cli(["events", "trace", games.id, ...nats]);
    await cli(["health", ...nats]);
    const nc = await connect({ servers: NATS_URL });
    try {
      const descriptions: (string | undefined)[] = [];
      for await (const info of (await jetstreamManager(nc)).consumers.list(names.stream))
        descriptions.push(info.config.description);
      expect(descriptions).toHaveLength(6); // idle, evaluator, promoter: one per type + replay
      for (const description of descriptions)
        expect(description).toContain("switchyard-transport-nats");
    } finally {
      await nc.close();
    }
  });

  describe("health", () => {
    it("fails on a firing alert and warns about a subscriber nothing pulls for", async () => {
      const run = await cli(["health", ...nats]);
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(/ok\s+nats\s+connected to .* \(nats-server /);
      expect(run.stdout).toMatch(/ok\s+stream\s+\S+: 3\d\d messages stored, limits retention/);
      expect(run.stdout).toMatch(
        /warn\s+subscriber:idle\s+lag 1: 1 pending, 0 in flight.*nothing is pulling/,
      );
      expect(run.stdout).toMatch(/FAIL\s+alert:TRAINING_FAILED\s+1 in the last 1h/);
      expect(run.stdout).toMatch(
        /warn\s+daemons\s+not checked: no daemon heartbeats in stream \S+_HEARTBEATS and no --db file/,
      );
      expect(run.stdout).toMatch(/warn\s+dead-letters\s+not checked/);
      expect(run.stdout).toContain("Unhealthy: 1 of");
    });

    it("reports every check and every consumer as JSON", async () => {
      const run = await cli(["health", ...nats, "--json", "--max-pending", "0"]);
      expect(run.code).toBe(1);
      const report = run.json();
      expect(report).toMatchObject({
        healthy: false,
        transport: "nats",
        stream: names.stream,
        prefix: names.prefix,
      });
      expect(report.db).toBeUndefined();
      const byName = Object.fromEntries(report.checks.map((c: { check: string }) => [c.check, c]));
      expect(byName.subscribers).toMatchObject({ status: "ok", value: 3 });
      // idle's NEW_GAMES_AVAILABLE, and the garbage message published after evaluator stopped.
      expect(byName.backlog).toMatchObject({ status: "fail", value: 2, threshold: 0 });
      expect(byName["subscriber:evaluator"]).toMatchObject({ status: "warn", value: 1 });
      expect(byName["subscriber:promoter"]).toMatchObject({ status: "ok", value: 0 });
      expect(report.consumers).toContainEqual(
        expect.objectContaining({
          subscriber: "idle",
          type: "NEW_GAMES_AVAILABLE",
          pending: 1,
          ackPending: 0,
          redelivered: 0,
          waiting: 0,
        }),
      );
    });

    it("checks heartbeats and dead letters in the --db file", async () => {
      const run = await cli(["health", ...nats, "--db", db, "--json"]);
      const report = run.json();
      expect(report.db).toBe(db);
      // The stream has no heartbeat stream beside it: the file's heartbeats are checked.
      expect(report.heartbeats).toEqual({ source: "db", path: db });
      const byName = Object.fromEntries(report.checks.map((c: { check: string }) => [c.check, c]));
      expect(byName["daemon:trainer"].status).toBe("ok");
      expect(byName["daemon:evaluator"]).toMatchObject({ status: "fail" });
      expect(byName["daemon:evaluator"].message).toContain("stale: last heartbeat 10m");
      expect(byName["dead-letters"]).toMatchObject({ status: "ok", value: 1, threshold: 100 });
      expect(
        (await cli(["health", ...nats, "--db", db, "--json", "--max-dlq", "0"]))
          .json()
          .checks.find((c: { check: string }) => c.check === "dead-letters").status,
      ).toBe("fail");
      const missing = await cli(["health", ...nats, "--db", join(tmp.dir, "missing.db"), "--json"]);
      expect(missing.code).toBe(2);
      expect(missing.json().error.code).toBe("DATABASE_NOT_FOUND");
    });

    it("fails, with a report, when the server or the stream is not there", async () => {
      const down = await cli([
        "health",
        "--transport",
        "nats",
        "--nats-url",
        "nats://127.0.0.1:1",
        "--json",
      ]);
      expect(down.code).toBe(1);
      expect(down.json()).toMatchObject({
        healthy: false,
        checks: expect.arrayContaining([
          expect.objectContaining({ check: "nats", status: "fail" }),
        ]),
      });
      const missing = await cli([
        "health",
        ...natsArgs({ stream: `${names.stream}_MISSING`, prefix: names.prefix }),
        "--json",
      ]);
      expect(missing.code).toBe(1);
      expect(missing.json().checks).toContainEqual(
        expect.objectContaining({ check: "stream", status: "fail" }),
      );
    });
  });
});

describeIf(available, "health of a quiet system on NATS", { tags: ["slow"] }, () => {
  const names = uniqueNames("clihealthy");
  let transport: NatsTransport;

  beforeAll(async () => {
    // Interest retention on purpose (no longer the default): health explains what it keeps.
    transport = natsTransport({
      servers: NATS_URL,
      ...names,
      retention: "interest",
      drainTimeoutMs: 500,
      pullExpiresMs: 1_000,
    });
    let handled = 0;
    await transport.subscribe({
      subscriber: "trainer",
      types: ["NPZ_EXPORT_COMPLETE"],
      handler: async () => void handled++,
    });
    await transport.publish([stage("NPZ_EXPORT_COMPLETE", "hex8_2p", { npz_path: "x.npz" })]);
    await eventually(async () => handled === 1, "the delivery");
  }, 30_000);
  afterAll(async () => {
    await transport?.close();
    await deleteStream(NATS_URL, names.stream);
  });

  it("is healthy while its subscriber consumes, saying what it could not check", async () => {
    const run = await cli(["health", ...natsArgs(names)]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /ok\s+stream\s+\S+: .* interest retention \(an event is kept only until every subscriber acked it/,
    );
    expect(run.stdout).toMatch(/ok\s+subscriber:trainer\s+lag 0/);
    expect(run.stdout).toContain("Healthy (2 warnings).");
  });
});

/**
 * Daemons on several machines report through a NatsHeartbeatSink: trainer is running, evaluator
 * stopped writing 10 minutes ago, selfplay was given up by its manager. A SQLite file beside it
 * has a heartbeat of its own, which the stream's heartbeats take precedence over.
 */
describeIf(available, "daemon heartbeats on NATS", { tags: ["slow"] }, () => {
  const names = uniqueNames("cliheartbeats");
  const nats = natsArgs(names);
  const tmp = tempDir();
  const db = join(tmp.dir, "coordination.db");
  const now = Date.now();
  const beat = (
    daemon: string,
    host: string,
    ageMs: number,
    status = "running",
  ): NatsHeartbeat => ({
    daemon,
    pid: 4242,
    host,
    status,
    health: {
      healthy: status === "running",
      status: status === "running" ? "healthy" : "unhealthy",
      message: `${daemon} is ${status}`,
      details: {},
    },
    stats: { eventsProcessed: 12, eventsDeduplicated: 3, errorsCount: 1 },
    restarts: 0,
    startedAt: new Date(now - 3_600_000).toISOString(),
    at: new Date(now - ageMs).toISOString(),
  });

  beforeAll(async () => {
    const transport = natsTransport({ servers: NATS_URL, ...names });
    await transport.ready();
    await transport.close();
    const heartbeats = natsHeartbeatSink({ servers: NATS_URL, ...names });
    try {
      await heartbeats.write(beat("trainer", "gpu-1", 60_000)); // replaced by the next one
      await heartbeats.write(beat("trainer", "gpu-1", 0));
      await heartbeats.write(beat("evaluator", "gpu-2", 600_000));
      await heartbeats.write(beat("selfplay", "cpu-1", 0, "failed"));
    } finally {
      await heartbeats.close();
    }
    const sqlite = new SqliteHeartbeatSink({ path: db });
    sqlite.write(beat("sqlite_only", "local", 0));
    await sqlite.close();
  }, 30_000);
  afterAll(async () => {
    await deleteStream(NATS_URL, heartbeatStreamName(names.stream));
    await deleteStream(NATS_URL, names.stream);
    tmp.cleanup();
  });

  it("health checks the heartbeat stream's daemons as it checks the SQLite table's", async () => {
    const run = await cli(["health", ...nats, "--json"]);
    expect(run.code).toBe(1);
    const report = run.json();
    expect(report.heartbeats).toEqual({
      source: "nats",
      stream: heartbeatStreamName(names.stream),
    });
    const byName = Object.fromEntries(report.checks.map((c: { check: string }) => [c.check, c]));
    expect(byName["daemon:trainer"]).toMatchObject({ status: "ok" });
    expect(byName["daemon:evaluator"]).toMatchObject({ status: "fail", threshold: 120_000 });
    expect(byName["daemon:evaluator"].message).toContain("stale: last heartbeat 10m");
    expect(byName["daemon:selfplay"]).toMatchObject({ status: "fail" });
    expect(byName["daemon:selfplay"].message).toContain("failed: selfplay is failed");
    expect(byName.daemons).toBeUndefined();
  });

  it("prefers the heartbeat stream to the --db file, which still gives the dead letters", async () => {
    const run = await cli(["health", ...nats, "--db", db, "--json"]);
    const report = run.json();
    expect(report.heartbeats).toMatchObject({ source: "nats" });
    const checks = report.checks.map((c: { check: string }) => c.check);
    expect(checks).toContain("daemon:trainer");
    expect(checks).not.toContain("daemon:sqlite_only");
    expect(report.checks).toContainEqual(
      expect.objectContaining({ check: "dead-letters", status: "ok", value: 0 }),
    );
  });

  it("daemons lists the latest heartbeat of every daemon from the stream", async () => {
    const json = await cli(["daemons", ...nats, "--json"]);
    expect(json.code).toBe(0);
    expect(json.json().daemons).toEqual([
      expect.objectContaining({ daemon: "evaluator", host: "gpu-2", status: "running" }),
      expect.objectContaining({ daemon: "selfplay", status: "failed" }),
      expect.objectContaining({
        daemon: "trainer",
        host: "gpu-1",
        status: "running",
        stats: { eventsProcessed: 12, eventsDeduplicated: 3, errorsCount: 1 },
      }),
    ]);
    const table = await cli(["daemons", ...nats]);
    expect(table.stdout).toMatch(
      /trainer\s+running\s+healthy\s+\S+ ago\s+4242\s+gpu-1\s+12\s+3\s+1/,
    );
    expect(table.stdout).toMatch(/selfplay\s+failed\s+unhealthy: selfplay is failed/);
  });

  it("daemons says which stream it read when no daemon wrote there", async () => {
    const other = { stream: `${names.stream}_OTHER`, prefix: names.prefix };
    const run = await cli(["daemons", ...natsArgs(other)]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      `No daemon heartbeats in stream ${heartbeatStreamName(other.stream)} (prefix ${names.prefix})`,
    );
  });
});
