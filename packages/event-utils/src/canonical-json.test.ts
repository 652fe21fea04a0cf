import { describe, expect, it } from "vitest";
import { canonicalJson } from "./canonical-json";

describe("canonicalJson", () => {
  it.each([
    [
      "sorts keys at every level",
      { b: 1, a: { d: [{ f: 1, e: 2 }], c: 3 } },
      '{"a":{"c":3,"d":[{"e":2,"f":1}]},"b":1}',
    ],
    [
      "leaves out undefined, function and symbol fields",
      { a: undefined, b: () => 1, c: Symbol("c"), d: 1 },
      '{"d":1}',
    ],
    ["writes undefined inside arrays as null", [undefined, () => 1], "[null,null]"],
    // eslint-disable-next-line no-sparse-arrays -- the hole is what is under test
    ["writes array holes as null", [1, , 3], "[1,null,3]"],
    [
      "writes non-finite numbers as null",
      [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY],
      "[null,null,null]",
    ],
    ["writes bigints as a marker no JSON text holds", { a: -5n }, '{"a":#bigint(-5)}'],
    [
      "writes dates as ISO strings",
      { at: new Date(Date.UTC(2026, 0, 2)) },
      '{"at":"2026-01-02T00:00:00.000Z"}',
    ],
    ["writes invalid dates as null", { at: new Date(Number.NaN) }, '{"at":null}'],
    ["honours toJSON", { v: { toJSON: () => ({ z: 1, y: 2 }) } }, '{"v":{"y":2,"z":1}}'],
    ["escapes strings as JSON does", { 'k"': 'a"\n\u2028' }, '{"k\\"":"a\\"\\n\u2028"}'],
    ["writes a lone surrogate as an escape", "\ud800", '"\\ud800"'],
    ["writes top-level primitives as JSON", "x", '"x"'],
    ["writes null as null", null, "null"],
    ["writes undefined at the top level as null", undefined, "null"],
    ["writes a Map as an empty object, as JSON does", new Map([["a", 1]]), "{}"],
    [
      "writes boxed primitives as the values they wrap, as JSON does",
      [new Number(1), new String("ab"), new Boolean(false), Object(2n)],
      '[1,"ab",false,#bigint(2)]',
    ],
  ])("%s", (_case, value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
  });

  it("matches JSON.stringify on JSON data apart from key order", () => {
    const value = { list: [1, "two", true, null, { x: 1.5e-7 }], nested: { deep: { s: "é" } } };
    expect(canonicalJson(value)).toBe(JSON.stringify(value));
  });

  it("marks a reference back to an enclosing object instead of recursing", () => {
    const a: Record<string, unknown> = { n: 1 };
    a.self = a;
    expect(canonicalJson(a)).toBe('{"n":1,"self":#circular(1)}');
  });

  it("writes a value shared by siblings in full each time", () => {
    const shared = { v: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"v":1},"b":{"v":1}}');
  });

  it("marks an object whose properties cannot be read", () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const hostile = {
      get boom(): never {
        throw new Error("boom");
      },
    };
    expect(canonicalJson({ p: proxy, h: hostile })).toBe('{"h":"[Unreadable]","p":"[Unreadable]"}');
  });

  it("stops after a million values, marking the rest", () => {
    let shared: Record<string, unknown> = { leaf: true };
    for (let i = 0; i < 40; i++) shared = { left: shared, right: shared };
    expect(canonicalJson(shared)).toContain('"[Truncated]"');
    // A million values take ~2 s on a loaded CI machine: the default 5 s timeout is too close.
  }, 60_000);

  it("stops early on an array whose length is huge but mostly holes", () => {
    const sparse: unknown[] = [];
    sparse.length = 2 ** 32 - 1;
    expect(canonicalJson(sparse)).toMatch(/,"\[Truncated\]"\]$/);
  });

  it("marks nesting deeper than 1000 levels", () => {
    let deep: unknown = 0;
    for (let i = 0; i < 1001; i++) deep = [deep];
    expect(canonicalJson(deep)).toContain('"[Truncated]"');
  });
});
