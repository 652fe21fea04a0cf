import { describe, expect, it } from "vitest";
import { uuidv7, writeHex } from "./uuid";

const hexOf = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

describe("writeHex", () => {
  it("writes every byte value as two lowercase hex digits, at any offset and count", () => {
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    for (const [at, from, count] of [
      [0, 0, 256],
      [3, 0, 16], // odd offset (a traceparent's trace id)
      [1, 7, 1], // one byte
      [5, 250, 5], // odd count: the last byte on its own
      [2, 9, 0], // nothing
    ] as const) {
      const out = Buffer.alloc(at + 2 * count + 2, "-");
      const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
      expect(writeHex(view, at, bytes, from, count)).toBe(at + 2 * count);
      expect(out.toString("latin1")).toBe(
        "-".repeat(at) + hexOf(bytes.subarray(from, from + count)) + "--",
      );
    }
  });

  it("is what uuidv7 formats its random bits with", () => {
    for (let i = 0; i < 1000; i++)
      expect(uuidv7()).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
  });
});
