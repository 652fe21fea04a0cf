// Content the canonical form cannot hold in full must never make two different events look like
// duplicates: dedup (HandlerBase) drops the second of two events with one hash.
import { describe, expect, it } from "vitest";
import { canonicalJsonOf } from "./canonical-json";
import { eventContentHash } from "./hash";

/** A chain `{ d: { d: … { d: leaf } } }` of `levels` objects. */
function nested(levels: number, leaf: unknown): unknown {
  let value: unknown = leaf;
  for (let i = 0; i < levels; i++) value = { d: value };
  return value;
}

describe("eventContentHash of content it cannot compare in full", () => {
  it("tells apart payloads that differ only below the depth limit", () => {
    const a = eventContentHash({ type: "DEEP", data: nested(1500, "first") });
    const b = eventContentHash({ type: "DEEP", data: nested(1500, "second") });
    expect(a).not.toBe(b);
  });

  it("tells apart payloads that differ only past the millionth value", () => {
    const moves = Array.from({ length: 1_000_100 }, () => 0);
    const a = eventContentHash({ type: "GAMES", data: { moves } });
    moves[1_000_050] = 1;
    const b = eventContentHash({ type: "GAMES", data: { moves } });
    expect(a).not.toBe(b);
  }, 60_000);

  it("tells apart payloads holding objects that cannot be read", () => {
    const unreadable = (message: string) => ({
      get score(): never {
        throw new Error(message);
      },
    });
    const a = eventContentHash({ type: "X", data: { result: unreadable("a") } });
    const b = eventContentHash({ type: "X", data: { result: unreadable("b") } });
    expect(a).not.toBe(b);
  });

  it("does not hash an unreadable event like an empty one", () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(eventContentHash(proxy)).not.toBe(eventContentHash({}));
  });

  it("does not hash an unreadable key field like an absent one", () => {
    const payload = {
      config_key: "hex8_2p",
      get model_path(): never {
        throw new Error("boom");
      },
    };
    const options = { keyFields: ["config_key", "model_path"] };
    expect(eventContentHash(payload, options)).not.toBe(
      eventContentHash({ config_key: "hex8_2p" }, options),
    );
  });

  it("still hashes complete content, circular references included, the same way every time", () => {
    const a: Record<string, unknown> = { n: 1 };
    a.self = a;
    expect(canonicalJsonOf(a)).toEqual({ text: '{"n":1,"self":#circular(1)}', complete: true });
    expect(eventContentHash({ type: "X", data: a })).toBe(eventContentHash({ type: "X", data: a }));
    expect(canonicalJsonOf(nested(1500, 0)).complete).toBe(false);
  });
});
