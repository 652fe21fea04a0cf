import { readFileSync } from "node:fs";
import { credsAuthenticator } from "@nats-io/transport-node";
import {
  type ActionResult,
  type Admin,
  type AuditOptions,
  type DeadLetterFilter,
  type DeadLetterBackoff,
  type Driver,
  type DriverFactory,
  type DriverOpenOptions,
  type DriverTransportOptions,
  type HeartbeatSink,
  type PurgeOptions,
  type ReplayOptions,
  type ReplayResult,
  type Target,
  type Transport,
  UnknownTargetError,
  UnsupportedOperationError,
} from "@switchyard/transport";
import type { NatsAudit } from "./audit";
import { NatsDeadLetterStore, type NatsDeadLetterStoreOptions } from "./dead-letters";
import { NatsOptionsError } from "./errors";
import { type NatsHeartbeatSink, natsHeartbeatSink } from "./heartbeats";
import { NatsInspector, natsCapabilities } from "./inspector";
import { type Session, closeConnection, openSession } from "./jetstream";
import { isStreamName, isSubjectPrefix } from "./names";
import { type NatsTransportOptions, defaultNatsTransportOptions, resolveOptions } from "./options";
import { type NatsTransport, natsTransport } from "./transport";

/**
 * What `natsDriver` takes in `DriverOpenOptions.options.nats`: the credentials and connection
 * settings of {@link NatsTransportOptions}, plus `credsFile` and the dead-letter store's settings.
 */
export interface NatsDriverOptions extends Pick<
  NatsTransportOptions,
  "user" | "pass" | "token" | "authenticator" | "tls" | "connectionOptions" | "requestTimeoutMs"
> {
  /** A `.creds` file (JWT + NKey seed), read when the driver opens. @defaultValue none */
  readonly credsFile?: string;
  /** The dead-letter stream. @defaultValue `${stream}_DLQ` */
  readonly deadLetterStream?: string;
  /** How long a replayer's claim on a dead letter lasts. @defaultValue 60_000 */
  readonly claimMs?: number;
  /** When a dead letter becomes due for replay. @defaultValue { initialMs: 1000, maxMs: 3_600_000 } */
  readonly retryBackoff?: DeadLetterBackoff;
}

const KNOWN_OPTIONS = new Set([
  "user",
  "pass",
  "token",
  "authenticator",
  "tls",
  "connectionOptions",
  "requestTimeoutMs",
  "credsFile",
  "deadLetterStream",
  "claimMs",
  "retryBackoff",
]);

/** Where a `nats:` target points. */
interface NatsLocation {
  readonly servers: readonly string[];
  readonly stream: string;
  readonly prefix: string;
  /** The target without credentials, for messages. */
  readonly display: string;
}

/**
 * @internal Parse `nats://host:4222[,host2:4222…][/STREAM][?prefix=…]`. Credentials in a host
 * (`nats://user:pass@host:4222`) are kept for the connection and removed from `display`.
 */
export function parseNatsTarget(target: Target): NatsLocation {
  const bad = (why: string) => new UnknownTargetError(target.text, ["nats"], why);
  if (!target.rest.startsWith("//"))
    throw bad("a NATS target reads nats://host:4222[,host2:4222]/STREAM?prefix=…");
  const body = target.rest.slice(2);
  const slash = body.indexOf("/");
  const hosts = (slash < 0 ? body : body.slice(0, slash)).split(",").map((h) => h.trim());
  const path = slash < 0 ? "" : body.slice(slash + 1).replace(/\/+$/, "");
  if (hosts.length === 0 || hosts.some((h) => h.length === 0 || /[\s/]/.test(h)))
    throw bad("no server: give host:port after nats://");
  const stream = path === "" ? defaultNatsTransportOptions.stream : decodeURIComponent(path);
  if (!isStreamName(stream))
    throw bad(
      `${JSON.stringify(stream)} is not a stream name (no '.', '*', '>', '/', '\\' or spaces)`,
    );
  const prefix = target.params.prefix ?? defaultNatsTransportOptions.prefix;
  if (!isSubjectPrefix(prefix))
    throw bad(`prefix ${JSON.stringify(prefix)} is not a subject prefix such as switchyard.events`);
  const unknown = Object.keys(target.params).filter((k) => k !== "prefix");
  if (unknown.length > 0) throw bad(`unknown parameter ${unknown.join(", ")} (only prefix)`);
  const servers = hosts.map((h) => `nats://${h}`);
  const shown = hosts.map((h) => h.replace(/^[^@]*@/, "")).join(",");
  return {
    servers,
    stream,
    prefix,
    display: `nats://${shown}/${stream}${target.params.prefix !== undefined ? `?prefix=${prefix}` : ""}`,
  };
}

