import { SwitchyardError } from "@switchyard/event-schema";
import { type SerializedError, serializeError } from "@switchyard/router";
import { cutText } from "@switchyard/transport";

/**
 * A daemon option is out of range or of the wrong type. Thrown by the constructor of
 * `HandlerBase` and `DaemonManager`, before anything starts.
 */
export class DaemonOptionsError extends SwitchyardError {
  /** The offending option, e.g. `"cycleIntervalMs"`. */
  readonly option: string;

  constructor(owner: string, option: string, expected: string, received: unknown) {
    super(
      "INVALID_DAEMON_OPTIONS",
      `${owner}: option ${option} must be ${expected}, got ${show(received)}. Fix the value passed to the constructor.`,
    );
    this.option = option;
  }
}

/**
 * `start()` failed: `onStart()` threw, or a subscription could not be set up (a transport
 * subscription did not become ready). Whatever was set up has been torn down again; the daemon
 * can be started anew. The original failure is the `cause`.
 */
export class DaemonStartError extends SwitchyardError {
  readonly daemon: string;

  constructor(daemon: string, cause: unknown) {
    super(
      "DAEMON_START_FAILED",
      `Daemon "${daemon}" failed to start: ${messageOf(cause)}. It was rolled back; fix the cause and call start() again ` +
        `(a DaemonManager does this with backoff).`,
      { cause },
    );
    this.daemon = daemon;
  }
}

/**
 * A running daemon gave up on itself: its cycle failed `maxConsecutiveCycleFailures` times in a
 * row. It stopped (subscriptions removed) and reported this error to its crash listeners; the
 * last cycle failure is the `cause`.
 */
export class DaemonCrashedError extends SwitchyardError {
  readonly daemon: string;
  readonly consecutiveFailures: number;

  constructor(daemon: string, consecutiveFailures: number, cause: unknown) {
    super(
      "DAEMON_CRASHED",
      `Daemon "${daemon}" crashed: ${consecutiveFailures} consecutive cycles failed, the last with: ${messageOf(cause)}. ` +
        `Look at daemon.recentErrors() for the earlier failures.`,
      { cause },
    );
    this.daemon = daemon;
    this.consecutiveFailures = consecutiveFailures;
  }
}

/** Two daemons with the same name were registered with one `DaemonManager`. */
export class DuplicateDaemonError extends SwitchyardError {
  readonly daemon: string;

  constructor(daemon: string) {
    super(
      "DAEMON_ALREADY_REGISTERED",
      `A daemon named "${daemon}" is already registered with this manager: daemon names must be unique ` +
        `(they name subscriptions and heartbeats).`,
    );
    this.daemon = daemon;
  }
}

/**
 * The `DaemonManager` is not running (never started, or stopped), so it cannot restart one of
 * its daemons. Start them all with `startAll()` (which also works after `stopAll()`).
 */
export class DaemonManagerClosedError extends SwitchyardError {
  constructor(what = "do that") {
    super(
      "DAEMON_MANAGER_CLOSED",
      `The daemon manager is not running (startAll() was not called, or stopAll() was), so it cannot ${what}. ` +
        `Call startAll() first: it also restarts a stopped manager.`,
    );
  }
}

/**
 * A daemon did not stop within the `DaemonManager`'s `stopTimeoutMs` when `restart(name)` asked it
 * to: its `stop()` (or a `start()` still in progress) never settled. The manager gave up on it
 * (status `"failed"`) and did not start it again.
 */
export class DaemonStopTimeoutError extends SwitchyardError {
  readonly daemon: string;
  readonly stopTimeoutMs: number;

  constructor(daemon: string, stopTimeoutMs: number) {
    super(
      "DAEMON_STOP_TIMEOUT",
      `Daemon "${daemon}" did not stop within ${stopTimeoutMs} ms (stopTimeoutMs), so it was not started again; ` +
        `the manager gave up on it (status "failed"). Its stop() must settle: find what it waits for, then ` +
        `restart it again or restart the process.`,
    );
    this.daemon = daemon;
    this.stopTimeoutMs = stopTimeoutMs;
  }
}

