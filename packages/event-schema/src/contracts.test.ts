import { describe, expect, it } from "vitest";
import { z } from "zod";
import { pipelineCatalog } from "./catalog/pipeline";
import { catalogContracts, payloadSchema, schemaBreaks, typeContract } from "./contracts";
import { defineCatalog, defineEvent } from "./define";
import type { PayloadSchema } from "./define";

const shop = (data: PayloadSchema, description = "An order", version = 1) =>
  defineCatalog([defineEvent({ type: "ORDER_PLACED", description, version, data })]);

describe("type contracts", () => {
  it("hashes the payload's shape: the same for the same shape, different for another", () => {
    const a = typeContract(shop(z.object({ id: z.string(), total: z.number() })), "ORDER_PLACED");
    const b = typeContract(shop(z.object({ total: z.number(), id: z.string() })), "ORDER_PLACED");
    const c = typeContract(shop(z.object({ id: z.string(), total: z.string() })), "ORDER_PLACED");
    expect(a).toMatchObject({
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

describe("schema compatibility (contracts check's rules)", () => {
  const schemaOf = (data: PayloadSchema) => payloadSchema(shop(data), "ORDER_PLACED");
  const v1 = z.object({ id: z.string(), total: z.number(), state: z.enum(["new", "paid"]) });

  it("names a field the consumer requires that the producer does not send", () => {
    const consumer = z.object({
      id: z.string(),
      total: z.number(),
      currency: z.string(),
      state: z.enum(["new", "paid"]),
    });
    expect(schemaBreaks(schemaOf(v1), schemaOf(consumer))).toEqual([
      expect.objectContaining({ path: "currency", problem: "required_not_sent" }),
    ]);
  });

  it("names a type change and a removed enum value, nested fields by path", () => {
    const producer = z.object({
      id: z.string(),
      model: z.object({ size: z.number() }),
      state: z.enum(["new", "paid", "void"]),
    });
    const consumer = z.object({
      id: z.number(),
      model: z.object({ size: z.string() }),
      state: z.enum(["new", "paid"]),
    });
    expect(
      schemaBreaks(schemaOf(producer), schemaOf(consumer)).map((b) => [b.path, b.problem]),
    ).toEqual([
      ["id", "type_changed"],
      ["model.size", "type_changed"],
      ["state", "enum_value_removed"],
    ]);
  });

  it("treats a literal as a one-value enum: a changed literal is a break, a widened one is not", () => {
    const producer = z.object({ kind: z.literal("order"), state: z.literal("new") });
    const consumer = z.object({ kind: z.literal("purchase"), state: z.enum(["new", "paid"]) });
    expect(
      schemaBreaks(schemaOf(producer), schemaOf(consumer)).map((b) => [b.path, b.problem]),
    ).toEqual([["kind", "enum_value_removed"]]);
    expect(schemaBreaks(schemaOf(producer), schemaOf(consumer))[0]!.message).toContain('"order"');
    // A consumer that pins a literal where the producer sends any string breaks too.
    expect(
      schemaBreaks(
        schemaOf(z.object({ kind: z.string() })),
        schemaOf(z.object({ kind: z.literal("order") })),
      ).map((b) => [b.path, b.problem]),
    ).toEqual([["kind", "enum_value_removed"]]);
  });

  it("names a field sent to a consumer that forbids extra properties, nested fields by path", () => {
    const producer = v1.extend({
      note: z.string(),
      model: z.object({ size: z.number(), tag: z.string() }),
    });
    const consumer = z.strictObject({
      id: z.string(),
      total: z.number(),
      state: z.enum(["new", "paid"]),
      model: z.strictObject({ size: z.number() }),
    });
    expect(
      schemaBreaks(schemaOf(producer), schemaOf(consumer)).map((b) => [b.path, b.problem]),
    ).toEqual([
      ["note", "property_not_accepted"],
      ["model.tag", "property_not_accepted"],
    ]);
    // Extra properties checked against a catchall's schema instead.
    expect(
      schemaBreaks(
        schemaOf(z.object({ id: z.string(), note: z.string(), count: z.number() })),
        schemaOf(z.object({ id: z.string() }).catchall(z.number())),
      ).map((b) => [b.path, b.problem]),
    ).toEqual([["note", "type_changed"]]);
  });

  it("passes additive changes: optional fields on either side, extra fields sent, an enum grown", () => {
    const producer = v1.extend({ note: z.string().optional(), extra: z.number() });
    const consumer = z.object({
      id: z.string(),
      total: z.number(),
      currency: z.string().optional(),
      state: z.enum(["new", "paid", "void"]),
    });
    expect(schemaBreaks(schemaOf(producer), schemaOf(consumer))).toEqual([]);
    expect(typeContract(shop(v1), "ORDER_PLACED").schema).toEqual(schemaOf(v1));
  });
});
