import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createEnvelope, pipelineStages } from "@switchyard/event-schema";
import { natsTransport } from "@switchyard/transport-nats";
import { afterAll, beforeAll, expect, it } from "vitest";
// The NATS suites' shared helpers: under CI=true an unreachable server fails instead of skipping.
import {
  NATS_URL,
  deleteStream,
  describeIf,
  natsAvailable,
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
