import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type Database from "better-sqlite3";
import {
  type Admin,
  type Capabilities,
  type DeadLetterBackoff,
  type DeadLetterSink,
  type Driver,
  type DriverFactory,
  type DriverOpenOptions,
  type DriverTransportOptions,
  type HeartbeatSink,
  type Inspector,
  type Logger,
  type Target,
  type Transport,
  TransportClosedError,
  UnknownTargetError,
  UnsupportedOperationError,
  abortReason,
  silentLogger,
} from "@switchyard/transport";
import { SqliteAdmin } from "./admin";
import { openDatabase } from "./database";
import { SqliteDeadLetterStore } from "./dead-letters";
import { QueueFileNotFoundError } from "./errors";
import { SqliteHeartbeatSink } from "./heartbeats";
import { SQLITE_CAPABILITIES, SqliteInspector } from "./inspector";
import { type SqliteTransport, type SqliteTransportOptions, sqliteTransport } from "./queue";
import { type ReadOnlyFile, openQueueFileReadOnly } from "./read-only";

/** The queue file a `sqlite:` target names (`sqlite:path`, `sqlite://path`, `sqlite:///abs/path`, or a bare path). */
export function sqlitePath(target: Target): string {
  const rest = target.rest.startsWith("//") ? target.rest.slice(2) : target.rest;
  if (rest.trim() === "") throw new UnknownTargetError(target.text, ["sqlite"], "no file named");
  return resolve(rest);
}

/**
 * The SQLite driver: one file holds the events, the deliveries, the heartbeats and the dead
 * letters. Opened `readOnly`, it reads the file without writing anything (a copy when it must, see
 * `openQueueFileReadOnly`) and refuses `transport()`, `heartbeatSink()`, `deadLetterSink()` and the
 * admin's actions with `UnsupportedOperationError`. Opened for writing, the file (and its
 * directories) is created and migrated at open — unless `options.sqlite.create` is `false`, for
 * tools that act on an existing file: then a missing file is a `QueueFileNotFoundError`.
 * `options.sqlite.retryBackoff` is the dead-letter store's (when a dead letter becomes due for
 * replay). Other `options.sqlite` entries are `SqliteTransportOptions` for `transport()` (e.g.
 * `busyTimeoutMs`).
 *
 * @example
 * ```ts
 * // not runnable
 * import { openDriver } from "@switchyard/transport";
 * await using driver = await openDriver("sqlite:data/coordination/coordination.db", { drivers: [sqliteDriver], readOnly: true });
 * console.log(await driver.inspector().subscribers());
 * ```
 */
export const sqliteDriver: DriverFactory = Object.freeze({
  schemes: Object.freeze<string[]>(["sqlite"]),
  describe: "sqlite:<path> — a SQLite queue file (a bare path too)",
  async open(target: Target, options: DriverOpenOptions = {}): Promise<Driver> {
    if (options.signal?.aborted) throw abortReason(options.signal);
    return new SqliteDriver(target, options);
  },
});

/** The {@link Driver} of a SQLite file; made by {@link sqliteDriver}. */
export class SqliteDriver implements Driver {
  readonly scheme = "sqlite";
  readonly target: string;
  readonly capabilities: Capabilities = SQLITE_CAPABILITIES;
  /** The queue file. */
  readonly path: string;
  readonly readOnly: boolean;
  readonly #logger: Logger;
  #extra: Readonly<Record<string, unknown>>;
  /** `options.sqlite.retryBackoff`: the dead-letter store's. */
  readonly #retryBackoff: DeadLetterBackoff | undefined;
  readonly #readFile: ReadOnlyFile | undefined;
  #db: Database.Database | undefined;
  #transport: SqliteTransport | undefined;
  #sink: SqliteHeartbeatSink | undefined;
  #store: SqliteDeadLetterStore | undefined;
  #inspector: SqliteInspector | undefined;
  #admin: SqliteAdmin | undefined;
  #closed: Promise<void> | undefined;

