// The demo's command line: `pnpm demo [options]`, also as `pnpm demo -- [options]` (the npm habit).
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { type PipelineSettings, defaultSettings } from "./settings";
import { natsServers } from "./transport";

export const USAGE = `Usage: pnpm demo [options]

  --configs <list>       config keys, comma-separated        (default hex8_2p,square8_4p)
  --generations <n>      generations per config               (default 3)
  --failure-rate <0..1>  share of transient handler failures  (default 0.15)
  --db <path>            coordination database (SQLite only)  (default: a new temp directory)
  --seed <n>             seed of the simulation               (default 7)
  --no-poison            do not inject the poison event
  --kill <daemon>        SIGKILL that daemon's process once, mid-run (its restart and redelivery show)
  --transport <kind>     sqlite (default) or nats: the durable path between the daemons
  --nats-url <urls>      NATS servers for --transport nats, comma-separated for a cluster
                         (default $NATS_URL or nats://127.0.0.1:4222)
  --nats-replicas <n>    stream replicas on a cluster: 1, 3 or 5 (default 3 with ≥ 3 URLs, else 1)
  --timeout <seconds>    give up after this long              (default 180)
  --otel                 record OpenTelemetry traces of every process (OTLP JSON lines in the run's directory)
  --dashboard [port]     serve the web dashboard of the run's transport on 127.0.0.1 while it runs,
                         and after it until Ctrl-C (default port 4000; 0 picks a free one)
  -h, --help`;

/** The command line was wrong: the demo prints the message and {@link USAGE}, and exits 2. */
export class DemoUsageError extends Error {
  override readonly name = "DemoUsageError";
}

/** What a demo run was asked to do. */
export type DemoArgs =
  | { readonly help: true }
  | {
      readonly help: false;
      readonly settings: PipelineSettings;
      readonly timeoutMs: number;
      readonly kill: string | undefined;
      /** `--dashboard [port]`: the port to serve the dashboard on; absent without the flag. */
      readonly dashboard: number | undefined;
    };

/** `--dashboard`'s port when the flag comes without one. */
export const DASHBOARD_PORT = 4000;

/**
 * Take `--dashboard [port]` (or `--dashboard=<port>`) out of the arguments: node:util's parseArgs
 * has no option with an optional value. A number right after the flag is its port.
 */
function takeDashboard(args: readonly string[]): { rest: string[]; port: number | undefined } {
  const rest: string[] = [];
  let port: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const inline = /^--dashboard=(.*)$/.exec(arg);
    if (arg !== "--dashboard" && !inline) {
      rest.push(arg);
      continue;
    }
    let raw = inline?.[1];
    if (raw === undefined && /^\d+$/.test(args[i + 1] ?? "")) raw = args[++i];
    if (raw === undefined) port = DASHBOARD_PORT;
    else {
      const n = raw.trim() === "" ? Number.NaN : Number(raw);
      if (!Number.isInteger(n) || n < 0 || n > 65535)
        throw new DemoUsageError(
          `--dashboard: ${JSON.stringify(raw)} is not a port (0 to 65535; 0 picks a free one).`,
        );
      port = n;
    }
  }
  return { rest, port };
}

/**
 * Parse the demo's arguments (`process.argv.slice(2)`). A bare `--` is dropped wherever it
 * stands: `pnpm demo -- --db x` passes it on, and the demo takes no positional arguments.
 *
 * @throws DemoUsageError for an unknown option, a missing or invalid value, or a stray argument.
 */
export function parseDemoArgs(args: readonly string[]): DemoArgs {
  const { rest, port: dashboard } = takeDashboard(args.filter((arg) => arg !== "--"));
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      allowPositionals: false,
      strict: true,
      options: {
        configs: { type: "string" },
        generations: { type: "string" },
        "failure-rate": { type: "string" },
        db: { type: "string" },
        seed: { type: "string" },
        "no-poison": { type: "boolean" },
        kill: { type: "string" },
        transport: { type: "string" },
        "nats-url": { type: "string" },
        "nats-replicas": { type: "string" },
        timeout: { type: "string" },
        otel: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    // node:util's parse errors (ERR_PARSE_ARGS_*) say what was wrong; their stack says nothing.
    throw new DemoUsageError(error instanceof Error ? error.message : String(error), {
      cause: error,
    });
  }
  if (values.help) return { help: true };
  const base = defaultSettings();
  const number = (
    name: string,
    raw: string | undefined,
    fallback: number,
    ok: (n: number) => boolean,
  ) => {
    if (raw === undefined) return fallback;
    const n = raw.trim() === "" ? Number.NaN : Number(raw);
    if (!ok(n)) throw new DemoUsageError(`--${name}: ${JSON.stringify(raw)} is not valid.`);
    return n;
  };
  let settings: PipelineSettings = {
    ...base,
    configs: values.configs
      ? values.configs
          .split(",")
          .map((c) => c.trim())
          .filter(Boolean)
      : base.configs,
    generations: number(
      "generations",
      values.generations,
      base.generations,
      (n) => Number.isInteger(n) && n >= 1 && n <= 50,
    ),
    failureRate: number(
      "failure-rate",
      values["failure-rate"],
      base.failureRate,
      (n) => n >= 0 && n < 0.9,
    ),
    seed: number("seed", values.seed, base.seed, Number.isInteger),
    ...(values.db ? { db: values.db } : {}),
    poison: !values["no-poison"],
    ...(values.otel
      ? { otel: join(values.db ? dirname(values.db) : base.dataDir, "traces.otlp.jsonl") }
      : {}),
    ...(values["nats-url"] !== undefined ? { natsUrl: natsUrlOption(values["nats-url"]) } : {}),
    ...(values["nats-replicas"] !== undefined
      ? {
          natsReplicas: number("nats-replicas", values["nats-replicas"], 1, (n) =>
            [1, 3, 5].includes(n),
          ),
        }
      : {}),
  };
  if (values.transport !== undefined) {
    if (values.transport !== "sqlite" && values.transport !== "nats")
      throw new DemoUsageError(
        `--transport: ${JSON.stringify(values.transport)} is not sqlite or nats.`,
      );
    settings = { ...settings, transport: values.transport };
  }
  return {
    help: false,
    settings,
    timeoutMs: number("timeout", values.timeout, 180, (n) => n > 0) * 1000,
    kill: values.kill,
    dashboard,
  };
}

/** `--nats-url a,b,c`: every entry a server URL (`nats://host:port`, `tls://…`) or `host:port`. */
function natsUrlOption(raw: string): string {
  const servers = natsServers(raw);
  const bad = servers.filter((url) => !/^((nats|tls|ws|wss):\/\/)?[^\s/,]+(:\d+)?$/.test(url));
  if (servers.length === 0 || bad.length > 0)
    throw new DemoUsageError(
      `--nats-url: ${JSON.stringify(raw)} is not a comma-separated list of NATS servers` +
        `${bad.length > 0 ? ` (not a server URL: ${bad.map((b) => JSON.stringify(b)).join(", ")})` : ""}; ` +
        `e.g. nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224.`,
    );
  return servers.join(",");
}
