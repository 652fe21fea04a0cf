import type { Consumer, ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import type { Envelope } from "@switchyard/event-schema";
import {
  type DeadLetterRecord,
  type DeadLetterSink,
  type Delivery,
  DeliveryAbandonedError,
  LeaseLostError,
  type Logger,
  type TransportSubscribeOptions,
  type TransportSubscription,
  backoffDelay,
  deadLetterReason,
  isUnrecoverable,
  serializeError,
  sleep,
} from "@switchyard/router";
import { decodeEnvelope } from "./codec";
import { TransportClosedError } from "./errors";

/** One JetStream consumer a subscription pulls from. */
export interface ConsumerHandle {
  /** The durable name. */
  readonly name: string;
  readonly consumer: Consumer;
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
  /** Write a dead letter to `sink` (or the transport's default) and count it. */
  deadLetter(record: DeadLetterRecord, sink: DeadLetterSink | undefined): Promise<void>;
  /** Check a consumer still exists and re-create it if it disappeared (a fresh handle either way). */
  recreate(handle: ConsumerHandle): Promise<ConsumerHandle>;
  /** Remove consumers (ephemeral subscribers on close). */
  remove(handles: readonly ConsumerHandle[]): Promise<void>;
  forget(subscription: NatsSubscription): void;
}

/** A received message: buffered for a free slot, then running. */
interface Held {
  handle: ConsumerHandle;
  readonly msg: JsMsg;
  /** Client-side lease end: past it, the server may have redelivered the message. */
  deadline: number;
  keepAlive: NodeJS.Timeout | undefined;
}

interface Running {
  readonly held: Held;
  readonly controller: AbortController;
  readonly envelope: Envelope;
  timer: NodeJS.Timeout | undefined;
  /** The lease ran out (or close handed the delivery back): the outcome no longer counts. */
  lost: boolean;
}

/**
 * Safety margin between the client-side lease end and the server's AckWait: the server starts
 * AckWait when it sends, the client when it receives, so the client gives up a little early to
 * never ack a message the server may already have redelivered.
 */
export function leaseMargin(ackWaitMs: number): number {
  return Math.min(1_000, Math.max(10, Math.round(ackWaitMs * 0.1)));
}

const LOOP_BACKOFF = { initialMs: 100, maxMs: 5_000, multiplier: 2, jitter: 0.2 };

/**
 * One `transport.subscribe()` call: a pull loop per consumer (one per event type, plus the
 * subscriber's replay consumer), a shared concurrency limit, client-side leases and the outcome
 * mapping (ack, nak with backoff, dead letter then term).
 */
export class NatsSubscription implements TransportSubscription {
  readonly subscriber: string;
  readonly #host: SubscriptionHost;
  readonly #options: TransportSubscribeOptions;
  readonly #logger: Logger;
  readonly #types: ReadonlySet<string>;
  readonly #concurrency: number;
  readonly #maxAttempts: number;
  readonly #stop = new AbortController();
  readonly #buffer: Held[] = [];
  readonly #running = new Set<Running>();
  readonly #iterators = new Set<ConsumerMessages>();
  readonly #loops: Promise<void>[] = [];
  #handles: ConsumerHandle[] = [];
  #capacityWaiters: (() => void)[] = [];
  #idleWaiters: (() => void)[] = [];
  #warnedExtend = false;
  #closing: Promise<void> | undefined;

  constructor(host: SubscriptionHost, options: TransportSubscribeOptions, logger: Logger) {
    this.#host = host;
    this.#options = options;
    this.#logger = logger;
    this.subscriber = options.subscriber;
    this.#types = new Set(options.types);
    this.#concurrency = options.concurrency ?? 1;
    this.#maxAttempts = options.maxAttempts ?? 5;
  }

  /** @internal Start pulling from the consumers. */
  start(handles: readonly ConsumerHandle[]): void {
    this.#handles = [...handles];
    for (let i = 0; i < this.#handles.length; i++) this.#loops.push(this.#loop(i));
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

  get #free(): number {
    return this.#concurrency - this.#running.size - this.#buffer.length;
  }

  async #loop(index: number): Promise<void> {
    let failures = 0;
    while (!this.#stop.signal.aborted) {
      if (this.#free <= 0) {
        await new Promise<void>((resolve) => this.#capacityWaiters.push(resolve));
        continue;
      }
      const handle = this.#handles[index]!;
      let iterator: ConsumerMessages | undefined;
      try {
        iterator = await handle.consumer.fetch({
          max_messages: this.#free,
          expires: this.#host.pullExpiresMs,
        });
        this.#iterators.add(iterator);
        if (this.#stop.signal.aborted) void iterator.close();
        for await (const msg of iterator) this.#accept(handle, msg);
        failures = 0;
      } catch (error) {
        if (this.#stop.signal.aborted) break;
        if ((error as { name?: unknown } | null)?.name === "ClosedConnectionError") {
          this.#logger.error(
            { err: error, consumer: handle.name },
            `the NATS connection closed for good; subscriber "${this.subscriber}" stops pulling from ${handle.name}`,
          );
          break;
        }
        failures++;
        const context = { err: error, consumer: handle.name, failures };
        const message = `pulling from consumer ${handle.name} failed; retrying with backoff`;
        if (failures === 1) this.#logger.warn(context, message);
        else this.#logger.debug(context, message);
        // The consumer may be gone (deleted by an operator, a server that lost its state): a
        // missing consumer answers pulls with "consumer deleted" or not at all.
        try {
          this.#handles[index] = await this.#host.recreate(handle);
        } catch (recreateError) {
          this.#logger.debug(
            { err: recreateError, consumer: handle.name },
            "checking or re-creating the consumer failed",
          );
        }
        await sleep(backoffDelay(failures, LOOP_BACKOFF), { signal: this.#stop.signal }).catch(
          () => {},
        );
      } finally {
        if (iterator) this.#iterators.delete(iterator);
      }
    }
  }

  #accept(handle: ConsumerHandle, msg: JsMsg): void {
    if (this.#stop.signal.aborted) {
      // Pulled while closing: hand it straight back instead of letting AckWait run out.
      msg.nak();
      return;
    }
    const held: Held = {
      handle,
      msg,
      deadline: Date.now() + handle.ackWaitMs - leaseMargin(handle.ackWaitMs),
      keepAlive: undefined,
    };
    if (this.#running.size < this.#concurrency && this.#buffer.length === 0) {
      this.#start(held, false);
      return;
    }
    this.#buffer.push(held);
    if (this.#running.size < this.#concurrency) {
      this.#startBuffered();
      return;
    }
    // More arrived than there are free slots (several consumers pulled at once): hold the
    // lease with working() until a slot frees, so it is not redelivered meanwhile.
    const every = Math.max(50, Math.floor(handle.ackWaitMs / 3));
    held.keepAlive = setInterval(() => {
      held.msg.working();
      held.deadline = Date.now() + handle.ackWaitMs - leaseMargin(handle.ackWaitMs);
    }, every);
  }

  #startBuffered(): void {
    while (this.#buffer.length > 0 && this.#running.size < this.#concurrency) {
      const held = this.#buffer.shift()!;
      clearInterval(held.keepAlive);
      if (Date.now() >= held.deadline) {
        this.#logger.warn(
          { consumer: held.handle.name, seq: held.msg.seq },
          "a buffered delivery lost its lease before a slot freed; the server redelivers it",
        );
        continue;
      }
      this.#start(held, true);
    }
  }

  #start(held: Held, renew: boolean): void {
    const { msg, handle } = held;
    if (renew) {
      msg.working();
      held.deadline = Date.now() + handle.ackWaitMs - leaseMargin(handle.ackWaitMs);
    }
    const type = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
    const decoded = decodeEnvelope(msg.data, {
      subject: msg.subject,
      type,
      id: msg.headers?.get("Nats-Msg-Id") || undefined,
      seq: msg.seq,
    });
    if (handle.kind === "replay" && !this.#types.has(decoded.envelope.type)) {
      // A replay for a type another process of this subscriber handles: let that one take it.
      this.#logger.debug(
        { eventId: decoded.envelope.id, type: decoded.envelope.type },
        "replayed delivery for a type this subscription does not handle; handing it back",
      );
      msg.nak(1_000);
      this.#afterSettle();
      return;
    }
    const run: Running = {
      held,
      controller: new AbortController(),
      envelope: decoded.envelope,
      timer: undefined,
      lost: false,
    };
    this.#running.add(run);
    this.#armLease(run);
    const delivery: Delivery = {
      envelope: decoded.envelope,
      attempt: msg.info.deliveryCount,
      subscriber: this.subscriber,
      signal: run.controller.signal,
      extendLease: async (ms?: number) => this.#extend(run, ms),
    };
    void this.#handle(run, delivery, decoded.error);
  }

  #armLease(run: Running): void {
    clearTimeout(run.timer);
    run.timer = setTimeout(
      () => {
        if (run.lost) return;
        run.lost = true;
        run.controller.abort(new LeaseLostError(this.subscriber, run.envelope.id));
      },
      Math.max(0, run.held.deadline - Date.now()),
    );
  }

  #holds(run: Running): boolean {
    return !run.lost && Date.now() < run.held.deadline;
  }

  async #extend(run: Running, ms: number | undefined): Promise<void> {
    if (!this.#holds(run)) {
      if (!run.lost) {
        run.lost = true;
        run.controller.abort(new LeaseLostError(this.subscriber, run.envelope.id));
      }
      throw new LeaseLostError(this.subscriber, run.envelope.id);
    }
    const ackWait = run.held.handle.ackWaitMs;
    if (ms !== undefined && ms > ackWait && !this.#warnedExtend) {
      this.#warnedExtend = true;
      this.#logger.warn(
        { requestedMs: ms, ackWaitMs: ackWait },
        `extendLease(${ms}) asks for more than the consumer's AckWait (${ackWait} ms); NATS can only ` +
          `restart the full AckWait, so call extendLease more often than every ${ackWait} ms, or raise leaseMs`,
      );
    }
    run.held.msg.working();
    run.held.deadline = Date.now() + ackWait - leaseMargin(ackWait);
    this.#armLease(run);
  }

  async #handle(run: Running, delivery: Delivery, decodeError: Error | undefined): Promise<void> {
    const { msg } = run.held;
    const attempt = delivery.attempt;
    try {
      let failed = decodeError !== undefined;
      let failure: unknown = decodeError;
      if (!failed && attempt > this.#maxAttempts) {
        // Every earlier attempt lost its lease without an outcome (crash or hang): stop here.
        failed = true;
        failure = new DeliveryAbandonedError(this.subscriber, run.envelope.id, attempt - 1);
      } else if (!failed) {
        try {
          await this.#options.handler(delivery);
        } catch (error) {
          failed = true;
          failure = error;
        }
      }
      if (!this.#holds(run))
        return this.#discard(run, "its lease expired (or close handed it back)");
      if (!failed) {
        run.lost = true;
        msg.ack();
        return;
      }
      if (isUnrecoverable(failure) || attempt >= this.#maxAttempts) {
        // The dead letter is written first; only then is the message removed (term).
        await this.#host.deadLetter(
          {
            envelope: run.envelope,
            subscriber: this.subscriber,
            reason: deadLetterReason(failure),
            attempts: attempt,
            error: serializeError(failure),
            failedAt: new Date().toISOString(),
            origin: this.#host.name,
          },
          this.#options.deadLetter,
        );
        if (!this.#holds(run))
          return this.#discard(run, "its lease expired while the dead letter was written");
        run.lost = true;
        msg.term();
        return;
      }
      run.lost = true;
      msg.nak(backoffDelay(attempt, this.#options.backoff));
    } catch (sinkError) {
      // The dead-letter sink failed: keep the delivery and try again later, never drop it.
      this.#logger.error(
        { err: sinkError, eventId: run.envelope.id, subscriber: this.subscriber },
        "dead-letter sink failed; delivery kept for retry",
      );
      if (this.#holds(run)) {
        run.lost = true;
        msg.nak(backoffDelay(attempt, this.#options.backoff));
      }
    } finally {
      clearTimeout(run.timer);
      this.#running.delete(run);
      this.#afterSettle();
    }
  }

  #discard(run: Running, why: string): void {
    this.#logger.warn(
      {
        subscriber: this.subscriber,
        eventId: run.envelope.id,
        attempt: run.held.msg.info.deliveryCount,
      },
      `discarding the outcome of ${run.envelope.id}: ${why} and it may have been redelivered`,
    );
  }

  #afterSettle(): void {
    this.#startBuffered();
    for (const wake of this.#capacityWaiters.splice(0)) wake();
    if (this.#running.size === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /**
   * Stop pulling, hand buffered messages back, wait up to the drain timeout for running handlers,
   * then abort the rest (their deliveries are handed back with `nak()` and their outcome is
   * discarded). Ephemeral subscribers' consumers are removed. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#stop.abort(new TransportClosedError(this.#host.stream));
    for (const wake of this.#capacityWaiters.splice(0)) wake();
    for (const iterator of this.#iterators) void iterator.close().catch(() => {});
    for (const held of this.#buffer.splice(0)) {
      clearInterval(held.keepAlive);
      held.msg.nak();
    }
    if (this.#running.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#idleWaiters.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.#host.drainTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
      for (const run of this.#running) {
        if (run.lost) continue;
        run.lost = true;
        clearTimeout(run.timer);
        run.controller.abort(new TransportClosedError(this.#host.stream));
        run.held.msg.nak();
      }
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(this.#loops),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 2_000);
      }),
    ]);
    clearTimeout(timer);
    if (this.#options.ephemeral) {
      await this.#host.remove(this.#handles).catch((error: unknown) => {
        this.#logger.warn(
          { err: error, subscriber: this.subscriber },
          "removing an ephemeral subscriber's consumers failed; the server removes them once inactive",
        );
      });
    }
    this.#host.forget(this);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
