import { EventValidationError, SwitchyardError } from "@switchyard/event-schema";
import { describeOptionValue } from "@switchyard/transport";

/**
 * The queue file cannot be used: it is not a SQLite database, it is corrupt (found at open or by
 * any later read or write), it cannot be opened (a directory, no permission), or it cannot be
 * written (a read-only file, directory or mount). `cause` holds SQLite's own error.
 */
export class QueueFileError extends SwitchyardError {
  /** The file the queue tried to open. */
  readonly path: string;
  /** What is wrong with it. */
  readonly problem: "corrupt" | "unopenable" | "readonly";

  constructor(
    path: string,
    problem: "corrupt" | "unopenable" | "readonly",
    options?: { cause?: unknown },
  ) {
    const detail = (options?.cause as { message?: string } | undefined)?.message ?? "unknown error";
    super(
      problem === "corrupt"
        ? "QUEUE_FILE_CORRUPT"
        : problem === "readonly"
          ? "QUEUE_FILE_READONLY"
          : "QUEUE_FILE_UNOPENABLE",
      problem === "corrupt"
        ? `The queue file ${path} is not a SQLite database or is corrupt (${detail}). Restore it from a ` +
            `backup, or move it aside so a new, empty queue is created on the next start.`
        : problem === "readonly"
          ? `The queue file ${path} cannot be written (${detail}). Make the file, its directory and ` +
            `its -wal and -shm files writable by this process, or open it read-only for reading only.`
          : `The queue file ${path} cannot be opened (${detail}). Check that the path names a file (not a ` +
            `directory) in a writable directory, or pass another { path }.`,
      options,
    );
    this.path = path;
    this.problem = problem;
  }
}

/**
 * The queue file was deleted (or its directory moved) while this transport had it open. Writes
 * would go to a file no other process can see any more, so the transport refuses them: publish
 * rejects, subscriptions stop claiming (logged), `health()` reports unhealthy. Restore the file
 * from a backup (or let a restart create a new one) and restart every process that had it open.
 */
export class QueueFileMissingError extends SwitchyardError {
  readonly path: string;

  constructor(path: string, options?: { cause?: unknown }) {
    super(
      "QUEUE_FILE_MISSING",
      `The queue file ${path} was deleted while this process had it open; nothing more is written to ` +
        `it. Restore it from a backup (or let a restart create an empty one), then restart every ` +
        `process that uses it.`,
      options,
    );
    this.path = path;
  }
}

/**
 * The path of the queue file now names another file (inode `found`, opened as `opened`): it was
 * replaced (moved over, restored from a backup, recreated) while this transport had the old one
 * open. The transport refuses further work on the old file, as for {@link QueueFileMissingError}.
 */
export class QueueFileReplacedError extends SwitchyardError {
  readonly path: string;
  /** Inode of the file this process opened. */
  readonly opened: number;
  /** Inode the path names now. */
  readonly found: number;

  constructor(path: string, opened: number, found: number, options?: { cause?: unknown }) {
    super(
      "QUEUE_FILE_REPLACED",
      `The queue file ${path} was replaced by another file (inode ${found}, opened as ${opened}) while ` +
        `this process had it open; nothing more is written to the old one. Restart every process ` +
        `that uses the file so they all open the same one.`,
      options,
    );
    this.path = path;
    this.opened = opened;
    this.found = found;
  }
}

/**
 * The queue file was written by a newer version of this package (its `PRAGMA user_version` is
 * higher than any migration known here). Migrations are forward-only, so it is left untouched.
 */
export class SchemaVersionError extends SwitchyardError {
  readonly path: string;
  /** The version found in the file. */
  readonly found: number;
  /** The newest version this package knows. */
  readonly supported: number;

  constructor(path: string, found: number, supported: number) {
    super(
      "QUEUE_SCHEMA_TOO_NEW",
      `The queue file ${path} has schema version ${found}, newer than the ${supported} this version of ` +
        `@switchyard/cross-process-queue supports. Upgrade the package in this process to the version the ` +
        `other processes run; migrations are forward-only, so the file was not changed.`,
    );
    this.path = path;
    this.found = found;
    this.supported = supported;
  }
}

/** An envelope's JSON (payload plus extension attributes) is larger than `maxPayloadBytes`. */
export class PayloadTooLargeError extends SwitchyardError {
  readonly eventId: string;
  readonly eventType: string;
  /** Size of the serialized event in bytes. */
  readonly bytes: number;
  readonly limit: number;

  constructor(eventId: string, eventType: string, bytes: number, limit: number) {
    super(
      "PAYLOAD_TOO_LARGE",
      `Event ${eventId} (${eventType}) is ${bytes} bytes of JSON, over the ${limit}-byte limit of the ` +
        `SQLite transport; nothing of this batch was stored. Put large data in a file and publish its path, ` +
        `or raise { maxPayloadBytes }.`,
    );
    this.eventId = eventId;
    this.eventType = eventType;
    this.bytes = bytes;
    this.limit = limit;
  }
}

