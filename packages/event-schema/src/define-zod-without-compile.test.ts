import { describe, expect, it, vi } from "vitest";
import type * as zod from "zod";

// The peer range admits zod 4 minors without `z.compile`: the catalog must still validate.
vi.mock("zod", async (importOriginal) => {
  const actual = await importOriginal<typeof zod>();
  return { ...actual, z: { ...actual.z, compile: undefined } };
});

const { z } = await import("zod");
const { defineCatalog, defineEvent } = await import("./define");
const { EventValidationError } = await import("./errors");

describe("catalog.parse on a zod without z.compile", () => {
  it("validates with the runtime parser", () => {
    expect(z.compile).toBeUndefined();
    const catalog = defineCatalog([
      defineEvent({
        type: "PING",
        description: "test event",
        data: z.looseObject({ n: z.number().int() }),
      }),
    ]);
    expect(catalog.parse("PING", { n: 1, extra: "x" })).toEqual({ n: 1, extra: "x" });
    expect(() => catalog.parse("PING", { n: 1.5 })).toThrow(EventValidationError);
    expect(catalog.safeParse("PING", { n: "one" }).success).toBe(false);
  });
});
