import { JetStreamApiError } from "@nats-io/jetstream";
import {
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
  createInbox,
  errors,
} from "@nats-io/transport-node";

/** The stream's answer to a stored message. */
export interface PubAck {
  readonly stream: string;
  readonly seq: number;
  readonly duplicate: boolean;
}

interface Waiting {
  readonly resolve: (ack: PubAck) => void;
  readonly reject: (error: unknown) => void;
  readonly subject: string;
  readonly deadline: number;
}

/** How often expired waits are looked for: a timeout fires at most this much late. */
const SWEEP_MS = 20;
const decoder = new TextDecoder();
/** nats.js's error code for "JetStream not enabled for account". */
const NOT_ENABLED_FOR_ACCOUNT = 10039;

/**
 * JetStream publishes that wait for the stream's ack on one reply subscription of their own.
 *
 * `js.publish()` goes through `nc.request()`, which builds per message a request token, two
 * errors with stack traces (for async traces), a timeout error and a timer, and copies its
 * options twice: about a third of the client's CPU per publish with 64 in flight. Here a publish
 * is a map entry and one `nc.publish()` with a reply subject `<inbox>.<n>`; one timer, running
 * while anything waits, expires what waited too long. The outcomes are those of `js.publish()`
 * (errors told apart by name, as `isPublishUnavailable` does): the ack, nats.js's
 * `TimeoutError`, `JetStreamNotEnabled` caused by no responders, a `JetStreamApiError`, or
 * `ClosedConnectionError` / `DrainingConnectionError`.
 */
export class AckWaiter {
  readonly #nc: NatsConnection;
  /** `<inbox>.`: a reply subject is this and a number. */
  readonly #prefix: string;
  readonly #waiting = new Map<number, Waiting>();
  #sub: Subscription | undefined;
  #next = 0;
  #sweep: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(nc: NatsConnection, inboxPrefix: string | undefined) {
    this.#nc = nc;
    this.#prefix = `${createInbox(inboxPrefix)}.`;
  }

  /** Messages waiting for their ack (for tests). */
  get waiting(): number {
    return this.#waiting.size;
  }

  /**
   * Publish `data` with `headers` (which carry `Nats-Msg-Id`) to `subject`, resolving with the
   * stream's ack, or rejecting as `js.publish()` would; `timeoutMs` bounds the wait.
   */
  publish(subject: string, data: Uint8Array, headers: MsgHdrs, timeoutMs: number): Promise<PubAck> {
    const nc = this.#nc;
    if (nc.isClosed()) return Promise.reject(new errors.ClosedConnectionError());
    if (nc.isDraining() || this.#closed)
      return Promise.reject(new errors.DrainingConnectionError());
    if (!this.#sub) {
      try {
        this.#sub = nc.subscribe(`${this.#prefix}*`, {
          callback: (error, msg) => this.#onReply(error, msg),
        });
      } catch (error) {
        return Promise.reject(error);
      }
      const sub = this.#sub;
      void sub.closed.then(() => {
        if (this.#sub === sub) this.#rejectAll();
      });
    }
    const id = ++this.#next;
    return new Promise<PubAck>((resolve, reject) => {
      try {
        nc.publish(subject, data, { reply: this.#prefix + id, headers });
      } catch (error) {
        reject(error);
        return;
      }
      this.#waiting.set(id, { resolve, reject, subject, deadline: Date.now() + timeoutMs });
      this.#sweep ??= setInterval(() => this.#expire(), SWEEP_MS).unref();
    });
  }

  /** Stop taking publishes; the reply subscription ends once nothing waits any more. */
  close(): void {
    this.#closed = true;
    if (this.#waiting.size === 0) this.#unsubscribe();
  }

  #onReply(error: Error | null, msg: Msg): void {
    if (error) {
      // The server refused the reply subscription (permissions): nothing will be answered.
      this.#rejectAll(error);
      return;
    }
    const id = Number(msg.subject.slice(this.#prefix.length));
    const waiting = this.#waiting.get(id);
    if (!waiting) return; // expired already
    this.#settled(id);
    try {
      waiting.resolve(parseAck(msg, waiting.subject));
    } catch (failure) {
      waiting.reject(failure);
    }
  }

  #settled(id: number): void {
    this.#waiting.delete(id);
    if (this.#waiting.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
      if (this.#closed) this.#unsubscribe();
    }
  }

  #expire(): void {
    const now = Date.now();
    for (const [id, waiting] of this.#waiting) {
      if (now < waiting.deadline) continue;
      this.#settled(id);
      waiting.reject(new errors.TimeoutError());
    }
  }

  /** The reply subscription ended (the connection closed): nothing that waits gets an answer. */
  #rejectAll(error?: Error): void {
    this.#sub = undefined;
    const failure =
      error ??
      (this.#nc.isClosed() ? new errors.ClosedConnectionError() : new errors.TimeoutError());
    for (const [id, waiting] of [...this.#waiting]) {
      this.#settled(id);
      waiting.reject(failure);
    }
  }

  #unsubscribe(): void {
    const sub = this.#sub;
    this.#sub = undefined;
    try {
      sub?.unsubscribe();
    } catch {
      // the connection is closed: the subscription went with it
    }
  }
}

/** The ack, or the error nats.js's `js.publish()` throws for this answer. */
function parseAck(msg: Msg, subject: string): PubAck {
  if (msg.data.length === 0 && msg.headers?.code === 503) {
    // No stream leader listens on the subject; nats.js reports it as JetStream not enabled.
    throw jetStreamNotEnabled(
      "jetstream is not enabled",
      new errors.RequestError(`no responders: '${subject}'`, {
        cause: new errors.NoRespondersError(subject),
      }),
    );
  }
  const answer = JSON.parse(decoder.decode(msg.data)) as {
    stream?: unknown;
    seq?: unknown;
    duplicate?: unknown;
    error?: { code: number; err_code: number; description: string };
  };
  if (answer.error) {
    const apiError = new JetStreamApiError(answer.error);
    if (answer.error.err_code === NOT_ENABLED_FOR_ACCOUNT)
      throw jetStreamNotEnabled(apiError.message, apiError);
    throw apiError;
  }
  if (typeof answer.stream !== "string" || answer.stream === "" || typeof answer.seq !== "number")
    throw new Error("invalid ack response");
  return { stream: answer.stream, seq: answer.seq, duplicate: answer.duplicate === true };
}

/** nats.js's JetStreamNotEnabled (not exported; errors are told apart by name). */
function jetStreamNotEnabled(message: string, cause: unknown): Error {
  return Object.assign(new Error(message, { cause }), { name: "JetStreamNotEnabled" });
}
