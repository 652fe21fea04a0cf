import { cursorSql } from "./claim";

/**
 * Counts per subscriber at `@now` (ms): the one definition of backlog (`SubscriberBacklog` in
 * `@switchyard/transport`), as the `backlog` view of schema 2 computes it with the reader's clock.
 * `pending`: never attempted, including matching events after the subscriber's cursor;
 * `in_flight`: leased, lease not expired; `retrying`: attempted and waiting (a failure's
 * backoff, or an expired lease); `dead`; and the publish times of the oldest pending or retrying
 * delivery and of the oldest event after the cursor.
 *
 * Events after a cursor are counted in one pass (`q`): a range scan of `events` by `seq` from the
 * lowest cursor, each row matched to the subscribers of its type. `events` has no index on `type`
 * (publish pays for every index); left to itself SQLite built an automatic index on it for every
 * subscriber and column (two full sorts of the table each), which made this 5× slower on a
 * 100,000-event backlog. The `backlog` view computes the same numbers with the older plan. A
 * cursor is read as a claim reads it (`cursorSql`: one that is not a number counts as 0).
 */
export const BACKLOG_SQL = `
  SELECT s.name AS subscriber,
         (SELECT COUNT(*) FROM deliveries d INDEXED BY deliveries_due
           WHERE d.subscriber = s.name AND d.status IN ('pending', 'leased')
             AND d.status = 'pending' AND d.attempts = 0)
       + COALESCE(q.n, 0) AS pending,
         (SELECT COUNT(*) FROM deliveries d INDEXED BY deliveries_due
           WHERE d.subscriber = s.name AND d.status IN ('pending', 'leased')
             AND d.status = 'leased' AND d.lease_until > @now) AS in_flight,
         (SELECT COUNT(*) FROM deliveries d INDEXED BY deliveries_due
           WHERE d.subscriber = s.name AND d.status IN ('pending', 'leased')
             AND ((d.status = 'pending' AND d.attempts > 0)
               OR (d.status = 'leased' AND d.lease_until <= @now))) AS retrying,
         (SELECT COUNT(*) FROM deliveries d
           WHERE d.subscriber = s.name AND d.status = 'dead') AS dead,
         (SELECT MIN(e.created_at) FROM deliveries d INDEXED BY deliveries_due
            JOIN events e ON e.seq = d.event_seq
           WHERE d.subscriber = s.name AND d.status IN ('pending', 'leased')
             AND (d.status = 'pending' OR d.lease_until <= @now)) AS oldest_open_at,
         q.oldest AS oldest_queued_at
    FROM subscribers s
    LEFT JOIN (
      SELECT qs.name AS subscriber, COUNT(*) AS n, MIN(e.created_at) AS oldest
        FROM subscribers qs
        JOIN events e NOT INDEXED ON e.seq > ${cursorSql("qs.cursor_seq")}
                                  AND e.seq > (SELECT MIN(${cursorSql("cursor_seq")}) FROM subscribers)
        JOIN subscriber_types st ON st.subscriber = qs.name AND st.type = e.type AND e.seq > st.since_seq
       GROUP BY qs.name) q ON q.subscriber = s.name
   ORDER BY s.name`;

/** A row of {@link BACKLOG_SQL}. */
export interface BacklogRow {
  subscriber: string;
  pending: number;
  in_flight: number;
  retrying: number;
  dead: number;
  oldest_open_at: number | null;
  oldest_queued_at: number | null;
}
