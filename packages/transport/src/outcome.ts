import { EventValidationError, type Envelope } from "@switchyard/event-schema";
import { type BackoffOptions, backoffDelay } from "./backoff";
import { type Logger, silentLogger } from "./logger";
import {
  DeliveryAbandonedError,
  HandlerTimeoutError,
  UnrecoverableError,
  serializeError,
} from "./errors";
import type { DeadLetterReason, DeadLetterRecord } from "./transport";

/**
 * Whether retrying cannot help: `UnrecoverableError`, or a payload that fails its schema. Never
 * throws: a thrown value nothing can read (a revoked proxy, a hostile prototype) is an ordinary
 * failure, retried and dead-lettered like any `Error`.
 */
export function isUnrecoverable(error: unknown): boolean {
  return isA(error, UnrecoverableError) || isA(error, EventValidationError);
}

/**
 * Classify why a delivery failed for good. Never throws: a thrown value nothing can read is
 * `"max_attempts"`, as for any other error.
 */
export function deadLetterReason(error: unknown): DeadLetterReason {
  const unrecoverable = isA(error, UnrecoverableError);
  if (unrecoverable && isA(readCause(error), EventValidationError)) return "invalid_payload";
  if (isA(error, EventValidationError)) return "invalid_payload";
  if (unrecoverable) return "unrecoverable";
  if (isA(error, HandlerTimeoutError)) return "timeout";
  return "max_attempts";
}

/**
 * `value instanceof type`, false where asking throws (a revoked proxy, a `getPrototypeOf` trap
 * that throws): what a handler throws is user code, and classifying it must never fail the
 * transport's settle.
 */
function isA<T>(value: unknown, type: abstract new (...args: never[]) => T): value is T {
  try {
    return value instanceof type;
  } catch {
    return false;
  }
}

/** `error.cause`, or `undefined` where reading it throws. */
function readCause(error: Error): unknown {
  try {
    return error.cause;
  } catch {
    return undefined;
  }
}

/** The end of one attempt: the handler returned, or it threw (or could not be run). */
export type AttemptResult =
  { readonly failed: false } | { readonly failed: true; readonly error: unknown };

/** What {@link runAttempt} needs to know about the delivery. */
export interface AttemptInput {
  readonly subscriber: string;
  readonly envelope: Envelope;
  /** 1 for the first attempt. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** Why the stored event could not be decoded, if it could not: the attempt fails with it, unrun. */
  readonly undecodable?: Error | undefined;
}

/** The result of every attempt that succeeded, and the outcome of each: one object each, not one per delivery. */
const SUCCEEDED: AttemptResult = Object.freeze({ failed: false });
const ACK: Outcome = Object.freeze({ kind: "ack" });

/**
 * Run one attempt of a delivery. The handler is not run when the stored event cannot be decoded,
 * or when `attempt > maxAttempts` — every earlier attempt lost its lease without an outcome (the
 * handler crashed its process or hung) — which fails with {@link DeliveryAbandonedError}. The
 * handler's return value is ignored (only a thenable is awaited, by the caller's `handler`).
 */
export async function runAttempt(
  input: AttemptInput,
  handler: () => unknown,
): Promise<AttemptResult> {
  if (input.undecodable) return { failed: true, error: input.undecodable };
  if (input.attempt > input.maxAttempts) {
    return {
      failed: true,
      error: new DeliveryAbandonedError(input.subscriber, input.envelope.id, input.attempt - 1),
    };
  }
  try {
    await handler();
    return SUCCEEDED;
  } catch (error) {
    return { failed: true, error };
  }
}

/** What a transport does with a delivery whose lease it still holds. */
export type Outcome =
  | { readonly kind: "ack" }
  | {
      readonly kind: "retry";
      /** Delay before the next attempt, from {@link backoffDelay}. */
      readonly delayMs: number;
      readonly error: unknown;
    }
  | {
      readonly kind: "dead_letter";
      readonly reason: DeadLetterReason;
      readonly error: unknown;
    };

/** The settings {@link decideOutcome} applies. */
export interface OutcomePolicy {
  readonly maxAttempts: number;
  readonly backoff?: BackoffOptions | undefined;
}

/**
 * A number in [0, 1) fixed by `key` and `attempt` (FNV-1a): the jitter of a delivery's backoff, so
 * that everyone applying the policy to the same delivery — the transport that retries it, the
 * router's trace of it — computes the same delay, while different events still spread out.
 */
