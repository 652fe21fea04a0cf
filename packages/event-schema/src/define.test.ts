import { describe, expect, it } from "vitest";
import { z } from "zod";
import { pipelineCatalog } from "./catalog/pipeline";
import { defineCatalog, defineEvent } from "./define";
import { createEnvelope } from "./envelope";
import { EventValidationError } from "./errors";

const Ping = defineEvent({
  type: "PING",
  description: "test event",
  data: z.looseObject({ n: z.number().int(), tags: z.array(z.string()).optional() }),
});
const Pong = defineEvent({
  type: "PONG",
  description: "durable test event",
  durable: true,
  data: z.looseObject({}),
});
const catalog = defineCatalog([Ping, Pong]);

function catchError(fn: () => unknown): EventValidationError {
  try {
    fn();
  } catch (error) {
    if (error instanceof EventValidationError) return error;
    throw error;
  }
  throw new Error("expected an EventValidationError");
}

describe("defineEvent", () => {
  it("applies the documented defaults", () => {
    expect(Ping).toMatchObject({
      version: 1,
      durable: false,
      severity: "informational",
      alert: undefined,
    });
  });

  it.each(["ping", "Ping_Event", "PING-EVENT", "_PING", ""])("rejects the type name %j", (type) => {
    expect(() => defineEvent({ type, description: "", data: z.looseObject({}) })).toThrow(
      /UPPER_SNAKE_CASE/,
    );
  });

  it("rejects a version that is not a positive integer", () => {
    expect(() =>
      defineEvent({ type: "A", version: 0, description: "", data: z.looseObject({}) }),
    ).toThrow(/positive integer/);
  });
});

describe("defineCatalog", () => {
  it("rejects a type defined twice", () => {
    expect(() => defineCatalog([Ping, Ping])).toThrow(/PING is defined twice/);
  });

  it("lists types in declaration order and knows which are durable", () => {
    expect(catalog.types).toEqual(["PING", "PONG"]);
    expect([...catalog.durableTypes]).toEqual(["PONG"]);
    expect(catalog.isDurable("PONG")).toBe(true);
    expect(catalog.isDurable("PING")).toBe(false);
    expect(catalog.isDurable("NOPE")).toBe(false);
  });

  it("answers has() for known, unknown and non-string types", () => {
    expect(catalog.has("PING")).toBe(true);
    expect(catalog.has("NOPE")).toBe(false);
    expect(catalog.has(42)).toBe(false);
    expect(catalog.has("toString")).toBe(false);
  });

  it("extends into a new catalog and leaves the original alone", () => {
    const more = catalog.extend([
      defineEvent({ type: "PANG", description: "", data: z.looseObject({}) }),
    ]);
    expect(more.types).toEqual(["PING", "PONG", "PANG"]);
    expect(catalog.has("PANG")).toBe(false);
    expect(() => catalog.extend([Ping])).toThrow(/defined twice/);
  });
});

