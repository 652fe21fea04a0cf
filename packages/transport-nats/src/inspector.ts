import type { ConsumerInfo, NextMsgRequest, StreamInfo } from "@nats-io/jetstream";
import { uuidv7Time } from "@switchyard/event-schema";
import {
  abortReason,
  type Capabilities,
  type CausationNode,
  type CausationTree,
  type CountQuery,
  type DeadLetterCounts,
  type DeadLetterInfo,
  type DeadLetterListQuery,
  type DeadLetterPage,
  type DeliveryInfo,
  type DeliveryStep,
  type EventCounts,
  type EventPage,
  type EventQuery,
  type HeartbeatInfo,
  type Inspector,
  type StoredEvent,
  type SubscriberBacklog,
  InspectorQueryError,
  checkCountBuckets,
  timeInputMs,
} from "@switchyard/transport";
import {
  type DeliveryJournal,
  type JournalEntry,
  type NatsDeadLetterStore,
  inDepth,
} from "./dead-letters";
import { TransportClosedError, toNatsError } from "./errors";
import { listNatsHeartbeats } from "./heartbeats";
import { type Session, isStreamNotFound } from "./jetstream";
import { type ConsumerTag, parseConsumerTag } from "./names";
import {
  type ReadSession,
  type StreamMessage,
  fromStoredMsg,
  headerId,
  isReplayCopy,
  readStream,
  toStoredEvent,
} from "./reader";

/**
 * What the NATS inspector can tell (see {@link NatsInspector}). `history` is true: the timeline
 * comes from the attempt journal and the dead-letter store, which every transport opened by
 * `natsDriver` writes. A `natsTransport` given another dead-letter sink writes no journal; the
 * history of its deliveries then holds only what the NATS dead-letter store knows (nothing).
 */
export const natsCapabilities: Capabilities = Object.freeze({
  deliveries: true,
  history: true,
  heartbeats: true,
  deadLetters: true,
  replay: true,
  purge: true,
  clearPending: false,
  backup: false,
  audit: true,
  expiredLeases: "inFlight",
});

/** @internal Where the inspector reads: a session (opened on first use) and the names. */
export interface InspectorSource {
  readonly session: () => Promise<Session>;
  readonly stream: string;
  readonly prefix: string;
  readonly servers: readonly string[];
  readonly requestTimeoutMs: number;
  readonly deadLetters: NatsDeadLetterStore;
  /** Called by `close()`; the driver releases what it owns. */
  readonly onClose?: () => Promise<void>;
}

/** One consumer of the transport, found by its description tag, with its server-side state. */
interface TaggedConsumer {
  readonly tag: ConsumerTag;
  readonly info: ConsumerInfo;
}

/** A stream read for one call: the session and the stream's info when the call started. */
interface StreamView extends ReadSession {
  readonly session: Session;
  readonly info: StreamInfo;
}

/** A query argument the inspector cannot use: the contract's one class for it, naming the option. */
function queryError(option: string, value: unknown, expected: string): InspectorQueryError {
  return new InspectorQueryError(
    option,
    `expected ${expected}; got ${JSON.stringify(value) ?? String(value)}.`,
  );
}

/** Steps of one delivery's timeline returned at most (the newest kept). */
export const natsHistoryLimit = 100;

/** How far before a UUIDv7 id's time its event is looked for (publishers' clocks differ). */
const CLOCK_SKEW_MS = 10 * 60_000;

