import {
  AckPolicy,
  DeliverPolicy,
  type ConsumerInfo,
  type JetStreamManager,
  type NextMsgRequest,
  type StreamConfig,
  type StreamInfo,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { type NatsConnection, nanos } from "@nats-io/transport-node";
import { type Envelope, assertEnvelope } from "@switchyard/event-schema";
import {
  type AuditOptions,
  type DeadLetterRecord,
  type DeadLetterSink,
  type Logger,
  type PublishResult,
  type SubscriberStats,
  type Transport,
  type TransportStats,
  type TransportSubscribeOptions,
  type TransportSubscription,
  UnknownSubscriptionError,
  abortReason,
  childLogger,
  serializeError,
  silentLogger,
  subscribeOptionsProblem,
  untilAborted,
} from "@switchyard/transport";
import { AckWaiter } from "./acks";
import { type NatsAudit, audit, ensureReceiptStream, receiptSubject } from "./audit";
import { envelopeJson, publishedBytes, replayHeaders, toMessage } from "./codec";
import { type Session, closeConnection, hasCode, isStreamNotFound, openSession } from "./jetstream";
import {
  NatsClusterUnavailableError,
  NatsOptionsError,
  NatsPayloadTooLargeError,
  NatsPublishError,
  NatsPublishUnavailableError,
  NatsStreamConfigError,
  NatsStreamNotFoundError,
  TransportClosedError,
  isApiUnavailable,
  isNoResponders,
  isPublishUnavailable,
  toNatsError,
} from "./errors";
import {
  type ConsumerTag,
  describeConsumer,
  durableName,
  isSubjectToken,
  parseConsumerTag,
  replayDurableName,
  replaySubject,
  subjectCovers,
  subjectMatches,
} from "./names";
import { type NatsTransportOptions, type ResolvedOptions, resolveOptions } from "./options";
import { NatsDeadLetterStore } from "./dead-letters";
import {
  type AttemptEntry,
  type ConsumerHandle,
  NatsSubscription,
  type PullSession,
  type SubscriptionHost,
  inboxPrefixOf,
} from "./subscription";

/** One subscriber's backlog on NATS: the contract's numbers plus JetStream's own. */
export interface NatsSubscriberStats extends SubscriberStats {
  /** Redeliveries the server has made (lease expiries and naks) over the subscriber's consumers. */
  readonly redelivered: number;
  /** The subscriber's JetStream consumers (durable names). */
  readonly consumers: readonly string[];
}

/** {@link NatsTransport.stats}. */
export interface NatsTransportStats extends TransportStats {
  readonly subscribers: readonly NatsSubscriberStats[];
  /** The stream and its message count. */
  readonly stream: { readonly name: string; readonly messages: number };
}

const ms = (n: number) => Math.round(n / 1_000_000);
/** What the server said about the stream, asked after a publish got no responders. */
type StreamProbe = { readonly subjects: readonly string[] } | "missing" | "unknown";
const isConsumerNotFound = (error: unknown) =>
  (error as { name?: unknown } | null)?.name === "ConsumerNotFoundError" || hasCode(error, 10014);

/**
 * The router's {@link Transport} on NATS JetStream, for processes on several machines.
 *
 * - **stream**: one stream (`stream`, default `SWITCHYARD`) on `${prefix}.>`; an event of type
 *   `T` is stored on `${prefix}.T` with `Nats-Msg-Id` = envelope id, so re-publishing an id
 *   within `duplicateWindowMs` is a duplicate. Headers `ce-type`, `ce-id`, `ce-source`,
 *   `traceparent` and `tracestate` let consumers in other languages route and trace without
 *   parsing the body.
 * - **fan-out / competing consumers**: every subscriber has its own durable pull consumers (one
 *   per event type, since NATS 2.9 allows one filter subject per consumer), shared by all of its
 *   processes. A new subscriber starts with events published after it was first created.
 * - **leases**: AckWait = `leaseMs`; `extendLease()` sends `working()`, which restarts the full
 *   AckWait (a longer `ms` cannot be honoured). The client tracks the lease end too: past it, the
 *   handler's signal is aborted, `extendLease` rejects with `LeaseLostError` and the outcome is
 *   discarded, because the server may already have redelivered the message (fencing).
 * - **retries**: a throw naks with the shared exponential backoff (`nak(delay)`); the attempt is
 *   the server's delivery count. After `maxAttempts`, or on `UnrecoverableError`, the dead
 *   letter is written to the sink first and only then is the message terminated (`term()`); if
 *   the sink fails, the message is nak'ed and kept. A delivery arriving for attempt
 *   `maxAttempts + 1` (every earlier lease ran out: the handler crashed its process or hung) is
 *   dead-lettered with `DeliveryAbandonedError` without running again. A hand-back on close is
 *   not an attempt: it is a copy on the subscriber's replay subject carrying the attempts made
 *   so far, stored before the original is acknowledged (a `nak`, which counts, only where the
 *   copy cannot be stored, and for ephemeral subscribers). A replay handed on because this
 *   process does not handle its type is a `nak` and counts, as NATS counts deliveries; one
 *   delivered for attempt `maxAttempts + 1` to a process that does not handle its type is
 *   dead-lettered (`unrecoverable`), so a copy no process takes does not come back forever.
 * - **batches**: NATS 2.9 has no multi-message transaction. A batch is published with bounded
 *   in-flight acks; if it fails midway ({@link NatsPublishError}) part of it may be stored, and
 *   publishing the whole batch again is safe (the stored ids are dropped as duplicates).
 * - **ordering**: per subscriber and event type, deliveries start in publish order at
 *   concurrency 1; across event types of one subscriber they are not ordered (separate consumers).
 * - **close**: every message pulled but not started, including those still on their way from the
 *   server, is handed back at once (see retries), so another process gets it without waiting for
 *   AckWait; running handlers get `drainTimeoutMs` to finish, then are aborted and handed back.
 * - **crash safety**: the stream keeps events by `"limits"` retention (an ack never removes one),
 *   and {@link NatsTransport.audit} names events a subscriber's ack floor passed unhandled (with
 *   `receipts: true`) and hands them back; see the README's "Crash safety".
 *
 * @example
 * ```ts
 * // not runnable
 * await using transport = natsTransport({ servers: ["nats://nats-1:4222", "nats://nats-2:4222"], user: "app", pass: process.env.NATS_PASS });
 * await transport.subscribe({ subscriber: "evaluator", types: ["TRAINING_COMPLETED"], handler: async (d) => evaluate(d.envelope) });
 * ```
 */
export class NatsTransport implements Transport, AsyncDisposable {
  readonly name = "nats";
  /** The stream holding the events. */
  readonly stream: string;
  /** The subject prefix (`${prefix}.${type}`). */
  readonly prefix: string;
  /** Dead letters of subscriptions without a sink, when the transport has none either (this process only). */
  readonly deadLetters: DeadLetterRecord[] = [];
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #subscriptions = new Set<NatsSubscription>();
  readonly #deadLettered = new Map<string, number>();
  readonly #host: SubscriptionHost;
  #session: Promise<Session> | undefined;
  #closing: Promise<void> | undefined;
  /** Aborted by `close()`: a connect still under way stops waiting (and its late connection is closed). */
  readonly #stop = new AbortController();
  #stopWatching: () => void = () => {};
  /** Publishes under way, which `close()` lets finish. */
  readonly #publishing = new Set<Promise<PublishResult>>();
  #publishRetries = 0;
  /** Publishes waiting for the stream's ack (created with the session). */
  #acks: AckWaiter | undefined;
  /** Event types already checked by `#checkType`, and their subjects (at most {@link MEMO_TYPES}). */
  readonly #checkedTypes = new Set<string>();
  readonly #subjects = new Map<string, string>();
  /** The stream-info request of {@link NatsTransport.#probeStream} under way, if any. */
  #streamProbe: Promise<StreamProbe> | undefined;

  constructor(options: NatsTransportOptions = {}) {
    this.#options = resolveOptions(options);
    this.stream = this.#options.stream;
    this.prefix = this.#options.prefix;
    this.#logger = childLogger(this.#options.logger ?? silentLogger, {
      transport: "nats",
      stream: this.stream,
    });
    this.#host = {
      name: this.name,
      stream: this.stream,
      prefix: this.prefix,
      logger: this.#logger,
      drainTimeoutMs: this.#options.drainTimeoutMs,
      pullExpiresMs: this.#options.pullExpiresMs,
      receiptSubject: (subscriber) =>
        this.#options.receipts ? receiptSubject(this.prefix, subscriber) : undefined,
      deadLetter: (record, sink) => this.#deadLetter(record, sink),
      journal:
        this.#options.deadLetter instanceof NatsDeadLetterStore
          ? (entry) => this.#journal(this.#options.deadLetter as NatsDeadLetterStore, entry)
          : undefined,
      recreate: async (handle) => this.#recreate(handle),
      remove: async (handles) => this.#remove(handles),
      forget: (subscription) => void this.#subscriptions.delete(subscription),
    };
  }

  /**
   * Connect (once), check JetStream and create or update the stream. Every other method calls it;
   * call it yourself to fail fast at startup. Rejects with `NatsConnectionError`,
   * `NatsAuthError`, `JetStreamUnavailableError` or `NatsStreamConfigError`; a later call tries again.
   */
  ready(): Promise<void> {
    return this.#ready().then(() => {});
  }

  #ready(): Promise<Session> {
    if (this.#closing)
      return Promise.reject(new TransportClosedError(`NATS transport on stream ${this.stream}`));
    this.#session ??= this.#open().catch((error: unknown) => {
      this.#session = undefined;
      throw error;
    });
    return this.#session;
  }

  async #open(): Promise<Session> {
    const session = await openSession(
      this.#options,
      ({ jsm }) => this.#ensureStream(jsm),
      this.#stop.signal,
    );
    this.#watch(session.nc);
    return session;
  }

  #watch(nc: NatsConnection): void {
    const statuses = nc.status();
    this.#stopWatching = () => (statuses as { stop?: () => void }).stop?.();
    void (async () => {
      for await (const status of statuses) {
        switch (status.type) {
          case "disconnect":
            this.#logger.warn({ server: status.server }, "disconnected from NATS; reconnecting");
            break;
          case "reconnect":
            this.#logger.info({ server: status.server }, "reconnected to NATS");
            for (const subscription of this.#subscriptions) subscription.reconnected();
            break;
          case "error":
            this.#logger.warn({ err: status.error }, "NATS connection error");
            break;
          case "reconnecting":
          case "update":
          case "ldm":
          case "ping":
          case "staleConnection":
          case "slowConsumer":
          case "forceReconnect":
          case "close":
            break;
        }
      }
    })().catch(() => {});
    void nc.closed().then((error) => {
      if (!this.#closing)
        this.#logger.error(
          { err: error },
          "the NATS connection closed while the transport was open; create a new transport",
        );
    });
  }

  async #ensureStream(jsm: JetStreamManager): Promise<void> {
    const o = this.#options;
    const subject = `${o.prefix}.>`;
    const retention =
      o.retention === "interest" ? RetentionPolicy.Interest : RetentionPolicy.Limits;
    const storage = o.storage === "file" ? StorageType.File : StorageType.Memory;
    const wanted = {
      duplicate_window: nanos(o.duplicateWindowMs),
      num_replicas: o.replicas,
      max_age: nanos(o.maxAgeMs),
    };
    for (let round = 0; round < 3; round++) {
      let info: StreamInfo | undefined;
      try {
        info = await this.#api(`check stream ${o.stream}`, () => jsm.streams.info(o.stream));
      } catch (error) {
        if (!isStreamNotFound(error)) throw error;
      }
      if (!info) {
        try {
          await this.#api(`create stream ${o.stream}`, () =>
            jsm.streams.add({
              name: o.stream,
              subjects: [subject],
              retention,
              storage,
              ...wanted,
              description: "Switchyard events (@switchyard/transport-nats)",
            } as Partial<StreamConfig> as StreamConfig),
          );
          this.#logger.info({ subjects: [subject] }, `created stream ${o.stream}`);
          return;
        } catch (error) {
          if (hasCode(error, 10058)) continue; // created concurrently by another process
          if (hasCode(error, 10065))
            throw new NatsStreamConfigError(
              o.stream,
              `its subjects "${subject}" overlap the subjects of another stream`,
              { cause: error },
            );
          throw toNatsError(error, { servers: o.servers, phase: "request" });
        }
      }
      const config = info.config;
      if (config.retention !== retention && !o.explicit.has("retention"))
        this.#logger.warn(
          { retention: config.retention },
          `stream ${o.stream} keeps its retention "${config.retention}" (it cannot change); with it, a ` +
            `server crash can remove events a subscriber never handled: use a stream with retention ` +
            `"limits" (see the README's "Crash safety")`,
        );
      else if (config.retention !== retention)
        throw new NatsStreamConfigError(
          o.stream,
          `it exists with retention "${config.retention}" but this transport is configured for ` +
            `"${o.retention}" (retention cannot be changed); pass { retention: "${config.retention}" } to use it as it is`,
        );
      if (config.storage !== storage)
        throw new NatsStreamConfigError(
          o.stream,
          `it exists with storage "${config.storage}" but this transport is configured for "${o.storage}"; ` +
            `pass { storage: "${config.storage}" } to use it as it is`,
        );
      const subjects = config.subjects ?? [];
      const covered = subjects.some((s) => subjectCovers(s, o.prefix));
      const current = {
        duplicate_window: config.duplicate_window,
        num_replicas: config.num_replicas,
        max_age: config.max_age,
      };
      const changes: Partial<typeof wanted> = {};
      const keys = {
        duplicateWindowMs: "duplicate_window",
        replicas: "num_replicas",
        maxAgeMs: "max_age",
      } as const;
      for (const [option, field] of Object.entries(keys) as [
        keyof typeof keys,
        keyof typeof wanted,
      ][]) {
        if (current[field] === wanted[field]) continue;
        if (o.explicit.has(option)) changes[field] = wanted[field];
        else
          this.#logger.info(
            { [field]: current[field] },
            `stream ${o.stream} keeps its ${field} (${option} not given)`,
          );
      }
      if (covered && Object.keys(changes).length === 0) return;
      const update = {
        ...config,
        subjects: covered ? subjects : [...subjects, subject],
        ...changes,
      };
      try {
        await this.#api(`update stream ${o.stream}`, () => jsm.streams.update(o.stream, update));
        this.#logger.warn(
          { subjects: update.subjects, ...changes },
          `updated stream ${o.stream} to this transport's configuration`,
        );
        return;
      } catch (error) {
        if (error instanceof NatsClusterUnavailableError) throw error;
        throw new NatsStreamConfigError(
          o.stream,
          `updating it failed (${(error as Error).message})`,
          { cause: error },
        );
      }
    }
    throw new NatsStreamConfigError(o.stream, "it kept changing while being set up");
  }

  /**
   * A JetStream API request, asked again while the cluster cannot answer it yet (no answer in
   * time, temporarily unavailable, not the leader: a meta or stream leader election after a node
   * loss) for up to `publishDeadlineMs`; then {@link NatsClusterUnavailableError}. Creating a
   * stream or consumer that already exists with the same settings succeeds, so asking again is
   * safe even when a timed-out request was carried out.
   */
  async #api<T>(operation: string, request: () => Promise<T>): Promise<T> {
    const { publishDeadlineMs, servers } = this.#options;
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await request();
      } catch (error) {
        if (!isApiUnavailable(error)) throw error;
        const waitedMs = Date.now() - started;
        if (this.#closing || waitedMs + 100 > publishDeadlineMs)
          throw new NatsClusterUnavailableError(servers, operation, waitedMs, { cause: error });
        if (attempt === 1)
          this.#logger.warn(
            { operation, err: error, publishDeadlineMs },
            "JetStream could not answer (leader election or no quorum); asking again",
          );
        await pauseUnlessAborted(
          Math.min(100 * 2 ** Math.min(attempt - 1, 4), 1_000, publishDeadlineMs - waitedMs),
          undefined,
        );
      }
    }
  }

  #assertOpen(): void {
    if (this.#closing) throw new TransportClosedError(`NATS transport on stream ${this.stream}`);
  }

  /** The subject an event type is stored on. */
  subjectOf(type: string): string {
    let subject = this.#subjects.get(type);
    if (subject === undefined) {
      subject = `${this.prefix}.${type}`;
      // Checked types only (a bounded set: the types this process publishes or subscribes to).
      if (this.#checkedTypes.has(type)) this.#subjects.set(type, subject);
    }
    return subject;
  }

  #replaySubject(subscriber: string, type: string): string {
    return replaySubject(this.prefix, subscriber, type);
  }

  /**
   * Store envelopes, idempotent by `id` (`Nats-Msg-Id`; a repeat within `duplicateWindowMs` is
   * counted as a duplicate). Resolves once every envelope is acknowledged by the stream. While no
   * stream leader takes an envelope (an election, a reconnect, a cluster without quorum) it is
   * retried with the same id for up to `publishDeadlineMs`; past that the call rejects with
   * {@link NatsPublishUnavailableError} (`retryable: true`). When nobody answers the subject, the
   * server is asked once (bounded by a quarter of `requestTimeoutMs`, at least 1 s) whether the
   * stream exists: if it says "stream not found" (deleted while the transport ran), the call
   * rejects at once with {@link NatsStreamNotFoundError}; if it exists but none of its subjects
   * covers the envelope's (they were edited), with {@link NatsStreamConfigError} naming them and
   * the subject; if it does not answer (an election, an R1 stream whose node is down), the
   * retrying goes on. A batch is not atomic on NATS 2.9:
   * on failure it rejects with {@link NatsPublishError} and part of it may be stored; retrying the
   * same batch is safe. `signal` aborts the waiting and retrying (what was stored stays stored).
   * A publish under way when `close()` is called finishes first (bounded by `publishDeadlineMs`);
   * one still waiting for the connection then, or called after `close()`, rejects with
   * `TransportClosedError` having sent nothing.
   */
  publish(
    envelopes: readonly Envelope[],
    options: { signal?: AbortSignal } = {},
  ): Promise<PublishResult> {
    const publishing = this.#publish(envelopes, options);
    // close() lets it finish before it closes the connection (its acks come back on it).
    this.#publishing.add(publishing);
    void publishing.catch(() => {}).finally(() => this.#publishing.delete(publishing));
    return publishing;
  }

  async #publish(
    envelopes: readonly Envelope[],
    options: { signal?: AbortSignal },
  ): Promise<PublishResult> {
    this.#assertOpen();
    const { signal } = options;
    if (signal?.aborted) throw abortReason(signal);
    if (envelopes.length === 0) return { published: 0, duplicates: 0 };
    // Nothing that is not an envelope goes out: it could only fail later, at every consumer.
    for (const envelope of envelopes) {
      assertEnvelope(envelope);
      this.#checkType(envelope.type);
    }
    // Connecting can take up to the connect timeout (a server that accepts and never answers).
    const { nc } = await untilAborted(this.#ready(), signal);
    const acks = (this.#acks ??= new AckWaiter(nc, inboxPrefixOf(nc)));
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    // Checked and sized up front; each message is built only when it is sent (a large batch
    // would otherwise hold every encoded message and its headers until the last ack).
    // The limit counts headers too: a body just under it is still refused by the client.
    const encoded = envelopes.map((envelope) => {
      const json = envelopeJson(envelope);
      const size = publishedBytes(envelope, Buffer.byteLength(json, "utf8"));
      if (size > maxPayload)
        throw new NatsPayloadTooLargeError(envelope.id, envelope.type, size, maxPayload);
      return json;
    });
    if (envelopes.length === 1) {
      // One envelope (the awaited-one-by-one case): no worker pool around one request.
      try {
        return (await this.#publishOne(acks, envelopes[0]!, encoded[0]!, signal)) === "duplicate"
          ? { published: 0, duplicates: 1 }
          : { published: 1, duplicates: 0 };
      } catch (error) {
        throw this.#publishFailure(error, 0, 1, signal);
      }
    }
    let published = 0;
    let duplicates = 0;
    let failure: unknown;
    let next = 0;
    const worker = async () => {
      while (failure === undefined && next < envelopes.length) {
        if (signal?.aborted) {
          failure = abortReason(signal);
          return;
        }
        const index = next++;
        const envelope = envelopes[index]!;
        try {
          if ((await this.#publishOne(acks, envelope, encoded[index]!, signal)) === "duplicate")
            duplicates++;
          else published++;
        } catch (error) {
          failure ??= error;
        }
      }
    };
    const workers = Math.min(this.#options.publishConcurrency, envelopes.length);
    await Promise.all(Array.from({ length: workers }, worker));
    if (failure !== undefined)
      throw this.#publishFailure(failure, published + duplicates, envelopes.length, signal);
    return { published, duplicates };
  }

  /** The error a failed `publish()` rejects with, `stored` of `total` envelopes being stored. */
  #publishFailure(
    failure: unknown,
    stored: number,
    total: number,
    signal: AbortSignal | undefined,
  ): unknown {
    if (signal?.aborted) return abortReason(signal);
    // Waiting does not fix these: they say what is wrong with the stream.
    if (failure instanceof NatsStreamNotFoundError || failure instanceof NatsStreamConfigError)
      return failure;
    if (failure instanceof Unavailable)
      return new NatsPublishUnavailableError(this.stream, stored, total, failure.waitedMs, {
        cause: failure.cause,
      });
    return new NatsPublishError(stored, total, {
      cause: toNatsError(failure, { servers: this.#options.servers, phase: "request" }),
    });
  }

  /**
   * Publish one envelope, retrying with the same `Nats-Msg-Id` while no stream leader takes it
   * (`isPublishUnavailable`: no ack in time, no responders, cluster unavailable) until
   * `publishDeadlineMs` is spent: during a leader election the subject has no responder for
   * seconds, and right after a restart the first request can vanish; the stream's dedup makes a
   * repeat harmless. Rejects with {@link Unavailable} once the deadline is spent.
   */
  async #publishOne(
    acks: AckWaiter,
    envelope: Envelope,
    json: string,
    signal: AbortSignal | undefined,
  ): Promise<"published" | "duplicate"> {
    const { data, headers } = toMessage(envelope, json);
    headers.set("Nats-Msg-Id", envelope.id);
    const { publishDeadlineMs, requestTimeoutMs } = this.#options;
    const started = Date.now();
    const deadline = started + publishDeadlineMs;
    const perAttempt =
      publishDeadlineMs === 0
        ? requestTimeoutMs
        : Math.max(1_000, Math.floor(requestTimeoutMs / 4));
    // Only an attempt that may have been stored (no answer) makes a later "duplicate" ack ours.
    let maybeStored = false;
    // Whether the server was asked if the stream exists (once, on the first no responders).
    let probed = false;
    for (let attempt = 1; ; attempt++) {
      // Aborted while pausing between attempts: send nothing more.
      if (signal?.aborted) throw abortReason(signal);
      const remaining = deadline - Date.now();
      try {
        const ack = await untilAborted(
          acks.publish(
            this.subjectOf(envelope.type),
            data,
            headers,
            publishDeadlineMs === 0 ? perAttempt : Math.max(1, Math.min(perAttempt, remaining)),
          ),
          signal,
        );
        return ack.duplicate && !maybeStored ? "duplicate" : "published";
      } catch (error) {
        if (signal?.aborted || !isPublishUnavailable(error)) throw error;
        if ((error as { name?: unknown }).name === "TimeoutError") maybeStored = true;
        if (!probed && isNoResponders(error)) {
          // Nobody answers the subject: a leader election, or a stream that is gone. Only the
          // server tells them apart; a gone stream does not come back by waiting.
          probed = true;
          const stream = await untilAborted(this.#probeStream(perAttempt), signal);
          if (stream === "missing")
            throw new NatsStreamNotFoundError(this.stream, this.#options.servers, undefined, {
              operation: "publish",
              cause: error,
            });
          // It exists, but someone edited its subjects so that none stores this one.
          const subject = this.subjectOf(envelope.type);
          if (
            typeof stream === "object" &&
            !stream.subjects.some((s) => subjectMatches(s, subject))
          )
            throw new NatsStreamConfigError(this.stream, `none of its subjects covers it`, {
              cause: error,
              uncovered: { subjects: stream.subjects, subject },
            });
          this.#logger.debug(
            { id: envelope.id, stream: stream === "unknown" ? stream : "exists" },
            stream !== "unknown"
              ? `no responders for an event, but stream ${this.stream} exists: waiting for its leader`
              : `no responders for an event, and stream ${this.stream} did not say whether it exists (no leader to answer): retrying`,
          );
        }
        const waitedMs = Date.now() - started;
        if (this.#closing || deadline - Date.now() < 100) throw new Unavailable(waitedMs, error);
        if (attempt === 1)
          this.#logger.warn(
            { id: envelope.id, err: error, publishDeadlineMs },
            "no stream leader took an event (election, reconnect or no quorum); retrying it",
          );
        this.#publishRetries++;
        await pauseUnlessAborted(
          Math.min(50 * 2 ** Math.min(attempt - 1, 5), 1_000, deadline - Date.now()),
          signal,
        );
      }
    }
  }

  /**
   * Ask the server whether the stream exists, for a publish that got no responders: its current
   * `subjects` when it answers; `"missing"` only when it answers "stream not found"; `"unknown"`
   * when the request fails or takes longer than `timeoutMs` (the meta or stream leader is being
   * elected, an R1 stream's node is down). Publishes that ask at the same time share one request.
   */
  #probeStream(timeoutMs: number): Promise<StreamProbe> {
    this.#streamProbe ??= (async (): Promise<StreamProbe> => {
      try {
        const session = await this.#session;
        if (!session) return "unknown";
        const info = await untilAborted(
          session.jsm.streams.info(this.stream),
          AbortSignal.timeout(timeoutMs),
        );
        return { subjects: info.config.subjects ?? [] };
      } catch (error) {
        return isStreamNotFound(error) ? ("missing" as const) : ("unknown" as const);
      } finally {
        this.#streamProbe = undefined;
      }
    })();
    return this.#streamProbe;
  }

  /**
   * Publish attempts this transport repeated because no stream leader took them (elections,
   * reconnects), over its lifetime. For tests and metrics.
   */
  get publishRetries(): number {
    return this.#publishRetries;
  }

  #checkType(type: string): void {
    if (this.#checkedTypes.has(type)) return;
    if (typeof type !== "string" || !isSubjectToken(type) || type.startsWith("__"))
      throw new NatsOptionsError(
        "envelope.type",
        type,
        "an event type without '.', '*', '>' or whitespace, not starting with '__' (it becomes one subject token)",
      );
    // Remembered so the next publish of the type skips the check (bounded, for endless types).
    if (this.#checkedTypes.size < MEMO_TYPES) this.#checkedTypes.add(type);
  }

  /**
   * Create (or reuse) the subscriber's consumers and start pulling. Resolves once they exist on
   * the server, so events published afterwards reach this subscriber.
   */
  async subscribe(options: TransportSubscribeOptions): Promise<TransportSubscription> {
    this.#assertOpen();
    // The contract's rule (a lease of at least 10 ms here), thrown as this transport's own error.
    const problem = subscribeOptionsProblem(options, { minLeaseMs: 10 });
    if (problem) throw new NatsOptionsError(problem.option, problem.value, problem.expected);
    const { subscriber } = options;
    const types: readonly string[] = options.types;
    for (const type of types) this.#checkType(type);
    const leaseMs = options.leaseMs ?? 30_000;
    const { nc, js } = await this.#ready();
    const ephemeral = options.ephemeral ?? false;
    const specs: ConsumerSpec[] = [...new Set(types)].map((type) => ({
      name: durableName(this.prefix, subscriber, type),
      filter: this.subjectOf(type),
      kind: "type",
      tag: { subscriber, type, ephemeral, prefix: this.prefix },
      leaseMs,
    }));
    if (!ephemeral)
      specs.push({
        name: replayDurableName(this.prefix, subscriber),
        filter: replaySubject(this.prefix, subscriber, "*"),
        kind: "replay",
        tag: { subscriber, type: null, ephemeral, prefix: this.prefix },
        leaseMs,
      });
    if (this.#options.receipts && !ephemeral) {
      this.#receiptStream ??= ensureReceiptStream(await this.#jsm(), this.#options).catch(
        (error: unknown) => {
          this.#receiptStream = undefined;
          throw toNatsError(error, { servers: this.#options.servers, phase: "request" });
        },
      );
      await this.#receiptStream;
    }
    const store = this.#options.deadLetter;
    if (store instanceof NatsDeadLetterStore) {
      // Its streams (dead letters, attempt journal) exist before the first delivery is noted.
      this.#storeReady ??= store.ready().catch((error: unknown) => {
        this.#storeReady = undefined;
        this.#logger.warn(
          { err: error },
          "the dead-letter store could not set up its streams; the next dead letter tries again",
        );
      });
      await this.#storeReady;
    }
    const handles = await Promise.all(specs.map((spec) => this.#ensureConsumer(spec)));
    this.#assertOpen();
    const session: PullSession = { nc, apiPrefix: js.apiPrefix };
    const subscription = new NatsSubscription(
      this.#host,
      session,
      options,
      childLogger(this.#logger, { subscriber }),
    );
    this.#subscriptions.add(subscription);
    subscription.start(handles);
    return subscription;
  }

  /**
   * Register `subscriber` for `types` without consuming: its durable consumers (one per type, and
   * its replay consumer) are created now, so every matching event published from now on is kept
   * for it until a subscription with that name takes it. Idempotent: existing consumers are left
   * as they are. The lease (AckWait) starts at 30 s; the first `subscribe` with another `leaseMs`
   * changes it.
   */
  async register(subscriber: string, eventTypes: readonly string[]): Promise<void> {
    this.#assertOpen();
    const types: readonly string[] = eventTypes;
    if (typeof subscriber !== "string" || subscriber.length === 0)
      throw new NatsOptionsError("subscriber", subscriber, "a non-empty name");
    if (!Array.isArray(eventTypes) || types.length === 0)
      throw new NatsOptionsError("types", types, "one or more event types");
    for (const type of types) this.#checkType(type);
    const leaseMs = 30_000;
    const tag = (type: string | null) => ({
      subscriber,
      type,
      ephemeral: false,
      prefix: this.prefix,
    });
    await Promise.all([
      ...[...new Set(types)].map((type) =>
        this.#ensureConsumer({
          name: durableName(this.prefix, subscriber, type),
          filter: this.subjectOf(type),
          kind: "type",
          tag: tag(type),
          leaseMs,
          keepExisting: true,
        }),
      ),
      this.#ensureConsumer({
        name: replayDurableName(this.prefix, subscriber),
        filter: replaySubject(this.prefix, subscriber, "*"),
        kind: "replay",
        tag: tag(null),
        leaseMs,
        keepExisting: true,
      }),
    ]);
  }

  /**
   * Whether any subscriber (durable, or a live ephemeral one) has a consumer for `type` on this
   * transport's stream and prefix: false means an event of that type published now is kept for
   * nobody. Lists the stream's consumers (one request per 256).
   */
  async hasSubscribers(type: string): Promise<boolean> {
    this.#assertOpen();
    return (await this.#consumers()).some((c) => c.tag.type === type);
  }

  #receiptStream: Promise<void> | undefined;
  #storeReady: Promise<void> | undefined;

  async #jsm(): Promise<JetStreamManager> {
    return (await this.#ready()).jsm;
  }

  /**
   * Compare what the stream holds with what each durable subscriber acknowledged, and report
   * events no subscriber will ever get. For every consumer of this transport's subscribers (one
   * per subscriber and event type): its ack floor and pending counts, whether it lies past the
   * stream's end (`aheadOfStream`: the stream lost its tail in a crash, and new events up to that
   * sequence will be skipped), the range removed from the stream above its ack floor
   * (`removedBeforeAck`, informational), and — when the transport writes receipts
   * (`receipts: true`) — every event at or below the ack floor without a receipt (`unhandled`):
   * the server considers it acknowledged, yet no process of the subscriber handled it. With
   * `repair: true` those are handed back to their subscriber (`requeue`, same id).
   *
   * It needs the events still in the stream: use retention `"limits"` (under `"interest"` an event
   * is removed once every ack floor passed it, and then nothing can name it). See the README's
   * "Crash safety" for what it can and cannot detect. The same audit is the NATS driver's
   * `admin().audit` (what `switchyard audit` calls).
   *
   * @example
   * ```ts
   * // not runnable
   * const report = await transport.audit({ repair: true });
   * if (report.gaps > 0) logger.error({ report }, "events were skipped; handed back");
   * ```
   */
  async audit(options: AuditOptions = {}): Promise<NatsAudit> {
    this.#assertOpen();
    const { nc, js, jsm } = await this.#ready();
    try {
      return await audit(
        {
          nc,
          js,
          jsm,
          stream: this.stream,
          prefix: this.prefix,
          requeue: (subscriber, envelope) => this.requeue(subscriber, envelope),
        },
        options,
      );
    } catch (error) {
      throw toNatsError(error, { servers: this.#options.servers, phase: "request" });
    }
  }

  readonly #specs = new Map<string, ConsumerSpec>();

  async #ensureConsumer(spec: ConsumerSpec, existed = false): Promise<ConsumerHandle> {
    const { jsm } = await this.#ready();
    this.#specs.set(spec.name, spec);
    const ackWait = nanos(spec.leaseMs);
    let info;
    try {
      info = await this.#api(`check consumer ${spec.name}`, () =>
        jsm.consumers.info(this.stream, spec.name),
      );
    } catch (error) {
      if (!isConsumerNotFound(error))
        throw toNatsError(error, { servers: this.#options.servers, phase: "request" });
    }
    try {
      if (!info) {
        if (existed)
          this.#logger.warn(
            { consumer: spec.name },
            `consumer ${spec.name} vanished; re-created it (events published meanwhile are not in it)`,
          );
        info = await this.#api(`create consumer ${spec.name}`, () =>
          jsm.consumers.add(this.stream, {
            durable_name: spec.name,
            description: describeConsumer(spec.tag),
            ack_policy: AckPolicy.Explicit,
            ack_wait: ackWait,
            deliver_policy: DeliverPolicy.New,
            filter_subject: spec.filter,
            max_deliver: -1,
            max_ack_pending: this.#options.maxAckPending,
            ...(spec.tag.ephemeral
              ? { inactive_threshold: nanos(this.#options.ephemeralInactiveMs) }
              : {}),
          }),
        );
      } else if (spec.keepExisting) {
        // register(): the consumer is there; whoever subscribes sets its lease.
      } else if (
        (info.config.ack_wait ?? 0) !== ackWait ||
        info.config.max_ack_pending !== this.#options.maxAckPending
      ) {
        if ((info.config.ack_wait ?? 0) !== ackWait)
          this.#logger.warn(
            { consumer: spec.name, fromMs: ms(info.config.ack_wait ?? 0), toMs: spec.leaseMs },
            `changing the lease (AckWait) of consumer ${spec.name}; give every process of subscriber ` +
              `"${spec.tag.subscriber}" the same leaseMs`,
          );
        info = await this.#api(`update consumer ${spec.name}`, () =>
          jsm.consumers.update(this.stream, spec.name, {
            ack_wait: ackWait,
            max_ack_pending: this.#options.maxAckPending,
          }),
        );
      }
      return {
        name: spec.name,
        ackWaitMs: ms(info.config.ack_wait ?? ackWait),
        kind: spec.kind,
      };
    } catch (error) {
      throw toNatsError(error, { servers: this.#options.servers, phase: "request" });
    }
  }

  async #recreate(handle: ConsumerHandle): Promise<ConsumerHandle> {
    const spec = this.#specs.get(handle.name);
    return spec ? this.#ensureConsumer(spec, true) : handle;
  }

  async #remove(handles: readonly ConsumerHandle[]): Promise<void> {
    if (!this.#session) return;
    const { jsm } = await this.#session;
    await Promise.all(
      handles.map(async (h) => {
        // nats-server 2.9 can fail a delete racing its own state write: try a few times.
        for (let attempt = 1; ; attempt++) {
          try {
            await jsm.consumers.delete(this.stream, h.name);
            return;
          } catch (error) {
            if (isConsumerNotFound(error)) return;
            if (attempt >= 3) throw error;
            await new Promise((r) => setTimeout(r, 50 * attempt));
          }
        }
      }),
    );
  }

  /**
   * Note a delivery off the happy path in the dead-letter store's attempt journal (core publish,
   * fire-and-forget: the journal informs the inspector and never holds up an outcome).
   */
  #journal(store: NatsDeadLetterStore, entry: AttemptEntry): void {
    const now = Date.now();
    const json = JSON.stringify({
      subscriber: entry.subscriber,
      eventId: entry.eventId,
      state: entry.state,
      attempts: entry.attempts,
      ...(entry.error !== undefined ? { error: serializeError(entry.error) } : {}),
      ...(entry.delayMs !== undefined
        ? { delayMs: entry.delayMs, availableAt: new Date(now + entry.delayMs).toISOString() }
        : {}),
      ...(entry.reason !== undefined ? { reason: entry.reason } : {}),
      ...(entry.detail !== undefined ? { detail: entry.detail } : {}),
      at: new Date(now).toISOString(),
    });
    const subject = store.attemptSubject(
      entry.subscriber,
      entry.eventId,
      entry.consumer,
      entry.seq,
    );
    void this.#session?.then((s) => s.nc.publish(subject, json)).catch(() => {});
  }

  async #deadLetter(record: DeadLetterRecord, sink: DeadLetterSink | undefined): Promise<void> {
    const target = sink ?? this.#options.deadLetter;
    if (target) await target.deadLetter(record);
    else {
      this.deadLetters.push(record);
      this.#logger.error(
        { record },
        `dead letter for subscriber "${record.subscriber}" kept in memory only: pass { deadLetter } ` +
          `(e.g. the @switchyard/dlq store) to keep dead letters across restarts`,
      );
    }
    this.#deadLettered.set(record.subscriber, (this.#deadLettered.get(record.subscriber) ?? 0) + 1);
  }

  /**
   * Deliver an envelope again to one subscriber only (dead-letter replay), keeping its id: it is
   * published on the subscriber's replay subject without `Nats-Msg-Id`, so publish dedup does not
   * drop it. Rejects with `UnknownSubscriptionError` when the subscriber has no consumer for the
   * envelope's type (or is ephemeral), and with `NatsPayloadTooLargeError` when the copy — the
   * envelope with its `switchyard-replay` header — is over the server's `max_payload` (an envelope
   * published right at the limit can be), before anything is sent; with `NatsStreamNotFoundError`
   * when the stream was deleted while the transport ran.
   */
  async requeue(subscriber: string, envelope: Envelope): Promise<void> {
    this.#assertOpen();
    this.#checkType(envelope.type);
    const json = envelopeJson(envelope);
    const { nc, js, jsm } = await this.#ready();
    // The copy carries the replay header instead of Nats-Msg-Id: an envelope published at the
    // limit can be over it as a copy. Refused before anything is created or sent.
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    const size = publishedBytes(envelope, Buffer.byteLength(json, "utf8"), { subscriber });
    if (size > maxPayload)
      throw new NatsPayloadTooLargeError(envelope.id, envelope.type, size, maxPayload);
    let info;
    try {
      info = await jsm.consumers.info(
        this.stream,
        durableName(this.prefix, subscriber, envelope.type),
      );
    } catch (error) {
      // Deleted while the transport ran: say so, as publish() does, not nats.js's bare message.
      if (isStreamNotFound(error))
        throw new NatsStreamNotFoundError(this.stream, this.#options.servers, undefined, {
          operation: "requeue",
          cause: error,
        });
      if (!isConsumerNotFound(error))
        throw toNatsError(error, { servers: this.#options.servers, phase: "request" });
    }
    const tag = parseConsumerTag(info?.config.description);
    if (!info || !tag || tag.ephemeral) {
      const known = (await this.#consumers()).filter((c) => !c.tag.ephemeral);
      throw new UnknownSubscriptionError(subscriber, envelope.type, [
        ...new Set(known.map((c) => c.tag.subscriber)),
      ]);
    }
    await this.#ensureConsumer({
      name: replayDurableName(this.prefix, subscriber),
      filter: replaySubject(this.prefix, subscriber, "*"),
      kind: "replay",
      tag: { subscriber, type: null, ephemeral: false, prefix: this.prefix },
      leaseMs: ms(info.config.ack_wait ?? nanos(30_000)),
    });
    const { data, headers } = toMessage(envelope, json);
    for (const [name, value] of replayHeaders({ subscriber })) headers.set(name, value);
    try {
      await js.publish(this.#replaySubject(subscriber, envelope.type), data, {
        headers,
        timeout: this.#options.requestTimeoutMs,
      });
    } catch (error) {
      throw new NatsPublishError(0, 1, {
        cause: toNatsError(error, { servers: this.#options.servers, phase: "request" }),
      });
    }
  }

  async #consumers() {
    const { jsm } = await this.#ready();
    const found: { info: ConsumerInfo; tag: ConsumerTag }[] = [];
    for await (const info of jsm.consumers.list(this.stream)) {
      const tag = parseConsumerTag(info.config.description);
      if (tag && (tag.prefix === undefined || tag.prefix === this.prefix))
        found.push({ info, tag });
    }
    return found;
  }

  /**
   * Backlog per subscriber, read from the server (so it covers every process): `pending` = the
   * consumers' `num_pending` (not yet delivered), `inFlight` = `num_ack_pending` (delivered and not
   * yet acknowledged, including deliveries waiting for a nak'ed retry), `lag` = both.
   * `deadLettered` counts this process's dead letters only.
   */
  async stats(): Promise<NatsTransportStats> {
    this.#assertOpen();
    const { jsm } = await this.#ready();
    const streamInfo = await jsm.streams.info(this.stream);
    const bySubscriber = new Map<
      string,
      {
        pending: number;
        inFlight: number;
        redelivered: number;
        oldest: number | undefined;
        consumers: string[];
      }
    >();
    const now = Date.now();
    for (const { info, tag } of await this.#consumers()) {
      const entry = bySubscriber.get(tag.subscriber) ?? {
        pending: 0,
        inFlight: 0,
        redelivered: 0,
        oldest: undefined,
        consumers: [],
      };
      entry.pending += info.num_pending;
      entry.inFlight += info.num_ack_pending;
      entry.redelivered += info.num_redelivered;
      entry.consumers.push(info.name);
      if (info.num_pending > 0 && info.config.filter_subject) {
        try {
          // The typings lag the server: MSG.GET takes next_by_subj since NATS 2.9.
          const request: NextMsgRequest = {
            next_by_subj: info.config.filter_subject,
            seq: info.delivered.stream_seq + 1,
          };
          const next = await jsm.streams.getMessage(
            this.stream,
            request as unknown as { seq: number },
          );
          if (next) {
            const age = now - next.time.getTime();
            entry.oldest = Math.max(entry.oldest ?? 0, age);
          }
        } catch {
          // the age is a nicety: leave it out rather than fail stats
        }
      }
      bySubscriber.set(tag.subscriber, entry);
    }
    const subscribers: NatsSubscriberStats[] = [...bySubscriber.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([subscriber, e]) => ({
        subscriber,
        pending: e.pending,
        inFlight: e.inFlight,
        lag: e.pending + e.inFlight,
        deadLettered: this.#deadLettered.get(subscriber) ?? 0,
        ...(e.oldest !== undefined ? { oldestPendingMs: Math.max(0, e.oldest) } : {}),
        redelivered: e.redelivered,
        consumers: e.consumers.sort(),
      }));
    return {
      transport: this.name,
      subscribers,
      stream: { name: this.stream, messages: streamInfo.state.messages },
    };
  }

  /**
   * Close every subscription (draining in-flight handlers up to `drainTimeoutMs`) and let the
   * publishes under way finish, then close the connection if this transport opened it. A connect
   * still under way is not waited for: the calls waiting on it reject with `TransportClosedError`,
   * and a connection that completes later is closed. Idempotent: a second call returns the same
   * promise.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort(new TransportClosedError(`NATS transport on stream ${this.stream}`));
      await Promise.allSettled([
        ...[...this.#subscriptions].map((s) => s.close()),
        ...this.#publishing,
      ]);
      this.#acks?.close();
      const session = await this.#session?.catch(() => undefined);
      this.#stopWatching();
      if (session && !this.#options.connection) await closeConnection(session.nc);
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A publish that stayed unavailable until its deadline; `publish` turns it into the public error. */
class Unavailable extends Error {
  constructor(
    readonly waitedMs: number,
    cause: unknown,
  ) {
    super("no stream leader took the publish in time", { cause });
  }
}

/** Event types whose check and subject a transport remembers. */
const MEMO_TYPES = 1_024;

/** Wait `ms`, or less if the signal aborts (the caller then sees `signal.aborted`). */
function pauseUnlessAborted(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

interface ConsumerSpec {
  readonly name: string;
  readonly filter: string;
  readonly kind: "type" | "replay";
  readonly tag: ConsumerTag;
  readonly leaseMs: number;
  /** `register()`: leave an existing consumer's settings to whoever subscribes. */
  readonly keepExisting?: boolean;
}

/**
 * Create a {@link NatsTransport}. Nothing connects until the first call (or `ready()`).
 *
 * @example
 * ```ts
 * // not runnable
 * const router = createRouter({ catalog: pipelineCatalog, transport: natsTransport({ servers: "nats://nats:4222" }) });
 * ```
 */
export function natsTransport(options: NatsTransportOptions = {}): NatsTransport {
  return new NatsTransport(options);
}
