import type { Command } from "commander";
import { catalogContracts } from "@switchyard/event-schema";
import {
  BREAKING_TOPOLOGY_ISSUES,
  type ContractTopology,
  TOPOLOGY_ISSUE_TEXT,
  type TypeEndpoint,
  contractTopology,
} from "@switchyard/transport";
import { CATALOG_ENV, withCatalogOption } from "../catalog-option";
import {
  type ActionContext,
  type CommonOptions,
  type Runtime,
  action,
  examples,
  requireCapability,
  withCommonOptions,
} from "../context";
import { parseDuration } from "../duration";
import { ExitCode, type Output } from "../output";

interface ContractsOptions extends CommonOptions {
  readonly staleAfter?: string;
  readonly skipStale?: boolean;
}

const who = (endpoints: readonly TypeEndpoint[]) =>
  endpoints
    .map((e) => `${e.daemon}${e.stale ? " (stale)" : ""} v${e.version}#${e.schemaHash.slice(0, 6)}`)
    .join(", ");

/**
 * `switchyard contracts`: the live topology from the contracts daemons announce in their
 * heartbeats; `contracts check` exits 1 when announcements disagree (with each other, or with
 * `--catalog`'s module when one is given).
 */
export function registerContracts(program: Command, runtime: Runtime): void {
  const contracts = program
    .command("contracts")
    .description(
      "Who publishes and who consumes each event type, from what running daemons announce (schema version and hash), and the drift: published but not consumed, consumed but not published, daemons disagreeing on a schema.",
    );
  const show = withCommonOptions(
    contracts
      .command("show", { isDefault: true })
      .description("The live topology (the default).")
      .option(
        "--stale-after <duration>",
        "a heartbeat older than this marks its daemon stale",
        "2m",
      )
      .option("--skip-stale", "leave stale daemons out"),
  );
  examples(show, [
    ["switchyard contracts", "who publishes and consumes what"],
    ["switchyard contracts --json | jq '.types[] | select(.issues | length > 0)'", "only drift"],
  ]);
  show.action(
    action<ContractsOptions>(runtime, async (ctx) => {
      const topology = await topologyOf(ctx, false);
      render(ctx.out, topology);
      return ExitCode.ok;
    }),
  );
  const check = withCatalogOption(
    withCommonOptions(
      contracts
        .command("check")
        .description(
          "Exit 1 when a publisher's announced schema breaks a consumer's (a field the consumer requires and the producer does not send, a type change, a removed enum value), or, with --catalog, when an announcement differs from that catalog. Additive changes pass.",
        )
        .option(
          "--stale-after <duration>",
          "a heartbeat older than this marks its daemon stale",
          "2m",
        )
        .option("--skip-stale", "leave stale daemons out", true),
    ),
  );
  examples(check, [
    ["switchyard contracts check", "do the running daemons agree?"],
    ["switchyard contracts check --catalog ./dist/catalog.js", "…and agree with this catalog?"],
  ]);
  check.action(
    action<ContractsOptions>(runtime, async (ctx) => {
      const topology = await topologyOf(ctx, true);
      render(ctx.out, topology);
      if (topology.types.length === 0) {
        ctx.out.note("No daemon announces contracts: nothing to check.");
        return ExitCode.ok;
      }
      const failing = topology.types.filter((t) =>
        t.issues.some((i) => BREAKING_TOPOLOGY_ISSUES.has(i)),
      );
      if (failing.length > 0) {
        ctx.out.note(
          `Contracts break for ${failing.map((t) => t.type).join(", ")}:\n` +
            failing
              .flatMap((t) =>
                t.breaks.length > 0
                  ? t.breaks.map((b) => `  ${t.type}: ${b.publisher} → ${b.consumer}: ${b.message}`)
                  : [`  ${t.type}: ${t.issues.map((i) => TOPOLOGY_ISSUE_TEXT[i]).join("; ")}`],
              )
              .join("\n"),
        );
        return ExitCode.failed;
      }
      ctx.out.note("Every publisher's schema is accepted by its consumers.");
      return ExitCode.ok;
    }),
  );
}

async function topologyOf(
  ctx: ActionContext<ContractsOptions>,
  useCatalog: boolean,
): Promise<ContractTopology> {
  const driver = await ctx.driver({ readOnly: true });
  requireCapability(driver, "heartbeats", "switchyard contracts");
  const beats = await driver.inspector().heartbeats();
  const catalogGiven =
    useCatalog && (ctx.opts.catalog !== undefined || Boolean(ctx.runtime.env[CATALOG_ENV]));
  return contractTopology(beats, {
    staleAfterMs: parseDuration(ctx.opts.staleAfter ?? "2m", "--stale-after"),
    skipStale: ctx.opts.skipStale === true,
    ...(catalogGiven ? { catalog: catalogContracts(ctx.catalog) } : {}),
  });
}

function render(out: Output, topology: ContractTopology): void {
  out.data(topology);
  out.table(
    ["type", "publishers", "consumers", "issues"],
    topology.types.map((t) => [
      t.type,
      who(t.publishers) || "—",
      who(t.consumers) || "—",
      t.issues.map((i) => TOPOLOGY_ISSUE_TEXT[i]).join("; ") || "ok",
    ]),
  );
  if (topology.silent.length > 0)
    out.note(`Daemons announcing no contracts: ${topology.silent.join(", ")}.`);
}
