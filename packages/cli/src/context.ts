import { resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULT_PATH } from "@switchyard/cross-process-queue";
import { type AnyCatalog, SwitchyardError } from "@switchyard/event-schema";
import {
  type Capabilities,
  type Driver,
  UnsupportedOperationError,
  parseTarget,
} from "@switchyard/transport";
import { BUILT_IN_CATALOG_NOTE, resolveCatalog } from "./catalog-option";
import { type OpenTargetOptions, describeTargets, openCliTarget } from "./drivers";
import { CliError, ExitCode, Output, terminalOf } from "./output";
import { WATCH_OPTION_HELP, watch, watchIntervalOf } from "./watch";

/** The environment variable naming the coordination database (a SQLite path). */
export const DB_ENV = "SWITCHYARD_DB";
/** The environment variable naming the transport target (`sqlite:…`, a path, `nats://…`). */
export const TRANSPORT_ENV = "SWITCHYARD_TRANSPORT";

/** Options of {@link createProgram}: where output goes and what the commands read, for embedding and tests. */
export interface ProgramOptions {
  /** Normal output. @defaultValue `process.stdout.write` */
  readonly stdout?: (text: string) => void;
  /** Errors, progress and notes. @defaultValue `process.stderr.write` */
  readonly stderr?: (text: string) => void;
  /** Environment variables (`SWITCHYARD_TRANSPORT`, `SWITCHYARD_DB`). @defaultValue `process.env` */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * Stops commands, in addition to SIGINT. A long-running one (`events tail`, `--watch`,
   * `metrics`, `dashboard`) ends normally (exit 0, or its last verdict); a command it stops before
   * it finished, or one started with the signal already aborted (which then runs nothing), exits
   * {@link ExitCode.interrupted} (130).
   */
  readonly signal?: AbortSignal;
  /** Receives the exit code of the command that ran. @defaultValue sets `process.exitCode` */
  readonly onExit?: (code: number) => void;
}

/** What every command action gets from the program. */
export interface Runtime {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly signal: AbortSignal | undefined;
  readonly exit: (code: number) => void;
}

const defaultStdout = (text: string): void => void process.stdout.write(text);

export function runtimeOf(options: ProgramOptions): Runtime {
  return {
    stdout: options.stdout ?? defaultStdout,
    stderr: options.stderr ?? ((text) => void process.stderr.write(text)),
    env: options.env ?? process.env,
    signal: options.signal,
    exit:
      options.onExit ??
      ((code) => {
        process.exitCode = code;
      }),
  };
}

/** Options every command accepts. */
export interface CommonOptions {
  readonly transport?: string;
  readonly db?: string;
  /** `--nats-creds <file>`: a `.creds` file for a `nats://` target. */
  readonly natsCreds?: string;
  readonly json?: boolean;
  /** `--catalog <module>`, on the commands that read a catalog (see `withCatalogOption`). */
  readonly catalog?: string;
}

/** Add `--transport <target>`, `--db <path>` and `--json` to a command. */
export function withCommonOptions(command: Command): Command {
  return command
    .option(
      "--transport <target>",
      `where the events are: sqlite:<path> (or a bare path), nats://host:4222/STREAM?prefix=<subject> ` +
        `(default: $${TRANSPORT_ENV}, else --db)`,
    )
    .option(
      "--db <path>",
      `a SQLite coordination database, same as --transport sqlite:<path> (default: $${DB_ENV}, else ${DEFAULT_PATH})`,
    )
    .option(
      "--nats-creds <file>",
      "NATS credentials file (.creds) for a nats:// target (user:pass@host in the URL works too)",
    )
    .option("--json", "machine-readable output (one JSON document)");
}

/** Help text listing the transport targets, for the program's help. */
export function targetsHelp(): string {
  return describeTargets();
}

/**
 * The target a command works on: `--transport`, else `--db` (a SQLite path), else
 * `$SWITCHYARD_TRANSPORT`, else `$SWITCHYARD_DB`, else the default database path. A SQLite path
 * is made absolute (messages name the file). Both `--transport` and `--db` is a usage error.
 */
