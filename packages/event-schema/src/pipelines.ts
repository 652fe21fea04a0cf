import type { AnyCatalog } from "./types";

/**
 * A pipeline a catalog declares: the event types one run flows through, in order, and the payload
 * field whose value links the events of one run (e.g. `config_key`). Stages are event types of
 * the catalog; `switchyard pipeline verify <key>` counts, per stage, the events whose envelope
 * `subject` or payload `key` field equals `<key>`.
 */
export interface PipelineDefinition<T extends string = string> {
  /** The pipeline's name, unique in its catalog, e.g. `"training"`. */
  readonly name: string;
  /** The payload field linking the events of one run, e.g. `"config_key"`. */
  readonly key: string;
  /** The stages, in flow order: event types of the catalog (at least one, each once). */
  readonly stages: readonly T[];
  /** One sentence: what flows through it. */
  readonly description?: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Validate pipelines against a catalog's types and freeze them. Throws a `TypeError` saying which
 * pipeline, which value and what to do.
 */
export function checkPipelines(
  pipelines: readonly PipelineDefinition[],
  types: readonly string[],
  suggest: (stage: string) => string | undefined,
): readonly PipelineDefinition[] {
  const known = new Set(types);
  const names = new Set<string>();
  const out = pipelines.map((pipeline) => {
    const where = `defineCatalog: pipeline ${JSON.stringify(pipeline.name)}`;
    if (typeof pipeline.name !== "string" || !NAME.test(pipeline.name))
      throw new TypeError(
        `${where}: the name must be letters, digits, "_", "-" or "." (e.g. "training").`,
      );
    if (names.has(pipeline.name))
      throw new TypeError(`${where} is declared twice: give each pipeline its own name.`);
    names.add(pipeline.name);
    if (typeof pipeline.key !== "string" || !KEY.test(pipeline.key))
      throw new TypeError(
        `${where}: key ${JSON.stringify(pipeline.key)} is not a payload field name (e.g. "config_key").`,
      );
    const stages: readonly string[] = pipeline.stages;
    if (!(stages instanceof Array) || stages.length === 0)
      throw new TypeError(`${where} has no stages: list its event types in flow order.`);
    const seen = new Set<string>();
    for (const stage of stages) {
      if (!known.has(stage)) {
        const hint = typeof stage === "string" ? suggest(stage) : undefined;
        throw new TypeError(
          `${where}: stage ${JSON.stringify(stage)} is not an event type of the catalog` +
            (hint
              ? `. Did you mean "${hint}"?`
              : `. Define it with defineEvent() or fix the name.`),
        );
      }
      if (seen.has(stage))
        throw new TypeError(`${where}: stage ${stage} is listed twice; a stage appears once.`);
      seen.add(stage);
    }
    return Object.freeze({
      name: pipeline.name,
      key: pipeline.key,
      stages: Object.freeze([...stages]),
      ...(pipeline.description === undefined ? {} : { description: pipeline.description }),
    });
  });
  return Object.freeze(out);
}

/**
 * Whether `value` looks like a catalog made by `defineCatalog` (of any copy of this package): it has
 * `types`, `definitions`, `pipelines`, `has`, `get` and `parse`. For tools that load a catalog from a
 * module.
 */
export function isCatalog(value: unknown): value is AnyCatalog {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    Array.isArray(v.types) &&
    typeof v.definitions === "object" &&
    v.definitions !== null &&
    Array.isArray(v.pipelines) &&
    typeof v.has === "function" &&
    typeof v.get === "function" &&
    typeof v.parse === "function"
  );
}
