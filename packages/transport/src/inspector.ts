import { type Envelope, SwitchyardError } from "@switchyard/event-schema";
import type { SerializedError } from "./errors";
import type { DaemonHeartbeat } from "./heartbeat";
import type { DeadLetterReason } from "./transport";

/**
 * One subscriber's backlog: the one definition every inspector reports, so `switchyard
 * subscribers`, the dashboard, the metrics and the raw SQL of docs/operations.md agree.
 *
 * Every matching event a subscriber has not settled is in exactly one of three states:
 * - **pending**: never attempted (including events published but not yet taken by the
 *   subscriber's cursor);
 * - **in flight**: claimed under a live lease — an attempt running now, or a delivery a
 *   subscription prefetched and holds waiting for its handler (it starts under that lease, or is
 *   handed back);
 * - **retrying**: attempted at least once and waiting to run again — after a failure's backoff,
 *   or because its lease expired (the worker died or hung). An expired lease is retrying, never
 *   in flight — with one stated exception: a driver whose {@link Capabilities.expiredLeases} is
 *   `"inFlight"` (NATS) cannot see a lease expire and counts it as in flight until the delivery
 *   runs again. `lag` is the same either way.
 *
 * `lag = pending + inFlight + retrying`. `dead` counts deliveries dead-lettered and not settled
 * since (replay makes them pending again). `oldestPendingMs` is the age, from publish, of the
 * oldest event that is pending or retrying.
 */
export interface SubscriberBacklog {
  readonly subscriber: string;
  /** Event types it is registered for. */
  readonly types: readonly string[];
  /** A throwaway subscriber (`router.waitFor`, `router.events`). */
  readonly ephemeral: boolean;
  readonly pending: number;
  readonly inFlight: number;
  readonly retrying: number;
  readonly dead: number;
  /** `pending + inFlight + retrying`. */
  readonly lag: number;
  /** Age in ms of the oldest pending or retrying event; absent when there is none. */
  readonly oldestPendingMs?: number;
  /** When a worker of this subscriber last claimed or settled (RFC 3339), where the transport knows. */
  readonly lastSeen?: string;
  /** Why this subscriber's stored state cannot be read in full, if it cannot. */
  readonly damaged?: string;
}

/** An event as stored, with its envelope rebuilt. */
export interface StoredEvent {
  /** Position in the transport's log (SQLite `seq`, JetStream stream sequence). */
  readonly seq: number;
  readonly id: string;
  readonly type: string;
  readonly source: string;
  readonly subject?: string;
  /** The envelope's `time` (RFC 3339). */
  readonly time: string;
  /** When the transport stored it (RFC 3339). */
  readonly storedAt: string;
  /** The envelope; absent when the stored bytes cannot be decoded (see `damaged`). */
  readonly envelope?: Envelope;
  /** The id of the event that caused it (`causedBy`), if any. */
  readonly causedBy?: string;
  /** Why the stored event cannot be read as an envelope, if it cannot. */
  readonly damaged?: string;
}

/** A time: a `Date`, ms since the epoch, or an RFC 3339 string. */
export type TimeInput = Date | number | string;

/** Filter and page of {@link Inspector.events}. */
export interface EventQuery {
  /** Only these event types. */
  readonly types?: readonly string[];
  /** Only events with this envelope `subject`. */
  readonly subject?: string;
  /** Stored at or after. */
  readonly since?: TimeInput;
  /** Stored before. */
  readonly until?: TimeInput;
  /** Page size. @defaultValue 100 */
  readonly limit?: number;
  /** `next` of the previous page. */
  readonly cursor?: string;
  /** @defaultValue "newest" (newest first) */
  readonly order?: "newest" | "oldest";
}

/** One page of events. */
export interface EventPage {
  readonly events: readonly StoredEvent[];
  /** Pass as `cursor` for the next page; absent on the last page. */
  readonly next?: string;
}