export function resolveTarget(
  opts: { readonly transport?: string; readonly db?: string },
  env: Readonly<Record<string, string | undefined>>,
): string {
  if (opts.transport !== undefined && opts.db !== undefined)
    throw new CliError(
      "USAGE",
      `Give either --transport ${opts.transport} or --db ${opts.db}, not both (--db <path> is --transport sqlite:<path>).`,
    );
  // Where the target came from, for messages: `--db ""` is not "--transport sqlite:".
  const [chosen, from] =
    opts.transport !== undefined
      ? [opts.transport, "--transport"]
      : opts.db !== undefined
        ? [`sqlite:${opts.db}`, "--db"]
        : env[TRANSPORT_ENV]
          ? [env[TRANSPORT_ENV], `$${TRANSPORT_ENV}`]
          : env[DB_ENV]
            ? [`sqlite:${env[DB_ENV]}`, `$${DB_ENV}`]
            : [`sqlite:${DEFAULT_PATH}`, "the default"];
  if (chosen.trim() === "") throw new CliError("USAGE", `${from}: the target is empty.`);
  const target = parseTarget(chosen);
  if (target.scheme !== "sqlite") return chosen;
  if (target.rest.trim() === "")
    throw new CliError(
      "USAGE",
      from === "--transport"
        ? `--transport ${chosen}: no SQLite file after "sqlite:".`
        : `${from}: the SQLite file path is empty.`,
    );
  return `sqlite:${resolve(target.rest)}`;
}

/** The name of a capability, for messages. */
const CAPABILITY: Record<keyof Capabilities, string> = {
  deliveries: "per-subscriber delivery detail",
  history: "delivery history",
  heartbeats: "stored daemon heartbeats",
  deadLetters: "stored dead letters",
  replay: "dead-letter replay",
  purge: "dead-letter purge",
  clearPending: "clearing the backlog",
  backup: "backups",
  audit: "ack floor to audit",
  expiredLeases: "stated counting of expired leases",
};

/**
 * Refuse `what` (a command, "dlq replay") when the driver lacks `capability`: a usage error
 * (exit 2) saying it is not supported on this transport, never an odd failure later.
 */
export function requireCapability(
  driver: Driver,
  capability: keyof Capabilities,
  what: string,
): void {
  if (!driver.capabilities[capability]) throw unsupported(driver, what, capability);
}

/**
 * Refuse a `--subscriber` the transport does not know, as every command taking one does: an
 * `UNKNOWN_SUBSCRIBER` error pointing at `switchyard subscribers`, instead of an empty answer that
 * reads like "nothing pending" or "nothing to clear".
 */
export function requireSubscriber(
  subscribers: readonly { readonly subscriber: string }[],
  name: string | undefined,
): void {
  if (name !== undefined && !subscribers.some((s) => s.subscriber === name))
    throw new CliError(
      "UNKNOWN_SUBSCRIBER",
      `No subscriber named "${name}"; see \`switchyard subscribers\`.`,
    );
}

/** The error {@link requireCapability} throws. */
export function unsupported(
  driver: Driver,
  what: string,
  capability?: keyof Capabilities,
): CliError {
  return new CliError(
    "UNSUPPORTED",
    `${what} is not supported on ${driver.scheme}` +
      (capability ? ` (the ${driver.scheme} driver has no ${CAPABILITY[capability]}).` : "."),
  );
}

