import { describe, expect, it } from "vitest";
import { REPLAY_SKIP_REASONS, replaySkipReason } from "./index";

describe("replaySkipReason", () => {
  it("hands back a record waiting for a retry or given up, with its envelope", () => {
    expect(replaySkipReason({ status: "pending_retry", hasEnvelope: true })).toBeUndefined();
    expect(replaySkipReason({ status: "permanently_failed", hasEnvelope: true })).toBeUndefined();
  });

  it("skips a purged record, whatever else is known of it", () => {
    expect(replaySkipReason({ status: "purged", hasEnvelope: false })).toBe(
      "purged: the envelope is gone",
    );
    expect(replaySkipReason({ status: "purged", hasEnvelope: true }, { again: true })).toBe(
      REPLAY_SKIP_REASONS.purged,
    );
  });

  it("skips a record replayed before unless again", () => {
    expect(replaySkipReason({ status: "replayed", hasEnvelope: true })).toBe(
      "replayed before; pass again to replay it again",
    );
    expect(replaySkipReason({ status: "replayed", hasEnvelope: true }, { again: false })).toBe(
      REPLAY_SKIP_REASONS.replayedBefore,
    );
    expect(
      replaySkipReason({ status: "replayed", hasEnvelope: true }, { again: true }),
    ).toBeUndefined();
    // again replays it once more only if there is something to hand back.
    expect(replaySkipReason({ status: "replayed", hasEnvelope: false }, { again: true })).toBe(
      "no envelope stored",
    );
  });

  it("skips a retrying record under a live claim; an unknown claim counts as live", () => {
    expect(replaySkipReason({ status: "retrying", hasEnvelope: true, claimLive: true })).toBe(
      "being replayed right now by another replayer",
    );
    expect(replaySkipReason({ status: "retrying", hasEnvelope: true })).toBe(
      REPLAY_SKIP_REASONS.beingReplayed,
    );
    expect(
      replaySkipReason({ status: "retrying", hasEnvelope: true, claimLive: false }),
    ).toBeUndefined();
    // A live claim only matters for status retrying.
    expect(
      replaySkipReason({ status: "pending_retry", hasEnvelope: true, claimLive: true }),
    ).toBeUndefined();
  });

  it("skips a record without a readable envelope, saying why it is damaged when known", () => {
    expect(replaySkipReason({ status: "permanently_failed", hasEnvelope: false })).toBe(
      "no envelope stored",
    );
    expect(
      replaySkipReason({
        status: "pending_retry",
        hasEnvelope: false,
        damaged: "dead_letters.envelope is not JSON",
      }),
    ).toBe("no envelope stored (damaged: dead_letters.envelope is not JSON)");
    expect(
      replaySkipReason({ status: "retrying", hasEnvelope: false, claimLive: false, damaged: "x" }),
    ).toBe("no envelope stored (damaged: x)");
  });

  it("checks in order: purged, replayed before, being replayed, no envelope", () => {
    expect(replaySkipReason({ status: "replayed", hasEnvelope: false, damaged: "x" })).toBe(
      REPLAY_SKIP_REASONS.replayedBefore,
    );
    expect(replaySkipReason({ status: "retrying", hasEnvelope: false, damaged: "x" })).toBe(
      REPLAY_SKIP_REASONS.beingReplayed,
    );
  });

  it("has one frozen set of reasons", () => {
    expect(Object.isFrozen(REPLAY_SKIP_REASONS)).toBe(true);
    expect(Object.values(REPLAY_SKIP_REASONS)).toEqual([
      "purged: the envelope is gone",
      "replayed before; pass again to replay it again",
      "being replayed right now by another replayer",
      "no envelope stored",
      "not replayed: the replay was aborted",
    ]);
  });
});
