import {
  DiscardPolicy,
  type JetStreamManager,
  RetentionPolicy,
  type StreamConfig,
  type StreamInfo,
  StorageType,
} from "@nats-io/jetstream";
import { randomUUID } from "node:crypto";
import { nanos } from "@nats-io/transport-node";
import type { Envelope } from "@switchyard/event-schema";
import {
  type ActionResult,
  type DeadLetterCounts,
  type DeadLetterFilter,
  type DeadLetterInfo,
  type DeadLetterListQuery,
  type DeadLetterPage,
  type DeadLetterReason,
  type DeadLetterBackoff,
  type DeadLetterRecord,
  type DeadLetterRelease,
  type DeadLetterSink,
  type DeadLetterStatus,
  type Logger,
  LeaseLostError,
  MAX_TIMER_MS,
  abortReason,
  cutText,
  type ReplayResult,
  type SerializedError,
  type TimeInput,
  InspectorQueryError,
  timeInputMs,
  UnsupportedOperationError,
  childLogger,
  deadLetterBackoffProblem,
  deadLetterRetryDelay,
  matchesDeadLetterFilter,
  REPLAY_SKIP_REASONS,
  replaySkipReason,
  silentLogger,
} from "@switchyard/transport";
import {
  NatsOptionsError,
  NatsStreamConfigError,
  TransportClosedError,
  toNatsError,
} from "./errors";
import type { NatsHeartbeatLocation } from "./heartbeats";
import {
  type Session,
  closeConnection,
  companionReplicas,
  hasCode,
  isStreamNotFound,
  openSession,
} from "./jetstream";
import {
  attemptKey,
  attemptPrefix,
  attemptStoreSubject,
  attemptStreamName,
  attemptSubject,
  deadLetterId,
  deadLetterPrefix,
  deadLetterStreamName,
  deadLetterSubject,
  isStreamName,
  subjectCovers,
} from "./names";
import type { NatsTransportOptions, ResolvedOptions } from "./options";
import { resolveOptions } from "./options";
import { readStream } from "./reader";

/**
 * Options of {@link natsDeadLetterStore}. `replicas`, when not given, is the event stream's (so a
 * cluster's R3 events get R3 dead letters and attempt journal), or 1 where that stream does not
 * exist yet.
 */
export interface NatsDeadLetterStoreOptions
  extends NatsHeartbeatLocation, Pick<NatsTransportOptions, "replicas" | "storage" | "logger"> {
  /**
   * The stream holding the records. @defaultValue `${stream}_DLQ` (`SWITCHYARD_DLQ`)
   */
  readonly deadLetterStream?: string;
  /**
   * How long a replayer's claim on a record lasts: a replayer that died mid-replay leaves the
   * record `retrying`, and another may take it over after this; 1000 to `MAX_TIMER_MS` (about
   * 24.8 days). @defaultValue 60_000
   */
  readonly claimMs?: number;
  /** Only read: writes (`deadLetter`, `replay`, `purge`) reject, nothing is created. @defaultValue false */
  readonly readOnly?: boolean;
  /**
   * When a stored record becomes due for replay: `initialMs × 2^replays` after its latest failure,
   * capped at `maxMs` (`deadLetterRetryDelay`, the rule every dead-letter store applies).
   * @defaultValue { initialMs: 1000, maxMs: 3_600_000 }
   */
  readonly retryBackoff?: DeadLetterBackoff;
  /**
   * How long the attempt journal (`${stream}_ATTEMPTS`) keeps an entry. A transport writing its
   * dead letters here notes every step of a delivery off the happy path — each failure waiting
   * for a retry, each lease that ran out, each outcome rejected because the lease was lost, the
   * dead-lettering, each replay and the ack after several attempts — so the inspector can tell
   * retrying from in flight, count attempts and show the delivery's timeline. The journal keeps
   * the latest `attemptJournalDepth` (64) entries per delivered message.
   * @defaultValue 604_800_000 (7 days)
   */
  readonly attemptsMaxAgeMs?: number;
}

/**
 * What one attempt-journal entry notes:
 * - `retrying`: an attempt failed; the delivery runs again at `availableAt` (after `delayMs`);
 * - `acked`: acked by attempt `attempts` > 1 (a first attempt that succeeds writes nothing);
 * - `dead`: dead-lettered after attempt `attempts` (`reason`, `error`);
 * - `lease_expired`: attempt `attempts` was still running when its lease ran out;
 * - `fenced`: the outcome of attempt `attempts` was discarded because its lease was lost;
 * - `replayed`: the dead-letter store handed the dead letter back (written by the store).
 */
export type AttemptState = "retrying" | "acked" | "dead" | "lease_expired" | "fenced" | "replayed";

/** One entry of the attempt journal, as stored (JSON). */
export interface AttemptInfo {
  readonly subscriber: string;
  readonly eventId: string;
  readonly state: AttemptState;
  /** Attempts made so far, the one the entry is about included (replays: the record's attempts). */
  readonly attempts: number;
  readonly error?: SerializedError;
  /** RFC 3339. */
  readonly availableAt?: string;
  /** The backoff applied (`retrying`), in ms. */
  readonly delayMs?: number;
  /** Why it was dead-lettered (`dead`). */
  readonly reason?: DeadLetterReason;
  /** Anything else worth a line, in words. */
  readonly detail?: string;
  /** RFC 3339: when the entry was written. */
  readonly at: string;
}

/**
 * One journal entry read back with where it was written: the consumer and stream sequence of
 * the delivered message (absent for the store's own entries), and its journal sequence.
 */
export interface JournalEntry extends AttemptInfo {
  readonly consumer?: string;
  readonly seq?: number;
  /** Sequence in the journal stream: the order the entries were stored in. */
  readonly journalSeq: number;
}

/** One delivery's journal read back (see {@link NatsDeadLetterStore.journal}). */
export interface DeliveryJournal {
  /** Oldest first (journal order), at most 200 (the newest). */
  readonly entries: readonly JournalEntry[];
  /** Older entries were dropped: past the 200 read back, or a message's entries reached `attemptJournalDepth` (64). */
  readonly truncated: boolean;
}

/** Entries {@link NatsDeadLetterStore.journal} reads back for one delivery, the newest kept. */
const JOURNAL_READ_LIMIT = 200;

/**
 * Entries the attempt journal keeps per delivered message (and per delivery for the store's
 * replays): the stream's `max_msgs_per_subject`. Older ones are dropped first.
 */
export const attemptJournalDepth = 64;

/** The default `claimMs` of {@link NatsDeadLetterStoreOptions}: a minute. */
export const defaultNatsDeadLetterClaimMs = 60_000;

/** Options of {@link NatsDeadLetterStore.replay}. */
export interface NatsReplayOptions {
  /** Hands one record's envelope back (usually `transport.requeue(subscriber, envelope)`). */
  readonly to: (record: DeadLetterInfo & { readonly envelope: Envelope }) => Promise<void>;
  /** Count what would be replayed; change nothing. @defaultValue false */
  readonly dryRun?: boolean;
  /** Also replay records replayed before. @defaultValue false */
  readonly again?: boolean;
  /**
   * Stops the replay between records: the record in progress is finished, the rest are listed in
   * `skipped`; aborted before anything was claimed, `replay` rejects with its reason.
   */
  readonly signal?: AbortSignal;
}

