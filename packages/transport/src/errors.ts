import { SwitchyardError } from "@switchyard/event-schema";

/**
 * Throw from a handler when retrying cannot help (a poison event, a permanent precondition).
 * The delivery skips every remaining retry and goes to the dead-letter sink at once.
 *
 * @example
 * ```ts
 * if (!existsSync(event.data.model_path)) throw new UnrecoverableError(`model ${event.data.model_path} is gone`);
 * ```
 */
export class UnrecoverableError extends SwitchyardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("UNRECOVERABLE", message, options);
  }
}

/** A handler attempt ran past its timeout. Its `ctx.signal` was aborted with this error. */
export class HandlerTimeoutError extends SwitchyardError {
  readonly timeoutMs: number;
  readonly subscription: string;

  constructor(subscription: string, timeoutMs: number) {
    super(
      "HANDLER_TIMEOUT",
      `Handler "${subscription}" did not finish within ${timeoutMs} ms; its signal was aborted. ` +
        `Raise timeoutMs for this subscription, or make the handler honour ctx.signal.`,
    );
    this.timeoutMs = timeoutMs;
    this.subscription = subscription;
  }
}

/**
 * A worker tried to ack, fail or extend a delivery whose lease it no longer holds (the lease
 * expired and the delivery was claimed again). The outcome was discarded; the current holder decides.
 */
export class LeaseLostError extends SwitchyardError {
  readonly eventId: string;
  readonly subscriber: string;

  constructor(subscriber: string, eventId: string, options?: { cause?: unknown }) {
    super(
      "LEASE_LOST",
      `Lease lost for event ${eventId} of subscriber "${subscriber}": it expired and the delivery was ` +
        `claimed again. Extend the lease from long handlers (ctx.extendLease) or raise leaseMs.`,
      options,
    );
    this.eventId = eventId;
    this.subscriber = subscriber;
  }
}

/** A replay named a subscription (or subscriber) that does not exist, or that does not take that event type. */
export class UnknownSubscriptionError extends SwitchyardError {
  readonly subscription: string;

  constructor(subscription: string, eventType: string, known: readonly string[]) {
    super(
      "UNKNOWN_SUBSCRIPTION",
      `No subscription "${subscription}" receives ${eventType} here` +
        (known.length ? ` (known: ${known.join(", ")})` : " (none are running)") +
        `. Start the daemon that owns it before replaying, or replay to another subscriber explicitly.`,
    );
    this.subscription = subscription;
  }
}

/**
 * A delivery whose earlier attempts all ended without an outcome — the lease expired each time,
 * because the handler crashed its process or hung. Transports dead-letter it (reason
 * `max_attempts`) instead of running it again, so a crash loop cannot go on forever.
 */
export class DeliveryAbandonedError extends SwitchyardError {
  constructor(subscriber: string, eventId: string, attempts: number) {
    super(
      "DELIVERY_ABANDONED",
      `Event ${eventId} for "${subscriber}" lost its lease ${attempts} times without the handler ` +
        `finishing: it crashes its process or hangs. Inspect the dead letter before replaying it.`,
    );
  }
}

/** A transport lacks an optional capability the call needs (e.g. registering subscribers ahead). */
export class UnsupportedOperationError extends SwitchyardError {
  readonly transport: string;

  /**
   * @param options.hint - What to do instead, appended to the message. @defaultValue the advice
   * for registering subscribers ahead (use memory or SQLite, or start the subscriber first)
   */
  constructor(
    transport: string,
    operation: string,
    options: { readonly hint?: string; readonly cause?: unknown } = {},
  ) {
    super(
      "UNSUPPORTED_OPERATION",
      `The ${transport} transport cannot ${operation}. ` +
        (options.hint ??
          `Use a transport that implements it (memory, SQLite), or start the subscriber before anything publishes.`),
      options.cause !== undefined ? { cause: options.cause } : undefined,
    );
    this.transport = transport;
  }
}

/**
 * A transport (or one of its subscriptions, sinks or inspectors) was closed; it accepts no new
 * work. The one closed-error class of every transport: `code` is `"CLOSED"`, as for a closed router.
 */
export class TransportClosedError extends SwitchyardError {
  constructor(what = "transport", options?: { cause?: unknown }) {
    super(
      "CLOSED",
      `The ${what} is closed: create a new one instead of reusing it after shutdown.`,
      options,
    );
  }
}

/** A plain, JSON-safe description of an error, as stored in dead letters and audit entries. */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
  readonly stack?: string;
}

/**
 * `text` cut to at most `max` code units, saying how many more there were, never in the middle of
 * a surrogate pair: the one way error text is bounded where it is kept or sent (a daemon's
 * recent errors, a dead-letter record too large for one message).
 *
 * @example
 * ```ts
 * import { cutText } from "@switchyard/transport";
 * cutText("x".repeat(5000), 2000); // "xx…x… (3000 more characters)"
 * ```
 */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}… (${text.length - end} more characters)`;
}

/**
 * Turn anything thrown into a {@link SerializedError}. Never throws itself: a value nothing can
 * read (a revoked proxy, a getter that throws, an object neither `JSON.stringify` nor `String`
 * takes) is described as such, so the delivery that threw it can still be retried or dead-lettered.
 */
export function serializeError(error: unknown): SerializedError {
  try {
    if (error instanceof Error) {
      const code = (error as { code?: unknown }).code;
      const stack = error.stack;
      return {
        name: String(error.name),
        message: String(error.message),
        ...(typeof code === "string" ? { code } : {}),
        ...(typeof stack === "string" && stack ? { stack } : {}),
      };
    }
    return { name: "NonError", message: typeof error === "string" ? error : safeStringify(error) };
  } catch (unreadable) {
    let why = "";
    try {
      why = unreadable instanceof Error ? `: ${unreadable.message}` : "";
    } catch {
      // nothing more to say
    }
    return { name: "NonError", message: `a thrown value that could not be read${why}` };
  }
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    try {
      return String(value);
    } catch {
      return Object.prototype.toString.call(value); // no toString of its own: "[object Object]"
    }
  }
}