/**
 * The read side of a NATS transport ({@link Inspector}): what `switchyard` asks on NATS. Only
 * reads: the ordered consumers it reads the stream with are deleted afterwards, and it creates no
 * stream (a missing one reads as empty).
 *
 * **Backlog on NATS** ({@link SubscriberBacklog}), summed over a subscriber's consumers (one per
 * event type, plus its replay consumer), from the consumers' info — the same numbers in every
 * process — and the attempt journal:
 * - `pending` = `num_pending`: matching messages not yet delivered to it.
 * - `retrying`: unacknowledged messages that failed and wait for their backoff — the attempt
 *   journal's `retrying` entries after the ack floor whose retry is not due yet. The journal
 *   (`${stream}_ATTEMPTS`) is written by a transport whose dead-letter sink is the
 *   {@link NatsDeadLetterStore} (as `natsDriver` sets it up), only off the happy path. Without it,
 *   `num_redelivered` is the guess.
 * - `inFlight` = `num_ack_pending − retrying`: delivered and unacknowledged otherwise.
 * JetStream keeps no per-message state an outsider can read, so the rest is approximated: a
 * lease that expired (its worker died or hung) counts as in flight until the server redelivers
 * the message (it does so at once while another worker pulls) — the contract's one stated
 * exception, `capabilities.expiredLeases: "inFlight"` — and a retry that is due but not pulled
 * yet counts as in flight. `lag` (the sum) is exact.
 * - `dead`: the subscriber's records in the dead-letter store that are not replayed or purged.
 * - `oldestPendingMs`: the age of the first unacknowledged message when some are retrying,
 *   else of the next undelivered one.
 * - `lastSeen`: the latest `last_active` of its consumers' delivered and ack-floor positions.
 *
 * **Deliveries** of one event: one per consumer of its type that existed when it was stored.
 * `dead` (attempts, reason, last error) when the dead-letter store holds an unreplayed record of
 * it; else from the consumer's ack floor and delivered sequence plus the journal: `acked` at or
 * below the ack floor, when nothing is unacknowledged, or when the journal noted the ack (with
 * its attempts); `pending` after the delivered sequence (attempts 0); `retrying` while a noted
 * failure waits for its backoff (attempts, last error, `availableAt`); `in_flight` for the first
 * unacknowledged message after the ack floor (its `leaseUntil` from the delivery time and
 * AckWait: a lower bound, since `extendLease()` restarts AckWait unseen) or a due retry; `unknown`
 * for other unacknowledged-looking messages (acked out of order or not: the server does not say).
 * Attempts of an acked delivery are exact when it took more than one (the journal notes it),
 * else 1.
 *
 * **History** ({@link DeliveryInfo.history}): the attempt journal's entries of the delivery (its
 * message, replayed copies and the store's replays, one subject token per subscriber and event),
 * oldest first, as steps: `retry_scheduled` (error, `delayMs`), `lease_expired` (noted by the
 * worker that saw its lease run out), `fenced` (an outcome discarded for a lost lease),
 * `dead_lettered` (reason, error), `replayed` and `acked` (after more than one attempt). An
 * attempt that ended with nothing noted, followed by a later attempt of the same message (its
 * worker died, so the server redelivered it after AckWait), shows as `lease_expired` with a
 * `detail` saying it is inferred, dated at the later step that revealed it. A dead letter or
 * replay the journal misses (written by another sink) comes from the dead-letter record. The
 * happy path writes nothing, so a delivery acked on its first attempt has an empty history.
 * Bounded: `natsHistoryLimit` (100) steps, and the journal keeps 64 entries per message for
 * `attemptsMaxAgeMs`; `historyTruncated` says when steps were dropped.
 *
 * @example
 * ```ts
 * // not runnable
 * await using driver = await natsDriver.open(parseTarget("nats://127.0.0.1:4222/SWITCHYARD"), { readOnly: true });
 * for (const s of await driver.inspector().subscribers()) console.log(s.subscriber, s.lag);
 * ```
 */
export class NatsInspector implements Inspector {
  readonly transport = "nats";
  readonly capabilities = natsCapabilities;
  /** The event stream read. */
  readonly stream: string;
  /** The subject prefix (`${prefix}.${type}`). */
  readonly prefix: string;
  readonly #source: InspectorSource;
  #closing: Promise<void> | undefined;

  /** @internal Open it with `natsDriver` (`driver.inspector()`). */
  constructor(source: InspectorSource) {
    this.#source = source;
    this.stream = source.stream;
    this.prefix = source.prefix;
  }

