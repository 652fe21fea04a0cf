import { SwitchyardError } from "@switchyard/event-schema";

/** The dead-letter table was written by a newer version of this package. */
export class DeadLetterSchemaError extends SwitchyardError {
  constructor(path: string, found: number, supported: number) {
    super(
      "DLQ_SCHEMA_TOO_NEW",
      `The dead-letter table in ${path} has schema version ${found}, newer than this @switchyard/dlq ` +
        `understands (${supported}). Upgrade @switchyard/dlq; do not downgrade a shared database.`,
    );
  }
}

// The contract's class, so `instanceof` holds across packages (one class, one place).
export { UnboundedPurgeError } from "@switchyard/transport";

/** No dead letter has that id. */
export class DeadLetterNotFoundError extends SwitchyardError {
  constructor(id: number) {
    super(
      "DLQ_NOT_FOUND",
      `No dead letter with id ${id}. List them with store.list() (or \`switchyard dlq list\`).`,
    );
  }
}

/** A single-record replay could not claim the record. */
export class ReplayConflictError extends SwitchyardError {
  constructor(id: number, reason: string) {
    super(
      "DLQ_REPLAY_CONFLICT",
      `Dead letter ${id} was not replayed: ${reason}. Check it with store.inspect(${id}).`,
    );
  }
}

/**
 * The dead-letter store's database file cannot be used: it is corrupt or not a SQLite database,
 * it cannot be opened (a directory, a missing directory that cannot be created, no permission),
 * or it cannot be written (a read-only file, directory or mount). `cause` is SQLite's error.
 */
export class DeadLetterStoreFileError extends SwitchyardError {
  /** The database file. */
  readonly path: string;
  readonly problem: "corrupt" | "unopenable" | "readonly";

  constructor(
    path: string,
    problem: "corrupt" | "unopenable" | "readonly",
    options?: { cause?: unknown },
  ) {
    const detail = (options?.cause as { message?: string } | undefined)?.message ?? "unknown error";
    super(
      problem === "corrupt"
        ? "DLQ_FILE_CORRUPT"
        : problem === "readonly"
          ? "DLQ_FILE_READONLY"
          : "DLQ_FILE_UNOPENABLE",
      problem === "corrupt"
        ? `The dead-letter database ${path} is corrupt or not a SQLite database (${detail}). Restore it ` +
            `from a backup (\`switchyard dlq purge\` writes one before each purge), or move it aside.`
        : problem === "readonly"
          ? `The dead-letter database ${path} cannot be written (${detail}). Make the file, its directory ` +
            `and its -wal and -shm files writable by this process.`
          : `The dead-letter database ${path} cannot be opened (${detail}). Check that the path names a ` +
            `file (not a directory) in a directory this process can write, or pass another { path }.`,
      options,
    );
    this.path = path;
    this.problem = problem;
  }
}

/**
 * Another process held the dead-letter database's write lock for longer than the store retries
 * (`busyTimeoutMs` plus 30 s, waiting asynchronously). Look for a process holding a long write
 * transaction on the file.
 */
export class DeadLetterStoreBusyError extends SwitchyardError {
  readonly path: string;
  readonly waitedMs: number;

  constructor(path: string, waitedMs: number, options?: { cause?: unknown }) {
    super(
      "DLQ_BUSY",
      `The dead-letter database ${path} stayed locked by another writer for ${waitedMs} ms. Look for a ` +
        `process holding a long write transaction (a sqlite3 shell left in BEGIN), or raise { busyTimeoutMs }.`,
      options,
    );
    this.path = path;
    this.waitedMs = waitedMs;
  }
}