function driverOptions(options: DriverOpenOptions): NatsDriverOptions {
  const raw = options.options?.nats;
  if (raw === undefined) return {};
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new NatsOptionsError(
      "options.nats",
      raw,
      "an object such as { user, pass } or { credsFile }",
    );
  const unknown = Object.keys(raw).filter((k) => !KNOWN_OPTIONS.has(k));
  if (unknown.length > 0)
    throw new NatsOptionsError(
      `options.nats.${unknown[0]}`,
      (raw as Record<string, unknown>)[unknown[0]!],
      `one of ${[...KNOWN_OPTIONS].join(", ")}`,
    );
  return raw;
}

/**
 * One NATS transport opened from a target: the transport, its heartbeat sink, its dead-letter
 * store, inspector and admin, sharing one connection for the reads (the transport and the
 * heartbeat sink open their own). Use {@link natsDriver}.
 */
class NatsDriver implements Driver {
  readonly scheme = "nats";
  readonly target: string;
  readonly capabilities = natsCapabilities;
  readonly #connection: NatsTransportOptions;
  readonly #open: DriverOpenOptions;
  readonly #session: Promise<Session>;
  readonly #store: NatsDeadLetterStore;
  #transport: NatsTransport | undefined;
  #replayTransport: NatsTransport | undefined;
  #heartbeats: NatsHeartbeatSink | undefined;
  #inspector: NatsInspector | undefined;
  #admin: Admin | undefined;
  #closing: Promise<void> | undefined;

  constructor(
    location: NatsLocation,
    connection: NatsTransportOptions,
    storeOptions: Pick<NatsDeadLetterStoreOptions, "deadLetterStream" | "claimMs" | "retryBackoff">,
    session: Promise<Session>,
    open: DriverOpenOptions,
  ) {
    this.target = location.display;
    this.#connection = connection;
    this.#open = open;
    this.#session = session;
    this.#store = new NatsDeadLetterStore(
      {
        ...connection,
        ...storeOptions,
        readOnly: open.readOnly ?? false,
        ...(open.logger ? { logger: open.logger } : {}),
      },
      { session: () => this.#session },
    );
  }

  #assertOpen(): void {
    if (this.#closing)
      throw new UnsupportedOperationError("nats", "open parts of a closed driver", {
        hint: "Open a new driver.",
      });
  }

  #assertWritable(part: string): void {
    this.#assertOpen();
    if (this.#open.readOnly)
      throw new UnsupportedOperationError("nats", `${part} when opened read-only`, {
        hint: "Open the driver without readOnly to write.",
      });
  }

  transport(options: DriverTransportOptions = {}): Transport {
    this.#assertWritable("open a transport");
    const { deadLetter, logger, drainTimeoutMs, ...rest } = options;
    this.#transport ??= natsTransport({
      ...(rest as NatsTransportOptions),
      ...this.#connection,
      deadLetter: deadLetter ?? this.#store,
      ...((logger ?? this.#open.logger) ? { logger: logger ?? this.#open.logger } : {}),
      ...(drainTimeoutMs !== undefined ? { drainTimeoutMs } : {}),
    });
    return this.#transport;
  }

