import { describe, expect, it } from "vitest";
import { eventually } from "./nats";

describe("eventually (test helper)", () => {
  const flaky = () => {
    let calls = 0;
    return () => {
      calls++;
      if (calls < 3) throw new Error(`request timeout ${calls}`);
      return true;
    };
  };

  it("fails at once when the check throws, by default", async () => {
    await expect(eventually(flaky(), "x", 1_000)).rejects.toThrow("request timeout 1");
  });

  it("with retryErrors, treats a thrown error as not yet and keeps polling", async () => {
    await expect(eventually(flaky(), "x", 1_000, { retryErrors: true })).resolves.toBeUndefined();
  });

  it("with retryErrors, reports the last error when the deadline passes", async () => {
    const always = () => {
      throw new Error("still electing");
    };
    await expect(eventually(always, "a leader", 50, { retryErrors: true })).rejects.toThrow(
      /timed out after 50 ms waiting for a leader \(last error: Error: still electing\)/,
    );
  });
});