/** Where one event is for one subscriber. */
export type DeliveryState = "pending" | "in_flight" | "retrying" | "acked" | "dead" | "unknown";

/** One event's delivery to one subscriber. */
export interface DeliveryInfo {
  readonly subscriber: string;
  readonly state: DeliveryState;
  /** Attempts started so far. */
  readonly attempts: number;
  readonly lastError?: SerializedError;
  /** Why it was dead-lettered (state `dead`). */
  readonly deadReason?: DeadLetterReason;
  /** When the current lease ends (state `in_flight`, RFC 3339). */
  readonly leaseUntil?: string;
  /** When it may run next (state `retrying`, RFC 3339). */
  readonly availableAt?: string;
  /** Last change (RFC 3339), where the transport knows. */
  readonly updatedAt?: string;
  /** Why this delivery's stored state cannot be read in full, if it cannot. */
  readonly damaged?: string;
  /**
   * What happened to this delivery, oldest first: the delivery timeline. Present when the
   * driver's `capabilities.history` is true. It holds at least every step off the happy path —
   * each retry scheduled (with its error and delay), each lease that expired under a running
   * attempt, each settle rejected by fencing, the dead-lettering and each replay — so "why did
   * this run twice?" has an answer. A transport may keep fewer entries than happened (a bounded
   * journal); `historyTruncated` then says so.
   */
  readonly history?: readonly DeliveryStep[];
  /** True when older steps of {@link DeliveryInfo.history} were dropped by the transport's bound. */
  readonly historyTruncated?: boolean;
}

/**
 * What one step of a delivery's life was:
 * - `claimed`: an attempt started (a worker took the delivery under a lease);
 * - `acked`: an attempt succeeded and the delivery is settled;
 * - `retry_scheduled`: an attempt failed and the delivery runs again after `delayMs`;
 * - `lease_expired`: an attempt's lease ran out before it settled (worker died or hung), so the
 *   delivery became claimable again;
 * - `fenced`: a settle (ack, retry, dead letter or lease extension) from an attempt that had lost
 *   its lease was rejected;
 * - `dead_lettered`: the delivery was moved to the dead-letter store (`reason` says why);
 * - `replayed`: an operator or a retry daemon replayed the dead letter, so it is pending again;
 * - `requeued`: an operator made it pending again outside of a replay.
 */
export type DeliveryStepKind =
  | "claimed"
  | "acked"
  | "retry_scheduled"
  | "lease_expired"
  | "fenced"
  | "dead_lettered"
  | "replayed"
  | "requeued";

/** Each {@link DeliveryStepKind} in words, for people (the CLI's and the dashboard's timelines). */
export const deliveryStepText: Readonly<Record<DeliveryStepKind, string>> = Object.freeze({
  claimed: "claimed",
  acked: "acked",
  retry_scheduled: "retry scheduled",
  lease_expired: "lease expired",
  fenced: "fenced (settle refused)",
  dead_lettered: "dead-lettered",
  replayed: "replayed",
  requeued: "requeued",
});

/** One entry of a delivery's timeline ({@link DeliveryInfo.history}). */
export interface DeliveryStep {
  /** When it happened (RFC 3339). */
  readonly at: string;
  readonly kind: DeliveryStepKind;
  /** The attempt it belongs to (1 = first), where the transport knows. */
  readonly attempt?: number;
  /** The error of a failed attempt (`retry_scheduled`, `dead_lettered`). */
  readonly error?: SerializedError;
  /** The backoff applied (`retry_scheduled`), in ms. */
  readonly delayMs?: number;
  /** Why it was dead-lettered (`dead_lettered`). */
  readonly reason?: DeadLetterReason;
  /** Who did it where the transport knows: a worker or consumer id, a process. */
  readonly by?: string;
  /** Anything else worth a line, in words. */
  readonly detail?: string;
}

/** An event with what it caused, recursively. */
export interface CausationNode {
  readonly event: StoredEvent;
  readonly caused: readonly CausationNode[];
}

