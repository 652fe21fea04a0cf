import { createEnvelope } from "@switchyard/event-schema";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { normalizeEventPayload } from "./normalize";

const payload = { config_key: "hex8_2p", model_path: "models/hex8_2p.pt", elo: 1612 };

describe("normalizeEventPayload", () => {
  it.each([
    [
      "an envelope made by createEnvelope",
      createEnvelope({ type: "MODEL_PROMOTED", source: "d", data: payload }),
    ],
    ["an object with specversion", { specversion: "1.0", data: payload }],
    ["an object with a string type and an object data", { type: "X", data: payload }],
    ["an object with payload", { event_type: "X", payload }],
    ["an object with metadata", { metadata: payload }],
    ["a plain payload", payload],
    ["a JSON string of an envelope", JSON.stringify({ specversion: "1.0", data: payload })],
    ["a JSON string of a payload", JSON.stringify(payload)],
    [
      "an envelope whose data is a JSON string",
      { specversion: "1.0", data: JSON.stringify(payload) },
    ],
    ["a payload field holding a JSON string", { payload: JSON.stringify(payload) }],
    [
      "a { type, data } row whose data is a JSON string",
      { type: "X", data: JSON.stringify(payload) },
    ],
    ["a null-prototype payload", Object.assign(Object.create(null) as object, payload)],
  ])("returns the payload of %s", (_shape, event) => {
    expect(normalizeEventPayload(event)).toEqual(payload);
  });

  it("returns the payload object itself, not a copy", () => {
    expect(normalizeEventPayload({ payload })).toBe(payload);
    expect(normalizeEventPayload(payload)).toBe(payload);
  });

  it("prefers payload over metadata", () => {
    expect(normalizeEventPayload({ payload: { a: 1 }, metadata: { b: 2 } })).toEqual({ a: 1 });
  });

  it("treats an object whose payload is not an object as the payload itself", () => {
    expect(normalizeEventPayload({ payload: 5, a: 1 })).toEqual({ payload: 5, a: 1 });
  });

  it.each([
    ["null", null],
    ["undefined", undefined],
    ["a number", 42],
    ["NaN", Number.NaN],
    ["a boolean", true],
    ["a bigint", 10n],
    ["a symbol", Symbol("x")],
    ["a function", () => payload],
    ["an array", [payload]],
    ["an empty string", ""],
    ["invalid JSON", "{config_key:"],
    ["a JSON array", "[1,2]"],
    ["a JSON number", "42"],
    ["a JSON string of a JSON object string", JSON.stringify(JSON.stringify(payload))],
    ["a Date", new Date(0)],
    ["a Map", new Map([["config_key", "hex8_2p"]])],
    ["an envelope with null data", { specversion: "1.0", type: "X", data: null }],
    ["an envelope with array data", { specversion: "1.0", type: "X", data: [1] }],
    ["an envelope with invalid JSON data", { specversion: "1.0", type: "X", data: "{" }],
    ["an envelope without data", { specversion: "1.0", type: "X" }],
  ])("returns {} for %s", (_shape, event) => {
    expect(normalizeEventPayload(event)).toEqual({});
  });

  it("returns {} instead of throwing when a getter throws", () => {
    const hostile = {
      get specversion(): string {
        throw new Error("boom");
      },
    };
    expect(normalizeEventPayload(hostile)).toEqual({});
  });

  it("returns {} instead of throwing for a revoked proxy", () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(normalizeEventPayload(proxy)).toEqual({});
  });

  it("never throws and always returns an object, whatever it is given", () => {
    fc.assert(
      fc.property(fc.anything({ withObjectString: true, withNullPrototype: true }), (value) => {
        const result = normalizeEventPayload(value);
        expect(typeof result).toBe("object");
        expect(result).not.toBeNull();
        expect(Array.isArray(result)).toBe(false);
      }),
    );
  });
});
