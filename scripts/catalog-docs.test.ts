// docs/events.md is generated from the catalog: this fails when the committed file is not what the
// catalog and the daemons' contracts generate now (run `pnpm docs:catalog` and commit it).
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { defineCatalog, defineEvent, pipelineCatalog } from "@switchyard/event-schema";
import { z } from "zod";
import { HandlerBase } from "@switchyard/handler-base";
import { describe, expect, it } from "vitest";
import { pipelineDaemons } from "../apps/training-pipeline/src/daemons/index.js";
import { daemonContracts, daemonsDir, eventsDocPath, renderCatalogDocs } from "./catalog-docs.js";

/** A daemon with no source file in the app: only what it declares can put it in the matrix. */
class Auditor extends HandlerBase.for(pipelineCatalog) {
  protected override subscriptions() {
    return this.on({ MODEL_PROMOTED: () => {} });
  }
}

describe("the generated event reference", () => {
  it("docs/events.md is what pnpm docs:catalog generates from the catalog", async () => {
    expect(readFileSync(eventsDocPath, "utf8")).toBe(await renderCatalogDocs());
  });

  it("builds the matrix from what each daemon declares in its contracts, not from its source", async () => {
    const daemons = daemonContracts({
      auditor: {
        create: (router) => new Auditor({ name: "auditor", router, publishes: ["QUALITY_ALERT"] }),
      },
    });
    expect(daemons).toEqual([
      { name: "auditor", consumes: ["MODEL_PROMOTED"], publishes: ["QUALITY_ALERT"] },
    ]);
    const markdown = await renderCatalogDocs(pipelineCatalog, daemons);
    expect(markdown).toMatch(/\| `QUALITY_ALERT` +\| auditor +\| — +\|/);
    expect(markdown).toMatch(/\| `MODEL_PROMOTED` +\| — +\| auditor +\|/);
  });

  it("keeps a union or enum field in its one table cell (each | escaped once)", async () => {
    const catalog = defineCatalog([
      defineEvent({
        type: "PARCEL_SCANNED",
        description: "A parcel was scanned",
        data: z.object({
          parcel: z.union([z.number().int(), z.string().min(1)]),
          state: z.enum(["in", "out"]),
        }),
      }),
    ]);
    const markdown = await renderCatalogDocs(catalog, []);
    expect(markdown).toMatch(/\| `parcel` +\| integer \\\| string non-empty +\| yes +\| +\|\n/);
    expect(markdown).toMatch(/\| `state` +\| "in" \\\| "out" +\| yes +\| +\|\n/);
  });

  it("announces each daemon's subscriptions as the supervisor registers them", () => {
    const announced = Object.fromEntries(
      daemonContracts().map((d) => [d.name, [...d.consumes].sort()]),
    );
    const registered = Object.fromEntries(
      Object.entries(pipelineDaemons).map(([name, spec]) => [name, [...spec.consumes].sort()]),
    );
    expect(announced).toEqual(registered);
  });

  it("declares in publishes every type a daemon's source emits", () => {
    // The declarations are what the matrix shows: an emit left out of them would go missing.
    const emitted: Record<string, string[]> = {};
    for (const entry of readdirSync(daemonsDir)) {
      const source = readFileSync(join(daemonsDir, entry), "utf8");
      const name = /super\(\s*"([^"]+)"/.exec(source)?.[1];
      if (!name) continue;
      const types = [...source.matchAll(/this\.emit\(\s*"([A-Z][A-Z0-9_]*)"/g)].map((m) => m[1]!);
      emitted[name] = [...new Set(types)].sort();
    }
    const declared = Object.fromEntries(
      daemonContracts().map((d) => [d.name, [...d.publishes].sort()]),
    );
    expect(declared).toEqual(emitted);
  });

  it("draws each declared pipeline as a Mermaid flowchart, stage by stage", async () => {
    const markdown = await renderCatalogDocs();
    const training = pipelineCatalog.pipeline("training")!;
    const block = /```mermaid\nflowchart LR\n([\s\S]*?)```/.exec(markdown)?.[1] ?? "";
    for (const stage of training.stages) expect(block).toContain(`"${stage}"`);
    expect(block).toContain("s0 -->|data_sync| s1");
    expect(markdown).toContain("### Pipeline training");
  });
});
