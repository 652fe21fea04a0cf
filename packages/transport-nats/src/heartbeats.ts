import {
  DiscardPolicy,
  type JetStreamManager,
  RetentionPolicy,
  type StoredMsg,
  type StreamConfig,
  type StreamInfo,
  StorageType,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { SwitchyardError } from "@switchyard/event-schema";
import { type DaemonContracts, isDaemonContracts } from "@switchyard/transport";
import { type Logger, childLogger, silentLogger } from "@switchyard/transport";
import {
  NatsHeartbeatWriteError,
  NatsOptionsError,
  NatsStreamConfigError,
  TransportClosedError,
  toNatsError,
} from "./errors";
import {
  type Session,
  closeConnection,
  companionReplicas,
  hasCode,
  isStreamNotFound,
  openSession,
} from "./jetstream";
import {
  heartbeatPrefix,
  heartbeatStreamName,
  heartbeatSubject,
  isStreamName,
  subjectCovers,
} from "./names";
import { type NatsTransportOptions, type ResolvedOptions, resolveOptions } from "./options";

/**
 * One daemon heartbeat, as `@switchyard/handler-base`'s `DaemonManager` writes it (its
 * `DaemonHeartbeat`, typed here without depending on handler-base). JSON-safe.
 */
export interface NatsHeartbeat {
  /** The daemon's name: one heartbeat subject per name. */
  readonly daemon: string;
  readonly pid: number;
  readonly host: string;
  /** `"running"`, `"stopped"`, `"crashed"`, `"failed"` … */
  readonly status: string;
  /** JSON-safe health report. */
  readonly health: unknown;
  /** JSON-safe counters. */
  readonly stats: unknown;
  /** Successful restarts after crashes, since the manager started. */
  readonly restarts?: number;
  /** When the daemon's current run started (RFC 3339); `null` when it is not running. */
  readonly startedAt: string | null;
  /** RFC 3339: when this heartbeat was taken. */
  readonly at: string;
  /** What the daemon publishes and consumes (see `DaemonContracts`), when it announces it. */
  readonly contracts?: DaemonContracts;
}

type ConnectionOption =
  | "servers"
  | "user"
  | "pass"
  | "token"
  | "authenticator"
  | "tls"
  | "connectionOptions"
  | "connection"
  | "requestTimeoutMs";

/**
 * Where the heartbeats are: a connection (or how to open one, as for {@link natsTransport}) and
 * the transport's stream and prefix, from which the heartbeat stream and subjects are derived.
 */
export interface NatsHeartbeatLocation extends Pick<NatsTransportOptions, ConnectionOption> {
  /**
   * The event stream's name, as given to `natsTransport`; the heartbeats go to the stream
   * `${stream}_HEARTBEATS` ({@link heartbeatStreamName}). @defaultValue `"SWITCHYARD"`
   */
  readonly stream?: string;
  /**
   * The transport's subject prefix; a daemon's heartbeats go to
   * `${prefix}_heartbeats.<daemon token>` ({@link heartbeatSubject}). @defaultValue `"switchyard.events"`
   */
  readonly prefix?: string;
}

/**
 * Options of {@link natsHeartbeatSink}. `replicas`, when not given, is the event stream's, or 1
 * where that stream does not exist yet.
 */
export interface NatsHeartbeatSinkOptions
  extends NatsHeartbeatLocation, Pick<NatsTransportOptions, "replicas" | "storage" | "logger"> {
  /**
   * The server removes a heartbeat older than this: a daemon that has not written for so long
   * drops out of `switchyard daemons` and `health`. 0 keeps the last heartbeat of every daemon
   * forever; otherwise at least 1_000. Changed on an existing stream only when given.
   * @defaultValue 86_400_000 (24 h)
   */
  readonly maxAgeMs?: number;
}

/** The default `maxAgeMs` of {@link natsHeartbeatSink}: a day. */
export const defaultNatsHeartbeatMaxAgeMs = 86_400_000;

interface ResolvedSinkOptions extends ResolvedOptions {
  readonly maxAgeMs: number;
  readonly maxAgeExplicit: boolean;
  /** The heartbeat stream (derived from `stream`). */
  readonly heartbeatStream: string;
}

function resolveSinkOptions(options: NatsHeartbeatSinkOptions): ResolvedSinkOptions {
  const { maxAgeMs = defaultNatsHeartbeatMaxAgeMs, ...rest } = options;
  const resolved = resolveOptions(rest);
  if (!Number.isInteger(maxAgeMs) || maxAgeMs < 0 || (maxAgeMs > 0 && maxAgeMs < 1_000))
    throw new NatsOptionsError("maxAgeMs", maxAgeMs, "0 (keep forever) or an integer ≥ 1000");
  const heartbeatStream = heartbeatStreamName(resolved.stream);
  if (!isStreamName(heartbeatStream))
    throw new NatsOptionsError(
      "stream",
      resolved.stream,
      `a stream name short enough for the heartbeat stream ${heartbeatStream} (at most 255 characters)`,
    );
  return {
    ...resolved,
    maxAgeMs,
    maxAgeExplicit: options.maxAgeMs !== undefined,
    heartbeatStream,
  };
}

/** nats.js reports a publish nobody answered (no stream stores the subject) as this. */
const isNoStream = (error: unknown) =>
  (error as { name?: unknown } | null)?.name === "JetStreamNotEnabled";

/**
 * Create the heartbeat stream, or make an existing one fit: it must keep limits retention; it
 * gets the subjects of this prefix (several prefixes may share it), one message per subject, and
 * `maxAgeMs` when that was given.
 */
async function ensureHeartbeatStream(
  jsm: JetStreamManager,
  o: ResolvedSinkOptions,
  logger: Logger,
): Promise<void> {
  const name = o.heartbeatStream;
  const subject = `${heartbeatPrefix(o.prefix)}.>`;
  // No Nats-Msg-Id is used; the window only has to be valid (not longer than max_age).
  const age = {
    max_age: nanos(o.maxAgeMs),
    duplicate_window: nanos(Math.min(o.maxAgeMs || 60_000, 60_000)),
  };
  for (let round = 0; round < 3; round++) {
    let info: StreamInfo | undefined;
    try {
      info = await jsm.streams.info(name);
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
    }
    if (!info) {
      try {
        await jsm.streams.add({
          name,
          subjects: [subject],
          retention: RetentionPolicy.Limits,
          storage: o.storage === "file" ? StorageType.File : StorageType.Memory,
          num_replicas: await companionReplicas(jsm, o),
          max_msgs_per_subject: 1,
          discard: DiscardPolicy.Old,
          ...age,
          description:
            "Switchyard daemon heartbeats, the latest per daemon (@switchyard/transport-nats)",
        } as Partial<StreamConfig> as StreamConfig);
        logger.info({ subjects: [subject] }, `created heartbeat stream ${name}`);
        return;
      } catch (error) {
        if (hasCode(error, 10058)) continue; // created concurrently by another process
        if (hasCode(error, 10065))
          throw new NatsStreamConfigError(
            name,
            `its subjects "${subject}" overlap the subjects of another stream`,
            { cause: error },
          );
        throw error;
      }
    }
    const config = info.config;
    if (config.retention !== RetentionPolicy.Limits)
      throw new NatsStreamConfigError(
        name,
        `it exists with retention "${config.retention}", but heartbeats need "limits" (the latest per daemon is kept until maxAgeMs)`,
      );
    const subjects = config.subjects ?? [];
    const covered = subjects.some((s) => subjectCovers(s, heartbeatPrefix(o.prefix)));
    const changes: Partial<StreamConfig> = {
      ...(config.max_msgs_per_subject !== 1 ? { max_msgs_per_subject: 1 } : {}),
      ...(o.maxAgeExplicit && config.max_age !== age.max_age ? age : {}),
    };
    if (covered && Object.keys(changes).length === 0) return;
    try {
      await jsm.streams.update(name, {
        ...config,
        subjects: covered ? subjects : [...subjects, subject],
        ...changes,
      });
      logger.info({ subject, ...changes }, `updated heartbeat stream ${name}`);
      return;
    } catch (error) {
      throw new NatsStreamConfigError(name, `updating it failed (${(error as Error).message})`, {
        cause: error,
      });
    }
  }
  throw new NatsStreamConfigError(name, "it kept changing while being set up");
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A `HeartbeatSink` (`@switchyard/handler-base`) on NATS JetStream, for daemons on several
 * machines: `write(beat)` publishes the heartbeat as JSON to the daemon's subject of a stream
 * of its own, where `switchyard health --transport nats`, `switchyard daemons --transport nats`
 * and {@link listNatsHeartbeats} read the latest per daemon from any machine.
 *
 * - **stream**: `${stream}_HEARTBEATS` on `${prefix}_heartbeats.>` (`SWITCHYARD_HEARTBEATS` on
 *   `switchyard.events_heartbeats.>` by default), beside the event stream and never under
 *   `${prefix}.>`, so no event consumer sees a heartbeat. Limits retention,
 *   `max_msgs_per_subject: 1` (the latest heartbeat per daemon), `max_age` = `maxAgeMs`.
 * - **subjects**: one per daemon name ({@link heartbeatSubject}); like the SQLite table, two
 *   processes running a daemon of the same name share one entry, the last writer's.
 * - **setup**: nothing connects until the first `write()` (or `ready()`), which creates the stream
 *   (idempotent, several processes may race) or adds this prefix's subjects to it.
 * - **a deleted stream**: a later `write()` re-creates it and stores the heartbeat (heartbeats heal
 *   themselves; the other daemons reappear with their next heartbeat).
 * - **errors**: `write()` rejects with `NatsConnectionError`, `NatsAuthError`,
 *   `JetStreamUnavailableError`, `NatsStreamConfigError` or {@link NatsHeartbeatWriteError};
 *   a `DaemonManager` logs them and writes the next heartbeat as usual.
 * - **close**: waits for writes in progress, then closes the connection if the sink opened it.
 *   Idempotent; a `write()` after it rejects with `TransportClosedError`.
 *
 * @example
 * ```ts
 * // not runnable
 * await using heartbeats = natsHeartbeatSink({ servers: "nats://nats:4222" });
 * const manager = new DaemonManager({ daemons, heartbeatSink: heartbeats, heartbeatIntervalMs: 10_000 });
 * ```
 */
export class NatsHeartbeatSink implements AsyncDisposable {
  /** The heartbeat stream (`${stream}_HEARTBEATS`). */
  readonly stream: string;
  /** The transport's subject prefix the heartbeat subjects derive from. */
  readonly prefix: string;
  readonly #options: ResolvedSinkOptions;
  readonly #logger: Logger;
  readonly #writes = new Set<Promise<void>>();
  #session: Promise<Session> | undefined;
  #recreating: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Aborted by `close()`: a connect still under way stops waiting (and its late connection is closed). */
  readonly #stop = new AbortController();

  constructor(options: NatsHeartbeatSinkOptions = {}) {
    this.#options = resolveSinkOptions(options);
    this.stream = this.#options.heartbeatStream;
    this.prefix = this.#options.prefix;
    this.#logger = childLogger(this.#options.logger ?? silentLogger, {
      heartbeats: "nats",
      stream: this.stream,
    });
  }

  /**
   * Connect (once) and create or update the heartbeat stream; `write()` calls it. Call it at
   * startup to fail fast. Rejects with `NatsConnectionError`, `NatsAuthError`,
   * `JetStreamUnavailableError` or `NatsStreamConfigError`; a later call tries again.
   */
  ready(): Promise<void> {
    return this.#ready().then(() => {});
  }

  #ready(): Promise<Session> {
    if (this.#closing) return Promise.reject(this.#closed());
    this.#session ??= openSession(
      this.#options,
      ({ jsm }) => ensureHeartbeatStream(jsm, this.#options, this.#logger),
      this.#stop.signal,
    ).catch((error: unknown) => {
      this.#session = undefined;
      throw error;
    });
    return this.#session;
  }

  #closed(): TransportClosedError {
    return new TransportClosedError(`NATS heartbeat sink on stream ${this.stream}`);
  }

  /** The subject a daemon's heartbeats are stored on. */
  subjectOf(daemon: string): string {
    return heartbeatSubject(this.prefix, daemon);
  }

  /**
   * Store the heartbeat as the daemon's latest (replacing the one before). Resolves once the
   * stream acknowledged it. See the class for the errors.
   */
  write(beat: NatsHeartbeat): Promise<void> {
    if (this.#closing) return Promise.reject(this.#closed());
    if (typeof beat?.daemon !== "string" || beat.daemon.length === 0)
      return Promise.reject(new NatsOptionsError("beat.daemon", beat?.daemon, "a non-empty name"));
    const writing = this.#write(beat);
    this.#writes.add(writing);
    void writing.catch(() => {}).finally(() => this.#writes.delete(writing));
    return writing;
  }

  async #write(beat: NatsHeartbeat): Promise<void> {
    const { js, jsm } = await this.#ready();
    const subject = this.subjectOf(beat.daemon);
    const data = encoder.encode(JSON.stringify(beat));
    const publish = () => js.publish(subject, data, { timeout: this.#options.requestTimeoutMs });
    try {
      await publish();
      return;
    } catch (error) {
      if (!isNoStream(error) || this.#closing) throw this.#writeError(beat, error);
    }
    // Nothing stores the subject: the stream was deleted since it was set up. Heartbeats heal.
    this.#logger.warn(
      { daemon: beat.daemon },
      `heartbeat stream ${this.stream} is gone; re-creating it`,
    );
    this.#recreating ??= ensureHeartbeatStream(jsm, this.#options, this.#logger)
      .catch((error: unknown) => {
        throw toNatsError(error, { servers: this.#options.servers, phase: "request" });
      })
      .finally(() => (this.#recreating = undefined));
    await this.#recreating;
    try {
      await publish();
    } catch (error) {
      throw this.#writeError(beat, error);
    }
  }

  #writeError(beat: NatsHeartbeat, error: unknown): Error {
    const typed = isNoStream(error)
      ? error
      : toNatsError(error, { servers: this.#options.servers, phase: "request" });
    return typed instanceof SwitchyardError
      ? typed
      : new NatsHeartbeatWriteError(beat.daemon, this.stream, { cause: typed });
  }

  /**
   * Wait for the writes in progress, then close the connection if this sink opened it. A connect
   * still under way is not waited for: writes waiting on it reject with `TransportClosedError`,
   * and a connection that completes later is closed. Idempotent: a second call returns the same
   * promise.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort(this.#closed());
      await Promise.allSettled([...this.#writes]);
      const session = await this.#session?.catch(() => undefined);
      if (session && !this.#options.connection) await closeConnection(session.nc);
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Create a {@link NatsHeartbeatSink}: daemon heartbeats on NATS JetStream, for
 * `DaemonManager({ heartbeatSink })`. Nothing connects until the first write (or `ready()`).
 *
 * @example
 * ```ts
 * // not runnable
 * const heartbeats = natsHeartbeatSink({ connection: nc, stream: "SWITCHYARD", prefix: "switchyard.events" });
 * ```
 */
export function natsHeartbeatSink(options: NatsHeartbeatSinkOptions = {}): NatsHeartbeatSink {
  return new NatsHeartbeatSink(options);
}

/**
 * A daemon's latest heartbeat as {@link listNatsHeartbeats} returns it: the shape of the SQLite
 * queue's `HeartbeatInfo`, so the same checks read both.
 */
export interface NatsHeartbeatInfo extends Omit<NatsHeartbeat, "startedAt" | "at"> {
  /** When the daemon's current run started (RFC 3339), when it runs. */
  readonly startedAt?: string;
  /** When the heartbeat was taken (RFC 3339; the stream's time if the heartbeat has none). */
  readonly updatedAt: string;
  /** Milliseconds since `updatedAt`. */
  readonly ageMs: number;
}

/** Options of {@link listNatsHeartbeats}. */
export interface ListNatsHeartbeatsOptions extends NatsHeartbeatLocation {
  /** The time ages are measured from (Unix ms). @defaultValue `Date.now()` */
  readonly now?: number;
}

/** Heartbeat subjects read at once. */
const READ_CONCURRENCY = 16;

/**
 * Every daemon's latest heartbeat in the heartbeat stream of `stream`/`prefix`, sorted by daemon
 * name; `[]` when the stream does not exist (no sink wrote yet). Only reads: the subjects are
 * listed from the stream's info and each one's last message fetched by subject, so no consumer
 * is created. Messages that are not heartbeats are left out. Rejects with
 * `NatsConnectionError`, `NatsAuthError` or `JetStreamUnavailableError`; a connection it
 * opened is closed before it returns.
 *
 * @example
 * ```ts
 * // not runnable
 * for (const beat of await listNatsHeartbeats({ servers: "nats://nats:4222" }))
 *   console.log(beat.daemon, beat.status, `${Math.round(beat.ageMs / 1000)} s ago`);
 * ```
 */
export async function listNatsHeartbeats(
  options: ListNatsHeartbeatsOptions = {},
): Promise<NatsHeartbeatInfo[]> {
  const { now = Date.now(), ...rest } = options;
  const o = resolveSinkOptions(rest);
  const session = await openSession(o);
  try {
    return await readHeartbeats(session.jsm, o, now);
  } catch (error) {
    throw toNatsError(error, { servers: o.servers, phase: "request" });
  } finally {
    if (!o.connection) await closeConnection(session.nc);
  }
}

async function readHeartbeats(
  jsm: JetStreamManager,
  o: ResolvedSinkOptions,
  now: number,
): Promise<NatsHeartbeatInfo[]> {
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(o.heartbeatStream, {
      subjects_filter: `${heartbeatPrefix(o.prefix)}.>`,
    });
  } catch (error) {
    if (isStreamNotFound(error)) return [];
    throw error;
  }
  const subjects = Object.keys(info.state.subjects ?? {}).sort();
  const found: NatsHeartbeatInfo[] = [];
  for (let i = 0; i < subjects.length; i += READ_CONCURRENCY) {
    const batch = subjects.slice(i, i + READ_CONCURRENCY);
    const messages = await Promise.all(
      batch.map((subject) => jsm.streams.getMessage(o.heartbeatStream, { last_by_subj: subject })),
    );
    for (const message of messages) {
      const beat = message ? toHeartbeatInfo(message, now) : undefined;
      if (beat) found.push(beat);
    }
  }
  return found.sort((a, b) => (a.daemon < b.daemon ? -1 : a.daemon > b.daemon ? 1 : 0));
}

function toHeartbeatInfo(message: StoredMsg, now: number): NatsHeartbeatInfo | undefined {
  let value: Partial<Record<keyof NatsHeartbeat, unknown>>;
  try {
    value = JSON.parse(decoder.decode(message.data)) as typeof value;
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || typeof value.daemon !== "string")
    return undefined;
  const at = typeof value.at === "string" ? Date.parse(value.at) : Number.NaN;
  const updated = Number.isNaN(at) ? message.time.getTime() : at;
  const startedAt = typeof value.startedAt === "string" ? value.startedAt : undefined;
  return {
    daemon: value.daemon,
    pid: typeof value.pid === "number" ? value.pid : 0,
    host: typeof value.host === "string" ? value.host : "",
    status: typeof value.status === "string" ? value.status : "unknown",
    health: value.health ?? null,
    stats: value.stats ?? null,
    ...(typeof value.restarts === "number" ? { restarts: value.restarts } : {}),
    ...(isDaemonContracts(value.contracts) ? { contracts: value.contracts } : {}),
    ...(startedAt !== undefined ? { startedAt } : {}),
    updatedAt: new Date(updated).toISOString(),
    ageMs: Math.max(0, now - updated),
  };
}