/**
 * A daemon did not start within the `DaemonManager`'s `startTimeoutMs`: its `start()` never
 * settled. The manager gave up on it (status `"failed"`, no more restarts), asked it to `stop()`
 * so that it cannot come up unsupervised later, and published `DAEMON_PERMANENTLY_FAILED`.
 * `restart(name)` rejects with it; `startAll()` logs it and goes on with the other daemons.
 */
export class DaemonStartTimeoutError extends SwitchyardError {
  readonly daemon: string;
  readonly startTimeoutMs: number;

  constructor(daemon: string, startTimeoutMs: number) {
    super(
      "DAEMON_START_TIMEOUT",
      `Daemon "${daemon}" did not start within ${startTimeoutMs} ms (startTimeoutMs), so the manager gave up on it ` +
        `(status "failed") and asked it to stop. Its start() must settle: find what it waits for (or raise ` +
        `startTimeoutMs for a daemon that legitimately starts slowly), then restart it.`,
    );
    this.daemon = daemon;
    this.startTimeoutMs = startTimeoutMs;
  }
}

/** A `DaemonManager` was asked about a daemon name it does not know. */
export class UnknownDaemonError extends SwitchyardError {
  readonly daemon: string;

  constructor(daemon: string, known: readonly string[]) {
    super(
      "UNKNOWN_DAEMON",
      `No daemon named ${JSON.stringify(daemon)} is registered with this manager` +
        (known.length > 0 ? ` (registered: ${known.join(", ")})` : " (none are registered)") +
        `. Check the name (\`switchyard daemons\` lists them) or register the daemon first.`,
    );
    this.daemon = daemon;
  }
}

/**
 * An `emit` made while a handler of the daemon was handling a delivery failed (an invalid or
 * oversized payload, the transport refusing the publish, the router closed). The delivery fails
 * with this error, so the router's retry and dead-letter policy or the transport's redelivery
 * apply to it instead of the upstream event being acknowledged with its downstream event lost.
 * The emit's own error is the `cause`.
 */
export class EmitFailedError extends SwitchyardError {
  readonly daemon: string;
  /** The type of the event the daemon tried to emit. */
  readonly emittedType: string;

  constructor(
    daemon: string,
    emittedType: string,
    handled: { readonly type: string; readonly id: string },
    cause: unknown,
  ) {
    super(
      "EMIT_FAILED",
      `Daemon "${daemon}" failed to emit ${emittedType} while handling ${handled.type} ${handled.id}: ` +
        `${messageOf(cause)}. The delivery of ${handled.id} fails so it is retried, then dead-lettered; ` +
        `fix the emitted payload (or the transport) and replay it.`,
      { cause },
    );
    this.daemon = daemon;
    this.emittedType = emittedType;
  }
}

/**
 * The message of anything thrown. Never throws itself: for a value that cannot be read (a revoked
 * `Proxy`, an error whose `message` getter throws) it says so instead.
 */
export function messageOf(error: unknown): string {
  try {
    if (error instanceof Error) return error.message;
    return typeof error === "string" ? error : show(error);
  } catch {
    return UNREADABLE;
  }
}

/** `serializeError` of anything thrown, which never throws itself (see {@link messageOf}). */
export function describeError(error: unknown): SerializedError {
  try {
    return serializeError(error);
  } catch {
    return { name: "UnreadableError", message: messageOf(error) };
  }
}

/**
 * The longest error text (message, name, code) a daemon keeps, in UTF-16 code units: its
 * `recentErrors()` and its health messages (which heartbeats carry to storage) stay small
 * whatever a handler throws. A heartbeat carrying a multi-megabyte message would not fit a NATS
 * message (1 MB by default), and the log would hold 50 of them.
 */
const MAX_ERROR_TEXT = 2000;

/**
 * `text` cut to {@link MAX_ERROR_TEXT} code units, saying how much was cut (never in the middle of
 * a surrogate pair).
 * @internal
 */
export function cutErrorText(text: string): string {
  return cutText(text, MAX_ERROR_TEXT);
}

const UNREADABLE = "(the thrown value could not be read: reading it threw)";

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (
    typeof value === "number" ||
    typeof value === "boolean" ||
    value === undefined ||
    value === null
  ) {
    return String(value);
  }
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return typeof value;
  }
}
