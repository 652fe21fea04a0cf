/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return -- the API answers JSON, checked by value */
import { createEnvelope } from "@switchyard/event-schema";
import { describe, expect, it } from "vitest";
import { verifyPipeline, verifyPipelineKeys } from "@switchyard/transport";
import { createDashboard } from "./index";
import { getJson, memory } from "./test/fixture";

const STAGES = ["GAMES", "TRAINED", "PROMOTED"] as const;
const training = { name: "training", key: "config_key", stages: STAGES };

const event = (type: string, key: string, subject?: string) =>
  createEnvelope({ type, source: "t", data: { config_key: key }, ...(subject ? { subject } : {}) });

describe("the pipeline verification per key", () => {
  it("gives each key its stages with counts, last time and verdict — the rule of pipeline verify", async () => {
    await using driver = await memory();
    const transport = driver.transport();
    await transport.publish([
      event("GAMES", "hex8_2p"),
      event("GAMES", "hex8_2p"),
      event("TRAINED", "hex8_2p"),
      event("PROMOTED", "hex8_2p"),
      event("GAMES", "sq8_4p"),
      event("TRAINED", "sq8_4p"),
      // Counts for its subject and for its payload key: the rule matches either.
      event("GAMES", "both_b", "both_a"),
      event("UNRELATED", "hex8_2p"),
    ]);
    const inspector = driver.inspector();
    const result = await verifyPipelineKeys(inspector, { stages: STAGES, hours: 1 });
    expect(result.key).toBe("config_key");
    expect(result.warnings).toEqual([]);
    const by = Object.fromEntries(result.keys.map((k) => [k.key, k]));
    expect(Object.keys(by).sort()).toEqual(["both_a", "both_b", "hex8_2p", "sq8_4p"]);
    expect(by.hex8_2p!.stages.map((s) => s.count)).toEqual([2, 1, 1]);
    expect(by.hex8_2p).toMatchObject({ ok: true, verdict: "complete", missing: [] });
    expect(by.sq8_4p).toMatchObject({ ok: false, verdict: "incomplete", missing: ["PROMOTED"] });
    expect(by.both_a!.stages.map((s) => s.count)).toEqual([1, 0, 0]);
    expect(by.both_b!.stages.map((s) => s.count)).toEqual([1, 0, 0]);
    expect(by.hex8_2p!.lastAt).toBe(by.hex8_2p!.stages[2]!.lastAt);
    // One key through verifyPipeline: the same answer.
    for (const key of Object.keys(by)) {
      const one = await verifyPipeline(inspector, key, { stages: STAGES, hours: 1 });
      const { key: _key, ...row } = by[key]!;
      expect(one).toMatchObject(row);
    }
    // A window ending in the very millisecond the newest was stored holds it.
    const newest = (await inspector.events({ types: [...STAGES], limit: 1 })).events[0]!;
    const atEnd = await verifyPipeline(inspector, "both_b", {
      stages: STAGES,
      hours: 1,
      now: Date.parse(newest.storedAt),
    });
    expect(atEnd.stages[0]!.count).toBe(1);
    // A window that ends before they were stored holds no key.
    const before = await verifyPipelineKeys(inspector, {
      stages: STAGES,
      hours: 1,
      now: Date.now() - 3_600_000,
    });
    expect(before.keys).toEqual([]);
  });

  it("marks stages not known, not missing, when the read was cut short, and says so", async () => {
    await using driver = await memory();
    await driver.transport().publish([event("GAMES", "k1"), event("TRAINED", "k1")]);
    const result = await verifyPipelineKeys(driver.inspector(), { stages: STAGES, maxEvents: 1 });
    expect(result.warnings).toEqual([expect.stringMatching(/^Only the oldest 1 events/)]);
    expect(result.keys).toEqual([
      expect.objectContaining({ key: "k1", ok: false, verdict: "uncertain" }),
    ]);
    expect(result.keys[0]!.stages.map((s) => s.uncertain ?? false)).toEqual([false, true, true]);
  });

  it("shows a table per key on the Pipeline page and in GET api/pipeline/keys, escaped", async () => {
    await using driver = await memory();
    await driver
      .transport()
      .publish([
        event("GAMES", "hex8_2p"),
        event("TRAINED", "hex8_2p"),
        event("PROMOTED", "hex8_2p"),
        event("GAMES", "<script>window.__pwned=1</script>"),
      ]);
    const dash = createDashboard(driver, { catalog: { pipelines: [training] } });
    const { status, body } = await getJson(dash, "/api/pipeline/keys?window=15m");
    expect(status).toBe(200);
    expect(body.window).toBe("15m");
    expect(body.pipelines).toHaveLength(1);
    const [view] = body.pipelines;
    expect(view).toMatchObject({ pipeline: "training", key: "config_key", hours: 0.25 });
    expect(view.keys.map((k: any) => [k.key, k.verdict])).toEqual(
      expect.arrayContaining([
        ["hex8_2p", "complete"],
        ["<script>window.__pwned=1</script>", "incomplete"],
      ]),
    );
    expect((await getJson(dash, "/api/pipeline/keys?window=3y")).status).toBe(400);

    const page = await (await dash(new Request("http://dash.test/pipeline?window=15m"))).text();
    const table = page.slice(page.indexOf('id="keys-0"'));
    expect(table).toMatch(/<tr data-key="hex8_2p">[\s\S]*?✓ 1[\s\S]*?complete/);
    expect(table).toContain("missing TRAINED, PROMOTED");
    expect(page).toContain("&lt;script&gt;window.__pwned=1&lt;/script&gt;");
    expect(page).not.toContain("<script>window.__pwned");
  });

  it("says when no key had an event of a declared pipeline", async () => {
    await using driver = await memory();
    const dash = createDashboard(driver, { catalog: { pipelines: [training] } });
    const page = await (await dash(new Request("http://dash.test/pipeline"))).text();
    expect(page).toContain('id="keys-0-none"');
  });
});
