import { readdirSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import type Database from "better-sqlite3";
import {
  type ActionResult,
  type Admin,
  type AuditReport,
  type BackupOptions,
  type DeadLetterFilter,
  type PurgeOptions,
  type ReplayOptions,
  type ReplayResult,
  type Transport,
  REPLAY_SKIP_REASONS,
  UnsupportedOperationError,
  abortReason,
  replaySkipReason,
  serializeError,
} from "@switchyard/transport";
import { DEFAULT_BUSY_TIMEOUT_MS, Writer } from "./database";
import { ReplayConflictError, UnboundedPurgeError } from "./dead-letter-errors";
import {
  type DeadLetter,
  type DeadLetterStatus,
  type ReplayTarget,
  type SqliteDeadLetterStore,
  readEnvelope,
} from "./dead-letters";
import { InspectorQueryError } from "./errors";
import { deadLetterWhere } from "./inspector";
import { backupQueue, clearPending } from "./recovery";

/** Backups kept per database unless told otherwise. */
export const DEFAULT_BACKUPS_KEPT = 10;

/**
 * Why a dead letter is not replayed without `again`.
 *
 * @deprecated Use `REPLAY_SKIP_REASONS.replayedBefore` (or `replaySkipReason`) of
 * `@switchyard/transport`: the one wording of every transport, which this equals.
 */
export const REPLAYED_BEFORE = REPLAY_SKIP_REASONS.replayedBefore;

/** What {@link SqliteAdmin} works with; the driver opens each part on first use. */
export interface SqliteAdminParts {
  /** The queue file. */
  readonly path: string;
  /** A read-write connection to it. */
  readonly database: () => Database.Database;
  /** The dead-letter store on it. */
  readonly deadLetters: () => SqliteDeadLetterStore;
  /**
   * A transport to requeue through, and how to let go of it afterwards (a transport opened for
   * the action is closed; the driver's own is kept).
   */
  readonly requeueTransport: () => { transport: Transport; release: () => Promise<void> };
  /** Clock, for tests. @defaultValue Date.now */
  readonly now?: () => number;
}

/** The time stamp in a backup's name: `20261206T091500Z`, sorting in time order. */
function stamp(at: number): string {
  return new Date(at)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.(\d{3})Z$/, "$1Z");
}

const BACKUP_NAME = /^\d{8}T\d{9}Z(?:-\d+)?\.bak$/;