  heartbeatSink(): HeartbeatSink {
    this.#assertWritable("write heartbeats");
    this.#heartbeats ??= natsHeartbeatSink({
      ...this.#connection,
      ...(this.#open.logger ? { logger: this.#open.logger } : {}),
    });
    return this.#heartbeats;
  }

  deadLetterSink(): NatsDeadLetterStore {
    this.#assertOpen();
    return this.#store;
  }

  inspector(): NatsInspector {
    this.#assertOpen();
    this.#inspector ??= new NatsInspector({
      session: () => this.#session,
      stream: this.#connection.stream!,
      prefix: this.#connection.prefix!,
      servers: resolveOptions(this.#connection).servers,
      requestTimeoutMs: resolveOptions(this.#connection).requestTimeoutMs,
      deadLetters: this.#store,
    });
    return this.#inspector;
  }

  admin(): Admin {
    this.#assertOpen();
    this.#admin ??= {
      replay: (filter, options) => this.#replay(filter, options),
      purge: (filter, options) => this.#purge(filter, options),
      clearPending: async () => {
        throw new UnsupportedOperationError("nats", "clear pending deliveries", {
          hint:
            "JetStream keeps one stream for every subscriber: drop a subscriber's backlog by " +
            "deleting its consumers (nats consumer rm), or let maxAgeMs remove old events.",
        });
      },
      backup: async () => {
        throw new UnsupportedOperationError("nats", "take a backup", {
          hint: "Back the streams up with the nats CLI (nats stream backup) or server snapshots.",
        });
      },
      audit: (options) => this.#audit(options),
    };
    return this.#admin;
  }

  /** The driver's transport, or one opened for admin actions (replay, audit) and closed with it. */
  #writer(): NatsTransport {
    return (
      this.#transport ??
      (this.#replayTransport ??= natsTransport({
        ...this.#connection,
        deadLetter: this.#store,
        ...(this.#open.logger ? { logger: this.#open.logger } : {}),
      }))
    );
  }

  async #replay(filter: DeadLetterFilter, options: ReplayOptions = {}): Promise<ReplayResult> {
    this.#assertOpen();
    if (!options.dryRun) this.#assertWritable("replay dead letters");
    return this.#store.replay(filter, {
      ...options,
      to: async (record) => {
        if (record.origin !== "nats")
          throw new Error(
            `dead letter ${record.id} was written by ${JSON.stringify(record.origin)}, not this ` +
              `NATS transport: replay it through that ${record.origin === "router" ? "router (replayTo)" : "transport"}`,
          );
        await this.#writer().requeue(record.subscriber, record.envelope);
      },
    });
  }

  async #audit(options: AuditOptions = {}): Promise<NatsAudit> {
    this.#assertOpen();
    // Through a transport: reading the consumers needs no write, but the transport it opens may
    // create the stream, and a repair requeues.
    this.#assertWritable("audit consumers");
    return this.#writer().audit(options);
  }

  async #purge(filter: DeadLetterFilter, options: PurgeOptions = {}): Promise<ActionResult> {
    this.#assertOpen();
    if (!options.dryRun) this.#assertWritable("purge dead letters");
    return this.#store.purge(filter, options);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([
        this.#inspector?.close(),
        this.#transport?.close(),
        this.#replayTransport?.close(),
        this.#heartbeats?.close(),
        this.#store.close(),
      ]);
      const session = await this.#session.catch(() => undefined);
      if (session) await closeConnection(session.nc);
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The NATS JetStream driver: opens `nats://host:4222[,host2:4222…][/STREAM][?prefix=…]`
 * (stream `SWITCHYARD` and prefix `switchyard.events` by default) with the credentials in
 * `options.nats` ({@link NatsDriverOptions}). `open` connects (and fails with
 * `NatsConnectionError`, `NatsAuthError` or `JetStreamUnavailableError` when it cannot); a
 * malformed target is an `UnknownTargetError`.
 *
 * - `transport()` → a `natsTransport` whose dead letters go to the {@link NatsDeadLetterStore}
 *   (`${stream}_DLQ`) unless given another sink;
 * - `heartbeatSink()` → `natsHeartbeatSink` (`${stream}_HEARTBEATS`);
 * - `inspector()` → {@link NatsInspector}; `admin()` → replay (exclusive per dead letter, through
 *   `transport.requeue`), purge and `audit` (the transport's ack-floor audit); `clearPending` and
 *   `backup` reject with `UnsupportedOperationError`.
 *
 * Opened `readOnly`, it creates nothing on the server: no stream, no consumer left behind (reads
 * use ordered consumers deleted afterwards); `transport()`, `heartbeatSink()` and the writes of
 * the store and admin throw `UnsupportedOperationError`. `close()` is idempotent.
 *
 * @example
 * ```ts
 * // not runnable
 * import { openDriver } from "@switchyard/transport";
 * await using driver = await openDriver("nats://nats-1:4222,nats-2:4222/SWITCHYARD", {
 *   drivers: [natsDriver],
 *   readOnly: true,
 *   options: { nats: { credsFile: "ops.creds" } },
 * });
 * console.log(await driver.inspector().subscribers());
 * ```
 */
export const natsDriver: DriverFactory = Object.freeze({
  schemes: Object.freeze(["nats"]),
  describe: "nats://host:4222[,host2:4222]/STREAM?prefix=switchyard.events — NATS JetStream",
  async open(target: Target, options: DriverOpenOptions = {}): Promise<Driver> {
    const location = parseNatsTarget(target);
    const { credsFile, deadLetterStream, claimMs, retryBackoff, ...nats } = driverOptions(options);
    let authenticator = nats.authenticator;
    if (credsFile !== undefined) {
      let creds: Uint8Array;
      try {
        creds = readFileSync(credsFile);
      } catch (error) {
        throw new NatsOptionsError(
          "options.nats.credsFile",
          credsFile,
          `a readable .creds file (${(error as Error).message})`,
        );
      }
      authenticator = credsAuthenticator(creds);
    }
    const connection: NatsTransportOptions = {
      ...nats,
      ...(authenticator ? { authenticator } : {}),
      servers: [...location.servers],
      stream: location.stream,
      prefix: location.prefix,
    };
    const resolved = resolveOptions(connection);
    const session = openSession({
      ...resolved,
      connect: { ...resolved.connect, name: "switchyard-driver" },
    });
    await session;
    return new NatsDriver(
      location,
      connection,
      {
        ...(deadLetterStream !== undefined ? { deadLetterStream } : {}),
        ...(claimMs !== undefined ? { claimMs } : {}),
        ...(retryBackoff !== undefined ? { retryBackoff } : {}),
      },
      session,
      options,
    );
  },
});
