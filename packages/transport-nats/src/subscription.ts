import {
  type Msg,
  type NatsConnection,
  type Subscription,
  createInbox,
  headers as natsHeaders,
  nanos,
} from "@nats-io/transport-node";
import type { Envelope } from "@switchyard/event-schema";
import {
  type DeadLetterReason,
  type DeadLetterRecord,
  type DeadLetterSink,
  type Delivery,
  LeaseLostError,
  type Logger,
  UnrecoverableError,
  type OutcomePolicy,
  type TransportSubscribeOptions,
  type TransportSubscription,
  backoffDelay,
  deadLetterRecord,
  decideOutcome,
  drainWithin,
  logDelivery,
  retryDelay,
  runAttempt,
  silentLogger,
  sleep,
} from "@switchyard/transport";
import {
  ATTEMPTS_HEADER,
  REPLAY_HEADER,
  decodeEnvelope,
  messageBytes,
  replayHeaders,
} from "./codec";
import { TransportClosedError } from "./errors";
import { isStreamNotFound } from "./jetstream";
import { replaySubject } from "./names";

/** One JetStream consumer a subscription pulls from. */
export interface ConsumerHandle {
  /** The durable name. */
  readonly name: string;
  /** The consumer's AckWait, i.e. the lease length, in ms. */
  readonly ackWaitMs: number;
  /** `"type"` for an event type's consumer, `"replay"` for the subscriber's replay consumer. */
  readonly kind: "type" | "replay";
}

/** What a subscription needs from its transport. */
export interface SubscriptionHost {
  readonly name: string;
  readonly stream: string;
  readonly prefix: string;
  readonly logger: Logger;
  readonly drainTimeoutMs: number;
  readonly pullExpiresMs: number;
  /** The subject to write a receipt to after each outcome of `subscriber`, or `undefined` (receipts off). */
  receiptSubject(subscriber: string): string | undefined;
  /** Write a dead letter to `sink` (or the transport's default) and count it. */
  deadLetter(record: DeadLetterRecord, sink: DeadLetterSink | undefined): Promise<void>;
  /**
   * Note a step of a delivery off the happy path (a failure waiting for a retry, a lease that ran
   * out, an outcome fenced off, the dead-lettering, an ack after earlier attempts) where the
   * inspector reads it; `undefined` when the transport keeps no journal. Fire-and-forget: never
   * delays or fails the outcome. Nothing is noted for a first attempt that is acked.
   */
  readonly journal: ((entry: AttemptEntry) => void) | undefined;
  /** Check a consumer still exists and re-create it if it disappeared (a fresh handle either way). */
  recreate(handle: ConsumerHandle): Promise<ConsumerHandle>;
  /** Remove consumers (ephemeral subscribers on close). */
  remove(handles: readonly ConsumerHandle[]): Promise<void>;
  forget(subscription: NatsSubscription): void;
}

/** One line of the attempt journal (see {@link SubscriptionHost.journal}). */
export interface AttemptEntry {
  /** The consumer (durable name) and the message's stream sequence in it. */
  readonly consumer: string;
  readonly seq: number;
  readonly subscriber: string;
  readonly eventId: string;
  /** What happened (see `AttemptState` of the dead-letter store; `replayed` is the store's). */
  readonly state: "retrying" | "acked" | "dead" | "lease_expired" | "fenced";
  /** Attempts made so far, the one the entry is about included. */
  readonly attempts: number;
  /** The failure (states `retrying` and `dead`). */
  readonly error?: unknown;
  /** The backoff before the retry (state `retrying`), in ms. */
  readonly delayMs?: number;
  /** Why it was dead-lettered (state `dead`). */
  readonly reason?: DeadLetterReason;
  /** Anything else worth a line, in words. */
  readonly detail?: string;
}

/** The connection a subscription pulls on, and where JetStream's API listens on it. */
export interface PullSession {
  readonly nc: NatsConnection;
  /** The JetStream API prefix, `$JS.API` unless the client was configured otherwise. */
  readonly apiPrefix: string;
}

// JetStream acknowledgement payloads (the protocol's, as nats.js sends them).
const ACK = Uint8Array.of(43, 65, 67, 75); // +ACK
const NAK = Uint8Array.of(45, 78, 65, 75); // -NAK
const WORKING = Uint8Array.of(43, 87, 80, 73); // +WPI
const TERM = Uint8Array.of(43, 84, 69, 82, 77); // +TERM
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const HAND_BACK_TIMEOUT_MS = 2_000;

function nakPayload(delayMs: number): Uint8Array {
  return delayMs > 0 ? encoder.encode(`-NAK {"delay":${nanos(Math.round(delayMs))}}`) : NAK;
}