/** What a command body receives. */
export interface ActionContext<O> {
  /** Positional arguments, in order, as their parsers left them (`undefined` when optional and absent). */
  readonly args: readonly unknown[];
  readonly opts: O;
  readonly out: Output;
  /** The transport target this command works on (see {@link resolveTarget}). */
  readonly target: string;
  readonly runtime: Runtime;
  /**
   * The catalog in use: `--catalog`'s module on commands that take it, else the pipeline catalog.
   * Reading it when the built-in pipeline catalog is in use (no `--catalog`, no
   * `$SWITCHYARD_CATALOG`) prints a note saying so on stderr, once; so read it only when the
   * command needs it.
   */
  readonly catalog: AnyCatalog;
  /**
   * Open the target's driver (once; closed when the command ends). Read commands pass
   * `readOnly: true`. A target that cannot be opened is an input error (exit 2).
   */
  readonly driver: (options: { readonly readOnly: boolean }) => Promise<Driver>;
}

/**
 * Wrap a command body: parse its options, give it an {@link Output} and the target's driver,
 * turn any error into a message without a stack trace, and report the exit code it returns.
 */
export function action<O extends CommonOptions>(
  runtime: Runtime,
  body: (context: ActionContext<O>) => number | Promise<number>,
): (...params: unknown[]) => Promise<void> {
  return async (...params) => {
    const command = params[params.length - 1] as Command;
    const opts = command.opts<O>();
    // Colour and width for a terminal only: an embedding program or a test gets plain, uncut text.
    const noColor = command.optsWithGlobals<{ color?: boolean }>().color === false;
    const style =
      runtime.stdout === defaultStdout
        ? terminalOf({ env: runtime.env, ...(noColor ? { color: false } : {}) })
        : {};
    const out = new Output(opts.json === true, runtime.stdout, runtime.stderr, style);
    const args = params.slice(0, -2);
    let opened: Promise<Driver> | undefined;
    let code: number;
    // Stopped before it started: nothing runs, not even the target's resolution.
    if (runtime.signal?.aborted) {
      runtime.exit(out.error(interrupted("before it started")));
      return;
    }
    try {
      const target = resolveTarget(opts, runtime.env);
      // resolve("") is the working directory: "cannot read /home/me (EISDIR)" would not say why.
      if (opts.natsCreds !== undefined && opts.natsCreds.trim() === "")
        throw new CliError("USAGE", "--nats-creds: the file path is empty.");
      const resolved = await resolveCatalog(command, opts.catalog, runtime.env);
      let noted = !resolved.builtIn;
      code = await body({
        args,
        opts,
        out,
        target,
        runtime,
        // A getter: only a command that reads the catalog says that it is the built-in one.
        get catalog() {
          if (!noted) {
            noted = true;
            out.note(BUILT_IN_CATALOG_NOTE);
          }
          return resolved.catalog;
        },
        driver: (options) =>
          (opened ??= openForCommand(target, {
            readOnly: options.readOnly,
            ...(opts.natsCreds !== undefined ? { natsCreds: opts.natsCreds } : {}),
            ...(runtime.signal ? { signal: runtime.signal } : {}),
          }).then((opened) => {
            if (options.readOnly) noteSnapshot(opened, out);
            return opened;
          })),
      });
    } catch (error) {
      // A failure once the caller asked to stop (an open or a query cut short) is that stop,
      // not an unexpected failure (3) nor a verdict on the system.
      code = out.error(
        runtime.signal?.aborted
          ? interrupted("before it finished", error)
          : await unsupportedOf(error, opened),
      );
    } finally {
      if (opened) await opened.then((d) => d.close()).catch(() => undefined);
    }
    runtime.exit(code);
  };
}

/** The error of a command its signal stopped (see {@link ExitCode.interrupted}). */
function interrupted(when: "before it started" | "before it finished", cause?: unknown): CliError {
  if (cause === undefined)
    return new CliError(
      "INTERRUPTED",
      `Stopped ${when}: its signal was aborted already; nothing was done.`,
      ExitCode.interrupted,
    );
  return new CliError(
    "INTERRUPTED",
    `Stopped ${when}: its signal was aborted${cause instanceof Error ? ` (${cause.message})` : ""}.`,
    ExitCode.interrupted,
    { cause },
  );
}

/** What a read-only inspector reading a copy says about it (the SQLite inspector's `snapshot`). */
export interface SnapshotInfo {
  /** When the copy was taken (RFC 3339). */
  readonly takenAt: string;
  readonly reason: string;
}

