import { describe, expect, it } from "vitest";
import { createEnvelope } from "@switchyard/event-schema";
import { type DeadLetterRecord } from "./transport";
import { cutText, serializeError } from "./errors";
import { memoryTransport } from "./memory-transport";

/** Thrown values a handler may throw that neither JSON.stringify nor String can read. */
const unreadable = (): [string, unknown][] => {
  const bare = Object.assign(Object.create(null) as object, { n: 1n });
  const { proxy, revoke } = Proxy.revocable(new Error("gone"), {});
  revoke();
  const lying = new Error("x");
  Object.defineProperty(lying, "message", {
    get() {
      throw new Error("message getter exploded");
    },
  });
  return [
    ["a null-prototype object holding a bigint", bare],
    ["a revoked proxy", proxy],
    ["an Error whose message getter throws", lying],
  ];
};

describe("serializeError", () => {
  it.each(unreadable())("describes %s instead of throwing", (_what, thrown) => {
    const serialized = serializeError(thrown);
    expect(typeof serialized.name).toBe("string");
    expect(typeof serialized.message).toBe("string");
  });

  it("keeps an ordinary error's name, message, code and stack", () => {
    const error = Object.assign(new TypeError("bad"), { code: "E_BAD" });
    expect(serializeError(error)).toMatchObject({
      name: "TypeError",
      message: "bad",
      code: "E_BAD",
      stack: expect.stringContaining("TypeError: bad"),
    });
    expect(serializeError("plain")).toEqual({ name: "NonError", message: "plain" });
    expect(serializeError({ a: 1 })).toEqual({ name: "NonError", message: '{"a":1}' });
  });

  it("lets a handler that throws such a value be dead-lettered, not retried forever", async () => {
    const records: DeadLetterRecord[] = [];
    const transport = memoryTransport({
      deadLetter: { deadLetter: (r) => void records.push(r) },
      drainTimeoutMs: 20,
    });
    try {
      const thrown = unreadable();
      let attempts = 0;
      await transport.subscribe({
        subscriber: "picky",
        types: ["JOB"],
        maxAttempts: 1,
        handler: async () => {
          throw thrown[attempts++ % thrown.length]![1];
        },
      });
      await transport.publish(
        [1, 2, 3].map((n) => createEnvelope({ type: "JOB", source: "errors-test", data: { n } })),
      );
      const deadline = Date.now() + 5_000;
      while (records.length < 3 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 5));
      expect(records).toHaveLength(3);
      expect(attempts).toBe(3);
    } finally {
      await transport.close();
    }
  });
});

describe("cutText", () => {
  it("keeps text within the bound and cuts longer text, saying how much more there was", () => {
    expect(cutText("short", 10)).toBe("short");
    expect(cutText("x".repeat(25), 10)).toBe(`${"x".repeat(10)}… (15 more characters)`);
  });

  it("never cuts a surrogate pair in half", () => {
    const text = `${"a".repeat(9)}😀tail`; // the emoji's two code units sit at 9 and 10
    const cut = cutText(text, 10);
    expect(cut.startsWith(`${"a".repeat(9)}…`)).toBe(true);
    expect(cut).toBe(`${"a".repeat(9)}… (${text.length - 9} more characters)`);
  });
});