  async #call<T>(
    fn: (session: Session) => Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    if (this.#closing) throw new TransportClosedError(`NATS inspector of stream ${this.stream}`);
    if (signal?.aborted) throw abortReason(signal);
    const session = await this.#source.session();
    try {
      return await fn(session);
    } catch (error) {
      throw toNatsError(error, { servers: this.#source.servers, phase: "request" });
    }
  }

  /** The stream's view, or `undefined` when the stream does not exist. */
  async #view(session: Session): Promise<StreamView | undefined> {
    try {
      const info = await session.jsm.streams.info(this.stream);
      return { session, js: session.js, jsm: session.jsm, stream: this.stream, info };
    } catch (error) {
      if (isStreamNotFound(error)) return undefined;
      throw error;
    }
  }

  async #consumers(session: Session): Promise<TaggedConsumer[]> {
    const found: TaggedConsumer[] = [];
    try {
      for await (const info of session.jsm.consumers.list(this.stream)) {
        const tag = parseConsumerTag(info.config.description);
        if (!tag || (tag.prefix !== undefined && tag.prefix !== this.prefix)) continue;
        found.push({ tag, info });
      }
    } catch (error) {
      if (isStreamNotFound(error)) return [];
      throw error;
    }
    return found.sort((a, b) => a.info.name.localeCompare(b.info.name));
  }

