import { SwitchyardError } from "@switchyard/event-schema";
import { describeOptionValue } from "@switchyard/transport";

const list = (servers: readonly string[]) => servers.join(", ");
const detailOf = (cause: unknown) =>
  (cause as { message?: unknown } | null)?.message
    ? String((cause as { message: unknown }).message)
    : String(cause);

/**
 * No NATS server could be reached at the configured addresses (refused, timed out, DNS), or the
 * connection was closed for good. Nothing was published or consumed.
 */
export class NatsConnectionError extends SwitchyardError {
  /** The server addresses tried. */
  readonly servers: readonly string[];

  constructor(servers: readonly string[], options?: { cause?: unknown; closed?: boolean }) {
    const detail = options?.cause === undefined ? "unknown error" : detailOf(options.cause);
    super(
      "NATS_UNREACHABLE",
      options?.closed
        ? `The connection to NATS at ${list(servers)} is closed (${detail}). Create a new transport; ` +
            `if it closed on its own, check the server logs for why it dropped this client.`
        : `Cannot connect to NATS at ${list(servers)} (${detail}). Start a server with JetStream ` +
            `(\`nats-server -js\`), or pass { servers } naming a running one; behind TLS, use tls:// URLs.`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.servers = servers;
  }
}

/**
 * The server rejected this client's credentials (user/password, token, NKey or creds file), or
 * the account lacks permission for a JetStream subject this transport needs.
 */
export class NatsAuthError extends SwitchyardError {
  readonly servers: readonly string[];

  constructor(
    servers: readonly string[],
    kind: "authentication" | "permission",
    options?: { cause?: unknown },
  ) {
    const detail = options?.cause === undefined ? "no detail" : detailOf(options.cause);
    super(
      kind === "authentication" ? "NATS_AUTH_FAILED" : "NATS_PERMISSION_DENIED",
      kind === "authentication"
        ? `NATS at ${list(servers)} rejected this client's credentials (${detail}). Check { user, pass }, ` +
            `{ token } or the { authenticator } (NKey seed or creds file) against the server's authorization config.`
        : `NATS at ${list(servers)} denied a subject this transport needs (${detail}). Allow publish/subscribe ` +
            `on the stream's subjects, "$JS.API.>", "$JS.ACK.>" and "_INBOX.>" for this user.`,
      options,
    );
    this.servers = servers;
  }
}

/** The server answered, but JetStream is not enabled for this account. */
export class JetStreamUnavailableError extends SwitchyardError {
  readonly servers: readonly string[];

  constructor(servers: readonly string[], options?: { cause?: unknown }) {
    super(
      "NATS_JETSTREAM_DISABLED",
      `NATS at ${list(servers)} has no JetStream for this account. Start the server with \`-js\` ` +
        `(or \`jetstream {}\` in its config) and enable it for the account this client uses.`,
      options,
    );
    this.servers = servers;
  }
}

/**
 * The stream exists with a configuration this transport cannot use or change (another retention
 * or storage type), or its subjects overlap another stream's. A transport's `publish()` throws it
 * when the stream's subjects were edited while it ran so that none of them covers the subject it
 * publishes to (the server said so when asked why nobody answered): `subjects` and `subject` then
 * say what the stream stores and what was published; waiting would not change them.
 */
export class NatsStreamConfigError extends SwitchyardError {
  /** The stream name. */
  readonly stream: string;
  /** The stream's subjects as the server reported them, when they are what is wrong. */
  readonly subjects: readonly string[] | undefined;
  /** The subject the transport published to that none of `subjects` covers, if that is what failed. */
  readonly subject: string | undefined;

