import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DedupCache } from "./dedup";
import { manualClock } from "./test/fixtures";

const envelope = (id: string, data: Record<string, unknown>, type = "TRAINING_COMPLETED") => ({
  specversion: "1.0",
  id,
  type,
  source: "trainer",
  time: new Date().toISOString(),
  datacontenttype: "application/json",
  dataversion: 1,
  data,
});

describe("DedupCache", () => {
  it("recognises the same type and payload as a duplicate whatever the id, source or key order", () => {
    const cache = new DedupCache();
    expect(cache.isDuplicate(envelope("1", { config_key: "hex8_2p", loss: 0.1 }))).toBe(false);
    expect(
      cache.isDuplicate({
        ...envelope("2", { loss: 0.1, config_key: "hex8_2p" }),
        source: "other",
      }),
    ).toBe(true);
    expect(
      cache.isDuplicate(
        envelope("3", { config_key: "hex8_2p", loss: 0.1 }, "EVALUATION_COMPLETED"),
      ),
    ).toBe(false);
    expect(cache.isDuplicate(envelope("4", { config_key: "hex8_2p", loss: 0.2 }))).toBe(false);
  });

  it("counts only keyFields of the payload when given", () => {
    const cache = new DedupCache();
    const keyFields = ["config_key"];
    expect(cache.isDuplicate(envelope("1", { config_key: "hex8_2p", at: 1 }), { keyFields })).toBe(
      false,
    );
    expect(cache.isDuplicate(envelope("2", { config_key: "hex8_2p", at: 2 }), { keyFields })).toBe(
      true,
    );
    // Without keyFields the full payload counts: a different hash.
    expect(cache.isDuplicate(envelope("3", { config_key: "hex8_2p", at: 2 }))).toBe(false);
  });

  it("remembers for 5 minutes by default, counted from the first sighting (fake clock)", () => {
    const clock = manualClock();
    const cache = new DedupCache({ now: clock.now });
    const e = envelope("1", { n: 1 });
    expect(cache.ttlMs).toBe(300_000);
    expect(cache.isDuplicate(e)).toBe(false);
    clock.advance(200_000);
    expect(cache.isDuplicate(e)).toBe(true); // does not extend the expiry
    clock.advance(100_000);
    expect(cache.isDuplicate(e)).toBe(false);
    expect(cache.isDuplicate(e)).toBe(true);
  });

  it("drops expired hashes as time passes, so expired content takes no memory", () => {
    const clock = manualClock();
    const cache = new DedupCache({ now: clock.now, ttlMs: 1000 });
    for (let i = 0; i < 50; i++) cache.isDuplicate(envelope(String(i), { i }));
    expect(cache.size).toBe(50);
    clock.advance(1000);
    cache.isDuplicate(envelope("new", { i: "new" }));
    expect(cache.size).toBe(1);
  });

  it("never holds more than maxEntries hashes, evicting the oldest first", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 200 }),
        (max, ns) => {
          const cache = new DedupCache({ maxEntries: max });
          for (const n of ns) {
            cache.isDuplicate({ type: "T", data: { n } });
            expect(cache.size).toBeLessThanOrEqual(max);
          }
        },
      ),
    );
    const cache = new DedupCache({ maxEntries: 3 });
    for (const n of [1, 2, 3, 4]) cache.isDuplicate({ type: "T", data: { n } });
    expect(cache.isDuplicate({ type: "T", data: { n: 1 } })).toBe(false); // evicted
    expect(cache.isDuplicate({ type: "T", data: { n: 4 } })).toBe(true);
  });

  it("forget() and clear() make content new again", () => {
    const cache = new DedupCache();
    const a = envelope("1", { n: 1 });
    cache.isDuplicate(a);
    cache.isDuplicate(envelope("2", { n: 2 }));
    cache.forget(a);
    expect(cache.isDuplicate(a)).toBe(false);
    cache.clear();
    expect(cache.size).toBe(0);
  });

  it("rejects a non-positive TTL or entry bound", () => {
    expect(() => new DedupCache({ ttlMs: 0 })).toThrow(RangeError);
    expect(() => new DedupCache({ maxEntries: 0.5 })).toThrow(/maxEntries must be an integer/);
  });

  it("rejects a ttlMs or now of the wrong type (JavaScript callers) instead of never expiring", () => {
    // "1000" passed `> 0`, then `now + ttlMs` concatenated: an expiry ~10^4 times too far away.
    expect(() => new DedupCache({ ttlMs: "1000" as unknown as number })).toThrow(
      /ttlMs must be a positive number of ms, got "1000"/,
    );
    expect(() => new DedupCache({ ttlMs: Number.NaN })).toThrow(/got NaN/);
    expect(() => new DedupCache({ now: 5 as unknown as () => number })).toThrow(
      /now must be a function/,
    );
  });

  it.each([
    ["an empty list", []],
    ["a string", "config_key"],
    ["a list with an empty name", ["config_key", ""]],
    ["a list with a number", [0]],
  ])("refuses keyFields that is %s with a TypeError naming keyFields", (_what, keyFields) => {
    const cache = new DedupCache();
    const check = (id: string, config_key: string) =>
      cache.isDuplicate(envelope(id, { config_key }), {
        keyFields: keyFields as unknown as string[],
      });
    // An empty list made every event of the type a duplicate of the first: silently dropped.
    expect(() => check("1", "hex8_2p")).toThrow(TypeError);
    expect(() => check("2", "sq8_2p")).toThrow(/keyFields must be a non-empty array/);
    expect(cache.size).toBe(0);
    expect(() =>
      cache.forget(envelope("1", { config_key: "hex8_2p" }), {
        keyFields: keyFields as unknown as string[],
      }),
    ).toThrow(TypeError);
  });
});