export function keyedRandom(key: string, attempt: number): number {
  let h = 0x811c9dc5 ^ attempt;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return (h >>> 0) / 0x1_0000_0000;
}

/**
 * The one outcome rule of every transport, for an attempt whose lease is still held: success →
 * ack; an unrecoverable error (see {@link isUnrecoverable}) or the last allowed attempt → dead
 * letter; anything else → retry after `backoffDelay(attempt)`. With `key` (the envelope id), the
 * jitter is {@link keyedRandom}`(key, attempt)`: the same delivery always gets the same delay.
 *
 * Two cases stay with the transport, which alone knows them: an attempt that lost its lease
 * meanwhile has no outcome (it is discarded), and a delivery requeued while the attempt ran is run
 * again with fresh attempts instead of being dead-lettered. When the dead-letter sink fails, the
 * transport keeps the delivery and retries it after {@link retryDelay}.
 */
export function decideOutcome(
  result: AttemptResult,
  attempt: number,
  policy: OutcomePolicy,
  key?: string,
): Outcome {
  if (!result.failed) return ACK;
  const { error } = result;
  if (isUnrecoverable(error) || attempt >= policy.maxAttempts)
    return { kind: "dead_letter", reason: deadLetterReason(error), error };
  const random = key === undefined ? Math.random : () => keyedRandom(key, attempt);
  return { kind: "retry", delayMs: backoffDelay(attempt, policy.backoff, random), error };
}

/** The delay before attempt `attempt + 1`, when a delivery is kept (e.g. the dead-letter sink failed). */
export function retryDelay(attempt: number, policy: Pick<OutcomePolicy, "backoff">): number {
  return backoffDelay(attempt, policy.backoff);
}

/** What {@link deadLetterRecord} builds a record from. */
export interface DeadLetterInput {
  readonly envelope: Envelope;
  readonly subscriber: string;
  /** The attempts made, the last one included. */
  readonly attempts: number;
  /** The last error. */
  readonly error: unknown;
  /** Where it failed: `"router"` or the transport name. */
  readonly origin: string;
  /** @defaultValue classified from `error` by {@link deadLetterReason} */
  readonly reason?: DeadLetterReason;
  /** @defaultValue now */
  readonly failedAt?: Date;
}

/** Build the {@link DeadLetterRecord} of a delivery that failed for good: the one place it is built. */
export function deadLetterRecord(input: DeadLetterInput): DeadLetterRecord {
  return {
    envelope: input.envelope,
    subscriber: input.subscriber,
    reason: input.reason ?? deadLetterReason(input.error),
    attempts: input.attempts,
    error: serializeError(input.error),
    failedAt: (input.failedAt ?? new Date()).toISOString(),
    origin: input.origin,
  };
}

/** What {@link logDelivery} writes about one delivery. */
export interface DeliveryLogFields {
  readonly transport: string;
  readonly subscriber: string;
  readonly envelope: Envelope;
  readonly attempt: number;
  /** For `settled`: what the policy decided. */
  readonly outcome?: Outcome["kind"];
  /** For a retry: the delay before the next attempt. */
  readonly delayMs?: number;
}

/**
 * The transports' lifecycle line at debug level — `claimed` when an attempt starts, `settled` with
 * the outcome — with the event's trace id, written the same way by every transport. Nothing is
 * built when the logger is the silent default.
 */
export function logDelivery(
  logger: Logger,
  stage: "claimed" | "settled",
  fields: DeliveryLogFields,
): void {
  if (logger === silentLogger) return;
  const { envelope } = fields;
  const traceId = envelope.traceparent?.split("-")[1];
  logger.debug(
    {
      transport: fields.transport,
      subscriber: fields.subscriber,
      eventType: envelope.type,
      eventId: envelope.id,
      attempt: fields.attempt,
      ...(fields.outcome ? { outcome: fields.outcome } : {}),
      ...(fields.delayMs !== undefined ? { delayMs: fields.delayMs } : {}),
      ...(traceId ? { traceId } : {}),
    },
    `${stage} ${envelope.type} ${envelope.id} for ${fields.subscriber}` +
      (fields.outcome ? `: ${fields.outcome}` : ` (attempt ${fields.attempt})`),
  );
}
