import type { AnyCatalog } from "@switchyard/event-schema";
import type { HeartbeatInfo, Inspector } from "@switchyard/transport";
import { checkEventTypeAsync } from "../event-types";
import { formatDuration } from "../output";

/** The `DlqRetryDaemon`'s default name: its heartbeat tells whether anything retries dead letters. */
export const RETRY_DAEMON = "dlq_retry";

/** A heartbeat older than this does not count as a running daemon. @defaultValue 2 minutes */
export const FRESH_MS = 120_000;

/** Whether a retry daemon runs: a daemon named like the DlqRetryDaemon's default with a fresh heartbeat. */
export interface RetryDaemonState {
  readonly running: boolean;
  /** The daemons named like it, whatever their state. */
  readonly daemons: readonly {
    readonly daemon: string;
    readonly status: string;
    readonly ageMs: number;
  }[];
  /** Whether heartbeats could be read at all on this transport. */
  readonly known: boolean;
}

/** Find the retry daemon in the heartbeats ({@link RETRY_DAEMON}, or a name starting with it). */
export async function retryDaemonState(
  inspector: Inspector,
  freshMs: number = FRESH_MS,
): Promise<RetryDaemonState> {
  if (!inspector.capabilities.heartbeats) return { running: false, daemons: [], known: false };
  const beats = (await inspector.heartbeats()).filter((b) => b.daemon.startsWith(RETRY_DAEMON));
  return {
    running: beats.some((b) => isRunning(b, freshMs)),
    daemons: beats.map((b) => ({ daemon: b.daemon, status: b.status, ageMs: b.ageMs })),
    known: true,
  };
}

/** A heartbeat of a daemon that runs now: not stopped, crashed or failed, and fresh. */
export function isRunning(beat: HeartbeatInfo, freshMs: number = FRESH_MS): boolean {
  return !["stopped", "crashed", "failed"].includes(beat.status) && beat.ageMs <= freshMs;
}

/** The line printed under a dead-letter listing that shows next retries. */
export function retryNote(state: RetryDaemonState): string {
  if (state.running) {
    const names = state.daemons.map((d) => d.daemon).join(", ");
    return `A retry daemon is running (${names}): it replays them at "next retry".`;
  }
  const seen = state.daemons[0];
  return (
    `No retry daemon is running` +
    (!state.known
      ? " as far as can be told (this transport stores no heartbeats)"
      : seen
        ? ` (${seen.daemon}: ${seen.status}, last heartbeat ${formatDuration(seen.ageMs)} ago)`
        : ` (no heartbeat of a daemon named ${RETRY_DAEMON})`) +
    `: nothing retries them at "next retry" until one runs; replay them with \`switchyard dlq replay\`.`
  );
}

/**
 * The event type a user named (`--type`), checked by the one rule every command taking one uses:
 * a type the catalog in use defines passes (its lower-case spelling too, as the runbook writes
 * `training_completed`); a type the catalog does not define passes when the transport holds
 * anything of it — a stored event, a subscription, a dead letter — since events of an older
 * catalog version are still listed, cleared and replayed; anything else is refused with the
 * catalog's `EventValidationError` (exit 2), which names the type and suggests the closest known
 * name. `undefined` (no `--type`) stays `undefined`.
 */
export function eventTypeOf(
  context: { readonly catalog: AnyCatalog },
  type: string | undefined,
  inspector: Inspector,
): Promise<string | undefined> {
  if (type === undefined) return Promise.resolve(undefined);
  // The catalog is read only now: without --type the command does not depend on it.
  return checkEventTypeAsync(context.catalog, type, async (t) => {
    const page = await inspector.events({ types: [t], limit: 1 });
    if (page.events.length > 0) return true;
    const subscribers = await inspector.subscribers();
    if (subscribers.some((s) => s.types.includes(t))) return true;
    if (!inspector.capabilities.deadLetters) return false;
    return (await inspector.deadLetters({ type: t, limit: 1 })).deadLetters.length > 0;
  });
}