/**
 * A row of `events` cannot be turned back into an envelope: its `payload` or `extensions` is not
 * JSON, `extensions` is not an object or names an attribute stored in its own column, or an
 * attribute column holds the wrong type (a BLOB id, …). Such rows are written by other programs or
 * edited by hand, never by `publish()`, which validates first. The delivery is dead-lettered at
 * once (reason `invalid_payload`, as an `EventValidationError` with reason `invalid_envelope`) with
 * this error; the dead letter's stand-in envelope keeps the row's raw columns as its `data`.
 */
export class UndecodableEventError extends EventValidationError {
  /** The row's `seq` in `events`. */
  readonly seq: number;
  /** The event id as stored (or `seq-<seq>` when the id itself is unusable). */
  readonly eventId: string;
  /** The column that could not be decoded: `payload`, `extensions`, `id`, `type`, … */
  readonly column: string;

  constructor(init: {
    seq: number;
    eventId: string;
    eventType: string;
    column: string;
    problem: string;
    receivedType: string;
    cause?: unknown;
  }) {
    super({
      eventType: init.eventType,
      reason: "invalid_envelope",
      issues: [
        {
          path: init.column,
          message: init.problem,
          code: "undecodable",
          received: init.receivedType,
        },
      ],
      receivedType: init.receivedType,
      message:
        `Stored event #${init.seq} (id ${init.eventId}, type ${init.eventType}) cannot be decoded: ` +
        `${init.problem}. It was not written by publish(), which validates; its raw columns are kept ` +
        `as the data of this dead letter. Find the program that wrote the row (its source column), ` +
        `make it publish through the transport, and fix or delete the row before replaying.`,
      cause: init.cause,
    });
    this.seq = init.seq;
    this.eventId = init.eventId;
    this.column = init.column;
  }
}

/**
 * The database stayed locked by other writers beyond every retry (`busy_timeout` plus internal
 * retries with backoff). Surfaces only when some process holds a write transaction for seconds.
 */
export class QueueBusyError extends SwitchyardError {
  readonly path: string;
  readonly waitedMs: number;

  constructor(path: string, waitedMs: number, options?: { cause?: unknown }) {
    super(
      "QUEUE_BUSY",
      `The queue file ${path} stayed locked by another writer for ${waitedMs} ms. Look for a process ` +
        `holding a long write transaction (a sqlite3 shell left in BEGIN, a backup without .backup), ` +
        `or raise { busyTimeoutMs }.`,
      options,
    );
    this.path = path;
    this.waitedMs = waitedMs;
  }
}

/** An option of {@link sqliteTransport} or a subscription has an unusable value. */
export class QueueOptionsError extends SwitchyardError {
  readonly option: string;

  constructor(option: string, value: unknown, expected: string) {
    super(
      "QUEUE_INVALID_OPTION",
      `Option ${option} of the SQLite transport is ${describeOptionValue(value)}; expected ${expected}.`,
    );
    this.option = option;
  }
}

/**
 * An integer option: `fallback` when `value` is undefined, else `value` if it is an integer ≥
 * `min` (NaN, Infinity, fractions, strings refused), else {@link QueueOptionsError} naming `option`.
 */
export function integerOption(
  option: string,
  value: unknown,
  fallback: number,
  min: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min)
    throw new QueueOptionsError(option, value, `an integer ≥ ${min}`);
  return value;
}

/** True for SQLite's "try again later" conditions (another writer holds the lock). */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))
  );
}

/** True for "this is not a (healthy) database file". */
export function isCorrupt(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    typeof code === "string" &&
    (code.startsWith("SQLITE_NOTADB") || code.startsWith("SQLITE_CORRUPT"))
  );
}

/** True for "this file (or its directory, or its mount) cannot be written". */
export function isReadOnly(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_READONLY");
}

// The one closed-error class of every transport lives in the contract.
export { TransportClosedError } from "@switchyard/transport";

/**
 * Reading a queue file that is not there: a read-only open never creates one. Start a daemon (the
 * SQLite transport creates the file on first start), or name the right file.
 */
export class QueueFileNotFoundError extends SwitchyardError {
  readonly path: string;

  constructor(path: string, options?: { cause?: unknown }) {
    super(
      "QUEUE_FILE_NOT_FOUND",
      `No queue file at ${path}. Daemons create it on first start (the SQLite transport opens it); ` +
        `start them, or name the file (e.g. sqlite:data/coordination/coordination.db).`,
      options,
    );
    this.path = path;
  }
}

/**
 * The file is a SQLite database but not a queue yet (schema version 0, no `events` table): no
 * transport has opened it. A read-only open refuses it rather than creating the tables.
 */
export class QueueNotInitialisedError extends SwitchyardError {
  readonly path: string;

  constructor(path: string) {
    super(
      "QUEUE_NOT_INITIALISED",
      `${path} is not a Switchyard queue yet (schema version 0, no events table). Daemons create the ` +
        `tables on first start; check that the path names the right file.`,
    );
    this.path = path;
  }
}

// The contract's class, so `instanceof` holds across packages (one class, one place).
export { InspectorQueryError } from "@switchyard/transport";