/**
 * The delivery count and stream sequence from a JetStream ack subject:
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`, or with
 * `<domain>.<account hash>` after `ACK` (and a trailing token) on newer servers. Stream and
 * consumer names cannot contain dots, so counting tokens is enough.
 */
export function parseAckSubject(reply: string): { deliveryCount: number; streamSeq: number } {
  return { deliveryCount: ackToken(reply, 0), streamSeq: ackToken(reply, 1) };
}

/** Token `offset` after the consumer name in an ack subject (0: delivery count, 1: stream sequence). */
function ackToken(reply: string, offset: number): number {
  // Read once per delivery: scanning beats split(), which allocates a dozen strings.
  let dots = 0;
  for (let i = reply.indexOf("."); i !== -1; i = reply.indexOf(".", i + 1)) dots++;
  const index = (dots === 8 ? 4 : 6) + offset;
  let start = 0;
  for (let k = 0; k < index; k++) start = reply.indexOf(".", start) + 1;
  const end = reply.indexOf(".", start);
  return Number(end === -1 ? reply.slice(start) : reply.slice(start, end));
}

/** Send an ack, nak, term or working() for `msg`; false when the connection is closed (the server redelivers after AckWait). */
function respond(msg: Msg, payload: Uint8Array): boolean {
  try {
    return msg.respond(payload);
  } catch {
    return false;
  }
}

/**
 * Safety margin between the client-side lease end and the server's AckWait: the server starts
 * AckWait when it sends, the client when it receives, so the client gives up a little early to
 * never ack a message the server may already have redelivered.
 */
export function leaseMargin(ackWaitMs: number): number {
  return Math.min(1_000, Math.max(10, Math.round(ackWaitMs * 0.1)));
}

/**
 * About how much handler work (ms, at the measured pace) may wait in a subscription's buffer
 * beyond `concurrency`: prefetched messages, so that quick handlers never wait for a pull's round
 * trip. Never more than a quarter of the lease, so a prefetched message starts with most of it.
 */
const PREFETCH_WINDOW_MS = 50;

const LOOP_BACKOFF = { initialMs: 100, maxMs: 5_000, multiplier: 2, jitter: 0.2 };
const ACK_SUBJECT = "$JS.ACK.";
const PENDING_MESSAGES = "Nats-Pending-Messages";

/** One consumer's pulls: an inbox of its own and the number of messages asked for on it. */
interface Puller {
  handle: ConsumerHandle;
  /** `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`. */
  readonly next: string;
  readonly inbox: string;
  sub: Subscription | undefined;
  /** Messages requested and not yet received, nor given up by the server (as far as we know). */
  outstanding: number;
  lastPullAt: number;
  /** When anything (a message or a status) last arrived on the inbox. */
  lastHeardAt: number;
  failures: number;
  /** Backing off after a failed pull (checking or re-creating the consumer): no pulls meanwhile. */
  failing: boolean;
  /** The connection closed for good: no more pulls. */
  dead: boolean;
  /** The last check found the stream gone (said once, until it is back). */
  streamGone: boolean;
  /** A pull is due once the messages that just arrived were started (see {@link NatsSubscription}). */
  pullDue: boolean;
}

/** A received message: buffered for a free slot, then running. */
class Held {
  readonly handle: ConsumerHandle;
  readonly msg: Msg;
  readonly attempt: number;
  envelope!: Envelope;
  /** Client-side lease end: past it, the server may have redelivered the message. */
  deadline: number;
  /** When it arrived, then when its handler started. */
  since: number;
  /** The lease ran out, an outcome was sent, or close handed it back: the outcome no longer counts. */
  lost = false;
  #controller: AbortController | undefined;
  #abortReason: unknown;

  constructor(handle: ConsumerHandle, msg: Msg, now: number) {
    this.handle = handle;
    this.msg = msg;
    const before = handle.kind === "replay" ? Number(msg.headers?.get(ATTEMPTS_HEADER)) : 0;
    this.attempt = ackToken(msg.reply!, 0) + (Number.isInteger(before) && before > 0 ? before : 0);
    this.deadline = now + handle.ackWaitMs - leaseMargin(handle.ackWaitMs);
    this.since = now;
  }

  /** Created on first read: most handlers never look at it. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  /** Abort the handler's signal (now, or when it is first read). */
  abort(reason: unknown): void {
    this.#abortReason ??= reason;
    this.#controller?.abort(reason);
  }

  /** `working()`: the server restarts the full AckWait. */
  renew(): void {
    respond(this.msg, WORKING);
    this.deadline = Date.now() + this.handle.ackWaitMs - leaseMargin(this.handle.ackWaitMs);
  }
}

