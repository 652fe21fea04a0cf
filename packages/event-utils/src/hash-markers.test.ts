import { describe, expect, it } from "vitest";
import { eventContentHash } from "./hash";

// What JSON cannot carry (a bigint, a circular reference) must not hash like data it can: dedup
// would otherwise take two different events for one and drop the second.
describe("eventContentHash: values JSON cannot carry", () => {
  const cyclic = () => {
    const a: Record<string, unknown> = { n: 1 };
    a.self = a;
    return a;
  };

  it.each([
    ["a bigint and the string of its digits", { a: 1n }, { a: "1" }],
    ["a bigint and the number", { a: 1n }, { a: 1 }],
    ["a circular reference and the string [Circular]", cyclic(), { n: 1, self: "[Circular]" }],
    [
      "cycles back to different ancestors",
      (() => {
        const inner: Record<string, unknown> = {};
        const outer = { inner };
        inner.back = outer; // two levels up
        return outer;
      })(),
      (() => {
        const inner: Record<string, unknown> = {};
        inner.back = inner; // one level up
        return { inner };
      })(),
    ],
  ])("gives different hashes to %s", (_case, left, right) => {
    expect(eventContentHash({ type: "X", data: left })).not.toBe(
      eventContentHash({ type: "X", data: right }),
    );
  });

  it("hashes the same bigint and the same cycle alike every time", () => {
    expect(eventContentHash({ type: "X", data: { a: 10n } })).toBe(
      eventContentHash({ type: "X", data: { a: 10n } }),
    );
    expect(eventContentHash({ type: "X", data: cyclic() })).toBe(
      eventContentHash({ type: "X", data: cyclic() }),
    );
  });

  it("keeps the hash of JSON data (stored dedup keys still match)", () => {
    // Pinned from the code before this change: plain JSON must hash as it did.
    expect(eventContentHash({ type: "X", data: { b: [1, "two", null], a: { c: true } } })).toBe(
      PINNED,
    );
  });
});

const PINNED = "df4a67508ab3273ad1b95dd4ad0925b1abf918be90806a34baf09d03a03a5221";
