import { hostname } from "node:os";
import type Database from "better-sqlite3";
import {
  EventValidationError,
  assertEnvelope,
  describeType,
  type Envelope,
} from "@switchyard/event-schema";
import type { DeadLetterReason } from "@switchyard/transport";
import type { Writer } from "./database";
import { PayloadTooLargeError, UndecodableEventError } from "./errors";

/**
 * The write path of the queue: every statement prepared once per connection, every multi-row
 * change in one `BEGIN IMMEDIATE` transaction. SQL text is constant; values are bound.
 */

/** A delivery taken by one claim: the event and the lease that fences its outcome. */
export interface ClaimedDelivery {
  readonly seq: number;
  readonly envelope: Envelope;
  /** 1 for the first delivery, 2 for the first retry or redelivery, … */
  readonly attempt: number;
  readonly token: number;
  readonly leaseUntil: number;
  /**
   * Claimed off the happy path (a retry, a redelivery after an expired lease, a replay): its
   * timeline is being written, so its ack is recorded too. A first claim of a new event is not.
   */
  readonly journaled?: true;
  /**
   * Set when the stored row cannot be decoded (written by another program, or edited by hand):
   * `envelope` is then a stand-in carrying the row's raw columns as `data`, and the delivery goes
   * straight to the dead-letter path with this error, without reaching the handler.
   */
  readonly undecodable?: UndecodableEventError;
}

/**
 * The decided outcome of a delivery, applied under its lease token. `attempt` (the claim's) goes
 * into the delivery's timeline when the outcome is recorded there.
 */
export type Outcome =
  | {
      readonly kind: "ack";
      readonly seq: number;
      readonly token: number;
      readonly attempt?: number;
      /** Record an `acked` step (the delivery was claimed off the happy path). */
      readonly journaled?: boolean;
    }
  | {
      readonly kind: "retry";
      readonly seq: number;
      readonly token: number;
      readonly attempt?: number;
      readonly availableAt: number;
      /** The backoff applied, for the timeline. @defaultValue `availableAt` − now */
      readonly delayMs?: number;
      readonly error: string;
      /** Why, when it is not the handler's failure (a replay during the attempt, a failed sink). */
      readonly detail?: string;
    }
  | {
      readonly kind: "dead";
      readonly seq: number;
      readonly token: number;
      readonly attempt?: number;
      readonly error: string;
      readonly reason: DeadLetterReason;
      /** The dead-letter sink accepted it (the row may be pruned); else the row is the only copy. */
      readonly handedOff: boolean;
    }
  | {
      readonly kind: "release";
      readonly seq: number;
      readonly token: number;
      readonly attempt?: number;
    }
  | {
      /**
       * Not a change: the worker dropped an attempt's outcome because its lease had expired
       * (the fence, applied by the worker itself). Only recorded in the timeline.
       */
      readonly kind: "fenced";
      readonly seq: number;
      readonly token: number;
      readonly attempt?: number;
      readonly detail: string;
    };

/** One entry of a delivery's timeline, as {@link QueueStore.step} writes it to `delivery_steps`. */
export interface StepRow {
  readonly kind: string;
  readonly at: number;
  readonly attempt?: number | null | undefined;
  /** A serialized error, as JSON text. */
  readonly error?: string | null | undefined;
  readonly delayMs?: number | null | undefined;
  readonly reason?: string | null | undefined;
  readonly detail?: string | null | undefined;
}

/**
 * Steps kept per delivery in `delivery_steps`: a delivery retried or fenced more often than this
 * keeps its latest steps (the inspector then sets `historyTruncated`).
 */
export const HISTORY_LIMIT = 50;

/** Who wrote a step: this process. */
const ACTOR = `${hostname()}:${process.pid}`;

/** Result of {@link QueueStore.exchange}. */
export interface ExchangeResult {
  /** Outcomes whose lease was no longer held (fenced off, discarded). */
  readonly lost: Outcome[];
  readonly claimed: ClaimedDelivery[];
  /** Events after the subscriber's cursor remain to be looked at: claim again. */
  readonly more: boolean;
  /**
   * When a claim came back short with nothing more to look at: when the subscriber's next open
   * delivery becomes claimable ({@link QueueStore.nextDue}, `null` for none), read in the same
   * transaction — the subscription needs it then, and a read of its own cost a read transaction
   * per claim. Absent otherwise.
   */
  readonly nextDue?: number | null;
}

/**
 * Events looked at per claim after a subscriber's cursor. Taking events straight into leased
 * deliveries stops at the batch size anyway; a worker handling only some of its subscriber's
 * types turns every matching event of the window into a pending row, so it looks at fewer.
 */
const CURSOR_WINDOW = 4_096;
const PARTIAL_CURSOR_WINDOW = 256;

/**
 * Whether an envelope attribute is stored in a column of its own; everything else on the
 * envelope goes to `extensions`. A switch, not a Set: ~10× cheaper per key, and `prepareEvent`
 * asks for every key of every event published.
 */
function isColumn(key: string): boolean {
  switch (key) {
    case "specversion":
    case "id":
    case "type":
    case "source":
    case "subject":
    case "time":
    case "datacontenttype":
    case "dataversion":
    case "data":
      return true;
    default:
      return false;
  }
}

type EventRow = [
  id: string,
  type: string,
  source: string,
  subject: string | null,
  time: string,
  dataversion: number,
  payload: string,
  extensions: string | null,
];

const OPEN = `status IN ('pending', 'leased')`;

/**
 * A subscriber's `cursor_seq` in SQL as a claim reads it: a number as stored; anything else
 * another program wrote there (text, a BLOB) as 0 — the claim starts over from the subscriber's
 * registration (`since_seq`) then, so whatever reads the cursor to decide what the subscriber
 * still needs must read it the same way: retention, the backlog (`BACKLOG_SQL`, the `backlog` view
 * from schema 6), the introspection counts and traces, and `clearPending`. A change here needs a
 * new migration that recreates the `backlog` view.
 */
export const cursorSql = (column: string): string =>
  `(CASE WHEN typeof(${column}) IN ('integer', 'real') THEN ${column} ELSE 0 END)`;

/**
 * The highest fencing token a claim hands out. A subscriber's counter counts up by one per claim
 * (2^53 claims: centuries); past this a double can no longer count (`t + 1 === t`).
 */
const MAX_TOKEN = Number.MAX_SAFE_INTEGER;

/**
 * The leased deliveries of `subscriber` holding a token at or past `from` (SQL expressions; see
 * `#nextToken`), by the `deliveries_leased` index: only integers can equal a token a claim hands
 * out, and the range keeps the seek off text and BLOBs (they sort after every number).
 */
