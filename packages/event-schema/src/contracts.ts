import { createHash } from "node:crypto";
import { z } from "zod";
import type { AnyCatalog } from "./types";

/**
 * What a process says about one event type it publishes or consumes: the type, its schema
 * version, and a hash of its payload's JSON Schema. Two processes agree on a type when both the
 * version and the hash match; a different hash at the same version is a contract drift.
 */
export interface TypeContract {
  readonly type: string;
  /**
   * The payload's JSON Schema (input side), so readers can tell a breaking difference from an
   * additive one (see {@link schemaBreaks}) without the catalog.
   */
  readonly schema?: Record<string, unknown>;
  /** The catalog's schema version of the type (`dataversion`). */
  readonly version: number;
  /**
   * SHA-256 (hex, first 16 characters) of the payload's JSON Schema (input side), serialized with
   * sorted keys: descriptions and titles are left out, so only a change of shape changes it.
   */
  readonly schemaHash: string;
}

const DOC_KEYS = new Set(["description", "title", "$id", "$schema", "examples"]);

/** JSON with sorted keys (and `required` lists) without documentation keys: the same shape hashes the same. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([k, v]) => !DOC_KEYS.has(k) && v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    // `required` is a set: its order says nothing about the shape.
    const value_ = (k: string, v: unknown) =>
      k === "required" && Array.isArray(v) ? [...(v as string[])].sort() : v;
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(value_(k, v))}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

const cache = new WeakMap<object, Map<string, TypeContract>>();

/**
 * The contract of one catalog type (cached per catalog). Throws the catalog's
 * `EventValidationError` for an unknown type.
 *
 * @example
 * ```ts
 * typeContract(pipelineCatalog, "MODEL_PROMOTED"); // { type: "MODEL_PROMOTED", version: 1, schemaHash: "…" }
 * ```
 */
export function typeContract(catalog: AnyCatalog, type: string): TypeContract {
  let byType = cache.get(catalog);
  if (!byType) {
    byType = new Map();
    cache.set(catalog, byType);
  }
  let contract = byType.get(type);
  if (!contract) {
    const def = catalog.get(type);
    const schema = z.toJSONSchema(def.data, { io: "input", unrepresentable: "any" }) as Record<
      string,
      unknown
    >;
    contract = Object.freeze({
      type,
      version: def.version,
      schemaHash: createHash("sha256").update(canonical(schema)).digest("hex").slice(0, 16),
      schema,
    });
    byType.set(type, contract);
  }
  return contract;
}

/** The contracts of every type of a catalog, in catalog order. */
export function catalogContracts(catalog: AnyCatalog): TypeContract[] {
  return catalog.types.map((type) => typeContract(catalog, type));
}

/** A JSON Schema as the catalog exports it (`z.toJSONSchema`, input side). */
type Schema = Record<string, unknown>;

/** One breaking difference between what a producer sends and what a consumer accepts. */
export interface SchemaBreak {
  /** Where, as a payload path: `currency`, `model.path`, `tags[]`. */
  readonly path: string;
  readonly problem:
    "required_not_sent" | "type_changed" | "enum_value_removed" | "property_not_accepted";
  /** In words, naming the field. */
  readonly message: string;
}

const typesOf = (s: Schema): string[] | undefined => {
  const t = s.type;
  if (typeof t === "string") return [t === "integer" ? "number" : t];
  if (Array.isArray(t)) return t.map((x) => (x === "integer" ? "number" : String(x)));
  return undefined;
};

/** The values a schema allows, when it lists them: its `enum`, or its `const` as a one-value enum. */
const valuesOf = (s: Schema): unknown[] | undefined => {
  if (Array.isArray(s.enum)) return s.enum as unknown[];
  if ("const" in s) return [s.const];
  return undefined;
};