/** The snapshot a read-only inspector reads instead of the live target, if it does. */
export function snapshotOf(driver: Driver): SnapshotInfo | undefined {
  return (driver.inspector() as { readonly snapshot?: SnapshotInfo }).snapshot;
}

function noteSnapshot(driver: Driver, out: Output): void {
  const snapshot = snapshotOf(driver);
  if (snapshot)
    out.note(
      `note: ${snapshot.reason} (snapshot of ${driver.target} taken at ${snapshot.takenAt}).`,
    );
}

/** How a command opens its target (see {@link openForCommand}). */
interface CommandOpenOptions {
  readonly readOnly: boolean;
  /** `--nats-creds <file>`, as given (made absolute here). */
  readonly natsCreds?: string;
  readonly signal?: AbortSignal;
}

/**
 * The one place a command's driver options are built. No command creates what is not there
 * (daemons do, on first start): a SQLite file or a NATS stream opened for writing would be, so a
 * misspelt target would be a new, empty one and a write command would report "nothing matched".
 * A missing target is the driver's not-found error instead (exit 2, naming it).
 */
async function openForCommand(target: string, options: CommandOpenOptions): Promise<Driver> {
  const open: OpenTargetOptions = {
    readOnly: options.readOnly,
    sqlite: { create: false },
    nats: {
      create: false,
      ...(options.natsCreds !== undefined ? { credsFile: resolve(options.natsCreds) } : {}),
    },
    ...(options.signal ? { signal: options.signal } : {}),
  };
  try {
    return await openCliTarget(target, open);
  } catch (error) {
    if (error instanceof CliError || !(error instanceof SwitchyardError)) throw error;
    // The target named something that is not there or not reachable: the input is wrong.
    throw new CliError(error.code, error.message, ExitCode.usage, { cause: error });
  }
}

/** An `UnsupportedOperationError` from the admin, said as "… is not supported on <scheme>". */
async function unsupportedOf(
  error: unknown,
  opened: Promise<Driver> | undefined,
): Promise<unknown> {
  if (!(error instanceof UnsupportedOperationError)) return error;
  const driver = await opened?.catch(() => undefined);
  return new CliError(
    "UNSUPPORTED",
    `Not supported on ${driver?.scheme ?? error.transport}: ${error.message}`,
    ExitCode.usage,
    { cause: error },
  );
}

/** Add `--watch [interval]` (see {@link watching}). */
export function withWatchOption(command: Command): Command {
  return command.option("--watch [interval]", WATCH_OPTION_HELP);
}

/**
 * Run `render` once, or with `--watch [interval]` again every interval until Ctrl-C (or the
 * runtime's signal), each run into a fresh {@link Output}; resolves to the last run's exit code.
 */
export async function watching(
  context: Pick<ActionContext<{ readonly watch?: string | boolean }>, "opts" | "out" | "runtime">,
  title: string,
  render: (out: Output) => Promise<number>,
): Promise<number> {
  const intervalMs = watchIntervalOf(context.opts.watch);
  if (intervalMs === undefined) return render(context.out);
  const { runtime, out } = context;
  return watch((frame) => render(new Output(out.json, frame.write, runtime.stderr, out.style)), {
    write: runtime.stdout,
    intervalMs,
    title,
    framed: !out.json,
    ...(runtime.signal ? { signal: runtime.signal } : {}),
    ...(runtime.stdout === defaultStdout ? {} : { tty: false }),
  });
}

/** Append an "Examples:" section to a command's `--help`. */
export function examples(command: Command, lines: readonly (readonly [string, string])[]): Command {
  const width = Math.max(...lines.map(([cmd]) => cmd.length));
  const text = lines.map(([cmd, what]) => `  $ ${cmd.padEnd(width)}  # ${what}`).join("\n");
  return command.addHelpText("after", `\nExamples:\n${text}\n`);
}
