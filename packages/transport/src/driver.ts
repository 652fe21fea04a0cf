import { SwitchyardError } from "@switchyard/event-schema";
import type { HeartbeatSink } from "./heartbeat";
import type { Admin, Capabilities, Inspector } from "./inspector";
import type { Logger } from "./logger";
import type { DeadLetterSink, Transport } from "./transport";

/**
 * A transport target as a user types it, parsed: `sqlite:data/coordination/coordination.db`
 * (a bare path means SQLite), `nats://host:4222,host2:4222/STREAM?prefix=switchyard.events`,
 * `memory:name`.
 */
export interface Target {
  /** The scheme without the colon: `"sqlite"`, `"nats"`, `"memory"`. */
  readonly scheme: string;
  /** The text as given. */
  readonly text: string;
  /** What follows `scheme:` (`//host:4222/STREAM?…` for NATS, the path for SQLite). */
  readonly rest: string;
  /** The query parameters, for schemes that take them. */
  readonly params: Readonly<Record<string, string>>;
}

/** The target text is not `scheme:…` of a known driver. A usage error: it lists the known schemes. */
export class UnknownTargetError extends SwitchyardError {
  readonly target: string;
  readonly known: readonly string[];

  constructor(target: string, known: readonly string[], why?: string) {
    super(
      "UNKNOWN_TARGET",
      `${JSON.stringify(target)} is not a transport target${why ? ` (${why})` : ""}. Known: ` +
        `${known.map((s) => `${s}:…`).join(", ")} — e.g. sqlite:data/coordination/coordination.db ` +
        `(a bare path means SQLite) or nats://127.0.0.1:4222/SWITCHYARD?prefix=switchyard.events.`,
    );
    this.target = target;
    this.known = known;
  }
}

const SCHEME = /^([a-z][a-z0-9+.-]*):(.*)$/is;

/**
 * Parse a target. Anything without a `scheme:` prefix is a SQLite path (a Windows drive letter
 * such as `C:\…` is a path too).
 */
export function parseTarget(text: string): Target {
  const trimmed = text.trim();
  const match = SCHEME.exec(trimmed);
  if (!match || /^[a-z]:[\\/]/i.test(trimmed))
    return { scheme: "sqlite", text, rest: trimmed, params: {} };
  const scheme = match[1]!.toLowerCase();
  let rest = match[2]!;
  const params: Record<string, string> = {};
  const q = rest.indexOf("?");
  if (q >= 0) {
    for (const [key, value] of new URLSearchParams(rest.slice(q + 1))) params[key] = value;
    rest = rest.slice(0, q);
  }
  return { scheme, text, rest, params };
}

/** What every driver's `open` accepts. Drivers document their own extra `options`. */
export interface DriverOpenOptions {
  /**
   * Open for reading only (inspector; no transport, sink or admin writes): read commands work
   * on a read-only file or account. @defaultValue false
   */
  readonly readOnly?: boolean;
  readonly logger?: Logger;
  /** Driver-specific options (e.g. NATS credentials), by scheme. */
  readonly options?: Readonly<Record<string, unknown>>;
  readonly signal?: AbortSignal;
}

/**
 * One transport, opened from a target: the transport itself, its heartbeat sink, its dead-letter
 * store where it has one, and its inspector and admin. Each part is created on first use and
 * closed by {@link Driver.close}.
 */
export interface Driver extends AsyncDisposable {
  /** The scheme it was opened for. */
  readonly scheme: string;
  /** The target, for messages (credentials removed). */
  readonly target: string;
  readonly capabilities: Capabilities;
  /**
   * The transport, created on the first call with these options (later calls return the same
   * one). Throws `UnsupportedOperationError` when the driver was opened `readOnly`.
   */
  transport(options?: DriverTransportOptions): Transport;
  /** Where a `DaemonManager` writes heartbeats that {@link Inspector.heartbeats} reads. */
  heartbeatSink(): HeartbeatSink;
  /** The durable dead-letter sink, where the transport has one. */
  deadLetterSink(): DeadLetterSink | undefined;
  /** The read side. */
  inspector(): Inspector;
  /** Operator actions. */
  admin(): Admin;
  /** Close every part opened. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link Driver.transport}; drivers accept their transport's own options too. */
export interface DriverTransportOptions {
  /** Where exhausted deliveries go. @defaultValue the driver's own durable sink, where it has one */
  readonly deadLetter?: DeadLetterSink;
  readonly logger?: Logger;
  /** How long `close()` waits for in-flight handlers. @defaultValue the transport's */
  readonly drainTimeoutMs?: number;
  /** Transport-specific options (e.g. NATS `replicas`, `retention`), passed through. */
  readonly [option: string]: unknown;
}

/** A driver implementation, registered by scheme. */
export interface DriverFactory {
  /** The schemes it answers (`["sqlite"]`). */
  readonly schemes: readonly string[];
  /** One line for help texts, e.g. `"sqlite:<path> — a SQLite file (a bare path too)"`. */
  readonly describe: string;
  open(target: Target, options: DriverOpenOptions): Promise<Driver>;
}

/**
 * Open the driver for a target: the one place a transport is chosen from what a user typed.
 * Rejects with {@link UnknownTargetError} (listing the known schemes) for any other scheme.
 *
 * @example
 * ```ts
 * // not runnable
 * import { openDriver } from "@switchyard/transport";
 * import { sqliteDriver } from "@switchyard/cross-process-queue";
 * import { natsDriver } from "@switchyard/transport-nats";
 * await using driver = await openDriver("nats://127.0.0.1:4222/SWITCHYARD", { drivers: [sqliteDriver, natsDriver] });
 * console.log(await driver.inspector().subscribers());
 * ```
 */
export async function openDriver(
  target: string | Target,
  options: DriverOpenOptions & { readonly drivers: readonly DriverFactory[] },
): Promise<Driver> {
  const parsed = typeof target === "string" ? parseTarget(target) : target;
  const factory = options.drivers.find((d) => d.schemes.includes(parsed.scheme));
  if (!factory)
    throw new UnknownTargetError(
      parsed.text,
      options.drivers.flatMap((d) => d.schemes),
      `no driver for ${parsed.scheme}:`,
    );
  return factory.open(parsed, options);
}
