import { describe, expect, it } from "vitest";
import { z } from "zod";
import { pipelineCatalog } from "./catalog/pipeline";
import { catalogContracts, typeContract } from "./contracts";
import { defineCatalog, defineEvent } from "./define";
import type { PayloadSchema } from "./define";

const shop = (data: PayloadSchema, description = "An order", version = 1) =>
  defineCatalog([defineEvent({ type: "ORDER_PLACED", description, version, data })]);

describe("type contracts", () => {
  it("hashes the payload's shape: the same for the same shape, different for another", () => {
    const a = typeContract(shop(z.object({ id: z.string(), total: z.number() })), "ORDER_PLACED");
    const b = typeContract(shop(z.object({ total: z.number(), id: z.string() })), "ORDER_PLACED");
    const c = typeContract(shop(z.object({ id: z.string(), total: z.string() })), "ORDER_PLACED");
    expect(a).toEqual({
      type: "ORDER_PLACED",
      version: 1,
      schemaHash: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(b.schemaHash).toBe(a.schemaHash); // key order does not matter
    expect(c.schemaHash).not.toBe(a.schemaHash); // a field changed type
  });

  it("ignores documentation, keeps the version", () => {
    const shape = () => z.object({ id: z.string().describe("the order id") });
    const a = typeContract(shop(shape(), "An order"), "ORDER_PLACED");
    const b = typeContract(
      shop(z.object({ id: z.string().describe("another text") }), "Reworded"),
      "ORDER_PLACED",
    );
    const v2 = typeContract(shop(shape(), "An order", 2), "ORDER_PLACED");
    expect(b.schemaHash).toBe(a.schemaHash);
    expect(v2).toMatchObject({ version: 2, schemaHash: a.schemaHash });
  });

  it("covers every type of a catalog, and rejects an unknown type", () => {
    const all = catalogContracts(pipelineCatalog);
    expect(all.map((c) => c.type)).toEqual(pipelineCatalog.types);
    expect(() => typeContract(pipelineCatalog, "NO_SUCH_TYPE")).toThrow();
  });
});