/** What a handler receives: the envelope and its lease, nothing of the NATS message (safe to log). */
class NatsDelivery implements Delivery {
  readonly envelope: Envelope;
  readonly attempt: number;
  readonly subscriber: string;
  readonly #held: Held;
  readonly #owner: NatsSubscription;

  constructor(owner: NatsSubscription, held: Held) {
    this.envelope = held.envelope;
    this.attempt = held.attempt;
    this.subscriber = owner.subscriber;
    this.#held = held;
    this.#owner = owner;
  }

  get signal(): AbortSignal {
    return this.#held.signal;
  }

  extendLease(ms?: number): Promise<void> {
    return this.#owner.extendLeaseOf(this.#held, ms);
  }
}

/**
 * One `transport.subscribe()` call: pulls per consumer (one per event type, plus the subscriber's
 * replay consumer), a shared concurrency limit, client-side leases and the outcome mapping (ack,
 * nak with backoff, dead letter then term).
 *
 * Each consumer is pulled on a core NATS subscription of its own, keeping up to `concurrency`
 * messages asked for and asking again as they arrive (so the server always has the next ones to
 * send while the client works). What it holds — running, buffered for a slot, and asked for — is
 * at most `concurrency` plus a prefetch: none until a handler finished, then about
 * {@link PREFETCH_WINDOW_MS} of handler work at the measured pace (`concurrency` handlers at once;
 * within a quarter of the lease, and `concurrency` at most). Quick handlers thus keep the pipeline
 * full, slow ones hold no more than they run. Messages are handed to handlers from the subscription callback, without a queue in
 * between; one watchdog timer per subscription ends the leases of running handlers and keeps
 * buffered messages' leases alive (`working()`). Closing drains the subscriptions
 * (unsubscribe, then a round trip to the server), so every message the server sent before it saw
 * the unsubscribe still arrives — and is handed back with `nak()` instead of waiting out AckWait.
 */
export class NatsSubscription implements TransportSubscription {
  readonly subscriber: string;
  readonly #host: SubscriptionHost;
  readonly #session: PullSession;
  readonly #options: TransportSubscribeOptions;
  readonly #logger: Logger;
  readonly #types: ReadonlySet<string>;
  readonly #concurrency: number;
  readonly #maxAttempts: number;
  /** The outcome policy, the same for every delivery. */
  readonly #policy: OutcomePolicy;
  /** False for the silent logger: delivery logs are not even built. */
  readonly #logs: boolean;
  /** Ask again once this many slots are free beyond what is already asked for. */
  readonly #refill: number;
  /** How long a prefetched message may expect to wait for a slot (see {@link PREFETCH_WINDOW_MS}). */
  #prefetchWindowMs = 0;
  /** Mean time of a handler (moving average, ms); `undefined` until the first one finished. */
  #handlerMs: number | undefined;
  /** Messages that may be held (or asked for) beyond `concurrency`: see {@link NatsSubscription}. */
  #prefetch = 0;
  readonly #pullRequest: string;
  readonly #stop = new AbortController();
  readonly #buffer: Held[] = [];
  readonly #running = new Set<Held>();
  #pullers: Puller[] = [];
  #idleWaiters: (() => void)[] = [];
  #watchdog: NodeJS.Timeout | undefined;
  #warnedExtend = false;
  #closing: Promise<void> | undefined;
  readonly #receipts: string | undefined;
  /** Hand-backs under way while closing. */
  readonly #handingBack: Promise<void>[] = [];

  constructor(
    host: SubscriptionHost,
    session: PullSession,
    options: TransportSubscribeOptions,
    logger: Logger,
  ) {
    this.#host = host;
    this.#session = session;
    this.#options = options;
    this.#logger = logger;
    this.subscriber = options.subscriber;
    this.#types = new Set(options.types);
    this.#concurrency = options.concurrency ?? 1;
    this.#maxAttempts = options.maxAttempts ?? 5;
    this.#policy = { maxAttempts: this.#maxAttempts, backoff: options.backoff };
    this.#logs = logger !== silentLogger;
    this.#refill = Math.max(1, Math.ceil(this.#concurrency / 4));
    this.#pullRequest = `,"expires":${nanos(host.pullExpiresMs)}}`;
    this.#receipts = host.receiptSubject(options.subscriber);
  }