/** A dead letter {@link NatsDeadLetterStore.claim} leased to its caller, settled with `release`. */
export interface ClaimedNatsDeadLetter extends DeadLetterInfo {
  /** The claim's token: `release` settles the record only while the claim holds. */
  readonly leaseToken: string;
}

/** The record as stored: one message per record, on its own subject. */
interface StoredRecord {
  readonly v: 1;
  readonly id: string;
  readonly subscriber: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly origin: string;
  readonly reason: DeadLetterReason;
  readonly status: DeadLetterStatus;
  readonly error: SerializedError;
  readonly attempts: number;
  readonly replays: number;
  readonly firstFailedAt: string;
  readonly lastFailedAt: string;
  readonly replayedAt?: string;
  /** When the retry daemon may claim it again (RFC 3339), after a replay that failed. */
  readonly nextRetryAt?: string;
  readonly envelope?: Envelope;
  /** A replayer's exclusive claim (status `retrying`). */
  readonly claim?: { readonly token: string; readonly until: string };
  /** Why `envelope` is not kept: it would not fit in one message with the record. */
  readonly envelopeDropped?: string;
  readonly updatedAt: string;
}

/** A record with its revision: the stream sequence of the message holding this version. */
interface Versioned {
  readonly record: StoredRecord;
  readonly revision: number;
}

/** Rounds of {@link NatsDeadLetterStore}'s full read that follow records rewritten meanwhile. */
const ALL_READ_ROUNDS = 8;
/** Records that still need attention: the depth. */
const DEPTH: readonly DeadLetterStatus[] = ["pending_retry", "retrying", "permanently_failed"];
const STATUSES: readonly DeadLetterStatus[] = [...DEPTH, "replayed", "purged"];
/** Publishing a version whose expected last subject sequence is not the current one. */
const WRONG_LAST_SEQUENCE = 10071;
/** Compare-and-set rounds of one `deadLetter()` before giving up (every round means another writer won). */
const UPSERT_ROUNDS = 20;
const ID = /^[0-9a-f]{20}$/;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const isWrongLastSequence = (error: unknown) =>
  hasCode(error, WRONG_LAST_SEQUENCE) ||
  /wrong last sequence/i.test((error as Error | null)?.message ?? "");

/** @internal A time input as Unix ms (the contract's `timeInputMs`); a bad one is a typed error naming the field. */
export function toMs(value: TimeInput, field: string): number {
  try {
    return timeInputMs(value, field);
  } catch (error) {
    if (!(error instanceof InspectorQueryError)) throw error;
    throw new NatsOptionsError(field, value, "a Date, ms since the epoch or an RFC 3339 string");
  }
}

const hasFilter = (filter: DeadLetterFilter) =>
  Object.values(filter).some((value) => value !== undefined);

/**
 * A durable dead-letter store on NATS JetStream: the {@link DeadLetterSink} a NATS transport
 * writes to by default under `natsDriver`, and what `switchyard dlq` lists, replays and purges on
 * NATS.
 *
 * - **stream**: `${stream}_DLQ` (or `deadLetterStream`) on `${prefix}_dlq.>`, beside the event
 *   stream and never under `${prefix}.>`; limits retention, file storage, `max_msgs_per_subject: 1`.
 * - **one message per record**: the record of event `e` for subscriber `s` has the id
 *   `deadLetterId(s, e)` (20 hex characters) and lives on `${prefix}_dlq.<id>`; the stream keeps
 *   the latest version only. The message holds the whole record: the envelope, the last error,
 *   attempts, replays, status and timestamps. The same event failed again by the same subscriber
 *   updates its record (attempts add up, status back to `pending_retry`), as in the SQLite store.
 * - **every change is a compare-and-set**: a new version is published with
 *   `Nats-Expected-Last-Subject-Sequence` = the revision it was computed from (the sequence of
 *   the version read; 0 for a new record), so two writers never overwrite each other: the loser
 *   gets "wrong last sequence" and reads again (`deadLetter`) or gives the record up (`replay`).
 * - **durable**: `deadLetter()` resolves once the stream acknowledged the version (stored).
 * - **exclusive replay**: a replayer first claims a record (a version with status `retrying` and
 *   a claim until `claimMs` from now, published against the revision it listed), then hands the
 *   envelope back, then settles it (`replayed`, `replays + 1`) against the claim's revision. Two
 *   replayers listing the same version cannot both claim it, so a record is replayed once per
 *   listed version. A replayer renews its claim every `claimMs / 3` while the envelope is being
 *   handed back (however long that takes); a claim not renewed for `claimMs` (its replayer died)
 *   can be taken over.
 * - **purge** marks records `purged` and drops their envelope (a tombstone); `hard` removes
 *   their messages.
 * - **reads** create nothing: a missing stream reads as empty. Listing reads the stream once
 *   through an ordered consumer that is deleted afterwards.
 *
 * @example
 * ```ts
 * // not runnable
 * await using store = natsDeadLetterStore({ servers: "nats://nats:4222" });
 * const transport = natsTransport({ servers: "nats://nats:4222", deadLetter: store });
 * console.log(await store.counts());
 * ```
 */
export class NatsDeadLetterStore implements DeadLetterSink, AsyncDisposable {
  /** The stream holding the records. */
  readonly stream: string;
  /** The event transport's subject prefix the records are stored beside. */
  readonly prefix: string;
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #claimMs: number;
  readonly #attemptsMaxAgeMs: number;
  readonly #retryBackoff: DeadLetterBackoff;
  /** The stream of the attempt journal. */
  readonly attemptStream: string;
  readonly #readOnly: boolean;
  readonly #shared: (() => Promise<Session>) | undefined;
  #session: Promise<Session> | undefined;
  #ensured: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Aborted by `close()`: a connect of its own still under way stops waiting (a late connection is closed). */
  readonly #stop = new AbortController();

  /**
   * @param options - where the records are (see {@link NatsDeadLetterStoreOptions}).
   * @param internal - a session owned by someone else (the driver's), opened on first use.
   */
  constructor(
    options: NatsDeadLetterStoreOptions = {},
    internal?: { readonly session: () => Promise<Session> },
  ) {
    const {
      deadLetterStream,
      claimMs = defaultNatsDeadLetterClaimMs,
      readOnly,
      attemptsMaxAgeMs = 604_800_000,
      retryBackoff = {},
      ...rest
    } = options;
    this.#options = resolveOptions(rest);
    this.prefix = this.#options.prefix;
    this.stream = deadLetterStream ?? deadLetterStreamName(this.#options.stream);
    if (!isStreamName(this.stream))
      throw new NatsOptionsError(
        "deadLetterStream",
        this.stream,
        "a stream name without '.', '*', '>', '/', '\\' or whitespace, at most 255 characters",
      );
    if (!Number.isInteger(claimMs) || claimMs < 1_000 || claimMs > MAX_TIMER_MS)
      throw new NatsOptionsError("claimMs", claimMs, `an integer from 1000 to ${MAX_TIMER_MS}`);
    this.#claimMs = claimMs;
    if (!Number.isInteger(attemptsMaxAgeMs) || attemptsMaxAgeMs < 1_000)
      throw new NatsOptionsError("attemptsMaxAgeMs", attemptsMaxAgeMs, "an integer ≥ 1000");
    this.#attemptsMaxAgeMs = attemptsMaxAgeMs;
    const problem = deadLetterBackoffProblem(retryBackoff);
    if (problem) throw new NatsOptionsError(problem.option, problem.value, problem.expected);
    this.#retryBackoff = retryBackoff;
    this.attemptStream = attemptStreamName(this.#options.stream);
    this.#readOnly = readOnly ?? false;
    this.#shared = internal?.session;
    this.#logger = childLogger(this.#options.logger ?? silentLogger, {
      component: "dead-letters",
      stream: this.stream,
    });
  }