/** Answer of {@link Inspector.causation}. */
export interface CausationTree {
  /** The chain of causes, oldest first, ending with the event's direct cause (empty for a root). */
  readonly causes: readonly StoredEvent[];
  /** The event itself and everything it caused, to `depth`. */
  readonly root: CausationNode;
  /** True when the tree was cut at `depth` or `limit`. */
  readonly truncated: boolean;
}

/** Options of {@link Inspector.counts}. */
export interface CountQuery {
  readonly since: TimeInput;
  /** @defaultValue now */
  readonly until?: TimeInput;
  /** Bucket width in ms. @defaultValue 60_000 */
  readonly bucketMs?: number;
  /** Only these types. */
  readonly types?: readonly string[];
}

/** Events stored per type per time bucket. */
export interface EventCounts {
  readonly bucketMs: number;
  /** Buckets in time order, including empty ones; `start` is RFC 3339. */
  readonly buckets: readonly {
    readonly start: string;
    readonly counts: Readonly<Record<string, number>>;
  }[];
  /** Sum over the buckets, per type. */
  readonly totals: Readonly<Record<string, number>>;
}

/** A daemon's latest heartbeat as stored, with its age. */
export interface HeartbeatInfo extends Omit<DaemonHeartbeat, "health" | "stats" | "status"> {
  readonly status: string;
  /** JSON-safe health report (a `HealthCheckResult` when written by a `DaemonManager`). */
  readonly health: unknown;
  /** JSON-safe counters (`DaemonStats`). */
  readonly stats: unknown;
  /** ms since `at`. */
  readonly ageMs: number;
  /** Why the stored heartbeat cannot be read in full, if it cannot. */
  readonly damaged?: string;
}

/** Where a dead letter is in its life. */
export type DeadLetterStatus =
  "pending_retry" | "retrying" | "replayed" | "permanently_failed" | "purged";

/**
 * How a replayer settles a dead letter it claimed: handed back (`replayed`), given up
 * (`permanently_failed`), or due again at `nextRetryAt` (Unix ms); `error` replaces the stored
 * error's message. What the retry daemon of `@switchyard/dlq` passes to a store's `release`.
 */
export type DeadLetterRelease =
  | { readonly status: "replayed" }
  | { readonly status: "permanently_failed"; readonly error?: string }
  | { readonly status: "pending_retry"; readonly nextRetryAt: number; readonly error?: string };

/** A stored dead letter. */
export interface DeadLetterInfo {
  /** The store's id of the record (a string on every transport). */
  readonly id: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly subscriber: string;
  /** `"router"` for in-process handlers, else the transport name. */
  readonly origin: string;
  readonly reason: DeadLetterReason;
  readonly status: DeadLetterStatus;
  readonly error: SerializedError;
  readonly attempts: number;
  readonly replays: number;
  readonly firstFailedAt: string;
  readonly lastFailedAt: string;
  readonly replayedAt?: string;
  /** When a retry daemon may replay it next (RFC 3339): only meaningful while one runs. */
  readonly nextRetryAt?: string;
  /** The original envelope; absent once purged or when damaged. */
  readonly envelope?: Envelope;
  readonly damaged?: string;
}

/** Filter of the dead-letter reads and actions. */
export interface DeadLetterFilter {
  /** One record. */
  readonly id?: string;
  /** The dead letters of one event (one per subscriber that gave up on it). */
  readonly eventId?: string;
  readonly type?: string;
  readonly subscriber?: string;
  readonly reason?: DeadLetterReason;
  readonly status?: DeadLetterStatus | readonly DeadLetterStatus[];
  /** Last failed at or after. */
  readonly since?: TimeInput;
  /** Last failed before. */
  readonly before?: TimeInput;
}

