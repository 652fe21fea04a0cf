// Edges of the catalog and the envelope under input a JavaScript caller or the wire can send:
// odd definitions, hostile type names, envelope attributes of the wrong type.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { pipelineCatalog } from "./catalog/pipeline";
import { defineCatalog, defineEvent } from "./define";
import { assertEnvelope, createEnvelope, isEnvelope } from "./envelope";
import { EventValidationError } from "./errors";

const Ping = defineEvent({
  type: "PING",
  description: "test event",
  data: z.looseObject({ n: z.number() }),
});
const catalog = defineCatalog([Ping]);

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

describe("envelope time: one rule on publish and on delivery", () => {
  // assertEnvelope (what transports check on publish) accepts these; parseEnvelope (what the
  // router checks on redeliver) must too, or a stored event can never be replayed.
  it.each(["2026-12-06T24:00:00Z", "2026-04-31T00:00:00Z", "2026-12-06T21:30:15.123+02:00"])(
    "parseEnvelope accepts %s as assertEnvelope does",
    (time) => {
      const envelope = { ...createEnvelope({ type: "PING", source: "s", data: { n: 1 } }), time };
      expect(isEnvelope(envelope)).toBe(true);
      expect(catalog.parseEnvelope(envelope).time).toBe(time);
    },
  );

  it.each(["2026-12-06T25:00:00Z", "2026-12-06T12:00:00", "yesterday"])(
    "parseEnvelope rejects %s with an EventValidationError naming time",
    (time) => {
      const envelope = { ...createEnvelope({ type: "PING", source: "s", data: { n: 1 } }), time };
      const error = caught(() => catalog.parseEnvelope(envelope)) as EventValidationError;
      expect(error).toBeInstanceOf(EventValidationError);
      expect(error.issues.map((i) => i.path)).toEqual(["time"]);
    },
  );
});

describe("createEnvelope with attributes of the wrong kind (JavaScript callers)", () => {
  const base = { type: "PING", source: "s", data: { n: 1 } };
  it.each([
    ["source", { ...base, source: undefined }],
    ["source", { ...base, source: 42 }],
    ["type", { ...base, type: 5 }],
    ["type", { ...base, type: "" }],
    ["id", { ...base, id: "" }],
    ["time", { ...base, time: new Date(Number.NaN) }],
    ["time", { ...base, time: "yesterday" }],
    ["dataversion", { ...base, dataversion: Number.NaN }],
    ["dataversion", { ...base, dataversion: 0 }],
    ["data", { ...base, data: undefined }],
    ["traceparent", { ...base, traceparent: 7 }],
  ])("throws an EventValidationError naming %s", (path, options) => {
    const error = caught(() => createEnvelope(options as never)) as EventValidationError;
    expect(error).toBeInstanceOf(EventValidationError);
    expect(error.reason).toBe("invalid_envelope");
    expect(error.issues.map((i) => i.path)).toContain(path);
  });

  it("still builds from a valid Date and the defaults", () => {
    const e = createEnvelope({ ...base, time: new Date(0), dataversion: 2 });
    expect(e.time).toBe("1970-01-01T00:00:00.000Z");
    expect(() => assertEnvelope(e)).not.toThrow();
  });
});

describe("catalog lookups with hostile type names", () => {
  it("rejects a non-string type as unknown without running its toString", () => {
    const type = {
      toString(): string {
        throw new Error("toString ran");
      },
    };
    for (const call of [
      () => catalog.parse(type as never, { n: 1 }),
      () => catalog.get(type as never),
    ]) {
      const error = caught(call) as EventValidationError;
      expect(error).toBeInstanceOf(EventValidationError);
      expect(error.reason).toBe("unknown_type");
    }
    const result = catalog.safeParse(type as never, { n: 1 });
    expect(result.success).toBe(false);
    expect(result.error?.reason).toBe("unknown_type");
  });

  it("does not resolve an object whose toString names a known type", () => {
    const error = caught(() => catalog.parse({ toString: () => "PING" } as never, { n: 1 }));
    expect((error as EventValidationError).reason).toBe("unknown_type");
  });

  it("answers a huge unknown type from the wire at once, with a message of bounded length", () => {
    // An edit distance against a 20-million-character name would block the event loop.
    const type = "P".repeat(20_000_000);
    const error = caught(() => catalog.parse(type as never, { n: 1 })) as EventValidationError;
    expect(error.reason).toBe("unknown_type");
    expect(error.eventType).toBe(type);
    expect(error.message.length).toBeLessThan(400);
  });

  it("does not compare a huge unknown type with every known one (no event-loop stall)", () => {
    // Twenty types of about 20 characters: comparing 2 million characters with each cost about
    // 10^9 steps, far past the test's timeout; the length bound skips them all.
    const type = "X".repeat(2_000_000);
    const error = caught(() => pipelineCatalog.parse(type as never, {})) as EventValidationError;
    expect(error.reason).toBe("unknown_type");
  });

  it("still suggests the closest type for a typo", () => {
    expect(caught(() => catalog.parse("PIGN" as never, {}))).toHaveProperty(
      "message",
      expect.stringContaining('Did you mean "PING"?'),
    );
  });
});