  #open(): Promise<Session> {
    if (this.#closing)
      return Promise.reject(new TransportClosedError(`NATS dead-letter store ${this.stream}`));
    this.#session ??= (
      this.#shared ? this.#shared() : openSession(this.#options, undefined, this.#stop.signal)
    ).catch((error: unknown) => {
      this.#session = undefined;
      throw error;
    });
    return this.#session;
  }

  /** Connect and create (or fit) the stream. Writes call it; call it to fail fast at startup. */
  async ready(): Promise<void> {
    await this.#writable("create its stream");
  }

  async #writable(operation: string): Promise<Session> {
    if (this.#readOnly)
      throw new UnsupportedOperationError("nats", `${operation} when opened read-only`, {
        hint: "Open the store (or driver) without readOnly to write.",
      });
    const session = await this.#open();
    this.#ensured ??= Promise.all([
      this.#ensureStream(session.jsm),
      this.#ensureAttemptStream(session.jsm),
    ])
      .then(() => {})
      .catch((error: unknown) => {
        this.#ensured = undefined;
        throw error instanceof NatsStreamConfigError
          ? error
          : toNatsError(error, { servers: this.#options.servers, phase: "request" });
      });
    await this.#ensured;
    return session;
  }

  async #ensureStream(jsm: JetStreamManager): Promise<void> {
    const name = this.stream;
    const subject = `${deadLetterPrefix(this.prefix)}.>`;
    for (let round = 0; round < 3; round++) {
      let info: StreamInfo | undefined;
      try {
        info = await jsm.streams.info(name);
      } catch (error) {
        if (!isStreamNotFound(error)) throw error;
      }
      if (!info) {
        try {
          await jsm.streams.add({
            name,
            subjects: [subject],
            retention: RetentionPolicy.Limits,
            storage: this.#options.storage === "file" ? StorageType.File : StorageType.Memory,
            num_replicas: await companionReplicas(jsm, this.#options),
            max_msgs_per_subject: 1,
            discard: DiscardPolicy.Old,
            description:
              "Switchyard dead letters, one message per record (@switchyard/transport-nats)",
          } as Partial<StreamConfig> as StreamConfig);
          this.#logger.info({ subjects: [subject] }, `created dead-letter stream ${name}`);
          return;
        } catch (error) {
          if (hasCode(error, 10058)) continue; // created concurrently by another process
          if (hasCode(error, 10065))
            throw new NatsStreamConfigError(
              name,
              `its subjects "${subject}" overlap the subjects of another stream`,
              { cause: error },
            );
          throw error;
        }
      }
      const config = info.config;
      if (config.retention !== RetentionPolicy.Limits || config.max_msgs_per_subject !== 1)
        throw new NatsStreamConfigError(
          name,
          `it exists with retention "${config.retention}" and max_msgs_per_subject ` +
            `${config.max_msgs_per_subject}; dead letters need "limits" and 1 (one message per record)`,
        );
      const subjects = config.subjects ?? [];
      if (subjects.some((s) => subjectCovers(s, deadLetterPrefix(this.prefix)))) return;
      try {
        await jsm.streams.update(name, { ...config, subjects: [...subjects, subject] });
        this.#logger.info(
          { subject },
          `added this prefix's subjects to dead-letter stream ${name}`,
        );
        return;
      } catch (error) {
        throw new NatsStreamConfigError(name, `updating it failed (${(error as Error).message})`, {
          cause: error,
        });
      }
    }
    throw new NatsStreamConfigError(name, "it kept changing while being set up");
  }

  async #ensureAttemptStream(jsm: JetStreamManager): Promise<void> {
    const name = this.attemptStream;
    const subject = `${attemptPrefix(this.prefix)}.>`;
    let info: StreamInfo | undefined;
    try {
      info = await jsm.streams.info(name);
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
    }
    if (!info) {
      try {
        await jsm.streams.add({
          name,
          subjects: [subject],
          retention: RetentionPolicy.Limits,
          storage: this.#options.storage === "file" ? StorageType.File : StorageType.Memory,
          num_replicas: await companionReplicas(jsm, this.#options),
          max_msgs_per_subject: attemptJournalDepth,
          max_age: nanos(this.#attemptsMaxAgeMs),
          duplicate_window: nanos(Math.min(this.#attemptsMaxAgeMs, 60_000)),
          discard: DiscardPolicy.Old,
          description:
            "Switchyard attempt journal: delivery steps off the happy path (@switchyard/transport-nats)",
        } as Partial<StreamConfig> as StreamConfig);
        return;
      } catch (error) {
        if (hasCode(error, 10058)) return; // created concurrently by another process
        throw error;
      }
    }
    const subjects = info.config.subjects ?? [];
    const covered = subjects.some((s) => subjectCovers(s, attemptPrefix(this.prefix)));
    // A journal made by an older version kept one entry per message: the timeline needs more.
    const deep = (info.config.max_msgs_per_subject ?? -1) >= attemptJournalDepth;
    if (covered && deep) return;
    await jsm.streams.update(name, {
      ...info.config,
      subjects: covered ? subjects : [...subjects, subject],
      ...(deep ? {} : { max_msgs_per_subject: attemptJournalDepth }),
    });
  }

  /** @internal The subject of a journal entry of `subscriber`'s delivery of `eventId` as message `seq` of `consumer`. */
  attemptSubject(subscriber: string, eventId: string, consumer: string, seq: number): string {
    return attemptSubject(this.prefix, attemptKey(subscriber, eventId), consumer, seq);
  }

  /**
   * @internal Every journal entry of `subscriber`'s delivery of `eventId`, oldest first, the
   * newest {@link JOURNAL_READ_LIMIT} kept; `undefined` when there is no journal (no transport
   * wrote its dead letters here).
   */
  async journal(
    subscriber: string,
    eventId: string,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<DeliveryJournal | undefined> {
    const { signal } = options;
    const limit = JOURNAL_READ_LIMIT;
    const session = await this.#open();
    const base = `${attemptPrefix(this.prefix)}.${attemptKey(subscriber, eventId)}.`;
    const entries: JournalEntry[] = [];
    const perSubject = new Map<string, number>();
    try {
      const info = await session.jsm.streams.info(this.attemptStream);
      if (info.state.messages === 0) return { entries, truncated: false };
      for await (const message of readStream(
        { js: session.js, jsm: session.jsm, stream: this.attemptStream },
        { filter: `${base}>`, until: info.state.last_seq, ...(signal ? { signal } : {}) },
      )) {
        const entry = decodeAttempt(message.data);
        if (!entry) continue;
        perSubject.set(message.subject, (perSubject.get(message.subject) ?? 0) + 1);
        const [consumer, seq] = message.subject.slice(base.length).split(".");
        entries.push({
          ...entry,
          ...(seq !== undefined && consumer !== undefined ? { consumer, seq: Number(seq) } : {}),
          journalSeq: message.seq,
        });
      }
    } catch (error) {
      if (isStreamNotFound(error)) return undefined;
      throw error;
    }
    const full = [...perSubject.values()].some((n) => n >= attemptJournalDepth);
    const dropped = Math.max(0, entries.length - limit);
    return { entries: entries.slice(dropped), truncated: full || dropped > 0 };
  }

  /**
   * @internal The journal entries of a consumer's deliveries after stream sequence `after`;
   * `undefined` when there is no journal (no transport wrote its dead letters here).
   */
  async attemptsAfter(consumer: string, after: number): Promise<AttemptInfo[] | undefined> {
    const session = await this.#open();
    const filter = `${attemptPrefix(this.prefix)}.*.${consumer}.*`;
    let info: StreamInfo;
    try {
      info = await session.jsm.streams.info(this.attemptStream, { subjects_filter: filter });
    } catch (error) {
      if (isStreamNotFound(error)) return undefined;
      throw error;
    }
    const subjects = Object.keys(info.state.subjects ?? {}).filter(
      (subject) => Number(subject.slice(subject.lastIndexOf(".") + 1)) > after,
    );
    const found: AttemptInfo[] = [];
    for (let i = 0; i < subjects.length; i += 16) {
      const messages = await Promise.all(
        subjects
          .slice(i, i + 16)
          .map((subject) =>
            session.jsm.streams.getMessage(this.attemptStream, { last_by_subj: subject }),
          ),
      );
      for (const m of messages) {
        const entry = m ? decodeAttempt(m.data) : undefined;
        if (entry) found.push(entry);
      }
    }
    return found;
  }

  /**
   * Store a failed delivery (the {@link DeadLetterSink} method). Resolves once the record's new
   * version is stored in the stream. A record of the same event and subscriber is updated:
   * attempts add up, the last error and failure time are replaced, status returns to
   * `pending_retry`, replays are kept. A record that would not fit in one message (the server's
   * `max_payload`: a huge error message, a huge event, or a foreign body escaped into JSON) is
   * stored with its error cut short (no stack, 4096 characters of message) and, if that is not
   * enough, without its envelope: it then reads back `damaged` saying so and cannot be replayed
   * (the event itself is still in the event stream unless it expired). A sink that can never store
   * a record would otherwise keep its delivery coming back forever.
   */
  async deadLetter(record: DeadLetterRecord): Promise<void> {
    const session = await this.#writable("store dead letters");
    const id = deadLetterId(record.subscriber, record.envelope.id);
    for (let round = 0; round < UPSERT_ROUNDS; round++) {
      const current = await this.#read(session, id);
      const at = Date.now();
      const now = new Date(at).toISOString();
      const previous = current?.record;
      // A failure while a replayer holds the record is the handed-back copy failing again before
      // the replayer settled it (its settle then loses the compare-and-set and keeps this
      // version): the replay happened, so it is counted here.
      const replaying = previous?.status === "retrying" && previous.claim !== undefined;
      const replayedAt = replaying ? previous.updatedAt : previous?.replayedAt;
      const replays = (previous?.replays ?? 0) + (replaying ? 1 : 0);
      const next: StoredRecord = {
        v: 1,
        id,
        subscriber: record.subscriber,
        eventId: record.envelope.id,
        eventType: record.envelope.type,
        origin: record.origin,
        reason: record.reason,
        status: "pending_retry",
        error: record.error,
        attempts: (previous?.attempts ?? 0) + record.attempts,
        replays,
        firstFailedAt: previous?.firstFailedAt ?? record.failedAt,
        lastFailedAt: record.failedAt,
        ...(replayedAt !== undefined ? { replayedAt } : {}),
        nextRetryAt: new Date(at + deadLetterRetryDelay(replays, this.#retryBackoff)).toISOString(),
        envelope: record.envelope,
        updatedAt: now,
      };
      const fitted = fitRecord(next, session.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD);
      if ((await this.#put(session, fitted, current?.revision ?? 0)) !== undefined) return;
    }
    throw new NatsStreamConfigError(
      this.stream,
      `dead letter ${id} kept changing under ${UPSERT_ROUNDS} writes in a row; try again`,
    );
  }

  /** Publish a version against `revision`; its new revision, or `undefined` when another writer won. */
  async #put(
    session: Session,
    record: StoredRecord,
    revision: number,
  ): Promise<number | undefined> {
    try {
      const ack = await session.js.publish(
        deadLetterSubject(this.prefix, record.id),
        encoder.encode(JSON.stringify(record)),
        {
          expect: { lastSubjectSequence: revision },
          timeout: this.#options.requestTimeoutMs,
        },
      );
      return ack.seq;
    } catch (error) {
      if (isWrongLastSequence(error)) return undefined;
      throw toNatsError(error, { servers: this.#options.servers, phase: "request" });
    }
  }

  async #read(session: Session, id: string): Promise<Versioned | undefined> {
    let message;
    try {
      message = await session.jsm.streams.getMessage(this.stream, {
        last_by_subj: deadLetterSubject(this.prefix, id),
      });
    } catch (error) {
      if (isStreamNotFound(error)) return undefined;
      throw error;
    }
    if (!message) return undefined;
    return { record: decodeRecord(id, message.data), revision: message.seq };
  }

  /** Every record, latest version each, with its revision. Reads nothing into being. */
  async #all(signal?: AbortSignal): Promise<Versioned[]> {
    const session = await this.#open();
    let info: StreamInfo;
    try {
      info = await session.jsm.streams.info(this.stream);
    } catch (error) {
      if (isStreamNotFound(error)) return [];
      throw toNatsError(error, { servers: this.#options.servers, phase: "request" });
    }
    if (info.state.messages === 0) return [];
    const byId = new Map<string, Versioned>();
    const prefix = `${deadLetterPrefix(this.prefix)}.`;
    // A record updated by another writer while this read runs loses its old version (one message
    // per subject) and gets a new one after `until`: read on past it, round by round, until a
    // round ends where the stream ended, so no record is missed (bounded: a store written to
    // without pause returns what it has after the last round).
    let from = 1;
    let until = info.state.last_seq;
    for (let round = 0; round < ALL_READ_ROUNDS && from <= until; round++) {
      for await (const message of readStream(
        { js: session.js, jsm: session.jsm, stream: this.stream },
        { filter: `${prefix}>`, from: { seq: from }, until, ...(signal ? { signal } : {}) },
      )) {
        const id = message.subject.slice(prefix.length);
        // A record updated while it was being read appears twice: the later version wins.
        byId.set(id, { record: decodeRecord(id, message.data), revision: message.seq });
      }
      if (signal?.aborted) break;
      from = until + 1;
      try {
        until = (await session.jsm.streams.info(this.stream)).state.last_seq;
      } catch (error) {
        throw toNatsError(error, { servers: this.#options.servers, phase: "request" });
      }
    }
    return [...byId.values()];
  }

  /** One record by id; `undefined` when there is none. */
  async get(
    id: string,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<DeadLetterInfo | undefined> {
    if (!ID.test(id)) return undefined;
    void options;
    const session = await this.#open();
    try {
      const found = await this.#read(session, id);
      return found ? toInfo(found.record) : undefined;
    } catch (error) {
      throw toNatsError(error, { servers: this.#options.servers, phase: "request" });
    }
  }

  /** Records matching the filter, newest failure first, paged (`cursor` = `next` of the previous page). */
  async list(
    query: DeadLetterListQuery & { readonly signal?: AbortSignal } = {},
  ): Promise<DeadLetterPage> {
    const limit = query.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1)
      throw new NatsOptionsError("limit", limit, "an integer ≥ 1");
    const after = query.cursor === undefined ? undefined : parseCursor(query.cursor);
    const records = (await this.#all(query.signal))
      .map((v) => toInfo(v.record))
      .filter((r) => matchesDeadLetterFilter(r, query))
      .sort(newestFirst)
      .filter((r) => after === undefined || newestFirst(r, after) > 0);
    const page = records.slice(0, limit);
    const last = page.at(-1);
    return {
      deadLetters: page,
      ...(records.length > limit && last ? { next: `${last.lastFailedAt}|${last.id}` } : {}),
    };
  }

  /** Depth (records not replayed, not purged) and its breakdowns by status, reason, type and subscriber. */
  async counts(options: { readonly signal?: AbortSignal } = {}): Promise<DeadLetterCounts> {
    const records = (await this.#all(options.signal)).map((v) => toInfo(v.record));
    return countsOf(records, Date.now());
  }

  /**
   * {@link counts} under the name the retry daemon (`DlqRetryDaemon` of `@switchyard/dlq`) and
   * `SqliteDeadLetterStore` use.
   */
  stats(options: { readonly signal?: AbortSignal } = {}): Promise<DeadLetterCounts> {
    return this.counts(options);
  }

  /**
   * Claim due records for an automatic retry, each under a lease of `leaseMs` (the retry daemon
   * of `@switchyard/dlq` calls it): `pending_retry` ones whose `nextRetryAt` has come (or that have
   * none), and `retrying` ones whose claim ran out (their replayer died), oldest first. Purged and
   * damaged records are never claimed. Each claim is a compare-and-set on the version listed, so
   * two daemons (or a daemon and an operator's replay) never hold the same record; settle each
   * with {@link release}. `limit` is an integer ≥ 1, `leaseMs` one from 1 to `MAX_TIMER_MS`
   * (about 24.8 days); anything else rejects with `NatsOptionsError`.
   */
  async claim(
    options: { readonly limit?: number; readonly leaseMs?: number } = {},
  ): Promise<ClaimedNatsDeadLetter[]> {
    const limit = options.limit ?? 50;
    const leaseMs = options.leaseMs ?? this.#claimMs;
    if (!Number.isInteger(limit) || limit < 1)
      throw new NatsOptionsError("limit", limit, "an integer ≥ 1");
    // A claim's end is stored as a date: an unbounded lease would be no date at all.
    if (!Number.isInteger(leaseMs) || leaseMs < 1 || leaseMs > MAX_TIMER_MS)
      throw new NatsOptionsError("leaseMs", leaseMs, `an integer from 1 to ${MAX_TIMER_MS}`);
    const session = await this.#writable("claim dead letters");
    const now = Date.now();
    const dueAt = (r: StoredRecord) => r.nextRetryAt ?? r.lastFailedAt;
    const due = (await this.#all())
      .filter(({ record: r }) => {
        if (r.envelope === undefined) return false;
        if (r.status === "retrying") return !claimLive(r, now);
        return (
          r.status === "pending_retry" &&
          (r.nextRetryAt === undefined || Date.parse(r.nextRetryAt) <= now)
        );
      })
      // Oldest due first (RFC 3339 strings sort as times), then by id.
      .sort((a, b) => order(dueAt(a.record), dueAt(b.record)) || order(a.record.id, b.record.id));
    const claimed: ClaimedNatsDeadLetter[] = [];
    for (const { record, revision } of due) {
      if (claimed.length >= limit) break;
      const next = claimedVersion(record, now, leaseMs);
      // Another claimer (or a new failure) changed it since it was listed: not ours.
      if ((await this.#put(session, next, revision)) === undefined) continue;
      claimed.push({ ...toInfo(next), leaseToken: next.claim!.token });
    }
    return claimed;
  }

  /**
   * Settle a record {@link claim} returned: `replayed` (handed back to its subscriber: `replays`
   * + 1, noted in the attempt journal), `permanently_failed` (given up), or `pending_retry` again
   * at `nextRetryAt` (Unix ms). `error` replaces the stored error's message. Rejects with
   * `LeaseLostError` when the claim is no longer held: it ran out and another replayer took the
   * record, or the replayed copy failed again and was dead-lettered anew (that version is kept).
   */
  async release(claimed: ClaimedNatsDeadLetter, outcome: DeadLetterRelease): Promise<void> {
    const session = await this.#writable("settle dead letters");
    const lost = () => new LeaseLostError(`dlq:${claimed.subscriber}`, claimed.eventId);
    let current: Versioned | undefined;
    try {
      current = await this.#read(session, claimed.id);
    } catch (error) {
      throw toNatsError(error, { servers: this.#options.servers, phase: "request" });
    }
    if (
      current === undefined ||
      current.record.status !== "retrying" ||
      current.record.claim?.token !== claimed.leaseToken
    )
      throw lost();
    const { claim: _claim, nextRetryAt: _next, ...rest } = current.record;
    const at = new Date().toISOString();
    const error =
      outcome.status !== "replayed" && outcome.error !== undefined
        ? { error: { ...rest.error, message: outcome.error } }
        : {};
    let next: StoredRecord;
    switch (outcome.status) {
      case "replayed":
        await this.#noteReplay(session, current.record, at);
        next = replayedVersion(current.record, at);
        break;
      case "permanently_failed":
        next = { ...rest, ...error, status: "permanently_failed", updatedAt: at };
        break;
      case "pending_retry":
        next = {
          ...rest,
          ...error,
          status: "pending_retry",
          nextRetryAt: new Date(toMs(outcome.nextRetryAt, "nextRetryAt")).toISOString(),
          updatedAt: at,
        };
        break;
    }
    if ((await this.#put(session, next, current.revision)) === undefined) throw lost();
  }

  /** @internal Every record as `DeadLetterInfo` (the inspector's backlog and deliveries). */
  async records(signal?: AbortSignal): Promise<DeadLetterInfo[]> {
    return (await this.#all(signal)).map((v) => toInfo(v.record));
  }

  /**
   * Hand matching records back, each at most once even with several replayers at once (see the
   * class comment): claim, `to(record)`, settle as `replayed`. What is skipped, and why, is
   * `replaySkipReason` of `@switchyard/transport`: records replayed before unless `again`, purged
   * ones, those claimed by another replayer, those without envelope. A record whose `to` throws
   * goes back to its previous status and is reported in `failed`.
   *
   * The claim stays alive however long `to` takes: while it runs, the claim (`claimMs`) is renewed
   * every `claimMs / 3` by a compare-and-set on its latest version, so only its holder extends it.
   * Only a process stalled longer than `claimMs` (frozen, its event loop blocked) can lose it; a
   * renewal (or the settle) then finds the record taken by another replayer or gone: it is
   * reported in `failed` as `LeaseLostError` and a warning is logged. A copy that failed again and
   * was dead-lettered anew while `to` ran is not a lost claim: that new failure counts the replay,
   * and the record is reported `replayed`.
   *
   * `signal` is checked before each record. Aborted before anything was claimed, the call rejects
   * with the signal's reason. Aborted later, the record in progress is finished and settled (`to`
   * is not interrupted), no further record is claimed or replayed (one claimed as the signal
   * aborted is released at once, back to what it was), and the call resolves with the report,
   * each record not replayed in `skipped` ("not replayed: the replay was aborted", or why it would
   * have been skipped anyway).
   */
  async replay(filter: DeadLetterFilter, options: NatsReplayOptions): Promise<ReplayResult> {
    const { dryRun = false, again = false, signal } = options;
    if (signal?.aborted) throw abortReason(signal);
    const session = dryRun ? await this.#open() : await this.#writable("replay dead letters");
    const matched = (await this.#all(signal))
      .filter((v) => matchesDeadLetterFilter(toInfo(v.record), filter))
      .sort((a, b) => newestFirst(toInfo(b.record), toInfo(a.record)));
    const replayed: string[] = [];
    const wouldReplay: string[] = [];
    const skipped: { id: string; reason: string }[] = [];
    const failed: { id: string; error: string }[] = [];
    let claimedAny = false;
    /** Records from `from` on were not replayed: each in `skipped`, with why. */
    const aborted = (from: number) => {
      const now = Date.now();
      for (const { record } of matched.slice(from))
        skipped.push({
          id: record.id,
          reason: notReplayable(record, again, now) ?? REPLAY_SKIP_REASONS.aborted,
        });
    };
    for (let i = 0; i < matched.length; i++) {
      const { record, revision } = matched[i]!;
      if (signal?.aborted) {
        // Nothing claimed yet (the listing itself may have been cut short): nothing to report.
        if (!claimedAny) throw abortReason(signal);
        aborted(i);
        break;
      }
      const now = Date.now();
      const why = notReplayable(record, again, now);
      if (why) {
        skipped.push({ id: record.id, reason: why });
        continue;
      }
      if (dryRun) {
        wouldReplay.push(record.id);
        continue;
      }
      const claimed = claimedVersion(record, now, this.#claimMs);
      const claimRevision = await this.#put(session, claimed, revision);
      if (claimRevision === undefined) {
        skipped.push({ id: record.id, reason: "claimed or changed by another replayer meanwhile" });
        continue;
      }
      claimedAny = true;
      const held: HeldClaim = {
        token: claimed.claim!.token,
        version: claimed,
        revision: claimRevision,
        state: "held",
      };
      if (signal?.aborted) {
        // Aborted while claiming: not handed to the target; the claim goes back at once.
        await this.#unclaim(session, record, held);
        aborted(i);
        break;
      }
      const outcome = await this.#replayOne(session, record, held, options.to);
      if (outcome === "replayed") replayed.push(record.id);
      else failed.push({ id: record.id, error: outcome.error });
    }
    return { dryRun, matched: matched.length, replayed, skipped, failed, wouldReplay };
  }

  /**
   * Hand claimed `record` to `to`, keeping the claim alive meanwhile ({@link #keepClaim}), then
   * settle it: `replayed`, or back to what it was when `to` threw. `{ error }` when `to` threw
   * (its message) or the claim was lost (`LeaseLostError`'s).
   */
  async #replayOne(
    session: Session,
    record: StoredRecord,
    held: HeldClaim,
    to: NatsReplayOptions["to"],
  ): Promise<"replayed" | { readonly error: string }> {
    // Dated before the hand-back: the copy may run (and be noted) before `to` resolves.
    const replayedAt = new Date().toISOString();
    const keepAlive = this.#keepClaim(session, held, record.id);
    try {
      await to(toInfo(record) as DeadLetterInfo & { envelope: Envelope });
    } catch (error) {
      await keepAlive.stop();
      // Back to what it was, unless the claim is no longer ours (taken over, or failed anew).
      if (held.state === "held")
        await this.#put(session, releasedVersion(record), held.revision).catch(() => undefined);
      return { error: (error as Error)?.message ?? String(error) };
    }
    await keepAlive.stop();
    await this.#noteReplay(session, record, replayedAt);
    // Two rounds: a renewal stored without its acknowledgement leaves a newer version of ours.
    for (let round = 0; round < 2 && held.state === "held"; round++) {
      const settled = await this.#put(
        session,
        replayedVersion(held.version, replayedAt),
        held.revision,
      );
      if (settled !== undefined) return "replayed";
      await this.#recheck(session, held);
    }
    if (held.state === "counted") {
      this.#logger.info(
        { id: record.id },
        `dead letter ${record.id} was replayed; its copy failed again meanwhile and was ` +
          `dead-lettered anew, which counts this replay: that newer version stands`,
      );
      return "replayed";
    }
    if (!keepAlive.warned()) this.#warnLost(record.id);
    return { error: new LeaseLostError(`dlq:${record.subscriber}`, record.eventId).message };
  }

  /**
   * While the target replays `id`: renew `held` every `claimMs / 3` on an unref'd timer, one
   * renewal at a time, until the claim is no longer ours. `stop()` clears the timer and waits for
   * a renewal under way; `warned()` says whether a renewal found the claim lost (and said so).
   */
  #keepClaim(
    session: Session,
    held: HeldClaim,
    id: string,
  ): { stop(): Promise<void>; warned(): boolean } {
    let warned = false;
    let renewing: Promise<void> | undefined;
    const timer = setInterval(
      () => {
        if (renewing || held.state !== "held") return;
        renewing = this.#renewClaim(session, held)
          .then(
            () => {
              if (held.state === "counted")
                this.#logger.debug(
                  { id },
                  `dead letter ${id} failed again while its replay ran: the new failure counts ` +
                    `the replay; its claim is no longer renewed`,
                );
              if (held.state !== "lost" || warned) return;
              warned = true;
              this.#warnLost(id);
            },
            (error: unknown) => {
              if (!this.#closing)
                this.#logger.warn(
                  { err: error, id },
                  `renewing the claim on dead letter ${id} while it is replayed failed; trying again`,
                );
            },
          )
          .finally(() => {
            renewing = undefined;
          });
      },
      Math.max(1, Math.floor(this.#claimMs / 3)),
    );
    timer.unref();
    return {
      stop: async () => {
        clearInterval(timer);
        await renewing;
      },
      warned: () => warned,
    };
  }

  #warnLost(id: string): void {
    this.#logger.warn(
      { id },
      `dead letter ${id}: its claim was lost while its replay ran (the claim of ${this.#claimMs} ms ` +
        `ran out, this process having stalled, and another replayer took the record, or it was ` +
        `removed); it is reported as LeaseLostError`,
    );
  }

  /**
   * Extend `held` to `claimMs` from now, a compare-and-set on the version it last wrote (so a
   * claim another replayer took over is never extended); on a conflict, {@link #recheck}.
   */
  async #renewClaim(session: Session, held: HeldClaim): Promise<void> {
    const version: StoredRecord = {
      ...held.version,
      claim: { token: held.token, until: new Date(Date.now() + this.#claimMs).toISOString() },
    };
    const revision = await this.#put(session, version, held.revision);
    if (revision === undefined) return this.#recheck(session, held);
    held.version = version;
    held.revision = revision;
  }

  /**
   * After a conflict on `held`, read the record: still ours (a write of ours whose acknowledgement
   * was lost) — take its revision; dead-lettered anew by its copy failing again (the new version
   * counted this replay: `replays` up, `replayedAt` the claim's date) — `counted`; else `lost`.
   */
  async #recheck(session: Session, held: HeldClaim): Promise<void> {
    const current = await this.#read(session, held.version.id);
    const record = current?.record;
    if (record?.status === "retrying" && record.claim?.token === held.token) {
      held.version = record;
      held.revision = current!.revision;
    } else if (
      record !== undefined &&
      record.replays > held.version.replays &&
      record.replayedAt === held.version.updatedAt
    )
      held.state = "counted";
    else held.state = "lost";
  }

  /**
   * Give a claim not used back: `record` as it was listed (see {@link releasedVersion}). Best
   * effort: if it fails, the claim expires after `claimMs` as a dead replayer's would.
   */
  async #unclaim(session: Session, record: StoredRecord, held: HeldClaim): Promise<void> {
    try {
      await this.#put(session, releasedVersion(record), held.revision);
    } catch (error) {
      this.#logger.warn(
        { err: error, id: record.id },
        `releasing the claim on dead letter ${record.id} (not replayed: the replay was aborted) ` +
          `failed; it is claimable again once its claim of ${this.#claimMs} ms runs out`,
      );
    }
  }

  /**
   * Note a replay in the attempt journal (stored before the record is settled, so a timeline read
   * after `replay()` resolved has it). Best effort: the replay happened whatever the journal says.
   */
  async #noteReplay(session: Session, record: StoredRecord, at: string): Promise<void> {
    const entry: AttemptInfo = {
      subscriber: record.subscriber,
      eventId: record.eventId,
      state: "replayed",
      attempts: record.attempts,
      at,
    };
    try {
      await session.js.publish(
        attemptStoreSubject(this.prefix, attemptKey(record.subscriber, record.eventId)),
        encoder.encode(JSON.stringify(entry)),
        { timeout: this.#options.requestTimeoutMs },
      );
    } catch (error) {
      this.#logger.debug(
        { err: error, id: record.id },
        "noting a replay in the attempt journal failed",
      );
    }
  }

  /**
   * Purge matching records: mark them `purged` and drop their envelope, or with `hard` remove
   * them. Needs a filter or `all`. Records being replayed (`retrying` with a live claim) are left.
   */
  async purge(
    filter: DeadLetterFilter,
    options: {
      readonly dryRun?: boolean;
      readonly all?: boolean;
      readonly hard?: boolean;
      readonly signal?: AbortSignal;
    } = {},
  ): Promise<ActionResult> {
    const { dryRun = false, all = false, hard = false, signal } = options;
    if (!all && !hasFilter(filter))
      throw new NatsOptionsError(
        "filter",
        filter,
        "at least one of id, type, subscriber, reason, status, since, before — or { all: true } to purge every dead letter",
      );
    const session = dryRun ? await this.#open() : await this.#writable("purge dead letters");
    const now = Date.now();
    const targets = (await this.#all(signal)).filter(
      ({ record }) =>
        matchesDeadLetterFilter(toInfo(record), filter) &&
        (hard || record.status !== "purged") &&
        !(record.status === "retrying" && claimLive(record, now)),
    );
    if (dryRun) return { dryRun, count: targets.length };
    let count = 0;
    for (const { record, revision } of targets) {
      if (signal?.aborted) break;
      if (hard) {
        await session.jsm.streams.purge(this.stream, {
          filter: deadLetterSubject(this.prefix, record.id),
        });
        count++;
        continue;
      }
      const { envelope: _envelope, claim: _claim, ...rest } = record;
      const tombstone: StoredRecord = {
        ...rest,
        status: "purged",
        error: { ...record.error, stack: undefined },
        updatedAt: new Date().toISOString(),
      };
      if ((await this.#put(session, tombstone, revision)) !== undefined) count++;
    }
    return { dryRun, count };
  }

  /**
   * Release the connection (if the store opened it). A connect of its own still under way is not
   * waited for: the calls waiting on it reject with `TransportClosedError`, and a connection that
   * completes later is closed. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort(new TransportClosedError(`NATS dead-letter store ${this.stream}`));
      const session = await this.#session?.catch(() => undefined);
      if (session && !this.#shared && !this.#options.connection) await closeConnection(session.nc);
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** What a connection may send in one message when the server does not say (nats-server's default). */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
/** How much of an error message a record too large for one message keeps. */
const CUT_MESSAGE_CHARS = 4_096;

/**
 * `record` as it fits in one message of at most `maxBytes`: as it is; else with its error cut
 * short (no stack, a message of at most 4096 characters); else without its envelope too, noting
 * why in `envelopeDropped`.
 */
function fitRecord(record: StoredRecord, maxBytes: number): StoredRecord {
  const sizeOf = (r: StoredRecord) => Buffer.byteLength(JSON.stringify(r), "utf8");
  const size = sizeOf(record);
  if (size <= maxBytes) return record;
  // Thrown values are anything at run time: every field is made a string before it is cut.
  const short = (value: unknown) => cutText(String(value), CUT_MESSAGE_CHARS);
  const { message, code, name } = record.error;
  const cut: StoredRecord = {
    ...record,
    error: {
      name: short(name),
      message: short(message),
      ...(code !== undefined ? { code: short(code) } : {}),
    },
  };
  if (sizeOf(cut) <= maxBytes) return cut;
  const { envelope: _envelope, ...rest } = cut;
  return {
    ...rest,
    envelopeDropped:
      `the record (${size} bytes with its envelope) was too large to store in one message ` +
      `(max_payload ${maxBytes} bytes), so its envelope was not kept`,
  };
}

/** The claim one {@link NatsDeadLetterStore.replay} holds on the record it hands back. */
interface HeldClaim {
  readonly token: string;
  /** The claimed version as last written (its `claim.until` renewed). */
  version: StoredRecord;
  revision: number;
  /**
   * `held`: ours; `counted`: the handed-back copy failed again and the new failure counted the
   * replay (no claim left); `lost`: another replayer took the record over, or it is gone.
   */
  state: "held" | "counted" | "lost";
}

/**
 * `record` (as listed, before the claim) given back unreplayed: as it was, but one that was
 * `retrying` under an expired claim (taken over) is `pending_retry` again, due at once.
 */
function releasedVersion(record: StoredRecord): StoredRecord {
  const updatedAt = new Date().toISOString();
  if (record.status !== "retrying") return { ...record, updatedAt };
  const { claim: _claim, nextRetryAt: _next, ...rest } = record;
  return { ...rest, status: "pending_retry", updatedAt };
}

/** `record` claimed by a replayer for `leaseMs` from `now`, under a new token. */
function claimedVersion(record: StoredRecord, now: number, leaseMs: number): StoredRecord {
  const { nextRetryAt: _next, ...rest } = record;
  return {
    ...rest,
    status: "retrying",
    claim: { token: randomUUID(), until: new Date(now + leaseMs).toISOString() },
    updatedAt: new Date(now).toISOString(),
  };
}

/** A claimed `record` settled as handed back at `at` (RFC 3339): `replays` + 1. */
function replayedVersion(record: StoredRecord, at: string): StoredRecord {
  const { claim: _claim, nextRetryAt: _next, ...rest } = record;
  return {
    ...rest,
    status: "replayed",
    replays: record.replays + 1,
    replayedAt: at,
    updatedAt: at,
  };
}

const order = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);

const claimLive = (record: StoredRecord, now: number) =>
  record.claim !== undefined && Date.parse(record.claim.until) > now;

/** Why a replay skips `record` (the contract's {@link replaySkipReason}), or `undefined`. */
function notReplayable(record: StoredRecord, again: boolean, now: number): string | undefined {
  const damaged = record.envelope ? undefined : toInfo(record).damaged;
  return replaySkipReason(
    {
      status: record.status,
      hasEnvelope: Boolean(record.envelope),
      ...(damaged !== undefined ? { damaged } : {}),
      claimLive: claimLive(record, now),
    },
    { again },
  );
}

const newestFirst = (a: DeadLetterInfo, b: Pick<DeadLetterInfo, "lastFailedAt" | "id">) =>
  a.lastFailedAt < b.lastFailedAt
    ? 1
    : a.lastFailedAt > b.lastFailedAt
      ? -1
      : a.id < b.id
        ? -1
        : a.id > b.id
          ? 1
          : 0;

function parseCursor(cursor: string): Pick<DeadLetterInfo, "lastFailedAt" | "id"> {
  const bar = cursor.lastIndexOf("|");
  if (bar < 0) throw new NatsOptionsError("cursor", cursor, "the `next` of a previous page");
  return { lastFailedAt: cursor.slice(0, bar), id: cursor.slice(bar + 1) };
}

/** @internal Depth and breakdowns of a set of records. */
export function countsOf(records: readonly DeadLetterInfo[], now: number): DeadLetterCounts {
  const byStatus: Partial<Record<DeadLetterStatus, number>> = {};
  const byReason: Partial<Record<DeadLetterReason, number>> = {};
  const byType: Record<string, number> = {};
  const bySubscriber: Record<string, number> = {};
  let depth = 0;
  let oldest: number | undefined;
  for (const r of records) {
    byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    if (!DEPTH.includes(r.status)) continue;
    depth++;
    byReason[r.reason] = (byReason[r.reason] ?? 0) + 1;
    byType[r.eventType] = (byType[r.eventType] ?? 0) + 1;
    bySubscriber[r.subscriber] = (bySubscriber[r.subscriber] ?? 0) + 1;
    const at = Date.parse(r.firstFailedAt);
    if (Number.isFinite(at)) oldest = Math.min(oldest ?? at, at);
  }
  return {
    depth,
    byStatus,
    byReason,
    byType,
    bySubscriber,
    ...(oldest !== undefined ? { oldestAgeMs: Math.max(0, now - oldest) } : {}),
  };
}

/** @internal Whether a status counts in the depth (not replayed, not purged). */
export const inDepth = (status: DeadLetterStatus) => DEPTH.includes(status);

const ATTEMPT_STATES: ReadonlySet<string> = new Set<AttemptState>([
  "retrying",
  "acked",
  "dead",
  "lease_expired",
  "fenced",
  "replayed",
]);

function decodeAttempt(data: Uint8Array): AttemptInfo | undefined {
  try {
    const value = JSON.parse(decoder.decode(data)) as Partial<AttemptInfo>;
    if (
      typeof value.state === "string" &&
      ATTEMPT_STATES.has(value.state) &&
      typeof value.attempts === "number" &&
      typeof value.at === "string"
    )
      return value as AttemptInfo;
  } catch {
    // not an entry: left out
  }
  return undefined;
}

function decodeRecord(id: string, data: Uint8Array): StoredRecord {
  try {
    const value = JSON.parse(decoder.decode(data)) as Partial<StoredRecord>;
    if (value?.v === 1 && typeof value.subscriber === "string" && STATUSES.includes(value.status!))
      return value as StoredRecord;
  } catch {
    // reported as damaged below
  }
  const now = new Date(0).toISOString();
  return {
    v: 1,
    id,
    subscriber: "",
    eventId: "",
    eventType: "",
    origin: "",
    reason: "max_attempts",
    status: "permanently_failed",
    error: { name: "Error", message: "damaged record" },
    attempts: 0,
    replays: 0,
    firstFailedAt: now,
    lastFailedAt: now,
    updatedAt: now,
    damaged: true,
  } as StoredRecord;
}

function toInfo(record: StoredRecord): DeadLetterInfo {
  return {
    id: record.id,
    eventId: record.eventId,
    eventType: record.eventType,
    subscriber: record.subscriber,
    origin: record.origin,
    reason: record.reason,
    status: record.status,
    error: record.error,
    attempts: record.attempts,
    replays: record.replays,
    firstFailedAt: record.firstFailedAt,
    lastFailedAt: record.lastFailedAt,
    ...(record.replayedAt !== undefined ? { replayedAt: record.replayedAt } : {}),
    ...(record.nextRetryAt !== undefined ? { nextRetryAt: record.nextRetryAt } : {}),
    ...(record.envelope !== undefined ? { envelope: record.envelope } : {}),
    ...((record as { damaged?: boolean }).damaged
      ? { damaged: `the message of dead letter ${record.id} is not a dead-letter record` }
      : record.envelopeDropped !== undefined && record.envelope === undefined
        ? { damaged: record.envelopeDropped }
        : {}),
  };
}

/**
 * Create a {@link NatsDeadLetterStore}. Nothing connects until the first call.
 *
 * @example
 * ```ts
 * // not runnable
 * const store = natsDeadLetterStore({ servers: "nats://nats:4222", stream: "SWITCHYARD" });
 * const page = await store.list({ subscriber: "evaluator" });
 * ```
 */
export function natsDeadLetterStore(options: NatsDeadLetterStoreOptions = {}): NatsDeadLetterStore {
  return new NatsDeadLetterStore(options);
}
