// docs/events.md is generated from the catalog: this fails when the committed file is not what the
// catalog and the daemons' source generate now (run `pnpm docs:catalog` and commit it).
import { readFileSync } from "node:fs";
import { pipelineCatalog } from "@switchyard/event-schema";
import { describe, expect, it } from "vitest";
import { pipelineDaemons } from "../apps/training-pipeline/src/daemons/index.js";
import { daemonContracts, eventsDocPath, renderCatalogDocs } from "./catalog-docs.js";

describe("the generated event reference", () => {
  it("docs/events.md is what pnpm docs:catalog generates from the catalog", async () => {
    expect(readFileSync(eventsDocPath, "utf8")).toBe(await renderCatalogDocs());
  });

  it("reads each daemon's subscriptions from its source as the app declares them", () => {
    const read = Object.fromEntries(daemonContracts().map((d) => [d.name, [...d.consumes].sort()]));
    const declared = Object.fromEntries(
      Object.entries(pipelineDaemons).map(([name, spec]) => [name, [...spec.consumes].sort()]),
    );
    expect(read).toEqual(declared);
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