const held = (
  subscriber: string,
  from: string,
): string => `FROM deliveries INDEXED BY deliveries_leased
       WHERE subscriber = ${subscriber} AND status = 'leased'
         AND lease_token BETWEEN ${from} AND 9223372036854775807 AND typeof(lease_token) = 'integer'`;

/** The earlier of two times, either of which may be missing. */
const earlier = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined ? b : b === undefined ? a : Math.min(a, b);

/**
 * The claim statements' LIMIT. SQLite (seen with 3.49 and 3.53) plans with the value bound to a
 * bare `LIMIT @limit` and marks the statement for re-preparation whenever that parameter is bound
 * again — which better-sqlite3 does on every run — so every claim re-parsed and re-planned both
 * statements (~60–100 µs each). Behind a scalar subquery the value is only read at run time.
 */
const LIMIT = `LIMIT (SELECT @limit)`;

/** Options of {@link QueueStore}. */
export interface QueueStoreOptions {
  readonly maxPayloadBytes: number;
  /** Keep acked deliveries (status `acked`) until retention prunes them, instead of deleting them at once. */
  readonly keepAcked: boolean;
}

/** Prepared statements and transactions over one connection. */
export class QueueStore {
  readonly db: Database.Database;
  /** Takes the write lock without blocking the event loop. */
  readonly writer: Writer;
  readonly #maxPayloadBytes: number;
  readonly #keepAcked: boolean;

  readonly #insertEvent: Database.Statement;
  /** 1 when the newest events were removed: the next seq must come from `events_high_water`. */
  readonly #highWaterAhead: Database.Statement;
  /** Multi-row INSERTs of events by row count (2 to {@link MAX_INSERT_ROWS}). */
  readonly #insertMany = new Map<number, Database.Statement>();
  /** Entries of `#insertMany` whose row count is not a power of two (at most {@link EXACT_SIZES}). */
  #exactSizes = 0;
  readonly #maxSeq: Database.Statement;
  readonly #nextSeq: Database.Statement;
  /**
   * A claim's reads in one statement: the subscriber's cursor, types and last token, the earliest
   * `available_at` of its open deliveries, the newest `seq`, and the highest token its leases hold.
   */
  readonly #claimState: Database.Statement;
  readonly #setCursor: Database.Statement;
  readonly #materialize: Database.Statement;
  readonly #claimNew: Database.Statement;
  readonly #claimDue: Database.Statement;
  readonly #eventBySeq: Database.Statement;
  readonly #eventsBetween: Database.Statement;
  readonly #ack: Database.Statement;
  readonly #retry: Database.Statement;
  readonly #dead: Database.Statement;
  readonly #release: Database.Statement;
  readonly #extend: Database.Statement;
  readonly #nextDue: Database.Statement;
  readonly #subscriberRow: Database.Statement;
  readonly #insertSubscriber: Database.Statement;
  readonly #updateSubscriber: Database.Statement;
  readonly #insertSubscriberType: Database.Statement;
  readonly #touchSubscriber: Database.Statement;
  readonly #deleteSubscriber: Database.Statement;
  readonly #deleteSubscriberTypes: Database.Statement;
  readonly #deleteSubscriberDeliveries: Database.Statement;
  readonly #deleteSubscriberSteps: Database.Statement;
  readonly #insertStep: Database.Statement;
  readonly #trimSteps: Database.Statement;
  readonly #leasedDue: Database.Statement;
  readonly #heldTokens: Database.Statement;
  readonly #retireTokens: Database.Statement;
  /** Whether a worker's types cover every type of its subscriber, by the subscriber's `types` JSON. */
  readonly #covers = new WeakMap<ReadonlySet<string>, { json: string; covers: boolean }>();

  readonly #publishTx: Database.Transaction<
    (events: readonly PreparedEvent[], now: number) => number
  >;
  readonly #exchangeTx: Database.Transaction<
    (request: ExchangeRequest, now: number) => ExchangeResult
  >;

