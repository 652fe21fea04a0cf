import type { Entry, ProcessRecord } from "./ledger";

/** What a run knows besides the ledger, to tell why an event completed twice. */
export interface DuplicateEvidence {
  /** When each server kill happened (ms). */
  readonly serverKilledAt: readonly number[];
  /** The AckWait / lease (ms): a delivery at most this old when the server died may come again. */
  readonly leaseMs: number;
  /** The processes of the subscriber, by ledger index (`end`, `killedAt`). */
  readonly processes: readonly ProcessRecord[];
  /** Keys the audit handed back (`repair`), and when the repair began (ms). */
  readonly repaired?: { readonly keys: ReadonlySet<string>; readonly at: number };
  /** Where a key was published in the stream (its order), e.g. 1999 for `k1999`. */
  readonly order: (key: string) => number;
  /** How long a consumer's pull request lives at the server (ms). @defaultValue 10000 */
  readonly pullExpiresMs?: number;
}

/** Why each duplicate completion happened; `unexplained` names the rest. */
export interface DuplicateCauses {
  /** A later attempt: the earlier holder lost its lease (killed) or the server redelivered it. */
  readonly laterAttempt: number;
  /** The same attempt again after a server kill (its delivery or ack was not yet stored). */
  readonly afterServerCrash: number;
  /** The same attempt again after a hand-back on close (a hand-back is not an attempt). */
  readonly afterHandBack: number;
  /** The same attempt again after the audit's repair handed the event back. */
  readonly afterRepair: number;
  /**
   * The same attempt again because the server re-sent the newest event it had delivered, at
   * delivery count 1, after a redelivery to the pull request of a SIGKILLed process failed:
   * nats-server before nats-io/nats-server#5305 (April 2024; 2.9.10 runs here) then steps its
   * next sequence back by one although the failed message was a redelivery. Acked or not.
   */
  readonly serverRewound: number;
  readonly unexplained: readonly string[];
  /** One line per same-attempt duplicate that was explained, with its cause (for the report). */
  readonly explained: readonly string[];
}

/**
 * Classify every second (third, …) completion of a key. Completions of one key are taken in time
 * order; a completion at a higher attempt than every one before it is a later attempt. Any other
 * repeats an earlier completion — the latest of the same attempt, else the latest of a higher
 * one — and is explained only by a mechanism the run recorded, checked in this order:
 *
 * - a hand-back on close: the key was aborted with reason `closed` at that attempt after the
 *   earlier completion and no later than the later run started;
 * - the audit's repair: the key was handed back by the audit, and the later run started after it;
 * - a server kill: one happened at most a lease after the earlier completion and before the later;
 * - the server's rewind (see {@link DuplicateCauses.serverRewound}): the later run is at attempt
 *   1, the key was the newest event any process had started when it started, a consumer process
 *   was SIGKILLed after the key's first delivery and before it (when that delivery was never
 *   started — it died buffered in the killed process — within a lease plus a pull's lifetime
 *   before it), and its process started a redelivery (a later attempt of another key or of this
 *   one) at most a second before or after it — the rewound event comes in the same pull as
 *   redeliveries, before or after them.
 *
 * Anything else — e.g. two processes completing one attempt while both stayed alive — is
 * unexplained, and the torture test fails on it.
 */
