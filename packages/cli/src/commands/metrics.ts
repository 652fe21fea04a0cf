import type { Command } from "commander";
import { serve } from "@hono/node-server";
import { createMetrics } from "@switchyard/metrics";
import { type CommonOptions, type Runtime, action, examples, withCommonOptions } from "../context";
import { parseDuration } from "../duration";
import { CliError, ExitCode, portOption } from "../output";
import { untilStopped } from "../timers";

interface MetricsOptions extends CommonOptions {
  readonly port: number;
  readonly host: string;
  readonly once?: boolean;
  readonly window: string;
}

/**
 * `switchyard metrics`: Prometheus metrics of the target, read from its inspector at each scrape
 * (no change to any daemon), served at `http://<host>:<port>/metrics` until Ctrl-C; `--once`
 * prints one exposition to stdout instead (for a node_exporter textfile collector, or a look).
 */
export function registerMetrics(program: Command, runtime: Runtime): void {
  const command = withCommonOptions(
    program
      .command("metrics")
      .description(
        "Serve Prometheus metrics of the event system (backlog per subscriber, events per type, dead letters, daemon heartbeats) at /metrics, read from the transport at each scrape.",
      )
      .option("--port <port>", "port to listen on (0: any free port)", portOption, 9464)
      .option("--host <host>", "address to bind (loopback by default)", "127.0.0.1")
      .option("--window <duration>", "window of switchyard_events_window", "5m")
      .option("--once", "print the metrics once and exit instead of serving"),
  );
  examples(command, [
    ["switchyard metrics", "serve http://127.0.0.1:9464/metrics"],
    ["switchyard metrics --once | grep backlog", "one look"],
    ["switchyard metrics --transport nats://127.0.0.1:4222/SWITCHYARD --port 9500", "NATS"],
  ]);
  command.action(
    action<MetricsOptions>(runtime, async ({ opts, out, driver, runtime: rt }) => {
      const port = opts.port;
      const eventsWindowMs = parseDuration(opts.window, "--window");
      const opened = await driver({ readOnly: true });
      const metrics = createMetrics(opened.inspector(), { eventsWindowMs });
      if (opts.once) {
        rt.stdout(await metrics.metrics());
        return ExitCode.ok;
      }
      const server = serve({ fetch: metrics.handler(), port, hostname: opts.host });
      await new Promise<void>((resolve, reject) => {
        server.once("listening", resolve);
        server.once("error", reject);
      }).catch((error: unknown) => {
        throw new CliError(
          "LISTEN_FAILED",
          `Cannot listen on ${opts.host}:${port}: ${(error as Error).message}`,
          ExitCode.usage,
        );
      });
      const address = server.address();
      const bound = typeof address === "object" && address ? address.port : port;
      out.note(`Serving metrics at http://${opts.host}:${bound}/metrics (Ctrl-C to stop).`);
      await untilStopped(rt.signal);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return ExitCode.ok;
    }),
  );
}
