import type Database from "better-sqlite3";
import { sleep } from "@switchyard/transport";
import { cursorSql } from "./claim";
import type { Writer } from "./database";
import { QueueOptionsError } from "./errors";
import { lastSeqBefore } from "./introspect";

/** Options of {@link prune}. */
export interface PruneOptions {
  /** Acked deliveries and events older than this are removed (events only once nobody needs them). */
  readonly retentionMs: number;
  /** Ephemeral subscribers not seen for this long belong to dead processes: removed with their deliveries. */
  readonly ephemeralTimeoutMs: number;
  /** Epoch milliseconds, else `QueueOptionsError`. @defaultValue `Date.now()` */
  readonly now?: number;
  /** Stop early (the transport is closing). */
  readonly signal?: AbortSignal;
}

/** What {@link SqliteTransport.prune} removed. */
export interface PruneResult {
  /** Acked deliveries, and dead ones the dead-letter sink already holds. */
  readonly deliveries: number;
  /** Events no subscriber needs any more. */
  readonly events: number;
  /** Abandoned ephemeral subscribers. */
  readonly subscribers: number;
}

/** Events examined per transaction: keeps each write short (about a millisecond) so other processes are not held up. */
const WINDOW = 500;

/**
 * Remove what nobody needs: acked deliveries (and dead ones already in the dead-letter sink)
 * whose event is older than the retention, events older than the retention that no subscriber
 * still has a delivery for, and ephemeral subscribers of processes that died. Pending, leased and
 * dead-but-not-handed-off deliveries, and their events, are always kept. Works in short
 * transactions over windows of `seq`, yielding to the event loop between them.
 */
export async function prune(
  db: Database.Database,
  writer: Writer,
  options: PruneOptions,
): Promise<PruneResult> {
  const now = options.now ?? Date.now();
  // NaN (or text) here read every event as past the retention: acked history kept for
  // `retentionMs` was removed at once.
  if (typeof now !== "number" || !Number.isFinite(now))
    throw new QueueOptionsError("now", now, "epoch milliseconds (a finite number)");
  let deliveries = 0;
  let events = 0;

  const abandoned = writer.read(
    () =>
      db
        .prepare(`SELECT name FROM subscribers WHERE ephemeral = 1 AND last_seen < ?`)
        .pluck()
        .all(now - options.ephemeralTimeoutMs) as string[],
  );
  const dropDeliveries = db.prepare(`DELETE FROM deliveries WHERE subscriber = ?`);
  const dropSubscriberSteps = db.prepare(`DELETE FROM delivery_steps WHERE subscriber = ?`);
  const dropTypes = db.prepare(`DELETE FROM subscriber_types WHERE subscriber = ?`);
  const dropSubscriber = db.prepare(
    `DELETE FROM subscribers WHERE name = ? AND ephemeral = 1 AND last_seen < ?`,
  );
  let subscribers = 0;
  for (const name of abandoned) {
    subscribers += await writer.run(() =>
      db
        .transaction(() => {
          const gone = dropSubscriber.run(name, now - options.ephemeralTimeoutMs).changes;
          if (gone === 0) return 0; // it came back to life meanwhile
          deliveries += dropDeliveries.run(name).changes;
          dropSubscriberSteps.run(name);
          dropTypes.run(name);
          return gone;
        })
        .immediate(),
    );
  }

  const { first, last, before } = writer.read(() => ({
    // Two subqueries: `MIN(seq), MAX(seq)` in one SELECT scans the whole table.
    ...(db
      .prepare(
        `SELECT (SELECT MIN(seq) FROM events) AS first, (SELECT MAX(seq) FROM events) AS last`,
      )
      .get() as {
      first: number | null;
      last: number | null;
    }),
    before: lastSeqBefore(db, now - options.retentionMs),
  }));
  // The newest event always stays. (`seq` would not go back without it either: removing events
  // raises `events_high_water`, see schema version 5.)
  const cutoffSeq = Math.min(before, (last ?? 0) - 1);
  if (first === null || cutoffSeq < first) return { deliveries, events, subscribers };

  const names = db.prepare(`SELECT name FROM subscribers`).pluck();
  const dropDone = db.prepare(
    `DELETE FROM deliveries WHERE subscriber = ? AND event_seq BETWEEN ? AND ?
        AND (status = 'acked' OR (status = 'dead' AND handed_off = 1))`,
  );
  // A timeline goes with its delivery: once the row is gone (pruned here, or deleted by its ack)
  // and the event is past the retention, nothing shows the steps any more.
  const dropSteps = db.prepare(
    `DELETE FROM delivery_steps WHERE event_seq BETWEEN ? AND ?
        AND NOT EXISTS (SELECT 1 FROM deliveries d
                         WHERE d.subscriber = delivery_steps.subscriber AND d.event_seq = delivery_steps.event_seq)`,
  );
  // Kept: events a registered subscriber still has an open or dead delivery for, and events
  // still ahead of a subscriber's cursor that it will take (a damaged cursor read as the claim
  // reads it: from the start, or those events were removed just before it took them).
  const dropEvents = db.prepare(
    `DELETE FROM events WHERE seq BETWEEN ? AND ?
        AND NOT EXISTS (SELECT 1 FROM subscribers s
                          JOIN deliveries d ON d.subscriber = s.name AND d.event_seq = events.seq)
        AND NOT EXISTS (SELECT 1 FROM subscribers s
                          JOIN subscriber_types st ON st.subscriber = s.name AND st.type = events.type
                         WHERE events.seq > ${cursorSql("s.cursor_seq")} AND events.seq > st.since_seq)`,
  );
  for (let lo = first; lo <= cutoffSeq; lo += WINDOW) {
    if (options.signal?.aborted) break;
    const hi = Math.min(cutoffSeq, lo + WINDOW - 1);
    const began = performance.now();
    const removed = await writer.run(() =>
      db
        .transaction(() => {
          let d = 0;
          for (const name of names.all() as string[]) d += dropDone.run(name, lo, hi).changes;
          dropSteps.run(lo, hi);
          return { d, e: dropEvents.run(lo, hi).changes };
        })
        .immediate(),
    );
    deliveries += removed.d;
    events += removed.e;
    // Hand the lock over between windows, for at least as long as the window held it: writers
    // of other processes retry every millisecond, so they get in here instead of waiting for the
    // whole prune (a bare setImmediate let the next window take the lock first: a subscriber
    // then waited ~190 ms while 100,000 events were pruned).
    await sleep(Math.max(1, performance.now() - began), { signal: options.signal }).catch(() => {});
  }
  return { deliveries, events, subscribers };
}