  /**
   * @param problem - what is wrong with the stream, completing "cannot be set up: …".
   * @param options.uncovered - for a publish the stream's subjects do not cover: the stream's
   *   `subjects` and the `subject` published to; the message is then about that publish.
   */
  constructor(
    stream: string,
    problem: string,
    options?: {
      cause?: unknown;
      uncovered?: { subjects: readonly string[]; subject: string };
    },
  ) {
    const uncovered = options?.uncovered;
    super(
      "NATS_STREAM_CONFLICT",
      uncovered === undefined
        ? `Stream "${stream}" cannot be set up: ${problem}. Pass another { stream } (and { prefix }), or ` +
            `change the existing stream with \`nats stream edit\` / remove it with \`nats stream rm ${stream}\` ` +
            `after checking nothing else uses it.`
        : `Publishing to subject "${uncovered.subject}" failed: stream "${stream}" exists, but ${problem} ` +
            `(its subjects are ${uncovered.subjects.map((s) => JSON.stringify(s)).join(", ") || "none"}), ` +
            `so nothing stores it; its subjects were changed while this transport was running. Add the ` +
            `transport's subjects back with \`nats stream edit ${stream}\`, then publish again (envelopes ` +
            `of the call that were stored are dropped as duplicates).`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.stream = stream;
    this.subjects = uncovered?.subjects;
    this.subject = uncovered?.subject;
  }
}

/**
 * The stream does not exist. A driver opened to read it (`readOnly`) or told not to create it
 * (`options.nats.create: false`) throws this for a stream a target names (a misspelt name would
 * otherwise read as empty); a driver opened to write creates the stream as its transport starts.
 * A transport's `publish()` throws it when its stream was deleted while it ran (the server said
 * so when asked why nobody answered), and `requeue()` likewise: waiting would not bring it back.
 */
export class NatsStreamNotFoundError extends SwitchyardError {
  /** The stream asked for. */
  readonly stream: string;
  /** Streams that do exist on the server (at most the first 50), when they could be listed. */
  readonly existing: readonly string[] | undefined;

  /**
   * @param options.operation - what failed for want of the stream (e.g. `"publish"`), when a
   *   running transport found it gone; the message then says how to bring it back.
   */
  constructor(
    stream: string,
    servers: readonly string[],
    existing?: readonly string[],
    options?: { operation?: string; cause?: unknown },
  ) {
    const shown =
      existing === undefined
        ? ""
        : existing.length === 0
          ? " The server has no streams."
          : ` Streams there: ${existing.join(", ")}.`;
    const operation = options?.operation;
    super(
      "NATS_STREAM_NOT_FOUND",
      operation === undefined
        ? `NATS at ${list(servers)} has no stream ${JSON.stringify(stream)}.${shown} Check the stream ` +
            `name in the target (nats://host:4222/STREAM); daemons create the stream when their ` +
            `transport starts.`
        : `NATS at ${list(servers)} has no stream ${JSON.stringify(stream)}, so ${operation} failed: ` +
            `it was deleted while this transport was running.${shown} Nothing of the failed call is ` +
            `kept. A transport creates its stream when it starts: restart the process (or ` +
            `re-create the stream), then try again; \`nats stream ls\` shows what is there.`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.stream = stream;
    this.existing = existing;
  }
}

/**
 * Part of a batch could not be stored. NATS 2.9 has no multi-message transaction, so the
 * envelopes before the failure may be stored; publishing the whole batch again is safe, because
 * every envelope id is its `Nats-Msg-Id` and the stream drops repeats within its duplicate window.
 */
export class NatsPublishError extends SwitchyardError {
  /** Envelopes acknowledged as stored (new or duplicate) before the failure. */
  readonly stored: number;
  /** Envelopes in the batch. */
  readonly total: number;
  /**
   * Whether the failure is known to be temporary, so publishing the same batch again later is
   * expected to succeed: `true` for {@link NatsPublishUnavailableError}, `false` otherwise.
   */
  readonly retryable: boolean = false;

  constructor(stored: number, total: number, options?: { cause?: unknown }) {
    const detail = options?.cause === undefined ? "unknown error" : detailOf(options.cause);
    super(
      "NATS_PUBLISH_FAILED",
      `Publishing to JetStream failed after ${stored} of ${total} envelopes were stored (${detail}). ` +
        `Publish the same batch again once the server is back: repeated ids are dropped as duplicates.`,
      options,
    );
    this.stored = stored;
    this.total = total;
  }
}

/**
 * JetStream could not store an envelope for as long as the transport kept retrying it
 * (`publishDeadlineMs`): no stream leader answered (an election after a node loss, a cluster
 * without quorum, every server unreachable), or the cluster reported itself unavailable (503).
 * Nothing is wrong with the envelopes: `retryable` is `true`, and publishing the same batch again
 * once the cluster has a leader is safe (repeated ids are dropped as duplicates). A
 * {@link NatsPublishError}, so code that handles that handles this too.
 */
export class NatsPublishUnavailableError extends NatsPublishError {
  override readonly code = "NATS_PUBLISH_UNAVAILABLE";
  override readonly retryable = true;
  /** The stream the envelopes were for. */
  readonly stream: string;
  /** How long the transport retried before giving up, in ms. */
  readonly waitedMs: number;