export function explainDuplicates(
  entries: readonly Entry[],
  evidence: DuplicateEvidence,
): DuplicateCauses {
  const byKey = new Map<string, Entry[]>();
  for (const e of entries) byKey.set(e.key, [...(byKey.get(e.key) ?? []), e]);
  const starts = entries.filter((e) => e.kind === "start");
  // Where each entry stands in its ledger: lines of one process written in the same millisecond
  // keep their order (a pull's messages start in the order the server sent them).
  const position = new Map(entries.map((e, i) => [e, i]));
  /** `a` started before `b` (in time; within one process and millisecond, in ledger order). */
  const startedBefore = (a: Entry, b: Entry) =>
    a.at < b.at || (a.at === b.at && (a.proc !== b.proc || position.get(a)! < position.get(b)!));
  let laterAttempt = 0;
  let afterServerCrash = 0;
  let afterHandBack = 0;
  let afterRepair = 0;
  let serverRewound = 0;
  const unexplained: string[] = [];
  const explained: string[] = [];
  for (const [key, list] of byKey) {
    const dones = list.filter((e) => e.kind === "done").sort((a, b) => a.at - b.at);
    for (let i = 1; i < dones.length; i++) {
      const cur = dones[i]!;
      const earlier = dones.slice(0, i);
      if (earlier.every((e) => e.attempt < cur.attempt)) {
        laterAttempt++;
        continue;
      }
      // What it repeats: the latest earlier completion of the same attempt, else of a higher one
      // (the server can send an event at delivery count 1 again in the same pull as its own
      // redelivery, so the copies may complete in either order).
      const prev =
        earlier.findLast((e) => e.attempt === cur.attempt) ??
        earlier.findLast((e) => e.attempt > cur.attempt)!;
      const what = `${key}: completed twice at attempt ${cur.attempt} (processes ${prev.proc} and ${cur.proc})`;
      // The run that completed second began at its latest start before it completed.
      const curStartEntry = list
        .filter(
          (e) =>
            e.kind === "start" &&
            e.proc === cur.proc &&
            e.attempt === cur.attempt &&
            e.at <= cur.at,
        )
        .sort((a, b) => b.at - a.at || position.get(b)! - position.get(a)!)[0];
      const curStart = curStartEntry?.at ?? cur.at;
      const handBack = list.find(
        (e) =>
          e.kind === "abort" &&
          e.reason === "closed" &&
          e.attempt === cur.attempt &&
          prev.at <= e.at &&
          e.at <= curStart,
      );
      if (handBack) {
        afterHandBack++;
        explained.push(
          `${what}: same attempt again after a hand-back on close by process ${handBack.proc}`,
        );
        continue;
      }
      const repaired = evidence.repaired;
      if (repaired && repaired.keys.has(key) && curStart >= repaired.at) {
        afterRepair++;
        explained.push(`${what}: same attempt again after the audit's repair handed it back`);
        continue;
      }
      // The earlier delivery started at most one lease before the kill, the later one after it.
      if (evidence.serverKilledAt.some((t) => prev.at - evidence.leaseMs <= t && t <= cur.at)) {
        afterServerCrash++;
        continue;
      }
      const index = evidence.order(key);
      const newest = !starts.some(
        (e) =>
          evidence.order(e.key) > index &&
          (curStartEntry ? startedBefore(e, curStartEntry) : e.at <= curStart),
      );
      // The kill came after the key's first delivery. When no process logged a start of it at
      // attempt 1 before this run (the process it went to was killed with it still buffered),
      // that delivery was at least a lease before its redelivery, to a pull request that lives at
      // most `pullExpiresMs`: the kill is then bounded by that window before this run.
      const firstDelivery = list.find(
        (e) => e.kind === "start" && e.attempt === 1 && e !== curStartEntry && e.at <= curStart,
      );
      const killedAfter = firstDelivery
        ? Math.min(firstDelivery.at, prev.at)
        : curStart - evidence.leaseMs - (evidence.pullExpiresMs ?? 10_000);
      const killedBetween = evidence.processes.some(
        (p) =>
          p.end === "sigkill" &&
          p.killedAt !== undefined &&
          killedAfter <= p.killedAt &&
          p.killedAt <= curStart,
      );
      // A redelivery in the same pull, before or after it: another key's, or this key's own.
      const redeliveredWith = starts.find(
        (e) =>
          e.proc === cur.proc &&
          e !== curStartEntry &&
          e.attempt > 1 &&
          Math.abs(e.at - curStart) <= 1_000,
      );
      if (cur.attempt === 1 && newest && killedBetween && redeliveredWith) {
        serverRewound++;
        explained.push(
          `${what}: same attempt again — the newest event, re-sent at delivery count 1 to ` +
            `process ${cur.proc} in the same pull as the redelivery of ${redeliveredWith.key} ` +
            `(attempt ${redeliveredWith.attempt}), after a redelivery to a SIGKILLed process's ` +
            `pull failed (nats-server before nats-io/nats-server#5305 steps back its next sequence)`,
        );
        continue;
      }
      unexplained.push(`${what} with no server kill, hand-back, repair or server rewind between`);
    }
  }
  return {
    laterAttempt,
    afterServerCrash,
    afterHandBack,
    afterRepair,
    serverRewound,
    unexplained,
    explained,
  };
}
