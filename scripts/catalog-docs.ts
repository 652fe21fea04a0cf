// Generates docs/events.md from the catalog: the event reference (each type's contract, from its
// JSON Schema), the subscription matrix (who publishes and who consumes each type, as the
// training-pipeline daemons announce it in their contracts) and a Mermaid picture of each declared
// pipeline.
//
//   pnpm docs:catalog           # write docs/events.md
//   pnpm docs:catalog --check   # exit 1 if docs/events.md is not what the catalog generates
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join, relative } from "node:path";
import {
  type AnyCatalog,
  type JsonSchema,
  type PipelineCatalog,
  describeAlertRule,
  pipelineCatalog,
} from "@switchyard/event-schema";
import { type Router, createRouter } from "@switchyard/router";
import { format, resolveConfig } from "prettier";
import { pipelineDaemons } from "../apps/training-pipeline/src/daemons/index.js";
import { type PipelineSettings, defaultSettings } from "../apps/training-pipeline/src/settings.js";

const root = join(import.meta.dirname, "..");

/** Where the generated reference is written. */
export const eventsDocPath = join(root, "docs", "events.md");

/** The directory of the training-pipeline daemons' source, which the matrix links to. */
export const daemonsDir = join(root, "apps", "training-pipeline", "src", "daemons");

/** One daemon as it announces itself: its name, what it subscribes to, what it publishes. */
export interface DaemonContract {
  readonly name: string;
  /** Its source file, relative to the repository root, when there is one to link to. */
  readonly file?: string;
  readonly consumes: readonly string[];
  readonly publishes: readonly string[];
}

/** What {@link daemonContracts} needs of a daemon: what `HandlerBase#contracts()` returns. */
export interface AnnouncingDaemon {
  readonly name: string;
  contracts(): {
    readonly publishes: readonly { readonly type: string }[];
    readonly subscribes: readonly { readonly type: string }[];
  };
}

/**
 * Each daemon's contract as it announces it in its heartbeats: every daemon of `daemons` is
 * created over a memory router (not started) and asked for its `contracts()` — its subscriptions
 * and its declared `publishes`. Sorted by daemon name; a daemon's source file is
 * `<daemonsDir>/<name with - for _>.ts` when that file exists.
 */
