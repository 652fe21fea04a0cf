import { sqliteDriver } from "@switchyard/cross-process-queue";
import {
  type Driver,
  type DriverFactory,
  type Logger,
  UnknownTargetError,
  openDriver,
  parseTarget,
} from "@switchyard/transport";
import { natsDriver } from "@switchyard/transport-nats";
import { CliError, ExitCode } from "./output";

/**
 * The transports the CLI (and the demo app and torture harness) can open from a target: SQLite
 * (`sqlite:<path>` or a bare path) and NATS JetStream (`nats://host:4222/STREAM?prefix=…`).
 */
export const drivers: readonly DriverFactory[] = [sqliteDriver, natsDriver];

/** Options of {@link openTarget}. */
export interface OpenTargetOptions {
  /**
   * Open for reading only: no transport, no writes; read commands work on a read-only file or
   * account. @defaultValue false
   */
  readonly readOnly?: boolean;
  /** Options of the NATS driver (credentials and connection settings), passed as `options.nats`. */
  readonly nats?: Readonly<Record<string, unknown>>;
  /** Options of the SQLite driver (e.g. `{ create: false }`), passed as `options.sqlite`. */
  readonly sqlite?: Readonly<Record<string, unknown>>;
  /** @defaultValue silent */
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
}

/**
 * Open the driver for a target a user typed, with {@link drivers}: the one place a transport is
 * chosen. Rejects with `UnknownTargetError` (listing the known schemes) for any other scheme.
 *
 * @example
 * ```ts
 * // not runnable
 * import { openTarget } from "@switchyard/cli";
 * await using driver = await openTarget("nats://127.0.0.1:4222/SWITCHYARD", { readOnly: true });
 * console.log(await driver.inspector().subscribers());
 * ```
 */
export async function openTarget(target: string, options: OpenTargetOptions = {}): Promise<Driver> {
  return openDriver(parseTarget(target), {
    drivers,
    readOnly: options.readOnly ?? false,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    options: {
      ...(options.nats ? { nats: options.nats } : {}),
      ...(options.sqlite ? { sqlite: options.sqlite } : {}),
    },
  });
}

/** {@link openTarget} for a command: an unknown scheme is a usage error (exit 2) naming the known ones. */
export async function openCliTarget(
  target: string,
  options: OpenTargetOptions = {},
): Promise<Driver> {
  try {
    return await openTarget(target, options);
  } catch (error) {
    if (error instanceof UnknownTargetError)
      throw new CliError("UNKNOWN_TARGET", `--transport: ${error.message}`, ExitCode.usage, {
        cause: error,
      });
    throw error;
  }
}

/** One line per driver, for help texts. */
export function describeTargets(): string {
  return drivers.map((d) => `  ${d.describe}`).join("\n");
}
