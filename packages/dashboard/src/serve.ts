import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { Driver, Inspector } from "@switchyard/transport";
import { createDashboard } from "./dashboard";
import { type DashboardOptions, DashboardOptionsError } from "./options";

/** Options of {@link serveDashboard}: the dashboard's own, plus where to listen. */
export interface ServeDashboardOptions extends DashboardOptions {
  /** A driver (reads and actions) or an inspector (read-only). */
  readonly driver: Driver | Inspector;
  /** TCP port; 0 picks a free one. @defaultValue 4000 */
  readonly port?: number;
  /** Interface to bind. Anything but loopback exposes the dashboard to the network. @defaultValue "127.0.0.1" */
  readonly host?: string;
  /** Stops the server when it aborts (as `close()`); aborted while it starts, the start rejects. */
  readonly signal?: AbortSignal;
}

/** A running dashboard server. */
export interface ServedDashboard extends AsyncDisposable {
  /** Where it answers, base path included (e.g. `http://127.0.0.1:4000/`). */
  readonly url: string;
  readonly port: number;
  /** End the live tails and stop listening. Does not close the driver. Idempotent. */
  close(): Promise<void>;
}

/** The defaults of {@link ServeDashboardOptions}. */
export const defaultServeOptions = Object.freeze({ port: 4000, host: "127.0.0.1" });

/**
 * Serve the dashboard over HTTP in Node (with `@hono/node-server`): what `switchyard dashboard`
 * runs. Resolves once it listens; rejects with the signal's reason (and listens no more) when
 * `signal` aborts before that.
 *
 * @example
 * ```ts
 * // not runnable
 * const driver = await openDriver("data/coordination/coordination.db", { drivers: [sqliteDriver] });
 * const served = await serveDashboard({ driver, port: 4000 });
 * console.log(`Dashboard: ${served.url}`);
 * ```
 */
export async function serveDashboard(options: ServeDashboardOptions): Promise<ServedDashboard> {
  const {
    driver,
    port = defaultServeOptions.port,
    host = defaultServeOptions.host,
    signal,
    ...rest
  } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new DashboardOptionsError(
      "port",
      `expected an integer from 0 to 65535; got ${String(port)}.`,
    );
  signal?.throwIfAborted();
  const handler = createDashboard(driver, rest);
  const { server, address } = await new Promise<{
    server: ReturnType<typeof serve>;
    address: AddressInfo;
  }>((resolve, reject) => {
    const s = serve({ fetch: handler, port, hostname: host }, (info) =>
      resolve({ server: s, address: info }),
    );
    s.once("error", reject);
  });
  const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const base = (rest.basePath ?? "/").replace(/\/+$/, "");
  let closing: Promise<void> | undefined;
  const onAbort = () => void close();
  const close = () => {
    signal?.removeEventListener("abort", onAbort);
    closing ??= handler.close().then(
      () =>
        new Promise<void>((resolve, reject) => {
          server.close((error) => (error ? reject(error) : resolve()));
          // Live tails and keep-alive connections would hold close() open.
          (server as { closeAllConnections?: () => void }).closeAllConnections?.();
        }),
    );
    return closing;
  };
  // Aborted while it started to listen: stop, and say so, rather than hand back a server that
  // a listener added now would never close.
  if (signal?.aborted) {
    await close();
    signal.throwIfAborted();
  }
  signal?.addEventListener("abort", onAbort, { once: true });
  return {
    url: `http://${shown}:${address.port}${base}/`,
    port: address.port,
    close,
    [Symbol.asyncDispose]: close,
  };
}
