import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createEnvelope, pipelineStages } from "@switchyard/event-schema";
import { natsTransport } from "@switchyard/transport-nats";
import { afterAll, beforeAll, expect, it } from "vitest";
// The NATS suites' shared helpers: under CI=true an unreachable server fails instead of skipping.
import {
  NATS_URL,
  deleteStream,
  deleteStreams,
  describeIf,
  natsAvailable,
  streamFamily,
  uniqueNames,
} from "../../transport-nats/src/test/nats";
import { cli } from "./test/fixture";

const available = await natsAvailable();

describeIf(available, "pipeline verify on a stream that removed events", { tags: ["slow"] }, () => {
  const names = uniqueNames("clihorizon");
  const args = ["--transport", `${NATS_URL}/${names.stream}?prefix=${names.prefix}`];

  beforeAll(async () => {
    const transport = natsTransport({ servers: NATS_URL, ...names, retention: "limits" });
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
    await transport.close();
    // What max age or size limits do over time: the oldest messages go.
    const nc = await connect({ servers: NATS_URL });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.purge(names.stream, { keep: 1 });
    } finally {
      await nc.close();
    }
  }, 30_000);
  afterAll(() => deleteStream(NATS_URL, names.stream));

  it("warns that the window starts before the stream's first message and marks those stages unknown", async () => {
    const run = await cli(["pipeline", "verify", "hex8_2p", "--hours", "48", ...args, "--json"]);
    expect(run.code).toBe(1);
    const result = run.json();
    expect(result.warnings).toEqual([
      expect.stringMatching(/older events were removed by the nats transport's retention/),
    ]);
    expect(result.stages.filter((s: { uncertain?: true }) => s.uncertain)).toHaveLength(
      pipelineStages.length - 1,
    );
    expect(Date.parse(result.coveredSince)).toBeGreaterThan(Date.parse(result.since));
  });
});

/** The streams of `family` that exist on the server: asked one by one, and listed. */
async function existing(family: readonly string[]): Promise<{ info: string[]; names: string[] }> {
  const nc = await connect({ servers: NATS_URL, timeout: 2_000, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    const info: string[] = [];
    for (const name of family)
      if (
        await jsm.streams.info(name).then(
          () => true,
          () => false,
        )
      )
        info.push(name);
    const names: string[] = [];
    for await (const name of jsm.streams.names()) if (family.includes(name)) names.push(name);
    return { info, names };
  } finally {
    await nc.close();
  }
}

describeIf(available, "commands on a NATS stream that does not exist", { tags: ["slow"] }, () => {
  // Each command gets its own missing stream, so one that creates it cannot hide another that does.
  const streams: string[] = [];
  afterAll(async () => {
    for (const stream of streams) await deleteStreams(NATS_URL, stream);
  });

  // A misspelt stream is an input error (2) naming it, as a missing SQLite file is, and no command
  // creates it (nor its dead-letter, attempt, heartbeat or receipt streams): a write command
  // used to create an empty stream and report "No dead letters match" (exit 0).
  it.each([
    ["read", ["dlq", "list"]],
    ["read", ["stats"]],
    ["write", ["dlq", "replay", "--subscriber", "evaluator"]],
    ["write", ["dlq", "purge", "--older-than", "7d", "--yes"]],
    ["write", ["queue", "clear", "--pending", "--yes"]],
    ["write", ["audit"]],
  ])("%s command %j exits 2 naming the stream, and creates no stream", async (_, command) => {
    const names = uniqueNames("climissing");
    streams.push(names.stream);
    const args = ["--transport", `${NATS_URL}/${names.stream}?prefix=${names.prefix}`];
    const run = await cli([...command, ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      new RegExp(`^error: NATS at nats://\\S+ has no stream "${names.stream}"\\.`, "m"),
    );
    expect(run.stderr).not.toMatch(/\n\s+at /);
    const json = await cli([...command, ...args, "--json"]);
    expect(json.code).toBe(2);
    expect(json.json().error).toMatchObject({ code: "NATS_STREAM_NOT_FOUND" });
    expect(await existing(streamFamily(names.stream))).toEqual({ info: [], names: [] });
  });
});
