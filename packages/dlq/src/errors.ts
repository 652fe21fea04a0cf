import { SwitchyardError } from "@switchyard/event-schema";

/** A dead letter came from a transport the replay target was not given. */
export class ReplayTargetMissingError extends SwitchyardError {
  constructor(id: number | string, origin: string) {
    super(
      "DLQ_NO_REPLAY_TARGET",
      `Dead letter ${id} came from the "${origin}" ${origin === "router" ? "router (in process)" : "transport"}, ` +
        `but replayTo() was not given ${origin === "router" ? "a router" : `a ${origin} transport with requeue()`}. Pass it to replay this record.`,
    );
  }
}

/**
 * A replay target did not answer within the claimed record's lease. The retry daemon stops
 * waiting then (the record may belong to another replayer after its lease), counts a failed
 * replay and makes the record due again after `replayErrorBackoff`.
 */
export class ReplayTimeoutError extends SwitchyardError {
  /** The dead letter's id in its store. */
  readonly id: number | string;
  readonly leaseMs: number;

  constructor(id: number | string, leaseMs: number) {
    super(
      "DLQ_REPLAY_TIMEOUT",
      `Replaying dead letter ${id} did not finish within its lease of ${leaseMs} ms, so the retry daemon ` +
        `stopped waiting for the target; the record is due again after replayErrorBackoff. Make the ` +
        `target answer sooner (and stop when its signal aborts), or raise the daemon's leaseMs.`,
    );
    this.id = id;
    this.leaseMs = leaseMs;
  }
}

/**
 * A claimed dead letter cannot be replayed: its stored envelope is not readable, or is not the
 * envelope of that record (a row written by another program or edited by hand). The retry daemon
 * marks it permanently failed at once instead of retrying it.
 */
export class DamagedDeadLetterError extends SwitchyardError {
  /** The dead letter's id in its store. */
  readonly id: number | string;

  constructor(id: number | string, problem: string) {
    super(
      "DLQ_DAMAGED_RECORD",
      `Dead letter ${id} cannot be replayed: ${problem}. It was marked permanently failed and is not ` +
        `retried; restore its envelope or purge it (store.purge({ id: ${JSON.stringify(id)} })).`,
    );
    this.id = id;
  }
}
