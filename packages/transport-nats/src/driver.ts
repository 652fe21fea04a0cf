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
  TransportClosedError,
  UnknownTargetError,
  UnsupportedOperationError,
  abortReason,
} from "@switchyard/transport";
import type { NatsAudit } from "./audit";
import { NatsDeadLetterStore, type NatsDeadLetterStoreOptions } from "./dead-letters";
import { NatsOptionsError, NatsStreamNotFoundError } from "./errors";
import { type NatsHeartbeatSink, natsHeartbeatSink } from "./heartbeats";
import { NatsInspector, natsCapabilities } from "./inspector";
import { type Session, closeConnection, isStreamNotFound, openSession } from "./jetstream";
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
  /**
   * Whether a driver opened for writing may create the target's stream (its transport does, as
   * it starts). `false` is for tools that act on an existing stream: then a missing stream is a
   * `NatsStreamNotFoundError` from `open`, as it always is when opened `readOnly`.
   * @defaultValue true
   */
  readonly create?: boolean;
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
  "create",
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
  const bad = (why: string) => new UnknownTargetError(redact(target.text), ["nats"], why);
  if (!target.rest.startsWith("//"))
    throw bad("a NATS target reads nats://host:4222[,host2:4222]/STREAM?prefix=…");
  const body = target.rest.slice(2);
  const slash = body.indexOf("/");
  const hosts = (slash < 0 ? body : body.slice(0, slash)).split(",").map((h) => h.trim());
  const path = slash < 0 ? "" : body.slice(slash + 1).replace(/\/+$/, "");
  if (hosts.some((h) => h.length === 0)) throw bad("no server: give host:port after nats://");
  for (const host of hosts) {
    const problem = hostProblem(host);
    if (problem) throw bad(problem);
  }
  let stream = defaultNatsTransportOptions.stream;
  if (path !== "")
    try {
      stream = decodeURIComponent(path);
    } catch {
      throw bad(`the stream name ${JSON.stringify(path)} has a malformed %-escape`);
    }
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
  const shown = hosts.map(withoutCredentials).join(",");
  return {
    servers,
    stream,
    prefix,
    display: `nats://${shown}/${stream}${target.params.prefix !== undefined ? `?prefix=${prefix}` : ""}`,
  };
}

/** `user:pass@host:4222` → `host:4222`. */
const withoutCredentials = (host: string) => host.slice(host.lastIndexOf("@") + 1);

/** The target text with the credentials of its servers replaced by `***`, for messages. */
const redact = (text: string) => text.replace(/([/,])[^/,@]*@/g, "$1***@");

/** What is wrong with one `[user:pass@]host[:port]` of a target, or `undefined`. */
function hostProblem(host: string): string | undefined {
  const shown = withoutCredentials(host);
  const server = `server ${JSON.stringify(shown)}`;
  const match = /^(\[[^\]]*\]|[^:[\]]*)(?::(.*))?$/.exec(shown);
  if (!match) return `${server} is not host:port (an IPv6 address goes in brackets: [::1]:4222)`;
  const [, name, port] = match as unknown as [string, string, string | undefined];
  if (name === "") return `${server} has no host name`;
  if (name.startsWith("[") ? !isIPv6(name.slice(1, -1)) : !/^[A-Za-z0-9._-]+$/.test(name))
    return `${server}: ${JSON.stringify(name)} is not a host name or IP address`;
  if (port !== undefined) {
    if (!/^\d{1,5}$/.test(port)) return `${server}: port ${JSON.stringify(port)} is not a number`;
    if (Number(port) < 1 || Number(port) > 65_535)
      return `${server}: port ${port} is out of range (1–65535)`;
  }
  try {
    new URL(`nats://${host}`);
  } catch {
    return `${server} is not host:port`;
  }
  return undefined;
}

function isIPv6(text: string): boolean {
  try {
    return text.includes(":") && new URL(`http://[${text}]`).hostname !== "";
  } catch {
    return false;
  }
}

/** Reject with `NatsStreamNotFoundError` (naming the streams there are) when `stream` is missing. */
async function assertStream(
  jsm: Session["jsm"],
  stream: string,
  servers: readonly string[],
): Promise<void> {
  try {
    await jsm.streams.info(stream);
    return;
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
  }
  let existing: string[] | undefined = [];
  try {
    for await (const name of jsm.streams.names()) {
      if (existing.length === 50) break;
      existing.push(name);
    }
  } catch {
    existing = undefined; // not allowed to list them: say only what is missing
  }
  throw new NatsStreamNotFoundError(stream, servers, existing?.sort());
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
    // Closed, not unsupported: the same error as a closed SQLite driver or transport.
    if (this.#closing) throw new TransportClosedError(`NATS driver of ${this.target}`);
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
 * malformed target (a bad host or port, a stream name NATS does not allow, a malformed
 * %-escape) is an `UnknownTargetError` saying what is wrong. When `signal` aborts while it
 * connects, `open` rejects at once with the signal's reason and closes what it had opened.
 * Opened `readOnly` (or with `options.nats.create: false`), a stream that does not exist is a
 * `NatsStreamNotFoundError` naming the streams there are; opened for writing, the transport
 * creates it.
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
 * the store and admin throw `UnsupportedOperationError`. `close()` is idempotent and does not
 * wait for a part still connecting (its pending calls reject with `TransportClosedError`); parts
 * asked for after it throw `TransportClosedError`.
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
    if (options.signal?.aborted) throw abortReason(options.signal);
    const location = parseNatsTarget(target);
    const { credsFile, create, deadLetterStream, claimMs, retryBackoff, ...nats } =
      driverOptions(options);
    if (create !== undefined && typeof create !== "boolean")
      throw new NatsOptionsError("options.nats.create", create, "true or false");
    let authenticator = nats.authenticator;
    if (credsFile !== undefined && (typeof credsFile !== "string" || credsFile.trim() === ""))
      throw new NatsOptionsError("options.nats.credsFile", credsFile, "the path of a .creds file");
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
      try {
        authenticator(undefined); // parses the file and its seed; signs nothing without a nonce
      } catch (error) {
        throw new NatsOptionsError(
          "options.nats.credsFile",
          credsFile,
          `a .creds file holding a user JWT and NKey seed (${(error as Error).message})`,
        );
      }
    }
    const connection: NatsTransportOptions = {
      ...nats,
      ...(authenticator ? { authenticator } : {}),
      servers: [...location.servers],
      stream: location.stream,
      prefix: location.prefix,
    };
    const resolved = resolveOptions(connection);
    // Reading (or told not to create): a stream that is not there is an error, not an empty read.
    const mustExist = options.readOnly === true || create === false;
    const session = openSession(
      { ...resolved, connect: { ...resolved.connect, name: "switchyard-driver" } },
      mustExist ? ({ jsm }) => assertStream(jsm, location.stream, resolved.servers) : undefined,
      options.signal,
    );
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