describe("catalog.parse", () => {
  it("returns the payload and keeps unknown fields (forward compatibility)", () => {
    expect(catalog.parse("PING", { n: 1, future_field: "x" })).toEqual({ n: 1, future_field: "x" });
  });

  it("names every failing field with the type it received", () => {
    const error = catchError(() => catalog.parse("PING", { n: "one", tags: [1] }));
    expect(error.reason).toBe("invalid_payload");
    expect(error.eventType).toBe("PING");
    expect(error.code).toBe("EVENT_VALIDATION_FAILED");
    expect(error.issues.map((i) => [i.path, i.received])).toEqual([
      ["n", "string"],
      ["tags.0", "number"],
    ]);
    expect(error.message).toContain("n:");
    expect(error.message).toContain("received string");
    expect(error.cause).toBeDefined();
  });

  it("reports a missing required field as received undefined", () => {
    const error = catchError(() =>
      pipelineCatalog.parse("TRAINING_COMPLETED", { config_key: "hex8_2p", model_path: "m.pt" }),
    );
    expect(error.issues).toEqual([
      expect.objectContaining({ path: "loss", received: "undefined" }),
    ]);
  });

  it.each([
    ["null", null, "null"],
    ["an array", [], "array"],
    ["a string", "{}", "string"],
  ])("rejects %s as payload and says what it got", (_name, value, received) => {
    const error = catchError(() => catalog.parse("PING", value));
    expect(error.receivedType).toBe(received);
  });

  it("rejects an unknown type and suggests the closest known one", () => {
    const error = catchError(() => pipelineCatalog.parse("TRAINNG_COMPLETED" as never, {}));
    expect(error.reason).toBe("unknown_type");
    expect(error.eventType).toBe("TRAINNG_COMPLETED");
    expect(error.message).toContain('Did you mean "TRAINING_COMPLETED"?');
  });

  it("safeParse returns the error instead of throwing", () => {
    const bad = catalog.safeParse("PING", { n: 1.5 });
    expect(bad.success).toBe(false);
    expect(bad.error).toBeInstanceOf(EventValidationError);
    const good = catalog.safeParse("PING", { n: 2 });
    expect(good).toEqual({ success: true, data: { n: 2 } });
  });

  it("returns the schema's parsed output and its issues, call after call (compiled schemas)", () => {
    const Shaped = defineEvent({
      type: "SHAPED",
      description: "transforms, defaults and a refinement",
      data: z.looseObject({
        name: z.string().trim().toLowerCase(),
        count: z.number().int().default(1),
        window: z
          .object({ from: z.number(), to: z.number() })
          .refine((w) => w.from <= w.to, { message: "from after to" }),
      }),
    });
    const shaped = defineCatalog([Shaped]);
    const input = { name: "  Hex8 ", window: { from: 1, to: 2 }, extra: true };
    for (let i = 0; i < 3; i++) {
      const parsed = shaped.parse("SHAPED", input);
      expect(parsed).toEqual({ name: "hex8", count: 1, window: { from: 1, to: 2 }, extra: true });
      expect(parsed).not.toBe(input);
      expect(input.name).toBe("  Hex8 "); // the caller's object is left alone
      const error = catchError(() =>
        shaped.parse("SHAPED", { name: 3, count: 1.5, window: { from: 2, to: 1 } }),
      );
      const runtime = Shaped.data.safeParse({ name: 3, count: 1.5, window: { from: 2, to: 1 } });
      expect(error.issues.map((issue) => issue.path)).toEqual(
        runtime.error!.issues.map((issue) => issue.path.join(".")),
      );
      expect(error.issues.map((issue) => issue.path)).toEqual(["name", "count", "window"]);
      expect(shaped.safeParse("SHAPED", { ...input, window: { from: 3, to: 1 } })).toMatchObject({
        success: false,
        error: { issues: [expect.objectContaining({ path: "window", message: "from after to" })] },
      });
    }
  });

  it("keeps each type's own schema when parse and get alternate between types (last-type memo)", () => {
    const catalog = defineCatalog([
      defineEvent({ type: "A", description: "t", data: z.object({ a: z.number() }) }),
      defineEvent({ type: "B", description: "t", data: z.object({ b: z.string() }) }),
    ]);
    expect(catalog.parse("A", { a: 1 })).toEqual({ a: 1 });
    expect(catalog.get("B").type).toBe("B");
    expect(catalog.parse("B", { b: "x" })).toEqual({ b: "x" });
    expect(catalog.get("A").type).toBe("A");
    expect(() => catalog.parse("A", { b: "x" })).toThrow(EventValidationError);
    expect(() => catalog.parse("C" as never, { a: 1 })).toThrow(/Unknown event type "C"/);
    expect(() => catalog.get("C" as never)).toThrow(/Unknown event type "C"/);
    expect(catalog.parse("A", { a: 2 })).toEqual({ a: 2 });
    expect(catalog.get("B").version).toBe(1);
    expect(() => catalog.parse("B", { a: 2 })).toThrow(EventValidationError);
  });

  it("get() throws for an unknown type", () => {
    expect(() => catalog.get("NOPE" as never)).toThrow(EventValidationError);
    expect(catalog.get("PING")).toBe(Ping);
  });
});

