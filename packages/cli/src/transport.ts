import type { Transport } from "@switchyard/router";
import { sqliteTransport } from "@switchyard/cross-process-queue";

/**
 * Transports the CLI can reach from outside the daemons' processes, by `--transport` name. Only
 * the SQLite queue for now; a NATS entry (with its own connection options) slots in here.
 */
export const TRANSPORTS = ["sqlite"] as const;

/** A `--transport` name. */
export type TransportKind = (typeof TRANSPORTS)[number];

/** Where a transport lives. */
export interface TransportTarget {
  /** The coordination database (SQLite). */
  readonly path: string;
}

/**
 * Open a transport for one operator action (requeueing dead letters). It subscribes to nothing,
 * never prunes and does not watch the file; close it when done.
 */
export function openTransport(kind: TransportKind, target: TransportTarget): Transport {
  switch (kind) {
    case "sqlite":
      return sqliteTransport({ path: target.path, pruneIntervalMs: 0, watch: false });
  }
}