/**
 * Whether every payload a producer's schema allows is accepted by a consumer's schema, by the
 * rules `switchyard contracts check` applies (JSON Schema, input side, compared structurally):
 * - a property the consumer **requires** must be required by the producer too (else
 *   `required_not_sent`: the producer may leave it out);
 * - a property both declare must have compatible types (`type_changed`; `integer` counts as a
 *   number; a schema without a `type` accepts anything);
 * - an `enum` on the consumer must contain every value the producer's enum allows
 *   (`enum_value_removed`), and a consumer enum where the producer has none is a break too; a
 *   `const` (a `z.literal`) counts as a one-value enum on either side, so a changed literal is a
 *   break;
 * - a consumer that forbids extra properties (`additionalProperties: false`, e.g. `z.strictObject`)
 *   must declare every property the producer declares (`property_not_accepted`); a consumer whose
 *   `additionalProperties` is a schema (`.catchall(…)`) checks the producer's extra properties
 *   against it;
 * - everything else is additive and passes: new optional properties on either side, a property
 *   the producer sends that a non-strict consumer ignores, a wider consumer type, a consumer enum
 *   grown.
 * Objects are compared recursively, arrays by their `items`. Not compared: `anyOf`/`oneOf`
 * branches, string formats and patterns, and number ranges.
 *
 * @returns the breaks, empty when compatible.
 */
export function schemaBreaks(producer: Schema, consumer: Schema, path = ""): SchemaBreak[] {
  const at = (p: string) => p || "(payload)";
  const breaks: SchemaBreak[] = [];
  const pTypes = typesOf(producer);
  const cTypes = typesOf(consumer);
  if (cTypes && pTypes && pTypes.some((t) => !cTypes.includes(t)))
    breaks.push({
      path: at(path),
      problem: "type_changed",
      message: `${at(path)}: the producer sends ${pTypes.join("|")}, the consumer accepts ${cTypes.join("|")}`,
    });
  const acceptedValues = valuesOf(consumer);
  if (acceptedValues) {
    const accepted = new Set(acceptedValues.map((v) => JSON.stringify(v)));
    const sent = valuesOf(producer);
    const missing = sent?.filter((v) => !accepted.has(JSON.stringify(v)));
    if (sent === undefined || (missing && missing.length > 0))
      breaks.push({
        path: at(path),
        problem: "enum_value_removed",
        message:
          sent === undefined
            ? `${at(path)}: the consumer accepts only ${acceptedValues.map((v) => JSON.stringify(v)).join(", ")}, the producer any value`
            : `${at(path)}: the consumer no longer accepts ${missing!.map((v) => JSON.stringify(v)).join(", ")}`,
      });
  }
  const pProps = (producer.properties ?? {}) as Record<string, Schema>;
  const cProps = (consumer.properties ?? {}) as Record<string, Schema>;
  const extra = consumer.additionalProperties;
  if (extra === false || (typeof extra === "object" && extra !== null)) {
    for (const [name, p] of Object.entries(pProps)) {
      if (name in cProps) continue;
      const where = path ? `${path}.${name}` : name;
      if (extra === false)
        breaks.push({
          path: where,
          problem: "property_not_accepted",
          message: `${where}: the producer sends it, the consumer accepts no properties beyond its own (additionalProperties: false)`,
        });
      else breaks.push(...schemaBreaks(p, extra as Schema, where));
    }
  }
  const pRequired = new Set((producer.required ?? []) as string[]);
  for (const name of (consumer.required ?? []) as string[]) {
    if (!pRequired.has(name))
      breaks.push({
        path: path ? `${path}.${name}` : name,
        problem: "required_not_sent",
        message: `${path ? `${path}.${name}` : name}: the consumer requires it, the producer ${name in pProps ? "may leave it out" : "does not send it"}`,
      });
  }
  for (const [name, c] of Object.entries(cProps)) {
    const p = pProps[name];
    if (p) breaks.push(...schemaBreaks(p, c, path ? `${path}.${name}` : name));
  }
  if (producer.items && consumer.items && typeof producer.items === "object")
    breaks.push(...schemaBreaks(producer.items as Schema, consumer.items as Schema, `${path}[]`));
  return breaks;
}

/** The input-side JSON Schema of one catalog type's payload, as announced with its contract. */
export function payloadSchema(catalog: AnyCatalog, type: string): Record<string, unknown> {
  const def = catalog.get(type);
  return z.toJSONSchema(def.data, { io: "input", unrepresentable: "any" });
}