/**
 * Whether a dead letter matches a filter: the one reading of {@link DeadLetterFilter} for
 * transports that filter in memory (SQLite filters in SQL to the same rules). Times in `since` and
 * `before` compare with `lastFailedAt`; `status` is one status or any of several.
 *
 * @throws {@link InspectorQueryError} when `since` or `before` is not a time.
 */
export function matchesDeadLetterFilter(record: DeadLetterInfo, filter: DeadLetterFilter): boolean {
  if (filter.id !== undefined && record.id !== filter.id) return false;
  if (filter.eventId !== undefined && record.eventId !== filter.eventId) return false;
  if (filter.type !== undefined && record.eventType !== filter.type) return false;
  if (filter.subscriber !== undefined && record.subscriber !== filter.subscriber) return false;
  if (filter.reason !== undefined && record.reason !== filter.reason) return false;
  if (filter.status !== undefined) {
    const statuses: readonly DeadLetterStatus[] =
      typeof filter.status === "string" ? [filter.status] : filter.status;
    if (!statuses.includes(record.status)) return false;
  }
  const failedAt = Date.parse(record.lastFailedAt);
  if (filter.since !== undefined && failedAt < timeInputMs(filter.since, "since")) return false;
  if (filter.before !== undefined && failedAt >= timeInputMs(filter.before, "before")) return false;
  return true;
}

/** The furthest a `Date` reaches from the epoch, in ms (ECMAScript's time value range). */
const MAX_DATE_MS = 8.64e15;

/**
 * A {@link TimeInput} as ms since the epoch: every driver's reading of `since`, `until` and the
 * like.
 *
 * @throws {@link InspectorQueryError} naming `what` when it is not a time a `Date` can hold
 * (beyond ±8.64e15 ms, a later `toISOString()` would throw a bare `RangeError`).
 */
export function timeInputMs(input: TimeInput, what: string): number {
  const ms =
    input instanceof Date ? input.getTime() : typeof input === "number" ? input : Date.parse(input);
  if (!Number.isFinite(ms) || Math.abs(ms) > MAX_DATE_MS)
    throw new InspectorQueryError(
      what,
      `must be a Date, ms since the epoch or an RFC 3339 time within a Date's range; got ${JSON.stringify(String(input))}.`,
    );
  return ms;
}

/**
 * Buckets an {@link Inspector.counts} answer lists at most, empty ones included: every driver
 * refuses a query that would need more (a window of millions would never finish building).
 */
export const MAX_COUNT_BUCKETS = 100_000;

/**
 * The one check of a count query's size: `buckets` is how many the driver would list for it.
 *
 * @throws {@link InspectorQueryError} naming `bucketMs` past {@link MAX_COUNT_BUCKETS}.
 */
export function checkCountBuckets(buckets: number, bucketMs: number): void {
  if (buckets > MAX_COUNT_BUCKETS)
    throw new InspectorQueryError(
      "bucketMs",
      `${buckets} buckets of ${bucketMs} ms between since and until; use wider buckets or a shorter window (at most ${MAX_COUNT_BUCKETS}).`,
    );
}

/**
 * A query argument was not usable: says which and what was expected. Code `INVALID_QUERY`. The one
 * class for every driver (the SQLite package re-exports it), so `instanceof` holds across packages.
 *
 * @example
 * ```ts
 * throw new InspectorQueryError("limit", `expected a whole number ≥ 1, got ${limit}.`);
 * // message: "limit: expected a whole number ≥ 1, got 0."; error.option === "limit"
 * ```
 */
export class InspectorQueryError extends SwitchyardError {
  /** The option at fault, when the thrower named it (the message then starts with `option: `). */
  readonly option: string | undefined;

  /** A message that says which argument was wrong and what was expected. */
  constructor(message: string);
  /** `option` names the argument at fault; the message becomes `option: message`. */
  constructor(option: string, message: string);
  constructor(optionOrMessage: string, message?: string) {
    super(
      "INVALID_QUERY",
      message === undefined ? optionOrMessage : `${optionOrMessage}: ${message}`,
    );
    this.option = message === undefined ? undefined : optionOrMessage;
  }
}