  /** Every subscriber with a consumer on the stream and its backlog (see the class comment). */
  async subscribers(options: { readonly signal?: AbortSignal } = {}): Promise<SubscriberBacklog[]> {
    return this.#call(async (session) => {
      const consumers = await this.#consumers(session);
      const records = await this.#source.deadLetters.records(options.signal);
      const dead = new Map<string, number>();
      for (const r of records)
        if (inDepth(r.status)) dead.set(r.subscriber, (dead.get(r.subscriber) ?? 0) + 1);
      const now = Date.now();
      const groups = new Map<string, TaggedConsumer[]>();
      for (const c of consumers)
        groups.set(c.tag.subscriber, [...(groups.get(c.tag.subscriber) ?? []), c]);
      const out: SubscriberBacklog[] = [];
      for (const [subscriber, group] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
        let pending = 0;
        let inFlight = 0;
        let retrying = 0;
        let oldest: number | undefined;
        let lastSeen: number | undefined;
        for (const { info } of group) {
          let waiting = 0;
          if (info.num_ack_pending > 0) {
            const entries = await this.#source.deadLetters.attemptsAfter(
              info.name,
              info.ack_floor.stream_seq,
            );
            waiting =
              entries === undefined
                ? info.num_redelivered // no journal: redelivered ones are the best guess
                : entries.filter(
                    (e) =>
                      e.state === "retrying" &&
                      e.availableAt !== undefined &&
                      Date.parse(e.availableAt) > now,
                  ).length;
          }
          const redelivered = Math.min(waiting, info.num_ack_pending);
          pending += info.num_pending;
          retrying += redelivered;
          inFlight += info.num_ack_pending - redelivered;
          const waitingFrom =
            redelivered > 0
              ? info.ack_floor.stream_seq + 1
              : info.num_pending > 0
                ? info.delivered.stream_seq + 1
                : undefined;
          const filter = info.config.filter_subject;
          if (waitingFrom !== undefined && filter) {
            const stored = await nextBySubject(session, this.stream, filter, waitingFrom);
            if (stored) oldest = Math.max(oldest ?? 0, now - stored.time.getTime());
          }
          for (const at of [info.delivered.last_active, info.ack_floor.last_active]) {
            const ms = typeof at === "string" ? Date.parse(at) : Number.NaN;
            if (Number.isFinite(ms) && ms > 0) lastSeen = Math.max(lastSeen ?? 0, ms);
          }
        }
        out.push({
          subscriber,
          types: [...new Set(group.flatMap((c) => (c.tag.type ? [c.tag.type] : [])))].sort(),
          ephemeral: group.every((c) => c.tag.ephemeral),
          pending,
          inFlight,
          retrying,
          dead: dead.get(subscriber) ?? 0,
          lag: pending + inFlight + retrying,
          ...(oldest !== undefined ? { oldestPendingMs: Math.max(0, oldest) } : {}),
          ...(lastSeen !== undefined ? { lastSeen: new Date(lastSeen).toISOString() } : {}),
        });
      }
      return out;
    }, options.signal);
  }

  /**
   * Events, filtered and paged by stream sequence (`cursor` = the last sequence of the previous
   * page). Newest first by default: read backwards in growing windows, so the newest few of a
   * long stream cost a few reads. Dead-letter replay copies are not events and are left out.
   */
  async events(query: EventQuery & { readonly signal?: AbortSignal } = {}): Promise<EventPage> {
    const limit = query.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1) throw queryError("limit", limit, "an integer ≥ 1");
    const order = query.order ?? "newest";
    if (order !== "newest" && order !== "oldest")
      throw queryError("order", order, '"newest" or "oldest"');
    let cursor: number | undefined;
    if (query.cursor !== undefined) {
      cursor = Number(query.cursor);
      if (!Number.isInteger(cursor) || cursor < 0)
        throw queryError("cursor", query.cursor, "the `next` of a previous page");
    }
    const since = query.since === undefined ? undefined : timeInputMs(query.since, "since");
    const until = query.until === undefined ? undefined : timeInputMs(query.until, "until");
    const types = query.types === undefined ? undefined : new Set(query.types);
    if (types?.size === 0) return { events: [] };
    return this.#call(async (session) => {
      const view = await this.#view(session);
      if (!view || view.info.state.messages === 0) return { events: [] };
      const { state } = view.info;
      const filter = types?.size === 1 ? `${this.prefix}.${[...types][0]}` : `${this.prefix}.>`;
      const keep = (message: StreamMessage): StoredEvent | undefined => {
        if (isReplayCopy(this.prefix, message.subject)) return undefined;
        if (since !== undefined && message.storedAt < since) return undefined;
        if (until !== undefined && message.storedAt >= until) return undefined;
        const event = toStoredEvent(message, this.prefix);
        if (types && !types.has(event.type)) return undefined;
        if (query.subject !== undefined && event.subject !== query.subject) return undefined;
        return event;
      };
      let lower = state.first_seq;
      if (since !== undefined) {
        const first = await firstSeqSince(view, this.prefix, since, state.last_seq);
        if (first === undefined) return { events: [] };
        lower = Math.max(lower, first);
      }
      const found: StoredEvent[] = [];
      if (order === "oldest") {
        const from = Math.max(lower, (cursor ?? 0) + 1);
        for await (const message of readStream(view, {
          filter,
          from: { seq: from },
          until: state.last_seq,
          ...(query.signal ? { signal: query.signal } : {}),
        })) {
          if (until !== undefined && message.storedAt >= until) break;
          const event = keep(message);
          if (event) found.push(event);
          if (found.length > limit) break;
        }
      } else {
        let end = Math.min(state.last_seq, cursor === undefined ? state.last_seq : cursor - 1);
        for (let window = Math.max(limit * 2, 256); end >= lower; window *= 4) {
          const start = Math.max(lower, end - window + 1);
          const chunk: StoredEvent[] = [];
          for await (const message of readStream(view, {
            filter,
            from: { seq: start },
            until: end,
            ...(query.signal ? { signal: query.signal } : {}),
          })) {
            const event = keep(message);
            if (event) chunk.push(event);
          }
          found.push(...chunk.reverse());
          if (found.length > limit) break;
          end = start - 1;
        }
      }
      const page = found.slice(0, limit);
      const last = page.at(-1);
      return {
        events: page,
        ...(found.length > limit && last ? { next: String(last.seq) } : {}),
      };
    }, query.signal);
  }

  /**
   * The event with envelope id `id`, found by its `ce-id`/`Nats-Msg-Id` header (headers-only
   * reads): a UUIDv7 id starts the search shortly before its creation time; when that misses, or
   * the id is no UUIDv7, the whole stream is searched.
   */
  async event(
    id: string,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<StoredEvent | undefined> {
    return this.#call(async (session) => {
      const view = await this.#view(session);
      if (!view) return undefined;
      return this.#find(view, id, options.signal);
    }, options.signal);
  }

  async #find(
    view: StreamView,
    id: string,
    signal: AbortSignal | undefined,
  ): Promise<StoredEvent | undefined> {
    const { state } = view.info;
    if (state.messages === 0) return undefined;
    const search = async (from: { time: number } | undefined) => {
      for await (const message of readStream(view, {
        filter: `${this.prefix}.>`,
        ...(from ? { from } : {}),
        until: state.last_seq,
        headersOnly: true,
        ...(signal ? { signal } : {}),
      })) {
        if (isReplayCopy(this.prefix, message.subject)) continue;
        if (headerId(message) === id) return message.seq;
      }
      return undefined;
    };
    const created = uuidv7Time(id);
    let seq = created === undefined ? undefined : await search({ time: created - CLOCK_SKEW_MS });
    seq ??= await search(undefined);
    if (seq === undefined) return undefined;
    const stored = await view.jsm.streams.getMessage(this.stream, { seq });
    return stored ? toStoredEvent(fromStoredMsg(stored), this.prefix) : undefined;
  }

  /** One event's delivery to every subscriber of its type (see the class comment for the states). */
  async deliveries(
    id: string,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<DeliveryInfo[]> {
    return this.#call(async (session) => {
      const view = await this.#view(session);
      if (!view) return [];
      const event = await this.#find(view, id, options.signal);
      if (!event) return [];
      const storedAt = Date.parse(event.storedAt);
      const consumers = (await this.#consumers(session)).filter(
        ({ tag, info }) => tag.type === event.type && Date.parse(info.created) <= storedAt,
      );
      const records = new Map<string, DeadLetterInfo>();
      for (const r of await this.#source.deadLetters.records(options.signal))
        if (r.eventId === event.id) records.set(r.subscriber, r);
      const journals = new Map<string, Promise<DeliveryJournal | undefined>>();
      const out: DeliveryInfo[] = [];
      for (const { tag, info } of consumers) {
        const record = records.get(tag.subscriber);
        let journal = journals.get(tag.subscriber);
        if (!journal) {
          journal = this.#source.deadLetters.journal(tag.subscriber, event.id, {
            ...(options.signal ? { signal: options.signal } : {}),
          });
          journals.set(tag.subscriber, journal);
        }
        const entries = (await journal)?.entries ?? [];
        const { history, truncated } = timeline(
          await journal,
          record,
          info.name,
          event.seq,
          natsHistoryLimit,
        );
        const timelineFields = {
          history,
          ...(truncated ? { historyTruncated: true } : {}),
        };
        if (record && inDepth(record.status)) {
          out.push({
            subscriber: tag.subscriber,
            state: "dead",
            attempts: record.attempts,
            lastError: record.error,
            deadReason: record.reason,
            updatedAt: record.lastFailedAt,
            ...timelineFields,
          });
          continue;
        }
        const computed = await deliveryState(view, info, event.seq);
        // The latest state-bearing entry of this message (a failure waiting, an ack after retries).
        const entry =
          computed === "pending"
            ? undefined
            : entries.findLast(
                (e) =>
                  e.consumer === info.name &&
                  e.seq === event.seq &&
                  (e.state === "retrying" || e.state === "acked"),
              );
        const now = Date.now();
        let state = computed;
        let attempts = computed === "pending" ? 0 : 1;
        if (entry?.state === "acked") {
          state = "acked";
          attempts = entry.attempts;
        } else if (entry?.state === "retrying" && computed !== "acked") {
          const due = entry.availableAt === undefined ? now : Date.parse(entry.availableAt);
          // Waiting for its backoff; once due, it runs again (or waits to be pulled).
          state = due > now ? "retrying" : "in_flight";
          attempts = due > now ? entry.attempts : entry.attempts + 1;
        } else if (entry?.state === "retrying") attempts = entry.attempts + 1;
        const leaseUntil = state === "in_flight" ? leaseEnd(info) : undefined;
        out.push({
          subscriber: tag.subscriber,
          state,
          attempts,
          ...(entry?.error
            ? { lastError: entry.error }
            : record
              ? { lastError: record.error }
              : {}),
          ...(state === "retrying" && entry?.availableAt ? { availableAt: entry.availableAt } : {}),
          ...(leaseUntil ? { leaseUntil } : {}),
          ...(entry
            ? { updatedAt: entry.at }
            : record?.replayedAt
              ? { updatedAt: record.replayedAt }
              : {}),
          ...timelineFields,
        });
      }
      return out.sort((a, b) => a.subscriber.localeCompare(b.subscriber));
    }, options.signal);
  }

  /**
   * What caused the event (its `causationid` chain, oldest first) and what it caused, to `depth`
   * levels: one read of the stream after the event, since an effect is stored after its cause.
   */
  async causation(
    id: string,
    options: {
      readonly depth?: number;
      readonly limit?: number;
      readonly signal?: AbortSignal;
    } = {},
  ): Promise<CausationTree | undefined> {
    const depth = options.depth ?? 10;
    const limit = options.limit ?? 1000;
    if (!Number.isInteger(depth) || depth < 0) throw queryError("depth", depth, "an integer ≥ 0");
    if (!Number.isInteger(limit) || limit < 1) throw queryError("limit", limit, "an integer ≥ 1");
    return this.#call(async (session) => {
      const view = await this.#view(session);
      if (!view) return undefined;
      const event = await this.#find(view, id, options.signal);
      if (!event) return undefined;
      const causes: StoredEvent[] = [];
      const seen = new Set([event.id]);
      for (let cause = event.causedBy; cause !== undefined && !seen.has(cause);) {
        seen.add(cause);
        const found = await this.#find(view, cause, options.signal);
        if (!found) break;
        causes.unshift(found);
        cause = found.causedBy;
      }
      const root: { event: StoredEvent; caused: CausationNode[] } = { event, caused: [] };
      let left = limit - 1;
      let truncated = false;
      const nodes = new Map<string, { node: typeof root; level: number }>([
        [event.id, { node: root, level: 0 }],
      ]);
      if (depth > 0 && left > 0) {
        for await (const message of readStream(view, {
          filter: `${this.prefix}.>`,
          from: { seq: event.seq + 1 },
          until: view.info.state.last_seq,
          ...(options.signal ? { signal: options.signal } : {}),
        })) {
          if (isReplayCopy(this.prefix, message.subject)) continue;
          const effect = toStoredEvent(message, this.prefix);
          const parent = effect.causedBy === undefined ? undefined : nodes.get(effect.causedBy);
          if (!parent || nodes.has(effect.id)) continue;
          if (parent.level >= depth || left <= 0) {
            truncated = true;
            if (left <= 0) break;
            continue;
          }
          const node = { event: effect, caused: [] as CausationNode[] };
          parent.node.caused.push(node);
          nodes.set(effect.id, { node, level: parent.level + 1 });
          left--;
        }
      }
      return { causes, root, truncated };
    }, options.signal);
  }

  /**
   * Events stored per type per bucket (headers-only read from `since`). Buckets start at
   * multiples of `bucketMs` since the epoch: the first is the one holding `since`; every bucket up
   * to `until` is listed, empty ones included: at most `MAX_COUNT_BUCKETS` of them (more reject
   * with `InspectorQueryError` naming `bucketMs`, as every inspector refuses them).
   */
  async counts(query: CountQuery & { readonly signal?: AbortSignal }): Promise<EventCounts> {
    const bucketMs = query.bucketMs ?? 60_000;
    if (!Number.isInteger(bucketMs) || bucketMs < 1)
      throw queryError("bucketMs", bucketMs, "an integer ≥ 1");
    const since = timeInputMs(query.since, "since");
    const until = query.until === undefined ? Date.now() : timeInputMs(query.until, "until");
    const types = query.types === undefined ? undefined : new Set(query.types);
    const first = Math.floor(since / bucketMs) * bucketMs;
    // Every bucket is listed, empty ones too: a window of millions would never finish building.
    checkCountBuckets(Math.max(0, Math.ceil((until - first) / bucketMs)), bucketMs);
    const buckets: { start: string; counts: Record<string, number> }[] = [];
    for (let start = first; start < until; start += bucketMs)
      buckets.push({ start: new Date(start).toISOString(), counts: {} });
    const totals: Record<string, number> = {};
    if (types?.size === 0 || buckets.length === 0) return { bucketMs, buckets, totals };
    return this.#call(async (session) => {
      const view = await this.#view(session);
      if (!view || view.info.state.messages === 0) return { bucketMs, buckets, totals };
      const filter = types?.size === 1 ? `${this.prefix}.${[...types][0]}` : `${this.prefix}.>`;
      for await (const message of readStream(view, {
        filter,
        from: { time: since },
        until: view.info.state.last_seq,
        headersOnly: true,
        ...(query.signal ? { signal: query.signal } : {}),
      })) {
        if (message.storedAt >= until) break;
        if (message.storedAt < since || isReplayCopy(this.prefix, message.subject)) continue;
        const type = message.subject.slice(this.prefix.length + 1);
        if (types && !types.has(type)) continue;
        const bucket = buckets[Math.floor((message.storedAt - first) / bucketMs)];
        if (!bucket) continue;
        bucket.counts[type] = (bucket.counts[type] ?? 0) + 1;
        totals[type] = (totals[type] ?? 0) + 1;
      }
      return { bucketMs, buckets, totals };
    }, query.signal);
  }

  /** Every daemon's latest heartbeat in `${stream}_HEARTBEATS` (written by `natsHeartbeatSink`). */
  async heartbeats(options: { readonly signal?: AbortSignal } = {}): Promise<HeartbeatInfo[]> {
    void options;
    return this.#call(async (session) => {
      const now = Date.now();
      const beats = await listNatsHeartbeats({
        connection: session.nc,
        stream: this.stream,
        prefix: this.prefix,
        requestTimeoutMs: this.#source.requestTimeoutMs,
        now,
      });
      return beats.map(({ updatedAt, startedAt, restarts, ...beat }) => ({
        ...beat,
        restarts: restarts ?? 0,
        startedAt: startedAt ?? null,
        at: updatedAt,
      }));
    }, options.signal);
  }

  /** Dead letters from the dead-letter store, newest failure first. */
  async deadLetters(
    query: DeadLetterListQuery & { readonly signal?: AbortSignal } = {},
  ): Promise<DeadLetterPage> {
    return this.#call(() => this.#source.deadLetters.list(query), query.signal);
  }

  /** One dead letter by id. */
  async deadLetter(
    id: string,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<DeadLetterInfo | undefined> {
    return this.#call(() => this.#source.deadLetters.get(id, options), options.signal);
  }

  /** Dead-letter depth and its breakdowns. */
  async deadLetterCounts(
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<DeadLetterCounts> {
    return this.#call(() => this.#source.deadLetters.counts(options), options.signal);
  }

  /** Release what the inspector holds. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#source.onClose?.();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The first message on `filter` at or after stream sequence `seq` (MSG.GET next_by_subj, NATS 2.9). */
async function nextBySubject(session: Session, stream: string, filter: string, seq: number) {
  try {
    // The typings lag the server: MSG.GET takes next_by_subj since NATS 2.9.
    const request: NextMsgRequest = { next_by_subj: filter, seq };
    return await session.jsm.streams.getMessage(stream, request as unknown as { seq: number });
  } catch {
    return null; // the age is a nicety: leave it out rather than fail the listing
  }
}

/**
 * When the lease of the consumer's latest delivery ends, from its delivery time and AckWait (a
 * lower bound: `extendLease()` restarts AckWait without the server saying so).
 */
function leaseEnd(info: ConsumerInfo): string | undefined {
  const at: unknown = info.delivered.last_active;
  const from = typeof at === "string" ? Date.parse(at) : Number.NaN;
  const ackWaitMs = (info.config.ack_wait ?? 0) / 1_000_000;
  if (!Number.isFinite(from) || ackWaitMs <= 0) return undefined;
  return new Date(from + ackWaitMs).toISOString();
}

/** Where an event at `seq` is for one consumer, from its ack floor and delivered sequence. */
async function deliveryState(
  view: StreamView,
  info: ConsumerInfo,
  seq: number,
): Promise<DeliveryInfo["state"]> {
  if (seq <= info.ack_floor.stream_seq) return "acked";
  if (seq > info.delivered.stream_seq) return "pending";
  if (info.num_ack_pending === 0) return "acked";
  // The first matching message after the ack floor is certainly unacknowledged (else the floor
  // would have moved past it); later ones may have been acked out of order.
  const filter = info.config.filter_subject;
  const first = filter
    ? await nextBySubject(view.session, view.stream, filter, info.ack_floor.stream_seq + 1)
    : null;
  if (first?.seq !== seq) return "unknown";
  return "in_flight";
}

/** The sequence of the first event message stored at or after `time`, if any up to `until`. */
async function firstSeqSince(
  view: StreamView,
  prefix: string,
  time: number,
  until: number,
): Promise<number | undefined> {
  for await (const message of readStream(view, {
    filter: `${prefix}.>`,
    from: { time },
    until,
    headersOnly: true,
  }))
    return message.seq;
  return undefined;
}

/**
 * One delivery's timeline from its journal entries and dead-letter record (see the class
 * comment): steps oldest first, the newest `limit` kept.
 */
export function timeline(
  journal: DeliveryJournal | undefined,
  record: DeadLetterInfo | undefined,
  consumer: string,
  seq: number,
  limit: number,
): { history: DeliveryStep[]; truncated: boolean } {
  const entries = journal?.entries ?? [];
  const steps: DeliveryStep[] = [];
  // Per delivered message: the last attempt whose end is noted (the original message's attempts
  // start at 1; a copy's at its first noted attempt).
  const ended = new Map<string, number>();
  for (const e of entries) {
    const where = e.consumer === undefined ? undefined : `${e.consumer}.${e.seq}`;
    if (where !== undefined) {
      const original = e.consumer === consumer && e.seq === seq;
      const last = ended.get(where) ?? (original ? 0 : e.attempts - 1);
      for (let gap = last + 1; gap < e.attempts; gap++)
        steps.push({
          at: e.at,
          kind: "lease_expired",
          attempt: gap,
          detail:
            `inferred: attempt ${gap} ended with nothing noted (its worker stopped or the ` +
            `connection closed) and the server delivered the message again after AckWait`,
        });
      ended.set(where, Math.max(last, e.attempts));
    }
    steps.push(stepOf(e));
  }
  if (record) {
    const failedAt = Date.parse(record.lastFailedAt);
    if (!entries.some((e) => e.state === "dead" && Date.parse(e.at) >= failedAt))
      steps.push({
        at: record.lastFailedAt,
        kind: "dead_lettered",
        attempt: record.attempts,
        error: record.error,
        reason: record.reason,
        detail: `from the dead-letter record (origin ${record.origin})`,
      });
    const replayedAt = record.replayedAt;
    if (
      replayedAt !== undefined &&
      !entries.some((e) => e.state === "replayed" && Date.parse(e.at) >= Date.parse(replayedAt))
    )
      steps.push({
        at: replayedAt,
        kind: "replayed",
        detail: `from the dead-letter record (${record.replays} replays)`,
      });
  }
  // Stable: entries of equal time keep the journal's order (an inferred step before its cause).
  const ordered = steps
    .map((step, i) => ({ step, i, t: Date.parse(step.at) }))
    .sort((a, b) => a.t - b.t || a.i - b.i)
    .map(({ step }) => step);
  const dropped = Math.max(0, ordered.length - limit);
  return {
    history: ordered.slice(dropped),
    truncated: dropped > 0 || (journal?.truncated ?? false),
  };
}

function stepOf(e: JournalEntry): DeliveryStep {
  const base = { at: e.at, attempt: e.attempts };
  switch (e.state) {
    case "retrying": {
      const delayMs =
        e.delayMs ??
        (e.availableAt === undefined
          ? undefined
          : Math.max(0, Date.parse(e.availableAt) - Date.parse(e.at)));
      return {
        ...base,
        kind: "retry_scheduled",
        ...(e.error ? { error: e.error } : {}),
        ...(delayMs !== undefined && Number.isFinite(delayMs) ? { delayMs } : {}),
      };
    }
    case "acked":
      return { ...base, kind: "acked" };
    case "dead":
      return {
        ...base,
        kind: "dead_lettered",
        ...(e.error ? { error: e.error } : {}),
        ...(e.reason ? { reason: e.reason } : {}),
      };
    case "lease_expired":
      return { ...base, kind: "lease_expired" };
    case "fenced":
      return { ...base, kind: "fenced", ...(e.detail ? { detail: e.detail } : {}) };
    case "replayed":
      return {
        at: e.at,
        kind: "replayed",
        detail: `dead letter handed back after ${e.attempts} attempts`,
      };
  }
}
