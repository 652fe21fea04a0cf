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
    const schema = z.toJSONSchema(def.data, { io: "input", unrepresentable: "any" });
    contract = Object.freeze({
      type,
      version: def.version,
      schemaHash: createHash("sha256").update(canonical(schema)).digest("hex").slice(0, 16),
    });
    byType.set(type, contract);
  }
  return contract;
}

/** The contracts of every type of a catalog, in catalog order. */
export function catalogContracts(catalog: AnyCatalog): TypeContract[] {
  return catalog.types.map((type) => typeContract(catalog, type));
}