  constructor(target: Target, options: DriverOpenOptions = {}) {
    this.path = sqlitePath(target);
    this.target = `sqlite:${this.path}`;
    this.readOnly = options.readOnly === true;
    this.#logger = options.logger ?? silentLogger;
    this.#extra = (options.options?.sqlite as Record<string, unknown> | undefined) ?? {};
    // Open now, so a missing, foreign or newer file is a typed error from open(), not later.
    const { create, retryBackoff, ...extra } = this.#extra;
    this.#extra = extra;
    this.#retryBackoff = retryBackoff as DeadLetterBackoff | undefined;
    if (this.readOnly) this.#readFile = openQueueFileReadOnly(this.path);
    else if (create === false && !existsSync(this.path))
      throw new QueueFileNotFoundError(this.path);
    else this.#db = openDatabase(this.path);
  }

  #assertOpen(what: string): void {
    if (this.#closed) throw new TransportClosedError(`sqlite driver of ${this.path} (${what})`);
  }

  #writable(operation: string): void {
    this.#assertOpen(operation);
    if (this.readOnly)
      throw new UnsupportedOperationError(
        "sqlite",
        `${operation} when opened read-only (open it without readOnly)`,
      );
  }

  /** The driver's read-write connection (for the inspector and admin). */
  #database(): Database.Database {
    this.#writable("write");
    return this.#db!;
  }

  transport(options: DriverTransportOptions = {}): Transport {
    this.#writable("open a transport");
    if (!this.#transport) {
      const { deadLetter, logger, drainTimeoutMs, ...rest } = options;
      const transportOptions: SqliteTransportOptions = {
        ...this.#extra,
        ...rest,
        path: this.path,
        deadLetter: deadLetter ?? this.deadLetterSink(),
        logger: logger ?? this.#logger,
        ...(drainTimeoutMs !== undefined ? { drainTimeoutMs } : {}),
      };
      this.#transport = sqliteTransport(transportOptions);
    }
    return this.#transport;
  }

  heartbeatSink(): HeartbeatSink {
    this.#writable("write heartbeats");
    return (this.#sink ??= new SqliteHeartbeatSink({ path: this.path, logger: this.#logger }));
  }

  deadLetterSink(): DeadLetterSink {
    return this.#deadLetters();
  }

  #deadLetters(): SqliteDeadLetterStore {
    this.#writable("store dead letters");
    return (this.#store ??= new SqliteDeadLetterStore({
      path: this.path,
      logger: this.#logger,
      ...(this.#retryBackoff ? { retryBackoff: this.#retryBackoff } : {}),
    }));
  }

  inspector(): Inspector {
    this.#assertOpen("inspector");
    if (!this.#inspector) {
      const file = this.#readFile;
      this.#inspector = file
        ? new SqliteInspector(file.db, {
            path: this.path,
            ...(file.snapshot ? { snapshot: file.snapshot } : {}),
          })
        : new SqliteInspector(this.#db!, { path: this.path });
    }
    return this.#inspector;
  }

  admin(): Admin {
    this.#assertOpen("admin");
    return (this.#admin ??= new SqliteAdmin({
      path: this.path,
      database: () => this.#database(),
      deadLetters: () => this.#deadLetters(),
      requeueTransport: () => {
        this.#writable("replay");
        if (this.#transport) return { transport: this.#transport, release: async () => {} };
        // For one action: subscribes to nothing, never prunes, does not watch the file.
        const transport = sqliteTransport({
          ...this.#extra,
          path: this.path,
          pruneIntervalMs: 0,
          watch: false,
          logger: this.#logger,
        });
        return { transport, release: () => transport.close() };
      },
    }));
  }

  /** Close every part opened (transport first, so its last outcomes are saved). Idempotent. */
  close(): Promise<void> {
    return (this.#closed ??= (async () => {
      const errors: unknown[] = [];
      const attempt = async (fn: () => unknown) => {
        try {
          await fn();
        } catch (error) {
          errors.push(error);
        }
      };
      await attempt(() => this.#transport?.close());
      await attempt(() => this.#sink?.close());
      await attempt(() => this.#store?.close());
      await attempt(() => this.#inspector?.close());
      await attempt(() => this.#readFile?.close());
      await attempt(() => this.#db?.open && this.#db.close());
      if (errors.length === 1) throw errors[0];
      if (errors.length > 1)
        throw new AggregateError(errors, `closing the sqlite driver of ${this.path} failed`);
    })());
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
