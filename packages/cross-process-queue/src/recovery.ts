import type Database from "better-sqlite3";
import { cursorSql } from "./claim";

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
 * Drop every delivery not acked yet (of one subscriber and/or one event type, or all): open
 * delivery rows are deleted and what was published so far is skipped (the subscribers' cursors
 * move to the newest event; with `type`, the subscription of that type starts after the newest
 * event instead, so the other types keep their backlog). Dead deliveries and the events themselves
 * stay. Back up first ({@link backupQueue}). With `dryRun`, counts and changes nothing.
 */
export function clearPending(
  db: Database.Database,
  options: { readonly subscriber?: string; readonly type?: string; readonly dryRun?: boolean } = {},
): ClearResult {
  const params = {
    one: options.subscriber !== undefined ? 1 : 0,
    s: options.subscriber ?? null,
    typed: options.type !== undefined ? 1 : 0,
    t: options.type ?? null,
  };
  const run = db.transaction(() => {
    const skipped = db
      .prepare(
        `SELECT COUNT(*) FROM subscribers sub
           JOIN subscriber_types st ON st.subscriber = sub.name
           JOIN events e ON e.type = st.type AND e.seq > ${cursorSql("sub.cursor_seq")} AND e.seq > st.since_seq
          WHERE (@one = 0 OR sub.name = @s) AND (@typed = 0 OR st.type = @t)`,
      )
      .pluck()
      .get(params) as number;
    const open = `status IN ('pending', 'leased') AND (@one = 0 OR subscriber = @s) AND (@typed = 0 OR type = @t)`;
    if (options.dryRun) {
      const deliveries = db
        .prepare(`SELECT COUNT(*) FROM deliveries WHERE ${open}`)
        .pluck()
        .get(params) as number;
      return { deliveries, skipped };
    }
    const deliveries = db.prepare(`DELETE FROM deliveries WHERE ${open}`).run(params).changes;
    if (options.type === undefined) {
      db.prepare(
        `UPDATE subscribers SET cursor_seq = (SELECT COALESCE(MAX(seq), 0) FROM events)
          WHERE (@one = 0 OR name = @s)`,
      ).run(params);
    } else {
      db.prepare(
        `UPDATE subscriber_types SET since_seq = MAX(since_seq, (SELECT COALESCE(MAX(seq), 0) FROM events))
          WHERE type = @t AND (@one = 0 OR subscriber = @s)`,
      ).run(params);
    }
    return { deliveries, skipped };
  });
  return options.dryRun ? run.deferred() : run.immediate();
}
