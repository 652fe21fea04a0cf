import type { DeadLetterStatus } from "./inspector";

/** What {@link replaySkipReason} needs to know of a dead letter. */
export interface ReplayState {
  readonly status: DeadLetterStatus;
  /** Whether the original envelope is stored and readable (false once purged, or when damaged). */
  readonly hasEnvelope: boolean;
  /** Why the stored envelope cannot be read, when that is known. */
  readonly damaged?: string;
  /**
   * For status `retrying`: whether another replayer's claim on it is still live. Unknown, it is
   * taken as live (the conservative answer of a read-only preview). @defaultValue true
   */
  readonly claimLive?: boolean;
}

/** Options of {@link replaySkipReason}. */
export interface ReplaySkipOptions {
  /** Also replay records replayed before (status `replayed`), as `ReplayOptions.again`. @defaultValue false */
  readonly again?: boolean;
}

/**
 * The reasons {@link replaySkipReason} gives, one wording each on every transport. A reason for a
 * record without envelope may carry `" (damaged: …)"` after `noEnvelope`.
 */
export const REPLAY_SKIP_REASONS = Object.freeze({
  /** Status `purged`: the envelope was dropped. */
  purged: "purged: the envelope is gone",
  /** Status `replayed`, without `again`. */
  replayedBefore: "replayed before; pass again to replay it again",
  /** Status `retrying` under a live claim of another replayer. */
  beingReplayed: "being replayed right now by another replayer",
  /** No readable envelope stored (the start of the reason; a damaged one says why after it). */
  noEnvelope: "no envelope stored",
  /**
   * Claimed by this replay but not handed back: its `signal` aborted first. Not a verdict on the
   * record (a later replay takes it): a caller seeing it knows the replay stopped partway.
   */
  aborted: "not replayed: the replay was aborted",
} as const);

/**
 * Why a replay skips this dead letter, or `undefined` when it would hand it back: the one rule of
 * every transport's `Admin.replay` and of the CLI's read-only preview. In order: purged, replayed
 * before (unless `again`), being replayed right now by another replayer (status `retrying` with a
 * live claim), no readable envelope stored.
 *
 * @example
 * ```ts
 * replaySkipReason({ status: "replayed", hasEnvelope: true });
 * // "replayed before; pass again to replay it again"
 * replaySkipReason({ status: "replayed", hasEnvelope: true }, { again: true }); // undefined
 * replaySkipReason({ status: "permanently_failed", hasEnvelope: false, damaged: "not JSON" });
 * // "no envelope stored (damaged: not JSON)"
 * ```
 */
export function replaySkipReason(
  state: ReplayState,
  options: ReplaySkipOptions = {},
): string | undefined {
  if (state.status === "purged") return REPLAY_SKIP_REASONS.purged;
  if (state.status === "replayed" && options.again !== true)
    return REPLAY_SKIP_REASONS.replayedBefore;
  if (state.status === "retrying" && (state.claimLive ?? true))
    return REPLAY_SKIP_REASONS.beingReplayed;
  if (!state.hasEnvelope)
    return state.damaged
      ? `${REPLAY_SKIP_REASONS.noEnvelope} (damaged: ${state.damaged})`
      : REPLAY_SKIP_REASONS.noEnvelope;
  return undefined;
}
