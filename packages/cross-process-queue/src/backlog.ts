/**
 * Counts per subscriber at `@now` (ms): the one definition of backlog (`SubscriberBacklog` in
 * `@switchyard/transport`), as the `backlog` view of schema 2 computes it with the reader's clock.
 * `pending`: never attempted, including matching events after the subscriber's cursor;
 * `in_flight`: leased, lease not expired; `retrying`: attempted and waiting (a failure's
 * backoff, or an expired lease); `dead`; and the publish times of the oldest pending or retrying
 * delivery and of the oldest event after the cursor.
 */
export const BACKLOG_SQL = `
  SELECT s.name AS subscriber,
         (SELECT COUNT(*) FROM deliveries d INDEXED BY deliveries_due
           WHERE d.subscriber = s.name AND d.status IN ('pending', 'leased')
             AND d.status = 'pending' AND d.attempts = 0)
       + (SELECT COUNT(*) FROM subscriber_types st
            JOIN events e ON e.type = st.type AND e.seq > s.cursor_seq AND e.seq > st.since_seq
           WHERE st.subscriber = s.name) AS pending,
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
         (SELECT MIN(e.created_at) FROM subscriber_types st
            JOIN events e ON e.type = st.type AND e.seq > s.cursor_seq AND e.seq > st.since_seq
           WHERE st.subscriber = s.name) AS oldest_queued_at
    FROM subscribers s ORDER BY s.name`;

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
