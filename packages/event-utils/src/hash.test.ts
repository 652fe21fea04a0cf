import { createHash } from "node:crypto";
import { createEnvelope } from "@switchyard/event-schema";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "./canonical-json";
import { eventContentHash } from "./hash";

const payload = { config_key: "hex8_2p", model_path: "models/hex8_2p.pt", loss: 0.42 };
class Score {
  constructor(readonly score: number) {}
}
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** A copy of `value` with the keys of every plain object in a random order. */
function shuffleKeys(value: unknown, random: () => number): unknown {
  if (Array.isArray(value)) return value.map((item) => shuffleKeys(item, random));
  if (typeof value !== "object" || value === null) return value;
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto !== Object.prototype && proto !== null) return value;
  const keys = Object.keys(value);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [keys[i], keys[j]] = [keys[j]!, keys[i]!];
  }
  const copy = Object.create(proto) as Record<string, unknown>;
  for (const key of keys) {
    // defineProperty keeps a key named "__proto__" an own field.
    Object.defineProperty(copy, key, {
      value: shuffleKeys((value as Record<string, unknown>)[key], random),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return copy;
}

function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("eventContentHash", () => {
  it("is the SHA-256 hex digest of the canonical JSON of type and payload", () => {
    expect(eventContentHash({ type: "X", data: { b: 2, a: 1 } })).toBe(
      sha256('{"data":{"a":1,"b":2},"type":"X"}'),
    );
    expect(eventContentHash({ a: 1 })).toBe(sha256('{"data":{"a":1}}'));
  });

  it("ignores the envelope id, time and source, so re-emissions collide", () => {
    const first = createEnvelope({ type: "TRAINING_COMPLETED", source: "a", data: payload });
    const again = createEnvelope({
      type: "TRAINING_COMPLETED",
      source: "b",
      data: { ...payload },
      time: new Date(0),
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    });
    expect(first.id).not.toBe(again.id);
    expect(eventContentHash(first)).toBe(eventContentHash(again));
  });

  it.each([
    ["a { event_type, payload } event", { event_type: "TRAINING_COMPLETED", payload }],
    ["a { type, payload } event", { type: "TRAINING_COMPLETED", payload }],
    [
      "a JSON string of the envelope",
      JSON.stringify({ specversion: "1.0", type: "TRAINING_COMPLETED", data: payload }),
    ],
    [
      "a { type, data } row whose data is JSON text",
      { type: "TRAINING_COMPLETED", data: JSON.stringify(payload) },
    ],
  ])("gives an envelope and %s with the same content the same hash", (_shape, event) => {
    const envelope = createEnvelope({ type: "TRAINING_COMPLETED", source: "s", data: payload });
    expect(eventContentHash(event)).toBe(eventContentHash(envelope));
  });

  it.each([
    ["the event type differs", { type: "A", data: payload }, { type: "B", data: payload }],
    ["a typed and an untyped event", { type: "A", payload }, { payload }],
    ["a payload value differs", { a: 1 }, { a: 2 }],
    ["a number and its string", { a: 1 }, { a: "1" }],
    ["a nested value differs", { a: { b: [1, 2] } }, { a: { b: [2, 1] } }],
    ["null and an absent field", { a: null }, {}],
    ["a key and its value swap", { a: "b" }, { b: "a" }],
    ["two boxed numbers differ", { a: new Number(1) }, { a: new Number(2) }],
  ])("gives different hashes when %s", (_case, left, right) => {
    expect(eventContentHash(left)).not.toBe(eventContentHash(right));
  });

  it.each([
    ["reordered keys", { a: 1, b: { c: 2, d: 3 } }, { b: { d: 3, c: 2 }, a: 1 }],
    ["an undefined field and an absent one", { a: 1, b: undefined }, { a: 1 }],
    ["NaN and null", { a: Number.NaN }, { a: null }],
    ["Infinity and null", { a: Number.POSITIVE_INFINITY }, { a: null }],
    ["a Date and its ISO string", { at: new Date(0) }, { at: "1970-01-01T00:00:00.000Z" }],
    ["undefined in an array and null", { a: [undefined] }, { a: [null] }],
    ["-0 and 0", { a: -0 }, { a: 0 }],
    ["a function field and an absent one", { a: 1, f: () => 1 }, { a: 1 }],
  ])("gives the same hash for %s", (_case, left, right) => {
    expect(eventContentHash(left)).toBe(eventContentHash(right));
  });

  it.each([
    ["an envelope's array data differs", [1, 2], [2, 1]],
    ["an envelope's string data differs", "first", "second"],
    ["an envelope's number data differs", 1, 2],
    ["an envelope's data is null or an empty object", null, {}],
    ["an envelope's data is an array or an empty object", [], {}],
    ["an envelope's class-instance data differs", new Score(1), new Score(2)],
  ])(
    "gives different hashes when %s, instead of hashing every non-object payload as {}",
    (_case, left, right) => {
      const envelope = (data: unknown) => ({ specversion: "1.0", type: "X", id: "1", data });
      expect(eventContentHash(envelope(left))).not.toBe(eventContentHash(envelope(right)));
    },
  );

  it("gives different hashes to events that are not objects, instead of hashing them all as {}", () => {
    expect(eventContentHash([1])).not.toBe(eventContentHash([2]));
    expect(eventContentHash("not json")).not.toBe(eventContentHash("other text"));
    expect(eventContentHash(7)).not.toBe(eventContentHash(8));
  });

  it("counts a payload that is not an object whole, even with keyFields", () => {
    const envelope = (data: unknown) => ({ specversion: "1.0", type: "X", data });
    const keyFields = ["config_key"];
    expect(eventContentHash(envelope([1]), { keyFields })).not.toBe(
      eventContentHash(envelope([2]), { keyFields }),
    );
  });

  it("hashes an envelope's JSON-string data as the value it holds", () => {
    const envelope = (data: unknown) => ({ specversion: "1.0", type: "X", data });
    expect(eventContentHash(envelope("[1,2]"))).toBe(eventContentHash(envelope([1, 2])));
  });

  it("counts only the keyFields of the payload when given", () => {
    const a = { type: "X", payload: { config_key: "hex8_2p", model_path: "m.pt", timestamp: 1 } };
    const b = { type: "X", payload: { model_path: "m.pt", config_key: "hex8_2p", timestamp: 2 } };
    const keyFields = ["config_key", "model_path"];
    expect(eventContentHash(a)).not.toBe(eventContentHash(b));
    expect(eventContentHash(a, { keyFields })).toBe(eventContentHash(b, { keyFields }));
  });

  it("still counts the event type with keyFields", () => {
    const keyFields = ["config_key"];
    expect(eventContentHash({ type: "A", data: payload }, { keyFields })).not.toBe(
      eventContentHash({ type: "B", data: payload }, { keyFields }),
    );
  });

  it("treats a keyField missing from the payload as absent", () => {
    expect(eventContentHash({ a: 1 }, { keyFields: ["a", "missing"] })).toBe(
      eventContentHash({ a: 1 }),
    );
  });

  it("treats a keyField named __proto__ as an ordinary field", () => {
    const withProto = JSON.parse('{"__proto__":{"x":1},"a":1}') as unknown;
    expect(eventContentHash(withProto, { keyFields: ["__proto__"] })).not.toBe(
      eventContentHash({}, { keyFields: ["__proto__"] }),
    );
  });

  it("hashes a circular payload without throwing, the same way every time", () => {
    const a: Record<string, unknown> = { x: 1 };
    a.self = a;
    a.list = [a, { back: a }];
    const hash = eventContentHash(a);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(eventContentHash(a)).toBe(hash);
  });

  it("hashes deeply nested payloads without overflowing the stack", () => {
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 100_000; i++) deep = { child: deep };
    expect(eventContentHash(deep)).toMatch(/^[0-9a-f]{64}$/);
  });

  // Bounded by the value budget, not by a clock: the text stops at the budget's marker (without
  // the budget this graph has 2^65 values and the test runs out its timeout). ~2 s of work here,
  // (2.1 s in a full local run, against the 5 s default timeout), so its own timeout.
  it("hashes an object graph whose JSON would grow exponentially, stopping at the value budget", () => {
    let shared: Record<string, unknown> = { leaf: true };
    for (let i = 0; i < 64; i++) shared = { left: shared, right: shared };
    expect(eventContentHash(shared)).toMatch(/^[0-9a-f]{64}$/);
    expect(canonicalJson(shared)).toContain('"[Truncated]"');
  }, 60_000);

  it("does not depend on the order of keys, at any depth", () => {
    fc.assert(
      fc.property(
        fc.object({ maxDepth: 3, withNullPrototype: true, withBigInt: true, withDate: true }),
        fc.integer(),
        (value, seed) => {
          const shuffled = shuffleKeys(value, seededRandom(seed));
          expect(eventContentHash(shuffled)).toBe(eventContentHash(value));
          expect(eventContentHash({ type: "X", payload: shuffled })).toBe(
            eventContentHash({ type: "X", payload: value }),
          );
        },
      ),
    );
  });

  it("does not depend on the order of keys of JSON payloads", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.integer(), (value, seed) => {
        const shuffled = shuffleKeys(value, seededRandom(seed));
        expect(eventContentHash(shuffled)).toBe(eventContentHash(value));
      }),
    );
  });

  it("never throws and always returns a hex digest, whatever it is given", () => {
    fc.assert(
      fc.property(
        fc.anything({
          withObjectString: true,
          withNullPrototype: true,
          withBigInt: true,
          withDate: true,
          withMap: true,
          withSet: true,
          withTypedArray: true,
          withSparseArray: true,
          withBoxedValues: true,
        }),
        fc.option(fc.array(fc.string())),
        (value, keyFields) => {
          const options = keyFields === null ? {} : { keyFields };
          expect(eventContentHash(value, options)).toMatch(/^[0-9a-f]{64}$/);
        },
      ),
    );
  });
});
