import type { Command } from "commander";
import { serveDashboard } from "@switchyard/dashboard";
import { withCatalogOption } from "../catalog-option";
import { type CommonOptions, type Runtime, action, examples, withCommonOptions } from "../context";
import { CliError, ExitCode, portOption } from "../output";
import { untilStopped } from "../timers";

interface DashboardCommandOptions extends CommonOptions {
  readonly port: number;
  readonly host: string;
  readonly basePath: string;
  readonly actions?: boolean;
  readonly open?: boolean;
}

/** The environment variable holding the token that enables actions (`--actions`). */
export const DASHBOARD_TOKEN_ENV = "SWITCHYARD_DASHBOARD_TOKEN";

/**
 * `switchyard dashboard`: the web dashboard of the target, served until Ctrl-C. Read-only unless
 * `--actions` is given and `$SWITCHYARD_DASHBOARD_TOKEN` holds the token writes must carry.
 */
export function registerDashboard(program: Command, runtime: Runtime): void {
  const command = withCatalogOption(
    withCommonOptions(
      program
        .command("dashboard")
        .description(
          "Serve the web dashboard (health, pipeline, subscribers, events with a live tail, dead letters, daemons) on loopback; /metrics too.",
        )
        .option("--port <port>", "port to listen on (0: any free port)", portOption, 4000)
        .option("--host <host>", "address to bind (loopback by default)", "127.0.0.1")
        .option("--base-path <path>", "path the dashboard is served under", "/")
        .option(
          "--actions",
          `allow replay and purge from the browser, with the token in $${DASHBOARD_TOKEN_ENV}`,
        )
        .option("--open", "open the URL in the default browser"),
    ),
  );
  examples(command, [
    ["switchyard dashboard", "http://127.0.0.1:4000/, read-only"],
    [
      `${DASHBOARD_TOKEN_ENV}=$(openssl rand -hex 16) switchyard dashboard --actions`,
      "replay and purge with the token",
    ],
    ["switchyard dashboard --transport nats://127.0.0.1:4222/SWITCHYARD", "NATS"],
  ]);
  command.action(
    action<DashboardCommandOptions>(
      runtime,
      async ({ opts, out, driver, catalog, runtime: rt }) => {
        const port = opts.port;
        const token = rt.env[DASHBOARD_TOKEN_ENV];
        if (opts.actions && !token)
          throw new CliError(
            "USAGE",
            `--actions needs the token in $${DASHBOARD_TOKEN_ENV} (e.g. ${DASHBOARD_TOKEN_ENV}=$(openssl rand -hex 16)).`,
          );
        const opened = await driver({ readOnly: !opts.actions });
        const controller = new AbortController();
        const served = await serveDashboard({
          driver: opened,
          port,
          host: opts.host,
          basePath: opts.basePath,
          catalog,
          ...(opts.actions && token ? { actions: { token } } : {}),
          signal: controller.signal,
        }).catch((error: unknown) => {
          throw new CliError(
            "LISTEN_FAILED",
            `Cannot serve the dashboard on ${opts.host}:${port}: ${(error as Error).message}`,
            ExitCode.usage,
          );
        });
        out.note(
          `Dashboard at ${served.url} (${opts.actions ? "actions on" : "read-only"}; Ctrl-C to stop).`,
        );
        if (opts.open) openInBrowser(served.url);
        await untilStopped(rt.signal);
        controller.abort();
        await served.close();
        return ExitCode.ok;
      },
    ),
  );
}

function openInBrowser(url: string): void {
  const command =
    process.platform === "darwin" ? "open" : process.platform === "win32" ? "start" : "xdg-open";
  void import("node:child_process").then(({ spawn }) => {
    const child = spawn(command, [url], { stdio: "ignore", detached: true });
    child.on("error", () => {}); // no browser here: the URL is printed anyway
    child.unref();
  });
}