/**
 * `purge` was given no criterion and not `all: true`: it would remove every dead letter. Code
 * `UNBOUNDED_PURGE`. The one class for every driver and dead-letter store (the SQLite package
 * re-exports it), so `instanceof` holds across packages.
 */
export class UnboundedPurgeError extends SwitchyardError {
  /** @param message - what the purge lacked, naming the criteria this store accepts. */
  constructor(
    message = "purge needs a filter (id, eventId, type, subscriber, reason, status, since, before) or all: true; " +
      "it would otherwise remove every dead letter.",
  ) {
    super("UNBOUNDED_PURGE", message);
  }
}

/** Options of {@link Inspector.deadLetters}. */
export interface DeadLetterListQuery extends DeadLetterFilter {
  /** @defaultValue 100 */
  readonly limit?: number;
  readonly cursor?: string;
}

/** One page of dead letters, newest first. */
export interface DeadLetterPage {
  readonly deadLetters: readonly DeadLetterInfo[];
  readonly next?: string;
}

/** Dead-letter depth, by reason, type and subscriber. */
export interface DeadLetterCounts {
  /** Records that still need attention (not replayed, not purged). */
  readonly depth: number;
  readonly byStatus: Readonly<Partial<Record<DeadLetterStatus, number>>>;
  readonly byReason: Readonly<Partial<Record<DeadLetterReason, number>>>;
  readonly byType: Readonly<Record<string, number>>;
  readonly bySubscriber: Readonly<Record<string, number>>;
  /** Age of the oldest record in the depth, in ms. */
  readonly oldestAgeMs?: number;
}

/** What a driver's inspector and admin can do: tools ask instead of failing oddly. */
export interface Capabilities {
  /** Per-subscriber delivery detail of one event (attempts, last error). */
  readonly deliveries: boolean;
  /**
   * Each delivery comes with its timeline ({@link DeliveryInfo.history}).
   * @defaultValue false when absent
   */
  readonly history?: boolean;
  /** Heartbeats are stored where the inspector can read them. */
  readonly heartbeats: boolean;
  /** Dead letters are stored where the inspector can read them. */
  readonly deadLetters: boolean;
  /** `admin().replay`. */
  readonly replay: boolean;
  /** `admin().purge`. */
  readonly purge: boolean;
  /** `admin().clearPending`. */
  readonly clearPending: boolean;
  /** `admin().backup` (and a backup before every destructive action). */
  readonly backup: boolean;
  /**
   * `admin().audit`: the transport keeps an ack floor per consumer (a log read by offsets, like
   * JetStream), so it can check that floor against what was handled. Transports whose deliveries
   * are one row each (memory, SQLite) have no floor to pass an event by: false.
   */
  readonly audit: boolean;
  /**
   * Where {@link SubscriberBacklog} counts a delivery whose lease expired (its worker died or
   * hung) until it is claimed again: `"retrying"`, the contract's rule (memory, SQLite), or
   * `"inFlight"`, the one stated exception (NATS: JetStream keeps no per-message lease state an
   * outsider can read, so the message stays unacknowledged and counts as in flight until the
   * server redelivers it; `lag` is the same either way).
   * @defaultValue "retrying" when absent
   */
  readonly expiredLeases?: "retrying" | "inFlight";
}

/**
 * The read side of a transport, the same on every transport: what the CLI, the dashboard and the
 * metrics endpoint ask. Read-only and async; it never changes what it reads.
 */