describe("definitions a JavaScript caller gets wrong", () => {
  it.each([
    ["no schema", { type: "A", description: "", data: undefined }, /data must be a zod schema/],
    ["a plain object", { type: "A", description: "", data: { n: 1 } }, /data must be a zod schema/],
    [
      "a type that only stringifies to a name",
      { type: { toString: (): string => "ABC" }, description: "", data: z.looseObject({}) },
      /type object is not UPPER_SNAKE_CASE/,
    ],
    [
      "durable as a string",
      { type: "A", description: "", data: z.looseObject({}), durable: "false" },
      /durable must be true or false, got string/,
    ],
    [
      "an unknown severity",
      { type: "A", description: "", data: z.looseObject({}), severity: "high" },
      /severity must be "critical" or "informational", got "high"/,
    ],
    ["null options", null, /expected an options object, got null/],
  ])("defineEvent refuses %s with a TypeError saying what", (_, options, message) => {
    const error = caught(() => defineEvent(options as never));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(message);
  });

  it.each([
    ["not an array", undefined, /expected an array of defineEvent\(\) results, got undefined/],
    ["a null entry", [null], /each definition must be a defineEvent\(\) result, got null/],
    [
      "a hand-made entry with a bad name",
      [{ type: "__proto__", data: z.looseObject({}) }],
      /type "__proto__" is not UPPER_SNAKE_CASE/,
    ],
    [
      "a hand-made entry without a schema",
      [{ type: "ABC", data: { n: 1 } }],
      /defineCatalog\(ABC\): data must be a zod schema/,
    ],
  ])("defineCatalog refuses %s with a TypeError saying what", (_, list, message) => {
    const error = caught(() => defineCatalog(list as never));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(message);
  });
});

describe("error messages that quote hostile input", () => {
  // Messages end up in logs, terminals and dashboards: a value from the wire must not carry an
  // escape sequence, a right-to-left override or a line break into them raw, nor make them huge.
  const RAW = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
  const hostile = "EVIL\u001b[2J\u202e\u2028\u0085\u007f";
  const envelope = createEnvelope({ type: "PING", source: "s", data: { n: 1 } });

  it.each([
    ["an unknown type", () => catalog.parse(hostile as never, { n: 1 })],
    ["an envelope of an unknown type", () => catalog.parseEnvelope({ ...envelope, type: hostile })],
    [
      "an invalid envelope (parseEnvelope)",
      () => catalog.parseEnvelope({ ...envelope, type: hostile, time: "yesterday" }),
    ],
    [
      "an invalid envelope (assertEnvelope)",
      () => assertEnvelope({ ...envelope, type: hostile, time: 1 }),
    ],
    [
      "a payload field named by the wire",
      () =>
        defineCatalog([
          defineEvent({
            type: "REC",
            description: "t",
            data: z.looseObject({ m: z.record(z.string(), z.number()) }),
          }),
        ]).parse("REC", { m: { [hostile]: "x" } }),
    ],
    [
      "a getter that throws a hostile message",
      () =>
        catalog.parse("PING", {
          get n(): number {
            throw new Error(hostile);
          },
        }),
    ],
  ])("writes out control and bidi characters of %s", (_, call) => {
    const error = caught(call) as EventValidationError;
    expect(error).toBeInstanceOf(EventValidationError);
    expect(error.message).not.toMatch(RAW);
    expect(error.message).toContain("\\u001b[2J\\u202e");
  });

  it("keeps the raw values on the error's fields, for code that matches on them", () => {
    const error = caught(() =>
      catalog.parseEnvelope({ ...envelope, type: hostile, time: "yesterday" }),
    ) as EventValidationError;
    expect(error.eventType).toBe(hostile);
  });

  it.each([
    [
      "parseEnvelope",
      () => catalog.parseEnvelope({ ...envelope, type: "T".repeat(1_000_000), time: "no" }),
    ],
    [
      "assertEnvelope",
      () => assertEnvelope({ ...envelope, type: "T".repeat(1_000_000), time: "no" }),
    ],
    [
      "a huge payload key",
      () =>
        defineCatalog([
          defineEvent({
            type: "REC",
            description: "t",
            data: z.looseObject({ m: z.record(z.string(), z.number()) }),
          }),
        ]).parse("REC", { m: { ["k".repeat(1_000_000)]: "x" } }),
    ],
    [
      "a getter's huge message",
      () =>
        catalog.parse("PING", {
          get n(): number {
            throw new Error("m".repeat(1_000_000));
          },
        }),
    ],
  ])("cuts a huge value quoted by %s, saying how long it was", (_, call) => {
    const error = caught(call) as EventValidationError;
    expect(error).toBeInstanceOf(EventValidationError);
    expect(error.message.length).toBeLessThan(600);
    expect(error.message).toMatch(/… \(100000\d characters\)/);
  });
});

describe("escapeJsonText", () => {
  it("writes what JSON.stringify leaves raw but misleads a reader as \\u escapes, the same value parsed", async () => {
    const { escapeJsonText } = await import("./index");
    const value = { type: "A\u202eB", note: "x\u009b2Jy\u2028z\u007f", plain: "é 😀" };
    const text = escapeJsonText(JSON.stringify(value));
    expect(text).toBe('{"type":"A\\u202eB","note":"x\\u009b2Jy\\u2028z\\u007f","plain":"é 😀"}');
    expect(JSON.parse(text)).toEqual(value);
  });
});
