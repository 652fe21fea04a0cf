import { EventValidationError, createEnvelope } from "@switchyard/event-schema";
import { describe, expect, it } from "vitest";
import { DeliveryAbandonedError, HandlerTimeoutError, UnrecoverableError } from "./errors";
import { deadLetterReason, deadLetterRecord, decideOutcome, runAttempt } from "./outcome";

const envelope = createEnvelope({ type: "T", source: "test", data: {} });
const policy = { maxAttempts: 3, backoff: { initialMs: 100, multiplier: 2, jitter: 0 } };
const input = { subscriber: "s", envelope, attempt: 1, maxAttempts: 3 };

describe("the outcome policy", () => {
  it("retries, then dead-letters, a thrown value nothing can read (a revoked proxy) like an Error", () => {
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const error: unknown = revoked.proxy;
    expect(decideOutcome({ failed: true, error }, 1, policy)).toMatchObject({
      kind: "retry",
      delayMs: 100,
    });
    expect(decideOutcome({ failed: true, error }, 3, policy)).toMatchObject({
      kind: "dead_letter",
      reason: "max_attempts",
    });
    expect(deadLetterReason(error)).toBe("max_attempts");
    expect(
      deadLetterRecord({ envelope, subscriber: "s", attempts: 3, error, origin: "test" }),
    ).toMatchObject({ reason: "max_attempts", error: { name: "NonError" } });
  });

  it("acks a success, retries a failure with the backoff of its attempt, dead-letters the last", () => {
    expect(decideOutcome({ failed: false }, 1, policy)).toEqual({ kind: "ack" });
    const error = new Error("flaky");
    expect(decideOutcome({ failed: true, error }, 1, policy)).toEqual({
      kind: "retry",
      delayMs: 100,
      error,
    });
    expect(decideOutcome({ failed: true, error }, 2, policy)).toMatchObject({ delayMs: 200 });
    expect(decideOutcome({ failed: true, error }, 3, policy)).toEqual({
      kind: "dead_letter",
      reason: "max_attempts",
      error,
    });
  });

  it("dead-letters unrecoverable errors and invalid payloads at once, with their reason", () => {
    expect(
      decideOutcome({ failed: true, error: new UnrecoverableError("x") }, 1, policy),
    ).toMatchObject({
      kind: "dead_letter",
      reason: "unrecoverable",
    });
    const invalid = new EventValidationError({
      eventType: "T",
      reason: "invalid_payload",
      receivedType: "object",
      message: "bad",
    });
    expect(deadLetterReason(invalid)).toBe("invalid_payload");
    expect(deadLetterReason(new UnrecoverableError("wrapped", { cause: invalid }))).toBe(
      "invalid_payload",
    );
    expect(deadLetterReason(new HandlerTimeoutError("s", 10))).toBe("timeout");
  });

  it("does not run the handler past maxAttempts: the delivery was abandoned by crashes or hangs", async () => {
    let ran = false;
    const result = await runAttempt({ ...input, attempt: 4 }, () => {
      ran = true;
    });
    expect(ran).toBe(false);
    expect(result.failed && result.error).toBeInstanceOf(DeliveryAbandonedError);
  });

  it("does not run the handler for an undecodable event, and ignores what a handler returns", async () => {
    const undecodable = new Error("not JSON");
    expect(await runAttempt({ ...input, undecodable }, () => 1)).toEqual({
      failed: true,
      error: undecodable,
    });
    expect(await runAttempt(input, () => 42)).toEqual({ failed: false });
    expect(await runAttempt(input, () => Promise.reject(new Error("no")))).toMatchObject({
      failed: true,
    });
  });

  it("builds the one dead-letter record: reason classified, error serialized, time stamped", () => {
    const record = deadLetterRecord({
      envelope,
      subscriber: "s",
      attempts: 2,
      error: new UnrecoverableError("poison"),
      origin: "sqlite",
      failedAt: new Date("2026-01-01T00:00:00Z"),
    });
    expect(record).toMatchObject({
      subscriber: "s",
      reason: "unrecoverable",
      attempts: 2,
      origin: "sqlite",
      failedAt: "2026-01-01T00:00:00.000Z",
      error: { name: "UnrecoverableError", message: "poison", code: "UNRECOVERABLE" },
    });
  });
});

describe("keyed jitter", () => {
  it("gives one delivery the same retry delay wherever the policy is applied, and spreads different events", () => {
    const jittery = { maxAttempts: 5, backoff: { initialMs: 1000, jitter: 0.5 } };
    const failed = { failed: true as const, error: new Error("x") };
    const a = decideOutcome(failed, 2, jittery, "event-a");
    expect(decideOutcome(failed, 2, jittery, "event-a")).toEqual(a);
    const delays = new Set(
      Array.from({ length: 50 }, (_, i) => {
        const o = decideOutcome(failed, 2, jittery, `event-${i}`);
        return o.kind === "retry" ? o.delayMs : -1;
      }),
    );
    expect(delays.size).toBeGreaterThan(40);
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(1000); // attempt 2: 2000 ms ± 50 %
      expect(d).toBeLessThanOrEqual(3000);
    }
  });
});
