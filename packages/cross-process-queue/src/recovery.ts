import type Database from "better-sqlite3";

/**
 * Recovery procedures of the runbook as functions, for the CLI's guarded commands: back up
 * first, then clear. They take a read-write connection (`openDatabase(path)`).
 */

/**
 * Copy the queue file to `destination` with SQLite's online backup: consistent even while other
 * processes keep writing (a plain `cp` of a WAL database is not).
 */
export async function backupQueue(db: Database.Database, destination: string): Promise<void> {
  await db.backup(destination);
}

/** What {@link clearPending} removed. */
export interface ClearResult {
  /** Open (pending or leased) deliveries deleted. */
  readonly deliveries: number;
  /** Published events skipped by moving the subscribers' cursors to the newest event. */
  readonly skipped: number;
}

/**
 * Drop every delivery not acked yet (of one subscriber, or all): open delivery rows are deleted
 * and cursors move to the newest event, so nothing published so far is delivered. Dead
 * deliveries and the events themselves stay. Back up first ({@link backupQueue}).
 */
export function clearPending(
  db: Database.Database,
  options: { readonly subscriber?: string } = {},
): ClearResult {
  const one = options.subscriber !== undefined;
  const s = options.subscriber ?? null;
  return db
    .transaction(() => {
      const skipped = db
        .prepare(
          `SELECT COUNT(*) FROM subscribers sub
             JOIN subscriber_types st ON st.subscriber = sub.name
             JOIN events e ON e.type = st.type AND e.seq > sub.cursor_seq AND e.seq > st.since_seq
            WHERE (@one = 0 OR sub.name = @s)`,
        )
        .pluck()
        .get({ one: one ? 1 : 0, s }) as number;
      const deliveries = db
        .prepare(
          `DELETE FROM deliveries WHERE status IN ('pending', 'leased') AND (@one = 0 OR subscriber = @s)`,
        )
        .run({ one: one ? 1 : 0, s }).changes;
      db.prepare(
        `UPDATE subscribers SET cursor_seq = (SELECT COALESCE(MAX(seq), 0) FROM events)
          WHERE (@one = 0 OR name = @s)`,
      ).run({ one: one ? 1 : 0, s });
      return { deliveries, skipped };
    })
    .immediate();
}