describe("catalog.parseEnvelope", () => {
  it("validates attributes, type and payload of a received envelope", () => {
    const e = createEnvelope({ type: "PING", source: "test", data: { n: 3 } });
    const parsed = catalog.parseEnvelope(JSON.parse(JSON.stringify(e)));
    expect(parsed).toEqual(e);
  });

  it("rejects an envelope with a missing attribute as invalid_envelope", () => {
    const { source: _source, ...rest } = createEnvelope({
      type: "PING",
      source: "test",
      data: { n: 3 },
    });
    const error = catchError(() => catalog.parseEnvelope(rest));
    expect(error.reason).toBe("invalid_envelope");
    expect(error.issues[0]?.path).toBe("source");
  });

  it("rejects a valid envelope whose payload breaks the contract", () => {
    const e = createEnvelope({ type: "PING", source: "test", data: { n: "x" } });
    expect(catchError(() => catalog.parseEnvelope(e)).reason).toBe("invalid_payload");
  });

  it("regression: given the JSON text of an envelope, says a string came and to JSON.parse it", () => {
    const text = JSON.stringify(createEnvelope({ type: "PING", source: "test", data: { n: 3 } }));
    for (const value of [text, `  \n\t${text}`]) {
      const error = catchError(() => catalog.parseEnvelope(value));
      // Before the fix: "… expected object, received string (received string)." and no hint.
      expect(error.message).toBe(
        "Not a valid event envelope: expected an envelope object, received a string that looks " +
          "like JSON text: JSON.parse it first.",
      );
      expect(error).toMatchObject({
        code: "EVENT_VALIDATION_FAILED",
        reason: "invalid_envelope",
        eventType: "<unknown>",
        receivedType: "string",
        issues: [expect.objectContaining({ path: "", code: "invalid_type", received: "string" })],
      });
    }
  });

  it("regression: given a string that is not JSON text, says a string came, without the hint", () => {
    for (const value of ["PING", "", "[1]"]) {
      const error = catchError(() => catalog.parseEnvelope(value));
      expect(error.message).toBe(
        "Not a valid event envelope: expected an envelope object, received a string.",
      );
      expect(error.receivedType).toBe("string");
    }
  });

  it("regression: names what it received once, not twice", () => {
    for (const value of [42, null, [1]]) {
      const error = catchError(() => catalog.parseEnvelope(value));
      const received = error.receivedType;
      // Before the fix: "(value): Invalid input: expected object, received number (received number)".
      expect(error.message.split(`received ${received}`)).toHaveLength(2);
    }
    const payload = catchError(() => catalog.parse("PING", { n: "x" }));
    expect(payload.message.split("received string")).toHaveLength(2);
  });
});

describe("catalog.toJSONSchema", () => {
  it("gives one JSON Schema per event with its contract and metadata", () => {
    const schemas = pipelineCatalog.toJSONSchema();
    expect(Object.keys(schemas)).toEqual(pipelineCatalog.types);
    const training = schemas.TRAINING_COMPLETED;
    expect(training).toMatchObject({
      type: "object",
      title: "TRAINING_COMPLETED",
      required: expect.arrayContaining(["config_key", "model_path", "loss"]),
      "x-switchyard": { version: 1, durable: true, severity: "critical" },
    });
    expect(schemas.DATA_SYNC_FAILED["x-switchyard"]).toMatchObject({
      alert: { kind: "rate", moreThan: 3, withinMs: 3_600_000 },
    });
    // Round-trips through JSON: nothing unrepresentable leaks out.
    expect(JSON.parse(JSON.stringify(schemas))).toEqual(schemas);
  });
});

describe("a payload that cannot be read", () => {
  const payload = () => ({
    config_key: "hex8_2p",
    model_path: "models/hex8_2p/gen-1.pt",
    get elo(): number {
      throw new Error("elo getter exploded");
    },
  });
  const revoked = () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    return proxy;
  };

  it("fails parse with EventValidationError (invalid_payload) naming what threw, not the getter's error", () => {
    for (const data of [payload(), revoked()]) {
      let caught: unknown;
      try {
        pipelineCatalog.parse("MODEL_PROMOTED", data);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(EventValidationError);
      expect(caught).toMatchObject({
        eventType: "MODEL_PROMOTED",
        reason: "invalid_payload",
        issues: [{ path: "", code: "unreadable" }],
      });
      expect((caught as Error).message).toMatch(/^The MODEL_PROMOTED payload could not be read/);
    }
  });

  it("fails safeParse and parseEnvelope the same way, without throwing from safeParse", () => {
    const result = pipelineCatalog.safeParse("MODEL_PROMOTED", payload());
    expect(result.success).toBe(false);
    expect(!result.success && result.error).toMatchObject({ reason: "invalid_payload" });
    const envelope = {
      ...createEnvelope({ type: "MODEL_PROMOTED", source: "s", data: {} }),
      get data(): unknown {
        throw new Error("data getter exploded");
      },
    };
    expect(() => pipelineCatalog.parseEnvelope(envelope)).toThrow(EventValidationError);
  });
});
