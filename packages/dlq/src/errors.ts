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