  constructor(
    stream: string,
    stored: number,
    total: number,
    waitedMs: number,
    options?: { cause?: unknown },
  ) {
    super(stored, total, options);
    const detail = options?.cause === undefined ? "unknown error" : detailOf(options.cause);
    this.message =
      `Publishing to stream ${stream} failed: ${stored} of ${total} envelopes were stored, and no ` +
      `stream leader acknowledged the rest within ${waitedMs} ms of retrying (last error: ${detail}). ` +
      `The stream has no leader: a cluster electing one after losing a node, without quorum (a ` +
      `majority of its replicas down), or unreachable. Publish the same batch again later (repeated ` +
      `ids are dropped as duplicates), raise publishDeadlineMs to ride out longer elections, and ` +
      `check the cluster with \`nats stream info ${stream}\` (cluster.leader, replicas current).`;
    this.stream = stream;
    this.waitedMs = waitedMs;
  }
}

/** Cluster-side JetStream API errors that clear once the stream or meta group has a leader again. */
const unavailableApiCodes = new Set([
  10008, // JetStream system temporarily unavailable (503)
  10009, // JetStream cluster can not handle request (not the leader)
  10118, // stream is offline
]);

/**
 * @internal Whether a publish failed only because no stream leader could take it (yet): no answer
 * in time, no responders on the subject (nats.js reports that as `JetStreamNotEnabled`, but on a
 * publish it means no stream leader is subscribed), or an API error saying the cluster is
 * temporarily unavailable, not the leader, or the stream offline. Other 503s (account without
 * JetStream, store full, limits) do not clear by waiting.
 * Such a publish is retried with the same `Nats-Msg-Id`; anything else is not.
 */
export function isPublishUnavailable(error: unknown): boolean {
  return isUnavailable(error, true);
}

/**
 * @internal Whether a JetStream API request (stream or consumer info, create, update) failed only
 * because the cluster could not answer it yet: no answer in time (the meta or stream leader is
 * being elected), or "temporarily unavailable" / "not the leader" / "stream offline". Unlike a
 * publish, no responders here means no JetStream at all, which waiting does not fix.
 */
export function isApiUnavailable(error: unknown): boolean {
  return isUnavailable(error, false);
}

/**
 * @internal Whether a publish failed because nobody answered its subject (no responders): during
 * an election, or because the stream is gone — which only asking the server tells apart.
 */
export function isNoResponders(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const name = nameOf(e);
    if (name === "NoResponders" || name === "NoRespondersError") return true;
  }
  return false;
}

function isUnavailable(error: unknown, noRespondersToo: boolean): boolean {
  for (let e = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const name = nameOf(e);
    if (name === "TimeoutError") return true;
    if (name === "NoResponders" || name === "NoRespondersError") return noRespondersToo;
    if (name === "JetStreamApiError") {
      const { code } = e as { code?: unknown };
      return typeof code === "number" && unavailableApiCodes.has(code);
    }
    if (name !== "JetStreamNotEnabled" && name !== "RequestError") return false;
  }
  return false;
}

/**
 * A JetStream API request the transport needs (creating or checking the stream or a subscriber's
 * consumers) went unanswered for as long as it kept asking (`publishDeadlineMs`): the cluster had
 * no meta or stream leader to answer — an election after a node loss that did not end, or no
 * quorum. `retryable` is `true`: calling again once the cluster has its leaders is safe.
 */
export class NatsClusterUnavailableError extends SwitchyardError {
  /** Always `true`: nothing is wrong with the request itself. */
  readonly retryable = true;
  /** What the transport was doing, e.g. `create consumer evaluator__TRAINING_COMPLETED__…`. */
  readonly operation: string;
  /** How long it kept asking, in ms. */
  readonly waitedMs: number;

  constructor(
    servers: readonly string[],
    operation: string,
    waitedMs: number,
    options?: { cause?: unknown },
  ) {
    const detail = options?.cause === undefined ? "unknown error" : detailOf(options.cause);
    super(
      "NATS_CLUSTER_UNAVAILABLE",
      `JetStream at ${list(servers)} did not answer "${operation}" within ${waitedMs} ms of asking ` +
        `again (last error: ${detail}). The cluster has no leader for it: an election after a node ` +
        `loss, or a majority of the nodes down (no quorum). Try again once the cluster is healthy ` +
        `(\`curl http://<node>:8222/healthz\`, \`nats server report jetstream\`); raise ` +
        `publishDeadlineMs to wait longer.`,
      options,
    );
    this.operation = operation;
    this.waitedMs = waitedMs;
  }
}

/** An option of {@link natsTransport} or of a subscription has an unusable value. */
export class NatsOptionsError extends SwitchyardError {
  /** The option's name, e.g. `"prefix"`. */
  readonly option: string;

