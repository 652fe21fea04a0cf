import type { Authenticator, NatsConnection, NodeConnectionOptions } from "@nats-io/transport-node";
import type { DeadLetterSink, Logger } from "@switchyard/transport";
import { NatsOptionsError } from "./errors";
import { isStreamName, isSubjectPrefix } from "./names";

/**
 * Options of {@link natsTransport}. Every field is optional: without any, the transport connects
 * to `nats://127.0.0.1:4222` and uses the stream `SWITCHYARD` on subjects `switchyard.events.>`.
 */
export interface NatsTransportOptions {
  /**
   * Server URLs; several for a cluster (the client fails over between them).
   * @defaultValue `"nats://127.0.0.1:4222"`
   */
  readonly servers?: string | readonly string[];
  /** User name for user/password authentication. @defaultValue none */
  readonly user?: string;
  /** Password for user/password authentication. @defaultValue none */
  readonly pass?: string;
  /** Token authentication. @defaultValue none */
  readonly token?: string;
  /**
   * NKey, JWT or creds-file authentication, e.g. `credsAuthenticator(readFileSync("app.creds"))`
   * or `nkeyAuthenticator(seed)` from `@nats-io/transport-node`. @defaultValue none
   */
  readonly authenticator?: Authenticator | Authenticator[];
  /** TLS (client certificate, CA) for `tls://` servers. @defaultValue none (plain TCP) */
  readonly tls?: NodeConnectionOptions["tls"];
  /**
   * Any other nats.js connection option (`name`, `timeout`, `reconnectTimeWait`, `pingInterval`
   * …). The fields above take precedence. This transport sets `maxReconnectAttempts: -1`
   * (reconnect forever) and `timeout: 5_000` (initial connect) unless given here.
   * @defaultValue `{}`
   */
  readonly connectionOptions?: NodeConnectionOptions;
  /**
   * An open connection to use instead of connecting; it is not closed by `close()` (its owner
   * closes it). The connection fields above are then ignored. @defaultValue none
   */
  readonly connection?: NatsConnection;
  /** JetStream stream holding the events; created, or updated to include the subjects. @defaultValue `"SWITCHYARD"` */
  readonly stream?: string;
  /** Subject prefix: an event of type `T` is stored on `${prefix}.T`. @defaultValue `"switchyard.events"` */
  readonly prefix?: string;
  /**
   * Stream replicas (1, 3 or 5 in a cluster). Used when the stream is created; an existing
   * stream is changed only when this is given explicitly (likewise `maxAgeMs` and
   * `duplicateWindowMs`), so a process with defaults never downgrades an operator's settings.
   * @defaultValue 1
   */
  readonly replicas?: number;
  /** Stream storage. @defaultValue `"file"` */
  readonly storage?: "file" | "memory";
  /**
   * Stream retention, used when the stream is created. `"limits"` keeps events until
   * `maxAgeMs` removes them, delivered or not, so an event a crash orphaned is still in the stream
   * for {@link NatsTransport.audit} to find and hand back. `"interest"` removes an event once
   * every consumer's ack floor passed it: smaller, but nats-server 2.9 can move an ack floor past
   * deliveries that were never acknowledged after a server crash, and the events are then gone
   * for good (see the README's "Crash safety"). An existing stream keeps its retention (it cannot
   * change); when this option is given and differs, the transport refuses to start.
   * @defaultValue `"limits"`
   */
  readonly retention?: "interest" | "limits";
  /**
   * Write a receipt (the envelope id, on `${prefix}_receipts.<subscriber>`, into the stream
   * `${stream}_RECEIPTS`) after every acknowledged delivery, so that {@link NatsTransport.audit}
   * can name each event a subscriber's ack floor passed without it being handled. One small
   * fire-and-forget publish per handled event. @defaultValue false
   */
  readonly receipts?: boolean;
  /** Remove events older than this, delivered or not (0 = never). @defaultValue 0 */
  readonly maxAgeMs?: number;
  /** Publish dedup window: a repeated envelope id within it is a duplicate. @defaultValue 120_000 */
  readonly duplicateWindowMs?: number;
  /** Dead-letter sink for subscriptions that name none. @defaultValue kept in `transport.deadLetters` (memory) and logged */
  readonly deadLetter?: DeadLetterSink;
  /** pino-compatible logger. @defaultValue silent */
  readonly logger?: Logger;
  /** How long `close()` waits for in-flight handlers before aborting them and handing their deliveries back. @defaultValue 10_000 */
  readonly drainTimeoutMs?: number;
  /** Envelopes of one batch awaiting their publish ack at once. @defaultValue 64 */
  readonly publishConcurrency?: number;
  /** How long one pull request waits on the server for messages (at least 1_000). @defaultValue 10_000 */
  readonly pullExpiresMs?: number;
  /** Timeout of JetStream API requests and publish acks. @defaultValue 5_000 */
  readonly requestTimeoutMs?: number;
  /**
   * How long publishing one envelope keeps retrying (same `Nats-Msg-Id`, so a repeat is never
   * stored twice) while no stream leader takes it: no ack in time, no responders, or the cluster
   * reporting itself unavailable — a leader election after a node loss, a reconnect, a cluster
   * without quorum. Each attempt waits up to a quarter of `requestTimeoutMs` (at least 1 s).
   * Past this, `publish` rejects with `NatsPublishUnavailableError` (`retryable: true`); its
   * `{ signal }` ends the retrying early. 0 = one attempt of `requestTimeoutMs`, no retry. The
   * default covers a JetStream election (nats-server 2.9: 4–9 s) plus a client reconnect.
   * `ready()` and `subscribe()` wait as long for a cluster to answer the requests that create the
   * stream and consumers, then reject with `NatsClusterUnavailableError`.
   * @defaultValue 30_000
   */
  readonly publishDeadlineMs?: number;
  /**
   * Safety net for ephemeral subscribers: the server removes their consumers after this long
   * without a pull (a process that died without closing). Keep it above the longest handler run
   * of an ephemeral subscription (a busy subscription does not pull). At least 3 × `pullExpiresMs`.
   * @defaultValue 300_000
   */
  readonly ephemeralInactiveMs?: number;
  /**
   * Deliveries of one consumer (subscriber and event type) that may be unacknowledged at once
   * across all processes, including deliveries waiting for a retry; when reached, the server
   * holds back new ones. @defaultValue 10_000
   */
  readonly maxAckPending?: number;
}