export interface Inspector extends AsyncDisposable {
  /** The transport's name (`"sqlite"`, `"nats"`, `"memory"`). */
  readonly transport: string;
  readonly capabilities: Capabilities;
  /** Every registered subscriber with its backlog (see {@link SubscriberBacklog}). */
  subscribers(options?: { readonly signal?: AbortSignal }): Promise<SubscriberBacklog[]>;
  /** Events, filtered and paged. */
  events(query?: EventQuery & { readonly signal?: AbortSignal }): Promise<EventPage>;
  /** One event by id. */
  event(id: string, options?: { readonly signal?: AbortSignal }): Promise<StoredEvent | undefined>;
  /** One event's delivery to every subscriber registered for its type. */
  deliveries(id: string, options?: { readonly signal?: AbortSignal }): Promise<DeliveryInfo[]>;
  /** What caused an event and what it caused; `undefined` for an unknown id. */
  causation(
    id: string,
    options?: {
      /** Levels of effects. @defaultValue 10 */
      readonly depth?: number;
      /** Events in the tree at most. @defaultValue 1000 */
      readonly limit?: number;
      readonly signal?: AbortSignal;
    },
  ): Promise<CausationTree | undefined>;
  /** Events stored per type per time bucket. */
  counts(query: CountQuery & { readonly signal?: AbortSignal }): Promise<EventCounts>;
  /** Every daemon's latest heartbeat. Empty when `capabilities.heartbeats` is false. */
  heartbeats(options?: { readonly signal?: AbortSignal }): Promise<HeartbeatInfo[]>;
  /** Dead letters, newest first. Empty when `capabilities.deadLetters` is false. */
  deadLetters(
    query?: DeadLetterListQuery & { readonly signal?: AbortSignal },
  ): Promise<DeadLetterPage>;
  /** One dead letter by id. */
  deadLetter(
    id: string,
    options?: { readonly signal?: AbortSignal },
  ): Promise<DeadLetterInfo | undefined>;
  /** Dead-letter depth and its breakdowns. */
  deadLetterCounts(options?: { readonly signal?: AbortSignal }): Promise<DeadLetterCounts>;
  /** Release connections. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link Admin.audit}. */
export interface AuditOptions {
  /** Only this subscriber's consumers. @defaultValue every subscriber */
  readonly subscriber?: string;
  /** Hand every unhandled event back to its subscriber (same id). @defaultValue false */
  readonly repair?: boolean;
  readonly signal?: AbortSignal;
}

/** One event a subscriber's ack floor passed that has no receipt: it was never handled. */
export interface UnhandledEvent {
  /** Its sequence in the log. */
  readonly seq: number;
  /** The envelope id. */
  readonly id: string;
  readonly type: string;
}

/** What {@link Admin.audit} found for one consumer (one subscriber and event type). */
export interface ConsumerAudit {
  readonly subscriber: string;
  readonly type: string;
  /** The transport's name for the consumer (JetStream: the durable name). */
  readonly consumer: string;
  /** Sequence of the ack floor: the log considers everything at or below it acknowledged. */
  readonly ackFloor: number;
  /** Sequence of the last delivery. */
  readonly delivered: number;
  /** Delivered, not yet acknowledged (they will be redelivered). */
  readonly ackPending: number;
  /** Matching events not delivered yet. */
  readonly pending: number;
  /**
   * Sequences above the ack floor that the log no longer holds (`from`–`to`, of every type, so an
   * upper bound for this consumer): events removed (age limit, purge, interest retention) before
   * this consumer acknowledged them. `undefined` when there is no such range.
   */
  readonly removedBeforeAck: { readonly from: number; readonly to: number } | undefined;
  /** The ack floor or last delivery lies past the log's last sequence (the log lost its tail). */
  readonly aheadOfStream: boolean;
  /**
   * With receipts: events at or below the ack floor, published after the consumer was created,
   * that have no receipt. `undefined` without receipts (nothing to compare with).
   */
  readonly unhandled: readonly UnhandledEvent[] | undefined;
  /** Events compared with the receipts. */
  readonly checked: number;
}

/** The result of {@link Admin.audit}. */
export interface AuditReport {
  /** The log audited (JetStream: the stream's name). */
  readonly stream: string;
  /** The log's retention policy, as the transport names it. */
  readonly retention: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Whether receipts were found and compared. */
  readonly receipts: boolean;
  readonly consumers: readonly ConsumerAudit[];
  /**
   * Gaps found: unhandled events plus consumers ahead of the log. A `removedBeforeAck` range is
   * not counted: it may hold only other types' events (removed after their own consumers acked).
   */
  readonly gaps: number;
  /** Events handed back to their subscriber (`repair: true`). */
  readonly requeued: number;
}

/** Options of {@link Admin.replay}. */
export interface ReplayOptions {
  /** Count what would be replayed; change nothing. @defaultValue false */
  readonly dryRun?: boolean;
  /** Also replay records replayed before (status `replayed`). @defaultValue false */
  readonly again?: boolean;
  readonly signal?: AbortSignal;
}

/** What {@link Admin.replay} did. */
export interface ReplayResult {
  readonly dryRun: boolean;
  readonly matched: number;
  readonly replayed: readonly string[];
  /**
   * Not replayed, with why: the reason of `replaySkipReason` (purged, replayed before without
   * `again`, being replayed right now by another replayer, no envelope stored), or a conflict met
   * while replaying (another replayer took it meanwhile).
   */
  readonly skipped: readonly { readonly id: string; readonly reason: string }[];
  readonly failed: readonly { readonly id: string; readonly error: string }[];
  /** With `dryRun`: the ids that would be replayed. */
  readonly wouldReplay: readonly string[];
}

/** Options of {@link Admin.purge}. */
export interface PurgeOptions {
  readonly dryRun?: boolean;
  /** Purge everything (no filter). @defaultValue false */
  readonly all?: boolean;
  /** Delete outright instead of keeping tombstones, where the transport distinguishes. @defaultValue false */
  readonly hard?: boolean;
  /** Where and how many backups are kept (the backup taken before purging). @defaultValue the transport's */
  readonly backup?: BackupOptions;
  readonly signal?: AbortSignal;
}

/** What a destructive action did. */
export interface ActionResult {
  readonly dryRun: boolean;
  /** Records (or deliveries) matched / changed. */
  readonly count: number;
  /** The backup taken first, where the transport supports backups. */
  readonly backup?: string;
}

/** Options of {@link Admin.backup}. */
export interface BackupOptions {
  /** Directory for the backup. @defaultValue the transport's (next to the database for SQLite) */
  readonly dir?: string;
  /** Backups kept in `dir`; older ones are removed after a new one is written. @defaultValue 10 */
  readonly keep?: number;
  readonly signal?: AbortSignal;
}

/**
 * Operator actions on a transport. Which are supported is in the driver's
 * {@link Capabilities}; an unsupported one rejects with `UnsupportedOperationError`.
 */
export interface Admin {
  /** Hand dead letters back to the subscriber that failed them (exclusive per record). */
  replay(filter: DeadLetterFilter, options?: ReplayOptions): Promise<ReplayResult>;
  /** Remove dead letters (backing up first where supported). At least one filter or `all`. */
  purge(filter: DeadLetterFilter, options?: PurgeOptions): Promise<ActionResult>;
  /** Drop the backlog of pending deliveries (backing up first). */
  clearPending(
    filter: { readonly subscriber?: string; readonly type?: string },
    options?: {
      readonly dryRun?: boolean;
      readonly backup?: BackupOptions;
      readonly signal?: AbortSignal;
    },
  ): Promise<ActionResult>;
  /** Take a consistent backup; resolves to its path. */
  backup(options?: BackupOptions): Promise<string>;
  /**
   * Compare each consumer's ack floor with what its subscriber handled, and name the events the
   * floor passed unhandled (`capabilities.audit`; else `UnsupportedOperationError`). With
   * `repair`, hand them back.
   */
  audit(options?: AuditOptions): Promise<AuditReport>;
}