function checkSignal(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/**
 * Operator actions on a SQLite queue file (the `Admin` of `@switchyard/transport`): replay and
 * purge dead letters, clear the pending backlog, back up with rotation. Every destructive action
 * takes a backup first and returns its path. `audit` rejects with `UnsupportedOperationError`:
 * each delivery is a row of its own, so there is no ack floor that could pass an event.
 */
export class SqliteAdmin implements Admin {
  readonly #parts: SqliteAdminParts;
  readonly #now: () => number;
  #writer: { db: Database.Database; writer: Writer } | undefined;

  constructor(parts: SqliteAdminParts) {
    this.#parts = parts;
    this.#now = parts.now ?? Date.now;
  }

  /**
   * Run the write `fn` on the read-write connection without blocking the event loop on another
   * process's lock: each attempt runs with `busy_timeout = 0` (the connection's own wait is put
   * back after it, for the inspector's reads) and a busy one is retried asynchronously, as the
   * transport writes (`Writer`): after the busy timeout + 30 s it is a `QueueBusyError`, and
   * `signal` ends the wait. (The connection's `busy_timeout` held the thread for up to 5 s, then
   * failed with a bare "database is locked".)
   */
  async #write<T>(fn: (db: Database.Database) => T, signal?: AbortSignal): Promise<T> {
    const db = this.#parts.database();
    if (this.#writer?.db !== db)
      this.#writer = { db, writer: new Writer(db, this.#parts.path, DEFAULT_BUSY_TIMEOUT_MS) };
    return this.#writer.writer.run(() => {
      const waits = db.pragma("busy_timeout", { simple: true }) as number;
      db.pragma("busy_timeout = 0");
      try {
        return fn(db);
      } finally {
        db.pragma(`busy_timeout = ${Number(waits)}`);
      }
    }, signal);
  }

  /**
   * Hand dead letters back to the subscriber that failed them, through a SQLite transport's
   * `requeue` (same event id). Exclusive per record (the store's claim): of two replays at the same
   * instant each record goes to one. Without a `status` filter, records waiting for a retry or
   * given up are replayed; a record already `replayed` is skipped unless `again`. What is skipped,
   * and why, is `replaySkipReason` of `@switchyard/transport`, on a dry run too (a record another
   * replayer holds under a live lease is reported skipped, as the replay skips it). A record from
   * another origin (an in-process handler, another transport) fails with why: it is replayed where
   * it came from (`DlqRetryDaemon`). `signal` stops it between records: the record being
   * requeued is finished, the ones not replayed yet are listed in `skipped` ("the replay was
   * aborted") and left as they were, claimable at once.
   */
  async replay(filter: DeadLetterFilter, options: ReplayOptions = {}): Promise<ReplayResult> {
    checkSignal(options.signal);
    const store = this.#parts.deadLetters();
    const statuses = filter.status ?? [
      "pending_retry",
      "permanently_failed",
      "retrying",
      "replayed",
    ];
    const { where, params } = deadLetterWhere({ ...filter, status: statuses });
    const rows = this.#parts
      .database()
      .prepare(
        `SELECT id, status, replays, lease_until, envelope FROM dead_letters WHERE ${where} ORDER BY id`,
      )
      .all(params) as {
      id: number;
      status: DeadLetterStatus;
      replays: number;
      lease_until: number | null;
      envelope: string | null;
    }[];
    const now = this.#now();
    const skipped: { id: string; reason: string }[] = [];
    // The records as selected (status, replays): one another replayer replays meanwhile is then
    // refused by the store (ReplayConflictError → skipped) instead of being replayed again.
    const candidates: { id: number; status: string; replays: number }[] = [];
    for (const row of rows) {
      // Readable as the store reads it (toDeadLetter).
      const { envelope, damaged } = readEnvelope(row.envelope);
      const why = replaySkipReason(
        {
          status: row.status,
          hasEnvelope: envelope !== undefined,
          ...(damaged !== undefined ? { damaged } : {}),
          // As the store's claim sees it: live until its lease_until has passed.
          claimLive: (row.lease_until ?? 0) >= now,
        },
        { again: options.again === true },
      );
      if (why !== undefined) skipped.push({ id: String(row.id), reason: why });
      else candidates.push(row);
    }
    const result = {
      dryRun: options.dryRun === true,
      matched: rows.length,
      replayed: [] as string[],
      skipped,
      failed: [] as { id: string; error: string }[],
      wouldReplay: [] as string[],
    };
    if (options.dryRun) {
      result.wouldReplay.push(...candidates.map((c) => String(c.id)));
      return result;
    }
    if (candidates.length === 0) return result;
    const { transport, release } = this.#parts.requeueTransport();
    // Whether the store handed the current record to the target (else an abort stopped it first).
    let handed = false;
    const target: ReplayTarget = {
      async replay(record) {
        handed = true;
        if (record.origin !== transport.name)
          throw new Error(
            record.origin === "router"
              ? `it came from an in-process handler of ${record.subscriber}; the DlqRetryDaemon in that daemon's process replays it`
              : `it came from the ${record.origin} transport; replay it there`,
          );
        await transport.requeue!(record.subscriber, record.envelope);
      },
    };
    const { signal } = options;
    // Aborted: the records not replayed yet are listed in `skipped`, not dropped from the result.
    const aborted = (from: number) => {
      for (const rest of candidates.slice(from))
        skipped.push({ id: String(rest.id), reason: REPLAY_SKIP_REASONS.aborted });
    };
    try {
      for (const [at, selected] of candidates.entries()) {
        const id = selected.id;
        if (signal?.aborted) {
          aborted(at);
          break;
        }
        handed = false;
        try {
          const record: DeadLetter = {
            ...store.inspect(id),
            status: selected.status as DeadLetter["status"],
            replays: selected.replays,
          };
          await store.replay(record, { to: target, ...(signal ? { signal } : {}) });
          result.replayed.push(String(id));
        } catch (error) {
          if (error instanceof ReplayConflictError)
            skipped.push({ id: String(id), reason: error.message });
          else if (signal?.aborted && !handed) {
            aborted(at); // the store released its claim on this one
            break;
          } else result.failed.push({ id: String(id), error: serializeError(error).message });
        }
      }
    } finally {
      await release();
    }
    return result;
  }

  /**
   * Purge dead letters: `purged` tombstones (envelope and stack dropped) or, with `hard`, rows
   * deleted. Never touches records already purged or being replayed. Needs a filter or `all`
   * (else `UnboundedPurgeError`); backs the file up first (not on a dry run).
   */
  async purge(filter: DeadLetterFilter, options: PurgeOptions = {}): Promise<ActionResult> {
    checkSignal(options.signal);
    const bounded = Object.values(filter).some((v) => v !== undefined);
    if (!bounded && !options.all) throw new UnboundedPurgeError();
    const db = this.#parts.database();
    this.#parts.deadLetters(); // the table exists from here on
    const { where, params } = deadLetterWhere(filter);
    const guard = `${where} AND status NOT IN ('purged', 'retrying')`;
    const count = db
      .prepare(`SELECT COUNT(*) FROM dead_letters WHERE ${guard}`)
      .pluck()
      .get(params) as number;
    if (options.dryRun || count === 0) return { dryRun: options.dryRun === true, count };
    const backup = await this.backup();
    checkSignal(options.signal);
    const changed = await this.#write(
      () =>
        db
          .transaction(() =>
            options.hard
              ? db.prepare(`DELETE FROM dead_letters WHERE ${guard}`).run(params).changes
              : db
                  .prepare(
                    `UPDATE dead_letters SET status = 'purged', envelope = NULL, error_stack = NULL,
                        next_retry_at = NULL, updated_at = @now WHERE ${guard}`,
                  )
                  .run({ ...params, now: this.#now() }).changes,
          )
          .immediate(),
      options.signal,
    );
    return { dryRun: false, count: changed, backup };
  }

  /**
   * Drop the pending backlog (of one subscriber and/or one type, or all) with `clearPending`,
   * after a backup. `count` is open deliveries deleted plus published events skipped.
   */
  async clearPending(
    filter: { readonly subscriber?: string; readonly type?: string },
    options: {
      readonly dryRun?: boolean;
      readonly backup?: BackupOptions;
      readonly signal?: AbortSignal;
    } = {},
  ): Promise<ActionResult> {
    checkSignal(options.signal);
    const db = this.#parts.database();
    const scope = {
      ...(filter.subscriber !== undefined ? { subscriber: filter.subscriber } : {}),
      ...(filter.type !== undefined ? { type: filter.type } : {}),
    };
    if (options.dryRun) {
      const r = clearPending(db, { ...scope, dryRun: true });
      return { dryRun: true, count: r.deliveries + r.skipped };
    }
    const backup = await this.backup(options.backup);
    checkSignal(options.signal);
    const r = await this.#write(() => clearPending(db, scope), options.signal);
    return { dryRun: false, count: r.deliveries + r.skipped, backup };
  }

  /**
   * Copy the file with SQLite's online backup (consistent while other processes write) to
   * `<dir>/<file name>.<UTC time>.bak`, then remove the oldest backups of this file in `dir`
   * beyond `keep`. Resolves to the new backup's path.
   */
  async backup(options: BackupOptions = {}): Promise<string> {
    checkSignal(options.signal);
    const keep = options.keep ?? DEFAULT_BACKUPS_KEPT;
    if (!Number.isSafeInteger(keep) || keep < 1)
      throw new InspectorQueryError("keep", `expected a whole number ≥ 1, got ${keep}.`);
    const file = resolve(this.#parts.path);
    const dir = resolve(options.dir ?? dirname(file));
    const prefix = `${basename(file)}.`;
    const taken = new Set(readdirSync(dir));
    let name = `${prefix}${stamp(this.#now())}`;
    for (let n = 1; taken.has(`${name}.bak`); n++) name = `${prefix}${stamp(this.#now())}-${n}`;
    const destination = join(dir, `${name}.bak`);
    await backupQueue(this.#parts.database(), destination);
    const backups = readdirSync(dir)
      .filter((f) => f.startsWith(prefix) && BACKUP_NAME.test(f.slice(prefix.length)))
      .sort();
    for (const old of backups.slice(0, Math.max(0, backups.length - keep)))
      rmSync(join(dir, old), { force: true });
    return destination;
  }
  async audit(): Promise<AuditReport> {
    throw new UnsupportedOperationError("sqlite", "audit ack floors", {
      hint:
        "Each delivery is a row of its own, claimed and acked by itself: there is no ack floor " +
        "that could pass an event. Look for stuck deliveries with `switchyard subscribers` instead.",
    });
  }
}