  constructor(option: string, value: unknown, expected: string) {
    super(
      "NATS_INVALID_OPTION",
      `Option ${option} of the NATS transport is ${describeOptionValue(value)}; expected ${expected}.`,
    );
    this.option = option;
  }
}

/**
 * A daemon heartbeat could not be stored in the heartbeat stream (the server did not acknowledge
 * it in time, or refused it). The sink stays usable: the next heartbeat tries again.
 */
export class NatsHeartbeatWriteError extends SwitchyardError {
  /** The daemon whose heartbeat was lost. */
  readonly daemon: string;
  /** The heartbeat stream. */
  readonly stream: string;

  constructor(daemon: string, stream: string, options?: { cause?: unknown }) {
    const detail = options?.cause === undefined ? "unknown error" : detailOf(options.cause);
    super(
      "NATS_HEARTBEAT_WRITE_FAILED",
      `The heartbeat of daemon "${daemon}" was not stored in stream ${stream} (${detail}). The next ` +
        `heartbeat tries again; if this repeats, check the server (\`nats stream info ${stream}\`) and ` +
        `that this user may publish on the stream's subjects.`,
      options,
    );
    this.daemon = daemon;
    this.stream = stream;
  }
}

const nameOf = (error: unknown) => (error as { name?: unknown } | null)?.name;
const messageOf = (error: unknown) => {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === "string" ? message : "";
};

/**
 * Translate an error thrown by the nats.js client into this package's typed errors (by class
 * name, so it works whichever copy of `@nats-io/*` threw it). Switchyard errors pass through;
 * anything unrecognised is returned unchanged.
 */
export function toNatsError(
  error: unknown,
  context: { servers: readonly string[]; phase: "connect" | "request" },
): unknown {
  if (error instanceof SwitchyardError) return error;
  const name = nameOf(error);
  const message = messageOf(error).toLowerCase();
  if (name === "AuthorizationError" || name === "UserAuthenticationExpiredError")
    return new NatsAuthError(context.servers, "authentication", { cause: error });
  if (
    name === "PermissionViolationError" ||
    (name === "ConnectionError" && message.includes("authorization violation"))
  )
    return new NatsAuthError(
      context.servers,
      message.includes("authorization violation") ? "authentication" : "permission",
      { cause: error },
    );
  if (name === "JetStreamNotEnabled")
    return new JetStreamUnavailableError(context.servers, { cause: error });
  if (name === "ClosedConnectionError" || name === "DrainingConnectionError")
    return new NatsConnectionError(context.servers, { cause: error, closed: true });
  if (context.phase === "connect" && (name === "ConnectionError" || name === "TimeoutError"))
    return new NatsConnectionError(context.servers, { cause: error });
  if (
    context.phase === "connect" &&
    ["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ECONNRESET", "ETIMEDOUT"].includes(
      String((error as { code?: unknown } | null)?.code),
    )
  )
    return new NatsConnectionError(context.servers, { cause: error });
  return error;
}

/** An envelope larger than the server's `max_payload`: it can never be published as it is. */
export class NatsPayloadTooLargeError extends SwitchyardError {
  /** The size of the event's message: its JSON body plus its headers (`Nats-Msg-Id` included). */
  readonly bytes: number;
  /** The server's `max_payload`. */
  readonly maxBytes: number;

  constructor(id: string, type: string, bytes: number, maxBytes: number) {
    super(
      "NATS_PAYLOAD_TOO_LARGE",
      `Event ${id} (${type}) is ${bytes} bytes as a NATS message (JSON body and headers), over the NATS server's max_payload of ` +
        `${maxBytes} bytes. Store large artifacts elsewhere and publish a path to them, or raise max_payload.`,
    );
    this.bytes = bytes;
    this.maxBytes = maxBytes;
  }
}

// The one closed-error class of every transport lives in the contract.
export { TransportClosedError } from "@switchyard/transport";
