import { createEnvelope, pipelineCatalog } from "@switchyard/event-schema";
import { describe, expect, it } from "vitest";
import { createDashboard } from "./index";
import { getJson, memory } from "./test/fixture";

describe("the pipeline graph", () => {
  it("takes a catalog as it is and draws its declared stages in order, flow on each edge", async () => {
    await using driver = await memory();
    const transport = driver.transport();
    await transport.subscribe({
      subscriber: "trainer",
      types: ["NPZ_EXPORT_COMPLETE"],
      handler: async () => {},
    });
    await transport.publish([
      createEnvelope({
        type: "NPZ_EXPORT_COMPLETE",
        source: "exporter",
        data: { config_key: "hex8_2p" },
      }),
      createEnvelope({ type: "ORPHAN_EVENT", source: "nobody", data: {} }),
    ]);
    const dash = createDashboard(driver, { catalog: pipelineCatalog });
    const { body } = await getJson(dash, "/api/pipeline");
    const training = pipelineCatalog.pipelines.find((p) => p.name === "training")!;
    expect(body.pipelines).toContain("training");
    const labels = body.nodes.map((n: { label: string }) => n.label);
    for (const stage of training.stages) expect(labels).toContain(stage);
    const stageEdges = body.edges.filter((e: { kind: string }) => e.kind === "stage");
    expect(stageEdges).toContainEqual(
      expect.objectContaining({ from: "NPZ_EXPORT_COMPLETE", to: "TRAINING_COMPLETED", flow: 1 }),
    );
    // Laid out left to right: each stage of the pipeline right of the one before.
    const x = (label: string) =>
      body.nodes.find((n: { label: string }) => n.label === label).x as number;
    for (let i = 1; i < training.stages.length; i++)
      expect(x(training.stages[i]!)).toBeGreaterThan(x(training.stages[i - 1]!));
    // Drift: published, and no subscriber consumes it.
    expect(body.nodes.find((n: { label: string }) => n.label === "ORPHAN_EVENT").drift).toBe(true);
    expect(body.nodes.find((n: { label: string }) => n.label === "NPZ_EXPORT_COMPLETE").drift).toBe(
      false,
    );
    const page = await (await dash(new Request("http://dash.test/pipeline"))).text();
    expect(page).toMatch(/<svg\s+id="pipeline-graph"/);
    expect(page).toContain("never consumed");
  });
});
