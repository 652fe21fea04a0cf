import { sqliteDriver } from "@switchyard/cross-process-queue";
import {
  type DeadLetterSink,
  type Driver,
  type DriverFactory,
  type Logger,
  type Transport,
  openDriver,
} from "@switchyard/transport";

/** Which transport a process opens; passed to children as JSON on the command line. */
export type TransportSpec =
  | { readonly kind: "sqlite"; readonly path: string }
  | {
      readonly kind: "nats";
      readonly url: string;
      readonly stream: string;
      readonly prefix: string;
      /** Write delivery receipts (for the transport's audit). */
      readonly receipts?: boolean;
      /** Stream retention when the stream is created (the transport's default otherwise). */
      readonly retention?: "limits" | "interest";
    };

/** What every torture process may tune on its transport. */
export interface OpenOptions {
  readonly deadLetter?: DeadLetterSink;
  readonly logger?: Logger;
  readonly drainTimeoutMs?: number;
}

/** The part of `@switchyard/transport-nats` the torture suites use (it is loaded lazily). */
interface NatsModule {
  readonly natsDriver: DriverFactory;
}

/**
 * Load the NATS driver, or say why it cannot be used. Loaded lazily, so that the SQLite suites
 * never depend on the NATS package.
 */
export async function loadNats(): Promise<
  { ok: true; module: NatsModule } | { ok: false; reason: string }
> {
  try {
    const module = (await import("@switchyard/transport-nats")) as Partial<NatsModule>;
    if (typeof module.natsDriver?.open !== "function")
      return { ok: false, reason: "@switchyard/transport-nats does not export natsDriver" };
    return { ok: true, module: module as NatsModule };
  } catch (error) {
    return {
      ok: false,
      reason: `@switchyard/transport-nats cannot be loaded: ${(error as Error).message}`,
    };
  }
}

/**
 * The target a spec names, as a user types it: `sqlite:<path>`, or
 * `nats://host:4222[,host2:4222]/<stream>?prefix=<prefix>`.
 */
export function targetOf(spec: TransportSpec): string {
  if (spec.kind === "sqlite") return `sqlite:${spec.path}`;
  const hosts = spec.url
    .split(",")
    .map((url) => url.trim().replace(/^[a-z]+:\/\//i, ""))
    .filter(Boolean);
  return `nats://${hosts.join(",")}/${encodeURIComponent(spec.stream)}?prefix=${encodeURIComponent(spec.prefix)}`;
}

/** What each driver's transport is opened with in a torture run, beyond the spec's target. */
function tuning(spec: TransportSpec): Record<string, unknown> {
  if (spec.kind === "sqlite") return { pruneIntervalMs: 0 }; // never prune during a run
  return {
    // Short pulls: a restarted consumer picks up redeliveries without waiting 10 s on an old pull.
    pullExpiresMs: 2_000,
    ...(spec.receipts ? { receipts: true } : {}),
    ...(spec.retention ? { retention: spec.retention } : {}),
  };
}

/**
 * Open the transport a spec names, through its driver (chosen once, from the spec's target).
 * Closing the transport closes the driver too. SQLite transports never prune during a run.
 */
export async function openTransport(
  spec: TransportSpec,
  options: OpenOptions = {},
): Promise<Transport> {
  const drivers: DriverFactory[] = [sqliteDriver];
  if (spec.kind === "nats") {
    const nats = await loadNats();
    if (!nats.ok) throw new Error(nats.reason);
    drivers.push(nats.module.natsDriver);
  }
  const driver = await openDriver(targetOf(spec), {
    drivers,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const transport = driver.transport({
    ...tuning(spec),
    ...(options.deadLetter ? { deadLetter: options.deadLetter } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.drainTimeoutMs !== undefined ? { drainTimeoutMs: options.drainTimeoutMs } : {}),
  });
  return closingDriver(transport, driver);
}

/**
 * `transport` itself (its class and extra methods stay: `audit()` on NATS), its `close()` now
 * closing the driver after it. The driver's own close calls the transport's original `close()`,
 * put back first, so the two do not wait on each other.
 */
function closingDriver(transport: Transport, driver: Driver): Transport {
  const closeTransport = transport.close.bind(transport);
  let closing: Promise<void> | undefined;
  Object.defineProperty(transport, "close", {
    configurable: true,
    writable: true,
    value: function closeTransportAndDriver(): Promise<void> {
      closing ??= (async () => {
        try {
          await closeTransport();
        } finally {
          Object.defineProperty(transport, "close", {
            configurable: true,
            writable: true,
            value: closeTransport,
          });
          await driver.close();
        }
      })();
      return closing;
    },
  });
  return transport;
}