  /**
   * Settle a delivery for good (ack, or term after its dead letter): first the receipt — the
   * envelope id on the subscriber's receipt subject, for `audit()` — then the outcome. A receipt
   * lost in a crash makes the audit report an event that was handled (a false alarm, a duplicate
   * at most if repaired); an event never handled never has one.
   */
  #settle(run: Held, payload: Uint8Array): void {
    if (this.#receipts !== undefined) {
      try {
        this.#session.nc.publish(this.#receipts, run.envelope.id);
      } catch {
        // closed connection: the outcome below fails too, and the server redelivers
      }
    }
    respond(run.msg, payload);
  }

  /** @internal Start pulling from the consumers. */
  start(handles: readonly ConsumerHandle[]): void {
    const prefix = inboxPrefixOf(this.#session.nc);
    this.#pullers = handles.map((handle) => ({
      handle,
      next: `${this.#session.apiPrefix}.CONSUMER.MSG.NEXT.${this.#host.stream}.${handle.name}`,
      inbox: createInbox(prefix),
      sub: undefined,
      outstanding: 0,
      lastPullAt: 0,
      lastHeardAt: 0,
      failures: 0,
      failing: false,
      dead: false,
      streamGone: false,
      pullDue: false,
    }));
    for (const puller of this.#pullers) this.#subscribe(puller);
    const shortest = Math.min(...handles.map((h) => h.ackWaitMs));
    this.#prefetchWindowMs = Math.min(PREFETCH_WINDOW_MS, shortest / 4);
    // Fine enough to end a lease within its safety margin, never busier than every 10 ms.
    const tick = Math.max(10, Math.min(1_000, Math.floor(shortest / 10)));
    this.#watchdog = setInterval(() => this.#watch(), tick);
    this.#watchdog.unref();
    for (const puller of this.#pullers) this.#pull(puller);
    const signal = this.#options.signal;
    if (signal) {
      if (signal.aborted) void this.close();
      else signal.addEventListener("abort", () => void this.close(), { once: true });
    }
  }

  /** Deliveries running or buffered right now (for tests and stats). */
  get inFlight(): number {
    return this.#running.size + this.#buffer.length;
  }

  /**
   * A handler took `ms` (or one still runs after `ms`, `atLeast`): update the mean handler time and
   * the prefetch, the messages beyond `concurrency` that start within the prefetch window when
   * `concurrency` handlers of the mean time run at once.
   */
  #timed(ms: number, atLeast = false): void {
    const mean = this.#handlerMs;
    if (atLeast) {
      // Before any handler finished there is no mean to raise: the prefetch stays 0.
      if (mean === undefined || ms <= mean) return;
      this.#handlerMs = ms;
    } else this.#handlerMs = mean === undefined ? ms : mean + (ms - mean) / 8;
    const c = this.#concurrency;
    this.#prefetch = Math.min(c, Math.floor((c * this.#prefetchWindowMs) / this.#handlerMs));
  }

  #subscribe(p: Puller): void {
    p.sub = this.#session.nc.subscribe(p.inbox, {
      callback: (error, msg) => this.#onMessage(p, error, msg),
    });
  }

  /**
   * Ask the server for more messages, once enough are missing to be worth a request: up to
   * `concurrency` asked for at once, and no more held and asked for than `concurrency` plus the
   * prefetch.
   */
  #pull(p: Puller): void {
    const room = this.#concurrency + this.#prefetch - this.#running.size - this.#buffer.length;
    const want = Math.min(room, this.#concurrency) - p.outstanding;
    if (want <= 0 || (p.outstanding > 0 && want < this.#refill)) return;
    if (p.failing || p.dead || this.#stop.signal.aborted) return;
    try {
      this.#session.nc.publish(p.next, `{"batch":${want}${this.#pullRequest}`, {
        reply: p.inbox,
      });
    } catch (error) {
      if ((error as { name?: unknown } | null)?.name === "ClosedConnectionError") {
        p.dead = true;
        this.#logger.error(
          { err: error, consumer: p.handle.name },
          `the NATS connection closed for good; subscriber "${this.subscriber}" stops pulling from ${p.handle.name}`,
        );
        return;
      }
      this.#fail(p, error);
      return;
    }
    p.outstanding += want;
    p.lastPullAt = Date.now();
  }

  /**
   * Pull after what arrived in one read was started, one microtask later: a quick handler's
   * outcome is sent by then, and the pull leaves in the same write as the ack (nats.js flushes in
   * a microtask after the first publish) instead of a write of its own per message.
   */
  #pullSoon(p: Puller): void {
    if (p.pullDue) return;
    p.pullDue = true;
    queueMicrotask(() => {
      p.pullDue = false;
      this.#pull(p);
    });
  }

  #onMessage(p: Puller, error: Error | null, msg: Msg): void {
    try {
      if (error) {
        // The server refused the subscription (permissions): try again with backoff.
        this.#fail(p, error);
        return;
      }
      p.lastHeardAt = Date.now();
      if (msg.reply?.startsWith(ACK_SUBJECT)) {
        if (p.outstanding > 0) p.outstanding--;
        p.failures = 0;
        this.#accept(p.handle, msg);
      } else this.#onStatus(p, msg);
      this.#pullSoon(p);
    } catch (unexpected) {
      this.#logger.error(
        { err: unexpected, consumer: p.handle.name },
        "handling a pulled message failed unexpectedly; the server redelivers it after AckWait",
      );
    }
  }

  /** A status from the server about our pull requests (headers only, no ack subject). */
  #onStatus(p: Puller, msg: Msg): void {
    if (this.#stop.signal.aborted) return;
    const headers = msg.headers;
    const code = headers?.code ?? 0;
    if (code === 100) return; // an idle heartbeat (not asked for)
    if (code === 408) {
      // A request expired: what it did not deliver is no longer asked for.
      const left = headers?.has(PENDING_MESSAGES) ? Number(headers.get(PENDING_MESSAGES)) : NaN;
      p.outstanding = Number.isFinite(left) ? Math.max(0, p.outstanding - left) : 0;
      p.failures = 0;
      return;
    }
    // 409 Consumer Deleted, 503 No Responders (no such consumer), 400 Bad Request, …
    this.#fail(
      p,
      new Error(`the server answered a pull with ${code} ${headers?.description ?? ""}`.trim()),
    );
  }

  /** A pull failed: check the consumer (re-create it if it vanished), back off, then pull again. */
  #fail(p: Puller, error: unknown): void {
    if (p.failing || p.dead || this.#stop.signal.aborted) return;
    p.failing = true;
    p.outstanding = 0;
    p.failures++;
    const context = { err: error, consumer: p.handle.name, failures: p.failures };
    const message = `pulling from consumer ${p.handle.name} failed; retrying with backoff`;
    if (p.failures === 1) this.#logger.warn(context, message);
    else this.#logger.debug(context, message);
    void this.#recover(p);
  }

  async #recover(p: Puller): Promise<void> {
    try {
      // The consumer may be gone (deleted by an operator, a server that lost its state).
      p.handle = await this.#host.recreate(p.handle);
      if (p.streamGone) {
        p.streamGone = false;
        this.#logger.info(
          { consumer: p.handle.name },
          `stream ${this.#host.stream} is back; subscriber "${this.subscriber}" pulls from ${p.handle.name} again`,
        );
      }
    } catch (recreateError) {
      if (isStreamNotFound(recreateError) && !p.streamGone) {
        // Said once per outage and consumer; the checks go on at the backoff's pace (≤ 5 s
        // apart, or a pull's expiry when nothing answers), quietly.
        p.streamGone = true;
        this.#logger.warn(
          { err: recreateError, consumer: p.handle.name },
          `stream ${this.#host.stream} no longer exists (deleted while subscriber "${this.subscriber}" ` +
            `was running): nothing can be pulled from ${p.handle.name}. It checks again with backoff ` +
            `and resumes once the stream is re-created (a transport creates it when it starts), ` +
            `with the events published from then on`,
        );
      } else
        this.#logger.debug(
          { err: recreateError, consumer: p.handle.name },
          "checking or re-creating the consumer failed",
        );
    }
    await sleep(backoffDelay(p.failures, LOOP_BACKOFF), { signal: this.#stop.signal }).catch(
      () => {},
    );
    p.failing = false;
    if (this.#stop.signal.aborted) return;
    try {
      if (!p.sub || p.sub.isClosed()) this.#subscribe(p);
    } catch (error) {
      this.#fail(p, error);
      return;
    }
    this.#pull(p);
  }

  /** @internal The connection is back: requests made before may be gone with the old one. */
  reconnected(): void {
    for (const p of this.#pullers) {
      p.outstanding = 0;
      this.#pull(p);
    }
  }

  /**
   * Runs every few ms (a tenth of the shortest AckWait, 10 ms–1 s): ends the leases of running
   * deliveries that ran out (aborting their signal), keeps buffered deliveries' leases alive with
   * `working()`, and re-pulls when a request went unanswered past its expiry.
   */
  #watch(): void {
    const now = Date.now();
    let longest = 0;
    for (const run of this.#running) {
      if (!run.lost && !this.#holds(run, now)) this.#lose(run);
      longest = Math.max(longest, now - run.since);
    }
    // A handler running longer than the mean: no prefetch beyond what that lets start in time.
    if (longest > 0) this.#timed(longest, true);
    for (const held of this.#buffer) {
      // More arrived than there are free slots (several consumers pulled at once, or a handler
      // turned slow after a prefetch): hold the lease until a slot frees, so it is not
      // redelivered meanwhile.
      if (held.deadline - now < held.handle.ackWaitMs / 2) held.renew();
    }
    if (this.#stop.signal.aborted) return;
    const stale = this.#host.pullExpiresMs + Math.max(2_000, this.#host.pullExpiresMs / 2);
    for (const p of this.#pullers) {
      if (p.failing || p.dead) continue;
      if (p.outstanding > 0 && now - p.lastPullAt > stale) {
        // Every request has expired on the server by now: nothing more can arrive for them.
        if (p.lastHeardAt < p.lastPullAt)
          this.#fail(p, new Error(`no answer to a pull within ${stale} ms`));
        else p.outstanding = 0;
      }
      this.#pull(p);
    }
  }

  #lose(run: Held): void {
    run.lost = true;
    run.abort(new LeaseLostError(this.subscriber, run.envelope.id));
    this.#note(run, { state: "lease_expired", attempts: run.attempt });
  }

  #accept(handle: ConsumerHandle, msg: Msg): void {
    const held = new Held(handle, msg, Date.now());
    if (this.#stop.signal.aborted) {
      // Pulled while closing: hand it straight back instead of letting AckWait run out.
      this.#handingBack.push(this.#handBack(held));
      return;
    }
    if (this.#running.size < this.#concurrency && this.#buffer.length === 0) {
      this.#start(held);
      return;
    }
    this.#buffer.push(held);
    this.#startBuffered();
  }

  #startBuffered(): void {
    while (this.#buffer.length > 0 && this.#running.size < this.#concurrency) {
      const held = this.#buffer.shift()!;
      const now = Date.now();
      if (now >= held.deadline) {
        this.#logger.warn(
          { consumer: held.handle.name, seq: ackToken(held.msg.reply!, 1) },
          "a buffered delivery lost its lease before a slot freed; the server redelivers it",
        );
        continue;
      }
      // The handler gets (nearly) a full lease: renewed unless it waited less than the margin.
      if (now - held.since > leaseMargin(held.handle.ackWaitMs)) held.renew();
      held.since = now;
      this.#start(held);
    }
  }

  #start(held: Held): void {
    const { msg, handle } = held;
    const decoded = decodeEnvelope(msg.data, () => ({
      subject: msg.subject,
      type: msg.subject.slice(msg.subject.lastIndexOf(".") + 1),
      id: msg.headers?.get("Nats-Msg-Id") || undefined,
      seq: ackToken(msg.reply!, 1),
    }));
    held.envelope = decoded.envelope;
    if (handle.kind === "replay" && !this.#types.has(decoded.envelope.type)) {
      if (held.attempt > this.#maxAttempts) {
        // Bounced more often than any process of the subscriber would have run it (one that
        // handles the type would dead-letter it now): nobody takes it, so it ends here instead of
        // coming back forever.
        this.#running.add(held);
        void this.#handle(
          held,
          new UnrecoverableError(
            `no process of subscriber "${this.subscriber}" took the replayed ${decoded.envelope.type} ` +
              `${decoded.envelope.id} within ${this.#maxAttempts} deliveries; this one subscribes to ` +
              `${[...this.#types].join(", ")}`,
            { cause: decoded.error },
          ),
        );
        return;
      }
      // A replay for a type another process of this subscriber handles: let that one take it.
      this.#logger.debug(
        { eventId: decoded.envelope.id, type: decoded.envelope.type },
        "replayed delivery for a type this subscription does not handle; handing it back",
      );
      held.lost = true;
      respond(msg, nakPayload(1_000));
      this.#afterSettle();
      return;
    }
    this.#running.add(held);
    void this.#handle(held, decoded.error);
  }

  /** Whether the delivery still holds its lease at `now` (not lost, not past its deadline). */
  #holds(run: Held, now: number = Date.now()): boolean {
    return !run.lost && now < run.deadline;
  }

  /** @internal {@link Delivery.extendLease} of a running delivery. */
  async extendLeaseOf(run: Held, ms: number | undefined): Promise<void> {
    if (!this.#holds(run)) {
      if (!run.lost) this.#lose(run);
      throw new LeaseLostError(this.subscriber, run.envelope.id);
    }
    const ackWait = run.handle.ackWaitMs;
    if (ms !== undefined && ms > ackWait && !this.#warnedExtend) {
      this.#warnedExtend = true;
      this.#logger.warn(
        { requestedMs: ms, ackWaitMs: ackWait },
        `extendLease(${ms}) asks for more than the consumer's AckWait (${ackWait} ms); NATS can only ` +
          `restart the full AckWait, so call extendLease more often than every ${ackWait} ms, or raise leaseMs`,
      );
    }
    run.renew();
  }

  async #handle(run: Held, decodeError: Error | undefined): Promise<void> {
    const { msg, attempt } = run;
    const policy = this.#policy;
    // The silent logger (the default) logs nothing: build nothing for it, per delivery.
    const log = this.#logs
      ? {
          transport: this.#host.name,
          subscriber: this.subscriber,
          envelope: run.envelope,
          attempt,
        }
      : undefined;
    if (log) logDelivery(this.#logger, "claimed", log);
    try {
      const result = await runAttempt(
        {
          subscriber: this.subscriber,
          envelope: run.envelope,
          attempt,
          maxAttempts: this.#maxAttempts,
          undecodable: decodeError,
        },
        () => this.#options.handler(new NatsDelivery(this, run)),
      );
      const now = Date.now();
      this.#timed(now - run.since);
      if (!this.#holds(run, now))
        return this.#discard(run, "its lease expired (or close handed it back)");
      const outcome = decideOutcome(result, attempt, policy, run.envelope.id);
      if (log)
        logDelivery(this.#logger, "settled", {
          ...log,
          outcome: outcome.kind,
          ...(outcome.kind === "retry" ? { delayMs: outcome.delayMs } : {}),
        });
      switch (outcome.kind) {
        case "ack":
          run.lost = true;
          this.#settle(run, ACK);
          // Only a delivery that took more than one attempt is noted (none on the happy path).
          if (attempt > 1) this.#note(run, { state: "acked", attempts: attempt });
          return;
        case "dead_letter":
          // The dead letter is written first; only then is the message removed (term).
          await this.#host.deadLetter(
            deadLetterRecord({
              envelope: run.envelope,
              subscriber: this.subscriber,
              reason: outcome.reason,
              attempts: attempt,
              error: outcome.error,
              origin: this.#host.name,
            }),
            this.#options.deadLetter,
          );
          this.#note(run, {
            state: "dead",
            attempts: attempt,
            error: outcome.error,
            reason: outcome.reason,
          });
          if (!this.#holds(run))
            return this.#discard(run, "its lease expired while the dead letter was written");
          run.lost = true;
          this.#settle(run, TERM);
          return;
        case "retry":
          run.lost = true;
          respond(msg, nakPayload(outcome.delayMs));
          this.#note(run, {
            state: "retrying",
            attempts: attempt,
            error: outcome.error,
            delayMs: outcome.delayMs,
          });
          return;
      }
    } catch (sinkError) {
      // The dead-letter sink failed: keep the delivery and try again later, never drop it.
      this.#logger.error(
        { err: sinkError, eventId: run.envelope.id, subscriber: this.subscriber },
        "dead-letter sink failed; delivery kept for retry",
      );
      if (this.#holds(run)) {
        run.lost = true;
        respond(msg, nakPayload(retryDelay(attempt, policy)));
      }
    } finally {
      this.#running.delete(run);
      this.#afterSettle();
    }
  }

  #note(
    run: Held,
    entry: Pick<AttemptEntry, "state" | "attempts" | "error" | "delayMs" | "reason" | "detail">,
  ): void {
    const journal = this.#host.journal;
    if (!journal || !run.msg.reply) return;
    journal({
      consumer: run.handle.name,
      seq: ackToken(run.msg.reply, 1),
      subscriber: this.subscriber,
      eventId: run.envelope.id,
      ...entry,
    });
  }

  #discard(run: Held, why: string): void {
    this.#note(run, {
      state: "fenced",
      attempts: run.attempt,
      detail: `outcome discarded: ${why}`,
    });
    this.#logger.warn(
      { subscriber: this.subscriber, eventId: run.envelope.id, attempt: run.attempt },
      `discarding the outcome of ${run.envelope.id}: ${why} and it may have been redelivered`,
    );
  }

  #afterSettle(): void {
    this.#startBuffered();
    if (this.#running.size === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
    for (const p of this.#pullers) this.#pull(p);
  }

  /**
   * Hand a delivery back on close without spending an attempt (a hand-back is not an attempt):
   * JetStream counts every redelivery, so instead of `nak` a copy goes to the subscriber's replay
   * subject — same body and id, `switchyard-attempts` = the attempts made before this one —
   * and only once the stream stored it is the original acknowledged. Any process of the
   * subscriber gets the copy at once. Where that cannot be done (an ephemeral subscriber has no
   * replay consumer; the copy, with its headers, is over the server's `max_payload`; the server
   * does not store the copy within 2 s) it falls back to `nak`, and that hand-back counts as an
   * attempt.
   */
  async #handBack(held: Held): Promise<void> {
    held.lost = true;
    const { msg } = held;
    if (!this.#options.ephemeral) {
      try {
        const type = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
        const lines: [string, string][] = [];
        for (const [key, values] of msg.headers ?? []) {
          if (key === "Nats-Msg-Id" || key === ATTEMPTS_HEADER || key === REPLAY_HEADER) continue;
          for (const value of values) lines.push([key, value]);
        }
        lines.push(
          ...replayHeaders({ subscriber: this.subscriber, attemptsBefore: held.attempt - 1 }),
        );
        // The copy's headers differ from the original's: one stored right at max_payload may not
        // fit as a copy. Then the nak below keeps it (at the cost of an attempt).
        const size = messageBytes(msg.data.length, lines);
        const maxPayload = this.#session.nc.info?.max_payload;
        if (maxPayload !== undefined && size > maxPayload) {
          const id =
            (held.envelope as Envelope | undefined)?.id ??
            (msg.headers?.get("Nats-Msg-Id") || `stream sequence ${ackToken(msg.reply!, 1)}`);
          this.#logger.warn(
            { consumer: held.handle.name, bytes: size, maxBytes: maxPayload },
            `handing ${id} back with nak (counts as an attempt): its copy for the replay subject would ` +
              `be ${size} bytes, over the server's max_payload of ${maxPayload} (a copy carries ` +
              `${REPLAY_HEADER} and ${ATTEMPTS_HEADER} instead of Nats-Msg-Id)`,
          );
          respond(msg, NAK);
          return;
        }
        const h = natsHeaders();
        for (const [name, value] of lines) h.append(name, value);
        const reply = await this.#session.nc.request(
          replaySubject(this.#host.prefix, this.subscriber, type),
          msg.data,
          { headers: h, timeout: HAND_BACK_TIMEOUT_MS },
        );
        const ack = JSON.parse(decoder.decode(reply.data)) as { seq?: unknown; error?: unknown };
        if (typeof ack.seq !== "number") throw new Error(JSON.stringify(ack.error ?? ack));
        respond(msg, ACK);
        return;
      } catch (error) {
        this.#logger.debug(
          { err: error, consumer: held.handle.name },
          "handing a delivery back as a copy failed; handing it back with nak (counts as an attempt)",
        );
      }
    }
    respond(msg, NAK);
  }

  /**
   * Stop pulling and hand back every message pulled but not started: the
   * buffered ones and those still on their way, which the drained pull subscriptions receive up
   * to the server's acknowledgement of the unsubscribe. Then wait up to the drain timeout for
   * running handlers, and abort the rest (their deliveries are handed back and their outcome is
   * discarded). A hand-back does not spend an attempt: it is a copy on the replay subject that
   * carries the attempts made so far (or, where that fails, a `nak`). Ephemeral subscribers'
   * consumers are removed. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#stop.abort(new TransportClosedError(`NATS transport on stream ${this.#host.stream}`));
    const drained = Promise.all(this.#pullers.map((p) => this.#drain(p)));
    for (const held of this.#buffer.splice(0)) this.#handingBack.push(this.#handBack(held));
    if (this.#running.size > 0) {
      await drainWithin(
        new Promise<void>((resolve) => this.#idleWaiters.push(resolve)),
        this.#host.drainTimeoutMs,
      );
      for (const run of this.#running) {
        if (run.lost) continue;
        run.abort(new TransportClosedError(`NATS transport on stream ${this.#host.stream}`));
        this.#handingBack.push(this.#handBack(run));
      }
    }
    await drained;
    await Promise.all(this.#handingBack);
    clearInterval(this.#watchdog);
    if (this.#options.ephemeral) {
      await this.#host.remove(this.#pullers.map((p) => p.handle)).catch((error: unknown) => {
        this.#logger.warn(
          { err: error, subscriber: this.subscriber },
          "removing an ephemeral subscriber's consumers failed; the server removes them once inactive",
        );
      });
    }
    this.#host.forget(this);
  }

  /**
   * Unsubscribe and wait for the server to confirm it (a PING/PONG round trip): messages it sent
   * before reach the callback, which hands them back. The server sends nothing more to a pull
   * whose inbox lost its interest. Bounded, in case the connection is down.
   */
  async #drain(p: Puller): Promise<void> {
    const sub = p.sub;
    if (!sub || sub.isClosed()) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        sub.drain(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, 2_000);
        }),
      ]);
    } catch {
      // the connection is closed or closing: nothing more arrives
    } finally {
      clearTimeout(timer);
      if (!sub.isClosed()) sub.unsubscribe();
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The connection's inbox prefix (`inboxPrefix` option), which permissions may require. */
export function inboxPrefixOf(nc: NatsConnection): string | undefined {
  // Not on the NatsConnection interface, but set on every nats.js connection.
  return (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
}