export function daemonContracts(
  daemons: Readonly<
    Record<
      string,
      {
        readonly create: (
          router: Router<PipelineCatalog>,
          settings: PipelineSettings,
        ) => AnnouncingDaemon;
      }
    >
  > = pipelineDaemons,
): DaemonContract[] {
  const router = createRouter({ catalog: pipelineCatalog });
  const settings = defaultSettings();
  return Object.values(daemons)
    .map((spec) => {
      const daemon = spec.create(router, settings);
      const { publishes, subscribes } = daemon.contracts();
      const file = join(daemonsDir, `${daemon.name.replace(/_/g, "-")}.ts`);
      return {
        name: daemon.name,
        ...(existsSync(file) ? { file: relative(root, file) } : {}),
        consumes: subscribes.map((t) => t.type),
        publishes: publishes.map((t) => t.type),
      };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** A JSON Schema property's type in words: `string`, `integer ≥ 0`, `string[]`, `"a" \| "b"`. */
function typeOf(schema: JsonSchema): string {
  // Joined with a bare "|": `cell()` escapes it once for the table.
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if ("const" in schema) return JSON.stringify(schema.const);
  const union = (schema.anyOf ?? schema.oneOf) as JsonSchema[] | undefined;
  if (Array.isArray(union)) return union.map(typeOf).join(" | ");
  const type = Array.isArray(schema.type)
    ? schema.type.join(" | ")
    : typeof schema.type === "string"
      ? schema.type
      : "any";
  if (type === "array") return `${typeOf((schema.items as JsonSchema | undefined) ?? {})}[]`;
  if (type === "object" && typeof schema.additionalProperties === "object")
    return `Record<string, ${typeOf(schema.additionalProperties as JsonSchema)}>`;
  const limits: string[] = [];
  // zod writes the safe-integer bounds of every int; they say nothing to a reader.
  if (typeof schema.minimum === "number" && schema.minimum !== Number.MIN_SAFE_INTEGER)
    limits.push(`≥ ${schema.minimum}`);
  if (typeof schema.maximum === "number" && schema.maximum !== Number.MAX_SAFE_INTEGER)
    limits.push(`≤ ${schema.maximum}`);
  if (typeof schema.minLength === "number" && schema.minLength > 0) limits.push("non-empty");
  if (typeof schema.minItems === "number") limits.push(`≥ ${schema.minItems} items`);
  return [type, ...limits].join(" ");
}

const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ");
const anchor = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, "")
    .replace(/ /g, "-");

/**
 * The Markdown of docs/events.md for `catalog` and the daemons' contracts, formatted by prettier
 * with the repository's settings (so `pnpm format:check` and the generator agree).
 */
export async function renderCatalogDocs(
  catalog: AnyCatalog = pipelineCatalog,
  daemons: readonly DaemonContract[] = daemonContracts(),
): Promise<string> {
  const config = (await resolveConfig(eventsDocPath)) ?? {};
  return format(markdownOf(catalog, daemons), { ...config, filepath: eventsDocPath });
}

function markdownOf(catalog: AnyCatalog, daemons: readonly DaemonContract[]): string {
  const schemas = catalog.toJSONSchema();
  const publishers = (type: string) => daemons.filter((d) => d.publishes.includes(type));
  const consumers = (type: string) => daemons.filter((d) => d.consumes.includes(type));
  const lines: string[] = [
    "<!-- Generated by `pnpm docs:catalog` from the pipeline catalog (packages/event-schema) and",
    "     the training-pipeline daemons' contracts. Do not edit: change the catalog, then regenerate. -->",
    "",
    "# Events",
    "",
    "The event reference of the pipeline catalog (`pipelineCatalog` of `@switchyard/event-schema`),",
    "who publishes and consumes each type in the training-pipeline app, and a picture of each",
    "pipeline the catalog declares. `switchyard catalog` prints the same catalog;",
    "`switchyard pipeline verify <key>` checks a pipeline against the stored events.",
    "",
    "- [Pipelines](#pipelines)",
    ...catalog.pipelines.map((p) => `  - [Pipeline ${p.name}](#${anchor(`Pipeline ${p.name}`)})`),
    "- [Subscription matrix](#subscription-matrix)",
    "- [Event reference](#event-reference)",
    "",
    "## Pipelines",
    "",
  ];
  if (catalog.pipelines.length === 0) lines.push("The catalog declares no pipeline.", "");
  for (const pipeline of catalog.pipelines) {
    lines.push(`### Pipeline ${pipeline.name}`, "");
    if (pipeline.description) lines.push(`${pipeline.description}.`, "");
    lines.push(
      `Stages in order, linked by the payload field \`${pipeline.key}\` (or the envelope \`subject\`).`,
      "An arrow is labelled with the daemons that consume one stage and publish the next.",
      "",
      "```mermaid",
      "flowchart LR",
    );
    pipeline.stages.forEach((stage, i) => lines.push(`  s${i}["${stage}"]`));
    for (let i = 1; i < pipeline.stages.length; i++) {
      const from = pipeline.stages[i - 1]!;
      const to = pipeline.stages[i]!;
      const by = daemons
        .filter((d) => d.consumes.includes(from) && d.publishes.includes(to))
        .map((d) => d.name);
      lines.push(`  s${i - 1} -->${by.length ? `|${by.join(", ")}|` : ""} s${i}`);
    }
    lines.push("```", "");
  }

  lines.push(
    "## Subscription matrix",
    "",
    "What each daemon of the training-pipeline app announces in its heartbeats' contracts (what",
    "`switchyard contracts` shows of a running app): the types it subscribes to and the types it",
    "declares in `publishes`. Events published by the packages themselves (the daemon manager's",
    "`DAEMON_PERMANENTLY_FAILED`, the DLQ retry daemon's `DLQ_PERMANENTLY_FAILED`) and by systems",
    "outside this app are not declared by the app's daemons, so a type can show no publisher here.",
    "",
    "| event type | published by | consumed by |",
    "| --- | --- | --- |",
  );
  for (const type of catalog.types) {
    const names = (list: DaemonContract[]) => list.map((d) => d.name).join(", ") || "—";
    lines.push(`| \`${type}\` | ${names(publishers(type))} | ${names(consumers(type))} |`);
  }
  lines.push("", "| daemon | source | consumes | publishes |", "| --- | --- | --- | --- |");
  for (const d of daemons)
    lines.push(
      `| ${d.name} | ${d.file ? `[${basename(d.file)}](../${d.file})` : "—"} | ${d.consumes.join(", ") || "—"} | ${d.publishes.join(", ") || "—"} |`,
    );
  lines.push("");

  lines.push(
    "## Event reference",
    "",
    "Every payload is a loose object: fields not listed pass through untouched. Types and",
    "constraints come from each type's JSON Schema (`catalog.toJSONSchema()`).",
    "",
    "| event type | durable | severity | version | alert | stage of |",
    "| --- | --- | --- | --- | --- | --- |",
  );
  for (const type of catalog.types) {
    const def = catalog.get(type);
    const stageOf = catalog.pipelines
      .filter((p) => p.stages.includes(type))
      .map((p) => `${p.name} #${p.stages.indexOf(type) + 1}`);
    lines.push(
      `| [\`${type}\`](#${anchor(type)}) | ${def.durable ? "yes" : "no"} | ${def.severity} | ${def.version} | ${def.alert ? describeAlertRule(def.alert) : "—"} | ${stageOf.join(", ") || "—"} |`,
    );
  }
  lines.push("");
  for (const type of catalog.types) {
    const def = catalog.get(type);
    const schema = schemas[type]!;
    const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
    const required = new Set((schema.required ?? []) as string[]);
    lines.push(
      `### ${type}`,
      "",
      `${def.description}.`,
      "",
      `Schema version ${def.version} · ${def.durable ? "durable (crosses processes)" : "in-process only"} · ${def.severity}` +
        (def.alert ? ` · alerts on ${describeAlertRule(def.alert)}` : "") +
        ` · published by ${
          publishers(type)
            .map((d) => d.name)
            .join(", ") || "—"
        } · consumed by ${
          consumers(type)
            .map((d) => d.name)
            .join(", ") || "—"
        }`,
      "",
      "| field | type | required | description |",
      "| --- | --- | --- | --- |",
    );
    for (const [field, property] of Object.entries(properties))
      lines.push(
        `| \`${field}\` | ${cell(typeOf(property))} | ${required.has(field) ? "yes" : "no"} | ${cell(typeof property.description === "string" ? property.description : "")} |`,
      );
    lines.push("");
  }
  return lines.join("\n");
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const markdown = await renderCatalogDocs();
  if (process.argv.includes("--check")) {
    const current = readFileSync(eventsDocPath, "utf8");
    if (current !== markdown) {
      process.stderr.write(
        `${relative(root, eventsDocPath)} is stale: run pnpm docs:catalog and commit it.\n`,
      );
      process.exit(1);
    }
    process.stdout.write(`${relative(root, eventsDocPath)} is up to date.\n`);
  } else {
    writeFileSync(eventsDocPath, markdown);
    process.stdout.write(`wrote ${relative(root, eventsDocPath)}\n`);
  }
}
