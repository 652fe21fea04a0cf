import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { registerAudit } from "./commands/audit";
import { registerCatalog } from "./commands/catalog";
import { registerContracts } from "./commands/contracts";
import { registerDashboard } from "./commands/dashboard";
import { registerDaemons } from "./commands/daemons";
import { registerDlq } from "./commands/dlq";
import { registerEvents } from "./commands/events";
import { registerHealth } from "./commands/health";
import { registerMetrics } from "./commands/metrics";
import { registerMonitor } from "./commands/monitor";
import { registerPipeline } from "./commands/pipeline";
import { registerQueue } from "./commands/queue";
import { registerStats } from "./commands/stats";
import { registerSubscribers } from "./commands/subscribers";
import { type ProgramOptions, runtimeOf, targetsHelp } from "./context";
import { ExitCode, Output, printable } from "./output";

function version(): string {
  // src/ and dist/ both sit next to package.json.
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/**
 * The `switchyard` command. Each command reports its exit code through `options.onExit`
 * (default: `process.exitCode`). Usage errors, `--help` and `--version` make `parseAsync` reject
 * with a `CommanderError` (after printing); {@link runCli} turns those into exit codes.
 *
 * @example
 * ```ts
 * // not runnable
 * await createProgram({ onExit: (code) => console.log("exit", code) }).parseAsync(
 *   ["health", "--db", "data/coordination/coordination.db", "--json"],
 *   { from: "user" },
 * );
 * ```
 */
export function createProgram(options: ProgramOptions = {}): Command {
  const runtime = runtimeOf(options);
  const program = new Command("switchyard")
    .description(
      "The Switchyard operations runbook as commands: health, stats, subscribers, events, DLQ, monitoring, pipeline verification and guarded recovery, on any transport (SQLite, NATS JetStream).",
    )
    .version(version())
    .exitOverride()
    .configureOutput({
      writeOut: runtime.stdout,
      writeErr: runtime.stderr,
      // Commander's errors quote what was typed ("unknown option '…'", "argument '…' is invalid"):
      // shown, not obeyed, like every other message (subcommands inherit this).
      outputError: (text, write) => write(printable(text)),
    })
    .option("--no-color", "no colour (also NO_COLOR=1; colour is only ever used on a terminal)")
    .showHelpAfterError("(add --help for usage and examples)");
  program.addHelpText(
    "after",
    `
Every command takes --transport <target> and --json. A target is one of (a bare path is
SQLite; --db <path> is --transport sqlite:<path>):
${targetsHelp()}
Default: $SWITCHYARD_TRANSPORT, else $SWITCHYARD_DB, else data/coordination/coordination.db.
Commands that read the catalog (event types, alert rules, pipelines) take --catalog <module>
(default: $SWITCHYARD_CATALOG, else the built-in pipeline catalog).
Exit codes: 0 ok, 1 check failed or unhealthy, 2 usage or input error, 3 unexpected failure,
130 stopped before it finished (Ctrl-C, or an embedding program's signal).

Examples:
  $ switchyard health                          # is everything healthy? (exit 1 if not)
  $ switchyard subscribers                     # who is behind?
  $ switchyard events trace <event-id>         # where did this event go?
  $ switchyard dlq list                        # what failed for good?
  $ switchyard pipeline verify hex8_2p         # did every stage fire?
  $ switchyard queue clear --pending --yes     # back up, then drop the backlog
`,
  );
  registerHealth(program, runtime);
  registerStats(program, runtime);
  registerSubscribers(program, runtime);
  registerDaemons(program, runtime);
  registerEvents(program, runtime);
  registerDlq(program, runtime);
  registerMonitor(program, runtime);
  registerPipeline(program, runtime);
  registerQueue(program, runtime);
  registerCatalog(program, runtime);
  registerAudit(program, runtime);
  registerContracts(program, runtime);
  registerMetrics(program, runtime);
  registerDashboard(program, runtime);
  return program;
}

const SUCCESSFUL_EXITS = new Set(["commander.helpDisplayed", "commander.version"]);

/**
 * Run the CLI on `argv` and resolve to the exit code: the command's, 0 for `--help` and
 * `--version`, 2 for usage errors (already printed by commander), 130 when `options.signal` is
 * aborted already (nothing runs) or stops a command before it finished. Never throws.
 *
 * @param argv `process.argv` (with `from: "node"`, the default) or just the user's arguments.
 */
export async function runCli(
  argv: readonly string[],
  options: ProgramOptions & { readonly from?: "node" | "user" } = {},
): Promise<number> {
  let code: number = ExitCode.ok;
  const program = createProgram({
    ...options,
    onExit: (c) => {
      code = c;
    },
  });
  try {
    await program.parseAsync([...argv], { from: options.from ?? "node" });
  } catch (error) {
    if (error instanceof CommanderError)
      return SUCCESSFUL_EXITS.has(error.code) ? ExitCode.ok : ExitCode.usage;
    const stderr = options.stderr ?? ((text: string) => void process.stderr.write(text));
    return new Output(false, () => {}, stderr).error(error);
  }
  return code;
}
