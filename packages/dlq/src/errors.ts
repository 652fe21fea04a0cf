import { SwitchyardError } from "@switchyard/event-schema";

/** The dead-letter table was written by a newer version of this package. */
export class DeadLetterSchemaError extends SwitchyardError {
  constructor(path: string, found: number, supported: number) {
    super(
      "DLQ_SCHEMA_TOO_NEW",
      `The dead-letter table in ${path} has schema version ${found}, newer than this @switchyard/dlq ` +
        `understands (${supported}). Upgrade @switchyard/dlq; do not downgrade a shared database.`,
    );
  }
}

/** A purge without any criterion: refused, pass `{ all: true }` to mean it. */
export class UnboundedPurgeError extends SwitchyardError {
  constructor() {
    super(
      "DLQ_UNBOUNDED_PURGE",
      "purge() without olderThan, type, status or subscriber would purge every dead letter; pass { all: true } if that is what you want.",
    );
  }
}

/** No dead letter has that id. */
export class DeadLetterNotFoundError extends SwitchyardError {
  constructor(id: number) {
    super(
      "DLQ_NOT_FOUND",
      `No dead letter with id ${id}. List them with store.list() (or \`switchyard dlq list\`).`,
    );
  }
}

/** A single-record replay could not claim the record. */
export class ReplayConflictError extends SwitchyardError {
  constructor(id: number, reason: string) {
    super(
      "DLQ_REPLAY_CONFLICT",
      `Dead letter ${id} was not replayed: ${reason}. Check it with store.inspect(${id}).`,
    );
  }
}

/** A dead letter came from a transport the replay target was not given. */
export class ReplayTargetMissingError extends SwitchyardError {
  constructor(id: number, origin: string) {
    super(
      "DLQ_NO_REPLAY_TARGET",
      `Dead letter ${id} came from the "${origin}" ${origin === "router" ? "router (in process)" : "transport"}, ` +
        `but replayTo() was not given ${origin === "router" ? "a router" : `a ${origin} transport with requeue()`}. Pass it to replay this record.`,
    );
  }
}