  constructor(db: Database.Database, writer: Writer, options: QueueStoreOptions) {
    this.db = db;
    this.writer = writer;
    this.#maxPayloadBytes = options.maxPayloadBytes;
    this.#keepAcked = options.keepAcked;

    // `seq` past every seq ever removed (see migration 5); a batch checks that once (below).
    this.#insertEvent = db.prepare(
      `INSERT INTO events (seq, id, type, source, subject, time, dataversion, payload, extensions, created_at)
       VALUES (MAX(COALESCE((SELECT MAX(seq) FROM events), 0), (SELECT seq FROM events_high_water)) + 1,
               ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
    );
    this.#highWaterAhead = db
      .prepare(
        `SELECT (SELECT seq FROM events_high_water) > COALESCE((SELECT MAX(seq) FROM events), 0)`,
      )
      .pluck();
    this.#maxSeq = db.prepare(`SELECT COALESCE(MAX(seq), 0) FROM events`).pluck();
    this.#nextSeq = db.prepare(`SELECT MIN(seq) FROM events WHERE seq > ?`).pluck();
    // The reads every claim makes, in one statement (each statement run costs a call into
    // SQLite and its own setup: ~3 µs of the ~9 µs the first three took apart). `MIN(available_at)`
    // is one seek of the open-deliveries index: due when it is a number ≤ now (text another program
    // wrote sorts after every number and is never due, as in `available_at <= now`). The highest
    // token held (see `#nextToken`) is one seek of `deliveries_leased` (schema 6): by the
    // open-deliveries index it was a walk of every open delivery of the subscriber, +28 % CPU per
    // delivery at 100 in flight and linear in a backlog of retries; the index costs ~5 %.
    this.#claimState = db
      .prepare(
        `SELECT cursor_seq, types, lease_token,
                (SELECT MIN(available_at) FROM deliveries INDEXED BY deliveries_due
                  WHERE subscriber = @subscriber AND ${OPEN}),
                (SELECT COALESCE(MAX(seq), 0) FROM events),
                (SELECT MAX(lease_token) ${held("@subscriber", "0")})
           FROM subscribers WHERE name = @subscriber`,
      )
      .raw();
    this.#setCursor = db.prepare(
      `UPDATE subscribers SET cursor_seq = ?, lease_token = ? WHERE name = ?`,
    );
    const newEvents = `FROM events e
         JOIN subscriber_types st ON st.subscriber = @subscriber AND st.type = e.type
        WHERE e.seq > @after AND e.seq <= @upto AND e.seq > st.since_seq
          AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.subscriber = @subscriber AND d.event_seq = e.seq)
        ORDER BY e.seq`;
    // For a worker that handles only some of its subscriber's types: take every matching event as pending.
    this.#materialize = db.prepare(
      `INSERT INTO deliveries (subscriber, event_seq, type, available_at, updated_at)
       SELECT @subscriber, e.seq, e.type, @now, @now ${newEvents}`,
    );
    // The common case: take the next events straight into leased deliveries.
    this.#claimNew = db
      .prepare(
        `INSERT INTO deliveries (subscriber, event_seq, type, status, attempts, available_at,
                                 lease_token, lease_until, updated_at)
         SELECT @subscriber, e.seq, e.type, 'leased', 1, @until, @token, @until, @now ${newEvents}
         ${LIMIT}
         RETURNING event_seq, attempts`,
      )
      .raw();

    const due = `SELECT event_seq FROM deliveries INDEXED BY deliveries_due
                 WHERE subscriber = @subscriber AND ${OPEN} AND available_at <= @now
                   AND type IN (SELECT value FROM json_each(@types))
                 ORDER BY event_seq ${LIMIT}`;
    this.#claimDue = db
      .prepare(
        `UPDATE deliveries
            SET status = 'leased', attempts = attempts + 1, lease_token = @token,
                lease_until = @until, available_at = @until, updated_at = @now
          WHERE subscriber = @subscriber AND event_seq IN (${due})
         RETURNING event_seq, attempts`,
      )
      .raw();
    // The leases among the deliveries the claim above is about to take: they ran out under an
    // attempt that never settled (a crash or a hang), which the timeline records.
    this.#leasedDue = db
      .prepare(
        `SELECT event_seq, attempts, lease_until, lease_token FROM deliveries
          WHERE subscriber = @subscriber AND status = 'leased' AND event_seq IN (${due})`,
      )
      .raw();
    this.#heldTokens = db.prepare(`SELECT MAX(lease_token) ${held("?", "?")}`).pluck();
    this.#retireTokens = db.prepare(
      `UPDATE deliveries SET lease_token = NULL WHERE (subscriber, event_seq) IN
         (SELECT subscriber, event_seq ${held("?", "?")})`,
    );
    // Steps are numbered per delivery: the oldest kept step's number says whether any were dropped.
    this.#insertStep = db
      .prepare(
        `INSERT INTO delivery_steps (subscriber, event_seq, n, at, kind, attempt, error, delay_ms,
                                     reason, actor, detail)
         SELECT @subscriber, @seq, COALESCE(MAX(n), 0) + 1, @at, @kind, @attempt, @error, @delayMs,
                @reason, @actor, @detail
           FROM delivery_steps WHERE subscriber = @subscriber AND event_seq = @seq
         RETURNING n`,
      )
      .pluck();
    this.#trimSteps = db.prepare(
      `DELETE FROM delivery_steps WHERE subscriber = ? AND event_seq = ? AND n <= ?`,
    );
    const eventColumns = `id, type, source, subject, time, dataversion, payload, extensions`;
    this.#eventBySeq = db.prepare(`SELECT ${eventColumns} FROM events WHERE seq = ?`).raw();
    this.#eventsBetween = db
      .prepare(`SELECT seq, ${eventColumns} FROM events WHERE seq BETWEEN ? AND ?`)
      .raw();
    const fenced = `WHERE subscriber = ? AND event_seq = ? AND lease_token = ? AND status = 'leased'`;
    const ackFence = `WHERE subscriber = @subscriber AND event_seq = @seq AND lease_token = @token
              AND status = 'leased'`;
    // By default an acked delivery is deleted: the cursor already says it was delivered, and a
    // table holding only open and dead deliveries stays small and fast.
    this.#ack = options.keepAcked
      ? db.prepare(
          `UPDATE deliveries SET status = 'acked', lease_token = NULL, lease_until = NULL,
                  updated_at = @now ${ackFence}`,
        )
      : db.prepare(`DELETE FROM deliveries ${ackFence}`);
    this.#retry = db
      .prepare(
        `UPDATE deliveries SET status = 'pending', available_at = ?, last_error = ?, lease_token = NULL,
              lease_until = NULL, updated_at = ? ${fenced} RETURNING attempts`,
      )
      .pluck();
    // `attempts = 0` on a leased row: requeued while this attempt ran (see `requeue`). Its failure
    // then makes the delivery due again, with fresh attempts, instead of a dead one.
    this.#dead = db.prepare(
      `UPDATE deliveries
          SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'dead' END,
              available_at = CASE WHEN attempts = 0 THEN @now ELSE available_at END,
              last_error = @error,
              dead_reason = CASE WHEN attempts = 0 THEN NULL ELSE @reason END,
              handed_off = CASE WHEN attempts = 0 THEN 0 ELSE @handedOff END,
              lease_token = NULL, lease_until = NULL, updated_at = @now ${ackFence}
       RETURNING status, attempts`,
    );
    // A hand-back (the subscription closed before the handler finished) is not an attempt: the
    // claim counted one, the release takes it back. An expired lease (a crash) still counts.
    this.#release = db.prepare(
      `UPDATE deliveries SET status = 'pending', attempts = MAX(attempts - 1, 0), available_at = ?,
              lease_token = NULL, lease_until = NULL, updated_at = ? ${fenced}`,
    );
    this.#extend = db
      .prepare(
        `UPDATE deliveries SET lease_until = ?, available_at = ?, updated_at = ? ${fenced}
         RETURNING attempts`,
      )
      .pluck();
    this.#nextDue = db
      .prepare(
        `SELECT MIN(available_at) FROM deliveries INDEXED BY deliveries_due
          WHERE subscriber = ? AND ${OPEN} AND type IN (SELECT value FROM json_each(?))`,
      )
      .pluck();
    this.#subscriberRow = db.prepare(`SELECT types, ephemeral FROM subscribers WHERE name = ?`);
    this.#insertSubscriber = db.prepare(
      `INSERT INTO subscribers (name, types, ephemeral, cursor_seq, created_at, last_seen)
       VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.#updateSubscriber = db.prepare(
      `UPDATE subscribers SET types = ?, ephemeral = ?, last_seen = ? WHERE name = ?`,
    );
    this.#insertSubscriberType = db.prepare(
      `INSERT INTO subscriber_types (subscriber, type, since_seq) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
    );
    this.#touchSubscriber = db.prepare(`UPDATE subscribers SET last_seen = ? WHERE name = ?`);
    this.#deleteSubscriber = db.prepare(`DELETE FROM subscribers WHERE name = ?`);
    this.#deleteSubscriberTypes = db.prepare(`DELETE FROM subscriber_types WHERE subscriber = ?`);
    this.#deleteSubscriberDeliveries = db.prepare(`DELETE FROM deliveries WHERE subscriber = ?`);
    this.#deleteSubscriberSteps = db.prepare(`DELETE FROM delivery_steps WHERE subscriber = ?`);

    // A batch goes in as multi-row INSERTs, in order: `seq` follows the batch. Each INSERT
    // statement, not each row, pays for the checks and for one call into SQLite: a batch of 100
    // in one INSERT costs ~25 % less than 100 one-row INSERTs. The INSERT of a batch's exact size
    // is prepared for the first EXACT_SIZES sizes seen; other sizes go in power-of-two pieces
    // (100 = 64 + 32 + 4), so at most EXACT_SIZES + 8 statements are kept.
    // Their rows take SQLite's MAX(seq) + 1, which is right unless the newest events were
    // removed: then events go in one by one until one of them (not a duplicate) is stored.
    this.#publishTx = db.transaction((events: readonly PreparedEvent[], now: number) => {
      let published = 0;
      let at = 0;
      while (at < events.length && this.#highWaterAhead.get() === 1) {
        published += this.#insert(events[at++]!, now);
      }
      while (at < events.length) {
        const rows = this.#pieceSize(events.length - at);
        const args: unknown[] = new Array(rows * EVENT_PARAMS);
        for (let i = 0, k = 0; i < rows; i++) {
          const e = events[at + i]!;
          args[k++] = e.id;
          args[k++] = e.type;
          args[k++] = e.source;
          args[k++] = e.subject;
          args[k++] = e.time;
          args[k++] = e.dataversion;
          args[k++] = e.payload;
          args[k++] = e.extensions;
          args[k++] = now;
        }
        published += this.#insertRows(rows).run(args).changes;
        at += rows;
      }
      return published;
    });

    this.#exchangeTx = db.transaction((request: ExchangeRequest, now: number) => {
      const { subscriber, outcomes, limit } = request;
      const lost: Outcome[] = [];
      for (const o of outcomes) {
        if (this.#apply(subscriber, o, now) > 0) continue;
        lost.push(o);
        this.step(subscriber, o.seq, {
          kind: "fenced",
          at: now,
          attempt: o.attempt,
          detail: `${OUTCOME_WORDS[o.kind]} under lease token ${o.token}, which no longer held the delivery`,
        });
      }
      if (limit <= 0) return { lost, claimed: [], more: false };
      const state = this.#claimState.get({ subscriber }) as
        [unknown, string, unknown, unknown, number, number | null] | undefined;
      // The subscriber was removed (an abandoned ephemeral one, pruned): nothing to claim.
      if (state === undefined) return { lost, claimed: [], more: false };
      const [storedCursor, subscriberTypes, lastToken, earliest, max, heldToken] = state;
      // A cursor another program overwrote with something not a number (text compares above every
      // seq) would hide every new event from this subscriber for good: start over from its
      // registration instead (`since_seq` bounds it; at least once), and the claim rewrites it.
      // (`cursorSql` is this rule in SQL.)
      const startCursor = typeof storedCursor === "number" ? storedCursor : 0;
      /** The earliest open delivery's `available_at`, where it is a number (never due otherwise). */
      const openAt = typeof earliest === "number" ? earliest : undefined;
      // Fencing tokens count up per subscriber; taken under the write lock, so never twice.
      const token = this.#nextToken(subscriber, lastToken, heldToken);
      const until = now + request.leaseMs;
      const params = { token, until, now, subscriber, types: request.typesJson, limit };
      // Retries that are due and expired leases first, then new events after the cursor.
      const rows: [seq: number, attempt: number][] = [];
      /** Deliveries claimed off the happy path, whose timeline is written. */
      let journaled: Set<number> | undefined;
      // Usually nothing is due (no retries, no expired leases): the UPDATE below costs several
      // times the read above even when it finds nothing.
      if (openAt !== undefined && openAt <= now) {
        const expired = this.#leasedDue.all(params) as [number, number, number, number][];
        for (const row of this.#claimDue.all(params) as [number, number][]) rows.push(row);
        for (const [seq, attempts, leaseUntil, oldToken] of expired) {
          this.step(subscriber, seq, {
            kind: "lease_expired",
            at: Math.min(leaseUntil, now),
            attempt: attempts,
            detail: `lease token ${oldToken} ran out before its attempt settled; reclaimed under token ${token}`,
          });
        }
        journaled = new Set();
        for (const [seq, attempt] of rows) {
          journaled.add(seq);
          this.step(subscriber, seq, { kind: "claimed", at: now, attempt });
        }
      }
      let cursor = startCursor;
      let more = false;
      /** Whether the worker handles every type of its subscriber (remembered per type set). */
      const all = this.#coversAll(request.types, subscriberTypes);
      if (rows.length < limit) {
        if (cursor > max) {
          // Events were deleted by hand and `seq` went back: follow it, or new events would be skipped.
          cursor = max;
        } else if (max > cursor) {
          const span = all ? CURSOR_WINDOW : PARTIAL_CURSOR_WINDOW;
          /** Look at the window after `after`: returns the new cursor and how many events it took. */
          const look = (after: number): [cursor: number, found: number] => {
            const upto = Math.min(max, after + span);
            const window = { ...params, after, upto, limit: limit - rows.length };
            if (all) {
              const taken = this.#claimNew.all(window) as [number, number][];
              for (const row of taken) rows.push(row);
              // A full batch may stop inside the window: the cursor moves to the last event taken.
              return [
                taken.length === window.limit ? Math.max(...taken.map((t) => t[0])) : upto,
                taken.length,
              ];
            }
            const found = this.#materialize.run(window).changes;
            for (const row of this.#claimDue.all(window) as [number, number][]) rows.push(row);
            return [upto, found];
          };
          let found;
          [cursor, found] = look(cursor);
          if (found === 0 && cursor < max && rows.length < limit) {
            // Nothing in a whole window and more after it: the next event may be far away (a gap
            // in `seq`, e.g. a row another program wrote with seq 10^12). Jump to it — one index
            // seek, only after an empty window — instead of walking the gap a window per claim.
            const next = this.#nextSeq.get(cursor) as number | null;
            if (next !== null && next - 1 > cursor) [cursor] = look(next - 1);
          }
          more = cursor < max;
        }
      }
      // A claim that finds nothing writes nothing: no WAL append, so it wakes no other process.
      if (rows.length > 0 || cursor !== storedCursor) {
        this.#setCursor.run(cursor, rows.length > 0 ? token : lastToken, subscriber);
      }
      const claimed = this.#load(subscriber, rows, token, until, now, journaled);
      if (claimed.length < limit && !more) {
        // When nothing was due and the worker covers its subscriber's types, the next due time is
        // known without another read: the earliest open delivery before the claim, or the lease
        // of what it just took. (A delivery of a type the subscriber lacks, written by hand, can
        // only make that earlier: the wake-up then finds it due and asks the index, below.)
        const nextDue =
          journaled === undefined && all
            ? earlier(openAt, rows.length > 0 ? until : undefined)
            : this.nextDue(subscriber, request.typesJson);
        return { lost, claimed, more, nextDue: nextDue ?? null };
      }
      return { lost, claimed, more };
    });
  }

  /**
   * Store envelopes atomically (one immediate transaction), skipping ids already stored. Fan-out
   * happens at claim time: every subscriber's cursor walks the same `events` rows.
   */
  publish(envelopes: readonly Envelope[], now = Date.now()): PublishCounts {
    if (envelopes.length === 1) {
      // One row: one statement is its own transaction, as atomic as BEGIN IMMEDIATE … COMMIT and
      // two statements cheaper. (Taking the lock late cannot deadlock here: nothing was read
      // before the write; a stale snapshot fails as SQLITE_BUSY_SNAPSHOT and is retried.)
      const e = prepareEvent(envelopes[0]!, this.#maxPayloadBytes);
      return this.#insert(e, now) > 0 ? ONE_PUBLISHED : ONE_DUPLICATE;
    }
    const prepared = envelopes.map((e) => prepareEvent(e, this.#maxPayloadBytes));
    const published = this.#publishTx.immediate(prepared, now);
    return { published, duplicates: envelopes.length - published };
  }

  /** How many of the `left` events still to store the next INSERT takes. */
  #pieceSize(left: number): number {
    if (left >= MAX_INSERT_ROWS) return MAX_INSERT_ROWS;
    if (this.#insertMany.has(left) || this.#exactSizes < EXACT_SIZES) return left;
    return 2 ** Math.floor(Math.log2(left));
  }

  /** The INSERT of `rows` events (at most {@link MAX_INSERT_ROWS}), prepared once. */
  #insertRows(rows: number): Database.Statement {
    if (rows === 1) return this.#insertEvent;
    let statement = this.#insertMany.get(rows);
    if (!statement) {
      statement = this.db.prepare(insertEventsSql(rows));
      this.#insertMany.set(rows, statement);
      if ((rows & (rows - 1)) !== 0) this.#exactSizes++;
    }
    return statement;
  }

  #insert(e: PreparedEvent, now: number): number {
    return this.#insertEvent.run(
      e.id,
      e.type,
      e.source,
      e.subject,
      e.time,
      e.dataversion,
      e.payload,
      e.extensions,
      now,
    ).changes;
  }

  /**
   * Make `envelope` due again for `subscriber` only (dead-letter replay), keeping its id: the
   * delivery row is reset to pending with zero attempts. If retention already removed the event,
   * it is stored again at a negative `seq` — below every subscriber's cursor — so no other
   * subscriber receives it a second time.
   *
   * A delivery leased right now (its lease not expired) is not disturbed — a requeue never takes
   * over a live lease, whose holder's outcome would then be discarded and the event run twice.
   * Its attempt count is set to 0 instead, which marks it: if the running attempt succeeds, that
   * run is the requeued one (`"in-flight"`); if it fails, the delivery is retried with fresh
   * attempts instead of being dead-lettered, so a replay that raced a failing attempt is not lost.
   *
   * @returns `"unregistered"` when `subscriber` is not registered for the event's type.
   */
  requeue(
    subscriber: string,
    envelope: Envelope,
    now = Date.now(),
    kind: "replayed" | "requeued" = "replayed",
  ): RequeueResult {
    const prepared = prepareEvent(envelope, this.#maxPayloadBytes);
    const db = this.db;
    return db
      .transaction((): RequeueResult => {
        const registered = db
          .prepare(`SELECT 1 FROM subscriber_types WHERE subscriber = ? AND type = ?`)
          .get(subscriber, prepared.type);
        if (!registered) return "unregistered";
        let seq = db.prepare(`SELECT seq FROM events WHERE id = ?`).pluck().get(prepared.id) as
          number | undefined;
        if (seq === undefined) {
          seq = db
            .prepare(`SELECT MIN(0, COALESCE(MIN(seq), 0)) - 1 FROM events`)
            .pluck()
            .get() as number;
          db.prepare(
            `INSERT INTO events (seq, id, type, source, subject, time, dataversion, payload, extensions, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          ).run(
            seq,
            prepared.id,
            prepared.type,
            prepared.source,
            prepared.subject,
            prepared.time,
            prepared.dataversion,
            prepared.payload,
            prepared.extensions,
            now,
          );
        }
        const live = `status = 'leased' AND lease_until > @now`;
        const status = db
          .prepare(
            `INSERT INTO deliveries (subscriber, event_seq, type, status, attempts, available_at, updated_at)
             VALUES (@subscriber, @seq, @type, 'pending', 0, @now, @now)
             ON CONFLICT (subscriber, event_seq) DO UPDATE SET
               attempts = 0,
               status = CASE WHEN ${live} THEN status ELSE 'pending' END,
               available_at = CASE WHEN ${live} THEN available_at ELSE @now END,
               lease_token = CASE WHEN ${live} THEN lease_token END,
               lease_until = CASE WHEN ${live} THEN lease_until END,
               last_error = NULL, dead_reason = NULL, handed_off = 0, updated_at = @now
             RETURNING status`,
          )
          .pluck()
          .get({ subscriber, seq, type: prepared.type, now }) as string;
        this.step(subscriber, seq, {
          kind,
          at: now,
          detail:
            status === "leased"
              ? "while an attempt ran: that attempt stands for it, or runs again if it fails"
              : undefined,
        });
        return status === "leased" ? "in-flight" : "requeued";
      })
      .immediate();
  }

  /**
   * Apply decided outcomes (fenced by lease token) and claim up to `limit` deliveries of the
   * subscriber whose type the worker handles, in one immediate transaction. Due open deliveries
   * (retries, expired leases) come first, then the events after the subscriber's cursor in `seq`
   * order. A claim leases the rows until `now + leaseMs` under a new fencing token;
   * `available_at` follows the lease, so an expired lease is claimable again by anyone.
   */
  exchange(request: ExchangeRequest, now = Date.now()): ExchangeResult {
    if (request.outcomes.length === 0 && request.limit <= 0)
      return { lost: [], claimed: [], more: false };
    return this.#exchangeTx.immediate(request, now);
  }

  /**
   * Move the lease of a held delivery to `until`: `"lost"` when the lease is no longer held,
   * `"requeued"` when it is held and a {@link QueueStore.requeue} arrived during this attempt.
   */
  extendLease(
    subscriber: string,
    seq: number,
    token: number,
    until: number,
    now = Date.now(),
    attempt?: number,
  ): "held" | "requeued" | "lost" {
    const attempts = this.#extend.get(until, until, now, subscriber, seq, token) as
      number | undefined;
    if (attempts === undefined) {
      this.step(subscriber, seq, {
        kind: "fenced",
        at: now,
        attempt,
        detail: `a lease extension under lease token ${token}, which no longer held the delivery`,
      });
      return "lost";
    }
    return attempts === 0 ? "requeued" : "held";
  }

  /**
   * Append a step to a delivery's timeline (`delivery_steps`), keeping its latest
   * {@link HISTORY_LIMIT}. Call it inside the transaction of the change it records.
   */
  step(subscriber: string, seq: number, step: StepRow): void {
    const n = this.#insertStep.get({
      subscriber,
      seq,
      at: step.at,
      kind: step.kind,
      attempt: step.attempt ?? null,
      error: step.error ?? null,
      delayMs: step.delayMs ?? null,
      reason: step.reason ?? null,
      actor: ACTOR,
      detail: step.detail ?? null,
    }) as number;
    if (n > HISTORY_LIMIT) this.#trimSteps.run(subscriber, seq, n - HISTORY_LIMIT);
  }

  /** When the next open delivery of `subscriber` becomes claimable (retry due or lease expiry). */
  nextDue(subscriber: string, typesJson: string): number | undefined {
    const at = this.#nextDue.get(subscriber, typesJson);
    // Not a number (text another program wrote): never due by `available_at <= now` either.
    return typeof at === "number" ? at : undefined;
  }

  /**
   * Register (or extend) a subscriber: its row, its types, in one transaction. A subscriber
   * receives the events of a type published after it registered for that type (its cursor and
   * the type's `since_seq` start at the newest `seq`); the types of every subscription sharing
   * the name are merged. A name is ephemeral only while every subscription to it is.
   */
  register(
    name: string,
    types: readonly string[],
    ephemeral: boolean,
    now = Date.now(),
  ): { created: boolean } {
    return this.db
      .transaction(() => {
        const row = this.#subscriberRow.get(name) as
          { types: string; ephemeral: number } | undefined;
        const max = this.#maxSeq.get() as number;
        if (!row) {
          const list = JSON.stringify([...new Set(types)]);
          this.#insertSubscriber.run(name, list, ephemeral ? 1 : 0, max, now, now);
        } else {
          // Types damaged by another program are rebuilt from the registrations they summarise.
          const stored =
            storedTypes(row.types) ??
            (this.db
              .prepare(`SELECT type FROM subscriber_types WHERE subscriber = ? ORDER BY type`)
              .pluck()
              .all(name) as string[]);
          const merged = [...new Set([...stored, ...types])];
          const stillEphemeral = row.ephemeral === 1 && ephemeral ? 1 : 0;
          this.#updateSubscriber.run(JSON.stringify(merged), stillEphemeral, now, name);
        }
        for (const type of types) this.#insertSubscriberType.run(name, type, max);
        return { created: !row };
      })
      .immediate();
  }

  /** Record that these subscribers are alive (abandoned ephemeral subscribers are pruned by age). */
  touch(names: Iterable<string>, now = Date.now()): void {
    this.db
      .transaction(() => {
        for (const name of names) this.#touchSubscriber.run(now, name);
      })
      .immediate();
  }

  /** Remove an ephemeral subscriber and all of its deliveries, if it is still ephemeral. */
  removeEphemeral(name: string): boolean {
    return this.db
      .transaction(() => {
        const row = this.#subscriberRow.get(name) as { ephemeral: number } | undefined;
        if (!row || row.ephemeral !== 1) return false;
        this.#deleteSubscriberDeliveries.run(name);
        this.#deleteSubscriberSteps.run(name);
        this.#deleteSubscriberTypes.run(name);
        this.#deleteSubscriber.run(name);
        return true;
      })
      .immediate();
  }

  #coversAll(workerTypes: ReadonlySet<string>, subscriberTypesJson: string): boolean {
    const known = this.#covers.get(workerTypes);
    if (known?.json === subscriberTypesJson) return known.covers;
    // Types damaged by another program: take the path that reads `subscriber_types` (always right).
    const covers = storedTypes(subscriberTypesJson)?.every((t) => workerTypes.has(t)) ?? false;
    this.#covers.set(workerTypes, { json: subscriberTypesJson, covers });
    return covers;
  }

  /**
   * The fencing token of a claim by `subscriber`, whose counter holds `stored` and whose leased
   * deliveries hold tokens up to `held`: one above both. A counter another program wrote — set
   * back to a smaller integer, or something that is no counter at all: a fraction, a negative
   * number, text, NULL, a number past 2^53 where `t + 1 === t` (read as 0) — would otherwise hand
   * out a token a leased delivery already holds (a re-claim of an expired lease getting its stale
   * holder's token), and that worker's outcome would pass the fence. Past {@link MAX_TOKEN} the
   * count restarts: leases whose token is at or past it are fenced off first (their holders'
   * outcomes are refused and the deliveries come back when those leases run out), then the
   * counter restarts above every token still held, so it never reaches a held token. Call it
   * inside the claim's write transaction.
   */
  #nextToken(subscriber: string, stored: unknown, held: number | null): number {
    const counter =
      Number.isInteger(stored) && (stored as number) >= 0 && (stored as number) < MAX_TOKEN
        ? (stored as number)
        : 0;
    const highest = Math.max(counter, held ?? 0);
    if (highest < MAX_TOKEN) return highest + 1;
    this.#retireTokens.run(subscriber, MAX_TOKEN);
    return ((this.#heldTokens.get(subscriber, 0) as number | null) ?? 0) + 1;
  }

  /** Read the claimed events: one range scan when they are close together, else one by one. */
  #load(
    subscriber: string,
    rows: [number, number][],
    token: number,
    until: number,
    now: number,
    journaled: ReadonlySet<number> | undefined,
  ): ClaimedDelivery[] {
    if (rows.length === 0) return [];
    rows.sort((a, b) => a[0] - b[0]);
    const claimed: ClaimedDelivery[] = [];
    const take = (
      seq: number,
      attempt: number,
      row: readonly unknown[] | undefined,
      offset: number,
    ) => {
      if (row === undefined) {
        // The event row was deleted by hand: nothing left to deliver; keep a trace in the delivery.
        this.#dead.get({
          error: MISSING_EVENT(seq),
          reason: "unrecoverable",
          handedOff: 0,
          now,
          subscriber,
          seq,
          token,
        });
        this.step(subscriber, seq, {
          kind: "dead_lettered",
          at: now,
          attempt,
          error: MISSING_EVENT(seq),
          reason: "unrecoverable",
          detail: "its event row was deleted before it was delivered",
        });
        return;
      }
      // A row nobody can decode is claimed like any other and dead-lettered by the subscription,
      // raw columns and decode error included: never a failed claim, never dropped.
      const { envelope, error } = decodeRow(row, offset, seq);
      const claim: ClaimedDelivery = error
        ? { seq, envelope, attempt, token, leaseUntil: until, undecodable: error }
        : { seq, envelope, attempt, token, leaseUntil: until };
      claimed.push(journaled?.has(seq) ? { ...claim, journaled: true } : claim);
    };
    const first = rows[0]![0];
    const last = rows[rows.length - 1]![0];
    if (last - first < rows.length * 4) {
      // Close together (the usual case): one range read.
      const events = this.#eventsBetween.all(first, last) as [number, ...EventRow][];
      let e = 0;
      for (const [seq, attempt] of rows) {
        while (e < events.length && events[e]![0] < seq) e++;
        const row = events[e]?.[0] === seq ? events[e] : undefined;
        take(seq, attempt, row, 1);
      }
    } else {
      for (const [seq, attempt] of rows) {
        take(seq, attempt, this.#eventBySeq.get(seq) as EventRow | undefined, 0);
      }
    }
    return claimed;
  }

  /** Apply one outcome; returns 0 when its lease no longer held the delivery (fenced off). */
  #apply(subscriber: string, o: Outcome, now: number): number {
    switch (o.kind) {
      case "ack": {
        const { changes } = this.#ack.run(
          this.#keepAcked
            ? { subscriber, seq: o.seq, token: o.token, now }
            : { subscriber, seq: o.seq, token: o.token },
        );
        if (changes > 0 && o.journaled)
          this.step(subscriber, o.seq, { kind: "acked", at: now, attempt: o.attempt });
        return changes;
      }
      case "retry": {
        const attempts = this.#retry.get(
          o.availableAt,
          o.error,
          now,
          subscriber,
          o.seq,
          o.token,
        ) as number | undefined;
        if (attempts === undefined) return 0;
        this.step(subscriber, o.seq, {
          kind: "retry_scheduled",
          at: now,
          attempt: o.attempt ?? attempts,
          error: o.error,
          delayMs: o.delayMs ?? Math.max(0, o.availableAt - now),
          detail: o.detail,
        });
        return 1;
      }
      case "dead": {
        const row = this.#dead.get({
          error: o.error,
          reason: o.reason,
          handedOff: o.handedOff ? 1 : 0,
          now,
          subscriber,
          seq: o.seq,
          token: o.token,
        }) as { status: string; attempts: number } | undefined;
        if (row === undefined) return 0;
        this.step(
          subscriber,
          o.seq,
          row.status === "dead"
            ? {
                kind: "dead_lettered",
                at: now,
                attempt: o.attempt ?? row.attempts,
                error: o.error,
                reason: o.reason,
                detail: o.handedOff
                  ? "held by the dead-letter store"
                  : "kept in the queue (no dead-letter sink)",
              }
            : {
                kind: "retry_scheduled",
                at: now,
                attempt: o.attempt,
                error: o.error,
                delayMs: 0,
                detail: "replayed while this attempt ran: runs again with fresh attempts",
              },
        );
        return 1;
      }
      case "release":
        return this.#release.run(now, now, subscriber, o.seq, o.token).changes;
      case "fenced":
        this.step(subscriber, o.seq, {
          kind: "fenced",
          at: now,
          attempt: o.attempt,
          detail: o.detail,
        });
        return 1;
    }
  }
}

/** An outcome in the words of a `fenced` step. */
const OUTCOME_WORDS: Readonly<Record<Outcome["kind"], string>> = {
  ack: "an ack",
  retry: "a retry",
  dead: "a dead letter",
  release: "a hand-back",
  fenced: "an outcome",
};

const MISSING_EVENT = (seq: number) =>
  JSON.stringify({
    name: "MissingEvent",
    message: `event row ${seq} was deleted before it was delivered`,
  });

/**
 * What {@link QueueStore.requeue} did: made the delivery due again, left a delivery leased right
 * now to its running attempt (marked, see `requeue`), or found no such subscriber for the type.
 */
export type RequeueResult = "requeued" | "in-flight" | "unregistered";

/** What {@link QueueStore.publish} stored. */
export interface PublishCounts {
  readonly published: number;
  readonly duplicates: number;
}

const ONE_PUBLISHED: PublishCounts = Object.freeze({ published: 1, duplicates: 0 });
const ONE_DUPLICATE: PublishCounts = Object.freeze({ published: 0, duplicates: 1 });

/** One round trip of a worker: outcomes to save and how many deliveries it can take. */
export interface ExchangeRequest {
  readonly subscriber: string;
  readonly outcomes: readonly Outcome[];
  /** Deliveries to claim (0: only save outcomes). */
  readonly limit: number;
  /** The worker's event types. */
  readonly types: ReadonlySet<string>;
  /** The same, as a JSON array (bound to `json_each`). */
  readonly typesJson: string;
  readonly leaseMs: number;
}

/** Bound parameters per event in {@link insertEventsSql}. */
const EVENT_PARAMS = 9;
/** The most rows one INSERT of a batch takes (9 parameters each, far below SQLite's limit). */
const MAX_INSERT_ROWS = 128;
/** Batch sizes (not powers of two) that get an INSERT of their own; callers mostly use one or two. */
const EXACT_SIZES = 8;

/** INSERT `rows` events in the order given, skipping ids already stored (and repeats within). */
function insertEventsSql(rows: number): string {
  const row = `(?, ?, ?, ?, ?, ?, ?, ?, ?)`;
  return `INSERT INTO events (id, type, source, subject, time, dataversion, payload, extensions, created_at)
       VALUES ${Array.from({ length: rows }, () => row).join(", ")} ON CONFLICT (id) DO NOTHING`;
}

/** An envelope flattened into the `events` columns. */
interface PreparedEvent {
  readonly id: string;
  readonly type: string;
  readonly source: string;
  readonly subject: string | null;
  readonly time: string;
  readonly dataversion: number;
  readonly payload: string;
  readonly extensions: string | null;
}

function prepareEvent(e: Envelope, maxBytes: number): PreparedEvent {
  // Nothing that is not an envelope is stored: it could only fail later, at every consumer.
  assertEnvelope(e);
  let payload: string;
  let extensions: string | null = null;
  try {
    payload = JSON.stringify(e.data) ?? "null";
    let ext: Record<string, unknown> | undefined;
    for (const key in e) {
      if (!isColumn(key)) (ext ??= {})[key] = (e as unknown as Record<string, unknown>)[key];
    }
    if (ext) extensions = JSON.stringify(ext);
  } catch (error) {
    throw new EventValidationError({
      eventType: e.type,
      reason: "invalid_payload",
      receivedType: describeType(e.data),
      message:
        `Event ${e.id} (${e.type}) cannot be stored: its data is not JSON-serialisable ` +
        `(${(error as Error).message}). Publish plain JSON values only (no cycles, no BigInt).`,
      cause: error,
    });
  }
  // A UTF-8 character takes at most 3 bytes per UTF-16 unit: only measure exactly near the limit.
  const chars = payload.length + (extensions?.length ?? 0);
  if (chars * 3 > maxBytes) {
    const bytes = Buffer.byteLength(payload) + (extensions ? Buffer.byteLength(extensions) : 0);
    if (bytes > maxBytes) throw new PayloadTooLargeError(e.id, e.type, bytes, maxBytes);
  }
  return {
    id: e.id,
    type: e.type,
    source: e.source,
    subject: e.subject ?? null,
    time: e.time,
    dataversion: e.dataversion ?? 1,
    payload,
    extensions,
  };
}

/**
 * `subscribers.types` as stored: a JSON array of strings, or `undefined` when another program
 * wrote something else there (the per-type registrations in `subscriber_types` still hold).
 */
function storedTypes(json: unknown): string[] | undefined {
  if (typeof json !== "string") return undefined;
  try {
    const value = JSON.parse(json) as unknown;
    return Array.isArray(value) && value.every((t) => typeof t === "string") ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Decodes BLOBs as UTF-8, invalid sequences becoming U+FFFD (as `JSON.parse` of a Buffer did). */
const utf8 = new TextDecoder();

/** A decoded row, or a stand-in envelope and why the row cannot be decoded. */
type Decoded =
  | { readonly envelope: Envelope; readonly error?: undefined }
  | { readonly envelope: Envelope; readonly error: UndecodableEventError };

/**
 * Rebuild the envelope of an `events` row (`row` from `offset` on: id, type, source, subject,
 * time, dataversion, payload, extensions). Never throws: a row that another program wrote or
 * someone edited — `payload` or `extensions` not JSON, `extensions` not an object or naming an
 * attribute that has its own column, an attribute column of the wrong type — comes back as a
 * stand-in envelope whose `data` holds the raw columns (BLOBs as base64), with the error.
 */
export function decodeRow(row: readonly unknown[], offset: number, seq: number): Decoded {
  const id = row[offset];
  const type = row[offset + 1];
  const source = row[offset + 2];
  const subject = row[offset + 3];
  const time = row[offset + 4];
  const dataversion = row[offset + 5];
  const payload = row[offset + 6];
  const extensions = row[offset + 7];
  let column = "payload";
  let problem: string;
  let cause: unknown;
  try {
    const wrong = wrongColumn(id, type, source, subject, time, dataversion);
    if (wrong !== undefined) {
      column = wrong;
      throw new TypeError(`column ${wrong} holds ${describe(row[offset + COLUMN_INDEX[wrong]!])}`);
    }
    const data = JSON.parse(text(payload)) as unknown;
    const envelope: Record<string, unknown> = {
      specversion: "1.0",
      id,
      type,
      source,
      time,
      datacontenttype: "application/json",
      dataversion,
      data,
    };
    if (subject !== null) envelope.subject = subject;
    if (extensions !== null) {
      column = "extensions";
      const ext = JSON.parse(text(extensions)) as unknown;
      if (typeof ext !== "object" || ext === null || Array.isArray(ext))
        throw new TypeError(`extensions is ${describe(ext)} JSON, not an object`);
      const clash = Object.keys(ext).filter(isColumn);
      if (clash.length > 0)
        throw new TypeError(`extensions name ${clash.join(", ")}, stored in their own columns`);
      Object.assign(envelope, ext);
    }
    return { envelope: envelope as unknown as Envelope };
  } catch (error) {
    cause = error;
    problem =
      error instanceof SyntaxError
        ? `its ${column} is not JSON (${error.message})`
        : (error as Error).message;
  }
  const eventId = typeof id === "string" && id !== "" ? id : `seq-${seq}`;
  const eventType = typeof type === "string" && type !== "" ? type : "<unknown>";
  const envelope: { -readonly [K in keyof Envelope]: Envelope[K] } = {
    specversion: "1.0",
    id: eventId,
    type: eventType,
    source: typeof source === "string" && source !== "" ? source : "sqlite",
    time: typeof time === "string" && time !== "" ? time : new Date().toISOString(),
    datacontenttype: "application/json",
    dataversion:
      typeof dataversion === "number" && Number.isInteger(dataversion) && dataversion >= 1
        ? dataversion
        : 1,
    data: rawColumns(row, offset, column),
  };
  if (typeof subject === "string") envelope.subject = subject;
  return {
    envelope,
    error: new UndecodableEventError({
      seq,
      eventId,
      eventType,
      column,
      problem,
      receivedType: describe(row[offset + COLUMN_INDEX[column]!]),
      cause,
    }),
  };
}

/** Position of each column in an {@link EventRow}. */
const COLUMN_INDEX: Readonly<Record<string, number>> = {
  id: 0,
  type: 1,
  source: 2,
  subject: 3,
  time: 4,
  dataversion: 5,
  payload: 6,
  extensions: 7,
};

function wrongColumn(
  id: unknown,
  type: unknown,
  source: unknown,
  subject: unknown,
  time: unknown,
  dataversion: unknown,
): string | undefined {
  if (typeof id !== "string" || id === "") return "id";
  if (typeof type !== "string" || type === "") return "type";
  if (typeof source !== "string") return "source";
  if (subject !== null && typeof subject !== "string") return "subject";
  if (typeof time !== "string") return "time";
  if (typeof dataversion !== "number") return "dataversion";
  return undefined;
}

/** A TEXT column as is; a BLOB decoded as UTF-8. */
function text(value: unknown): string {
  return Buffer.isBuffer(value) ? utf8.decode(value) : String(value);
}

function describe(value: unknown): string {
  if (Buffer.isBuffer(value)) return `a ${value.length}-byte BLOB`;
  if (value === null) return "NULL";
  if (typeof value === "string") return value === "" ? "an empty string" : "text";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

/**
 * The row's columns as stored, for the dead letter: the two JSON columns always, plus the one
 * that failed. Text as is, BLOBs as `{ base64 }` (exact bytes), numbers and NULL as they are.
 */
function rawColumns(row: readonly unknown[], offset: number, failed: string): unknown {
  const raw = (value: unknown): unknown =>
    Buffer.isBuffer(value) ? { base64: value.toString("base64") } : value;
  const columns: Record<string, unknown> = {
    payload: raw(row[offset + 6]),
    extensions: raw(row[offset + 7]),
  };
  if (!(failed in columns)) columns[failed] = raw(row[offset + COLUMN_INDEX[failed]!]);
  return columns;
}

export type { EventRow };