type Defaults = Required<
  Pick<
    NatsTransportOptions,
    | "stream"
    | "prefix"
    | "replicas"
    | "storage"
    | "retention"
    | "maxAgeMs"
    | "duplicateWindowMs"
    | "drainTimeoutMs"
    | "publishConcurrency"
    | "pullExpiresMs"
    | "requestTimeoutMs"
    | "publishDeadlineMs"
    | "ephemeralInactiveMs"
    | "maxAckPending"
    | "receipts"
  >
>;

/** The defaults of {@link NatsTransportOptions}. */
export const defaultNatsTransportOptions: Readonly<Defaults> = Object.freeze({
  stream: "SWITCHYARD",
  prefix: "switchyard.events",
  replicas: 1,
  storage: "file",
  retention: "limits",
  maxAgeMs: 0,
  duplicateWindowMs: 120_000,
  drainTimeoutMs: 10_000,
  publishConcurrency: 64,
  pullExpiresMs: 10_000,
  requestTimeoutMs: 5_000,
  publishDeadlineMs: 30_000,
  ephemeralInactiveMs: 300_000,
  maxAckPending: 10_000,
  receipts: false,
});

/** @internal Options after defaults, as the transport uses them. */
export type ResolvedOptions = Defaults & {
  readonly servers: readonly string[];
  readonly connect: NodeConnectionOptions;
  readonly connection: NatsConnection | undefined;
  readonly deadLetter: DeadLetterSink | undefined;
  readonly logger: Logger | undefined;
  /** Stream settings the caller gave explicitly (only those are changed on an existing stream). */
  readonly explicit: ReadonlySet<"replicas" | "maxAgeMs" | "duplicateWindowMs" | "retention">;
};

const definedOnly = <T extends object>(value: T): Partial<T> =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;

/** @internal Spread the defaults, then validate with a message naming the option. */
export function resolveOptions(options: NatsTransportOptions): ResolvedOptions {
  const merged = { ...defaultNatsTransportOptions, ...definedOnly(options) };
  const servers = toServers(options.servers ?? options.connectionOptions?.servers);
  const connect: NodeConnectionOptions = {
    maxReconnectAttempts: -1,
    timeout: 5_000,
    name: "switchyard",
    ...options.connectionOptions,
    servers: [...servers],
    ...definedOnly({
      user: options.user,
      pass: options.pass,
      token: options.token,
      authenticator: options.authenticator,
      tls: options.tls,
    }),
  };
  const resolved: ResolvedOptions = {
    stream: merged.stream,
    prefix: merged.prefix,
    replicas: merged.replicas,
    storage: merged.storage,
    retention: merged.retention,
    maxAgeMs: merged.maxAgeMs,
    duplicateWindowMs: merged.duplicateWindowMs,
    drainTimeoutMs: merged.drainTimeoutMs,
    publishConcurrency: merged.publishConcurrency,
    pullExpiresMs: merged.pullExpiresMs,
    requestTimeoutMs: merged.requestTimeoutMs,
    publishDeadlineMs: merged.publishDeadlineMs,
    ephemeralInactiveMs: merged.ephemeralInactiveMs,
    maxAckPending: merged.maxAckPending,
    receipts: merged.receipts,
    servers,
    connect,
    connection: options.connection,
    deadLetter: options.deadLetter,
    logger: options.logger,
    explicit: new Set(
      (["replicas", "maxAgeMs", "duplicateWindowMs", "retention"] as const).filter(
        (k) => options[k] !== undefined,
      ),
    ),
  };
  validate(resolved);
  return resolved;
}

