import { sqliteTransport } from "@switchyard/cross-process-queue";
import type { DeadLetterSink, Logger, Transport } from "@switchyard/router";

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

/** The subset of `@switchyard/transport-nats` the torture suites use (it is loaded lazily). */
interface NatsModule {
  natsTransport(options: {
    servers: string;
    stream: string;
    prefix: string;
    deadLetter?: DeadLetterSink;
    logger?: Logger;
    drainTimeoutMs?: number;
    pullExpiresMs?: number;
    receipts?: boolean;
    retention?: "limits" | "interest";
  }): Transport;
}

/**
 * Load `natsTransport`, or say why it cannot be used. Loaded lazily: the package is being
 * written alongside these suites, and the SQLite suites must not depend on it.
 */
export async function loadNats(): Promise<
  { ok: true; module: NatsModule } | { ok: false; reason: string }
> {
  try {
    const module = (await import("@switchyard/transport-nats")) as Partial<NatsModule>;
    if (typeof module.natsTransport !== "function")
      return { ok: false, reason: "@switchyard/transport-nats does not export natsTransport yet" };
    return { ok: true, module: module as NatsModule };
  } catch (error) {
    return {
      ok: false,
      reason: `@switchyard/transport-nats cannot be loaded: ${(error as Error).message}`,
    };
  }
}

/** Open the transport a spec names. SQLite transports never prune during a torture run. */
export async function openTransport(
  spec: TransportSpec,
  options: OpenOptions = {},
): Promise<Transport> {
  const common = {
    ...(options.deadLetter ? { deadLetter: options.deadLetter } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.drainTimeoutMs !== undefined ? { drainTimeoutMs: options.drainTimeoutMs } : {}),
  };
  if (spec.kind === "sqlite") {
    return sqliteTransport({ path: spec.path, pruneIntervalMs: 0, ...common });
  }
  const nats = await loadNats();
  if (!nats.ok) throw new Error(nats.reason);
  return nats.module.natsTransport({
    servers: spec.url,
    stream: spec.stream,
    prefix: spec.prefix,
    // Short pulls: a restarted consumer picks up redeliveries without waiting 10 s on an old pull.
    pullExpiresMs: 2_000,
    ...(spec.receipts ? { receipts: true } : {}),
    ...(spec.retention ? { retention: spec.retention } : {}),
    ...common,
  });
}
