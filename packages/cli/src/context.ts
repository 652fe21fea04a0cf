import type { Command } from "commander";
import type { AnyCatalog } from "@switchyard/event-schema";
import { catalogOf } from "./catalog-option";
import { DB_ENV, resolveDbPath } from "./database";
import type { NatsEventSource } from "./nats";
import { CliError, Output } from "./output";

/** Options of {@link createProgram}: where output goes and what the commands read, for embedding and tests. */
export interface ProgramOptions {
  /** Normal output. @defaultValue `process.stdout.write` */
  readonly stdout?: (text: string) => void;
  /** Errors, progress and notes. @defaultValue `process.stderr.write` */
  readonly stderr?: (text: string) => void;
  /** Environment variables (`SWITCHYARD_DB`). @defaultValue `process.env` */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Stops long-running commands (`events tail`), in addition to SIGINT. */
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

export function runtimeOf(options: ProgramOptions): Runtime {
  return {
    stdout: options.stdout ?? ((text) => void process.stdout.write(text)),
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
  readonly db?: string;
  readonly json?: boolean;
  /** `--catalog <module>`, on the commands that read a catalog (see `withCatalogOption`). */
  readonly catalog?: string;
}

/** Add `--db` and `--json` to a command. */
export function withCommonOptions(command: Command): Command {
  return command
    .option(
      "--db <path>",
      `coordination database (default: $${DB_ENV}, else data/coordination/coordination.db)`,
    )
    .option("--json", "machine-readable output (one JSON document)");
}

/** The options of commands that can read NATS JetStream instead of the SQLite file. */
export interface TransportOptions {
  readonly transport: string;
  readonly natsUrl: string;
  readonly stream: string;
  readonly prefix: string;
}

/** Add `--transport sqlite|nats` and the NATS options; `what` names what lives there ("events"). */
export function withTransportOptions(what: string, command: Command): Command {
  return command
    .option("--transport <kind>", `where the ${what} are: sqlite (the --db file) or nats`, "sqlite")
    .option(
      "--nats-url <urls>",
      "NATS servers, comma-separated (--transport nats)",
      process.env.NATS_URL ?? "nats://127.0.0.1:4222",
    )
    .option("--stream <name>", "JetStream stream (--transport nats)", "SWITCHYARD")
    .option(
      "--prefix <subject>",
      "subject prefix of the stream (--transport nats)",
      "switchyard.events",
    );
}

/** The stream (and servers) the `--transport nats` options name. */
export function natsSourceOf(
  opts: TransportOptions,
): NatsEventSource & { readonly prefix: string } {
  return { servers: opts.natsUrl.split(","), stream: opts.stream, prefix: opts.prefix };
}

/** Which transport a command was asked for; a usage error for anything but sqlite or nats. */
export function transportOf(opts: TransportOptions): "sqlite" | "nats" {
  if (opts.transport === "sqlite" || opts.transport === "nats") return opts.transport;
  throw new CliError(
    "USAGE",
    `--transport: ${JSON.stringify(opts.transport)} is not sqlite or nats.`,
  );
}

/** What a command body receives. */
export interface ActionContext<O> {
  /** Positional arguments, in order, as their parsers left them (`undefined` when optional and absent). */
  readonly args: readonly unknown[];
  readonly opts: O;
  readonly out: Output;
  /** Absolute path of the database this command works on. */
  readonly dbPath: string;
  readonly runtime: Runtime;
  /** The catalog in use: `--catalog`'s module on commands that take it, else the pipeline catalog. */
  readonly catalog: AnyCatalog;
}

/**
 * Wrap a command body: parse its options, give it an {@link Output}, turn any error into a
 * message without a stack trace, and report the exit code it returns.
 */
export function action<O extends CommonOptions>(
  runtime: Runtime,
  body: (context: ActionContext<O>) => number | Promise<number>,
): (...params: unknown[]) => Promise<void> {
  return async (...params) => {
    const command = params[params.length - 1] as Command;
    const opts = command.opts<O>();
    const out = new Output(opts.json === true, runtime.stdout, runtime.stderr);
    const args = params.slice(0, -2);
    let code: number;
    try {
      code = await body({
        args,
        opts,
        out,
        dbPath: resolveDbPath(opts.db, runtime.env),
        runtime,
        catalog: await catalogOf(command, opts.catalog, runtime.env),
      });
    } catch (error) {
      code = out.error(error);
    }
    runtime.exit(code);
  };
}

/** Append an "Examples:" section to a command's `--help`. */
export function examples(command: Command, lines: readonly (readonly [string, string])[]): Command {
  const width = Math.max(...lines.map(([cmd]) => cmd.length));
  const text = lines.map(([cmd, what]) => `  $ ${cmd.padEnd(width)}  # ${what}`).join("\n");
  return command.addHelpText("after", `\nExamples:\n${text}\n`);
}