function toServers(servers: string | readonly string[] | undefined): readonly string[] {
  if (servers === undefined) return ["nats://127.0.0.1:4222"];
  const list = typeof servers === "string" ? [servers] : [...servers];
  if (list.length === 0 || list.some((s) => typeof s !== "string" || s.trim() === ""))
    throw new NatsOptionsError("servers", servers, 'one or more URLs such as "nats://host:4222"');
  return list;
}

const isInt = (v: unknown, min: number) => typeof v === "number" && Number.isInteger(v) && v >= min;

function validate(o: ResolvedOptions): void {
  if (typeof o.stream !== "string" || !isStreamName(o.stream))
    throw new NatsOptionsError(
      "stream",
      o.stream,
      "a stream name without '.', '*', '>', '/', '\\' or whitespace",
    );
  if (typeof o.prefix !== "string" || !isSubjectPrefix(o.prefix))
    throw new NatsOptionsError(
      "prefix",
      o.prefix,
      'dot-separated subject tokens without wildcards or whitespace, e.g. "switchyard.events"',
    );
  if (![1, 2, 3, 4, 5].includes(o.replicas))
    throw new NatsOptionsError("replicas", o.replicas, "an integer from 1 to 5");
  if (o.storage !== "file" && o.storage !== "memory")
    throw new NatsOptionsError("storage", o.storage, '"file" or "memory"');
  if (o.retention !== "interest" && o.retention !== "limits")
    throw new NatsOptionsError("retention", o.retention, '"interest" or "limits"');
  if (!isInt(o.maxAgeMs, 0))
    throw new NatsOptionsError("maxAgeMs", o.maxAgeMs, "an integer ≥ 0 (0 = keep forever)");
  if (!isInt(o.duplicateWindowMs, 1))
    throw new NatsOptionsError("duplicateWindowMs", o.duplicateWindowMs, "an integer ≥ 1");
  if (o.maxAgeMs > 0 && o.duplicateWindowMs > o.maxAgeMs)
    throw new NatsOptionsError(
      "duplicateWindowMs",
      o.duplicateWindowMs,
      `at most maxAgeMs (${o.maxAgeMs}); NATS rejects a longer window`,
    );
  if (!isInt(o.drainTimeoutMs, 0))
    throw new NatsOptionsError("drainTimeoutMs", o.drainTimeoutMs, "an integer ≥ 0");
  if (!isInt(o.publishConcurrency, 1))
    throw new NatsOptionsError("publishConcurrency", o.publishConcurrency, "an integer ≥ 1");
  if (!isInt(o.pullExpiresMs, 1_000))
    throw new NatsOptionsError(
      "pullExpiresMs",
      o.pullExpiresMs,
      "an integer ≥ 1000 (NATS minimum)",
    );
  if (!isInt(o.requestTimeoutMs, 1))
    throw new NatsOptionsError("requestTimeoutMs", o.requestTimeoutMs, "an integer ≥ 1");
  if (!isInt(o.publishDeadlineMs, 0))
    throw new NatsOptionsError(
      "publishDeadlineMs",
      o.publishDeadlineMs,
      "an integer ≥ 0 (0 = no retry)",
    );
  if (typeof o.receipts !== "boolean")
    throw new NatsOptionsError("receipts", o.receipts, "true or false");
  if (!isInt(o.maxAckPending, 1))
    throw new NatsOptionsError("maxAckPending", o.maxAckPending, "an integer ≥ 1");
  if (!isInt(o.ephemeralInactiveMs, 3 * o.pullExpiresMs))
    throw new NatsOptionsError(
      "ephemeralInactiveMs",
      o.ephemeralInactiveMs,
      `an integer ≥ 3 × pullExpiresMs (${3 * o.pullExpiresMs})`,
    );
}
