import { type Envelope, createEnvelope } from "@switchyard/event-schema";
import fc from "fast-check";

/** A JSON Schema node, as `catalog.toJSONSchema()` writes them (the subset the catalog uses). */
interface SchemaNode {
  readonly type?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly minItems?: number;
  readonly items?: SchemaNode;
  readonly properties?: Record<string, SchemaNode>;
  readonly required?: readonly string[];
  readonly additionalProperties?: SchemaNode;
}

/** Any value at all, the odd JavaScript ones included (BigInt, Map, Date, null prototypes, -0 …). */
export const anyValue: fc.Arbitrary<unknown> = fc.anything({
  maxDepth: 2,
  maxKeys: 4,
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
  withUnicodeString: true,
});

/** Values a schema node admits (mostly), so generated payloads are often valid. */
function valueFor(node: SchemaNode | undefined, depth = 0): fc.Arbitrary<unknown> {
  switch (node?.type) {
    case "string":
      return fc.string({ minLength: node.minLength ?? 0, maxLength: 24, unit: "grapheme" });
    case "integer":
      return fc.integer({
        min: Math.max(node.minimum ?? -1_000_000, -1_000_000),
        max: Math.min(node.maximum ?? 1_000_000, 1_000_000),
      });
    case "number":
      return fc.double({
        min: node.minimum ?? -1e9,
        max: node.maximum ?? 1e9,
        noNaN: true,
        noDefaultInfinity: true,
      });
    case "boolean":
      return fc.boolean();
    case "array":
      return depth > 2
        ? fc.constant([])
        : fc.array(valueFor(node.items, depth + 1), {
            minLength: node.minItems ?? 0,
            maxLength: 4,
          });
    case "object":
      return depth > 2
        ? fc.constant({})
        : fc.dictionary(
            fc.string({ minLength: 1, maxLength: 8 }),
            valueFor(node.additionalProperties, depth + 1),
            {
              maxKeys: 3,
            },
          );
    case undefined:
    default:
      return fc.jsonValue({ maxDepth: 1 });
  }
}

/**
 * Payloads for one event type from its JSON Schema: every property drawn from its schema, then
 * (often) mutated: a required field dropped, a field replaced by any value at all, extra fields.
 */
export function payloadFor(schema: SchemaNode): fc.Arbitrary<unknown> {
  const properties = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const keys = Object.keys(properties);
  const shape = Object.fromEntries(keys.map((k) => [k, valueFor(properties[k])]));
  const base = fc.record(shape, { requiredKeys: keys.filter((k) => required.has(k)) });
  return fc
    .tuple(
      base,
      fc.option(fc.constantFrom(...(keys.length ? keys : ["none"])), { nil: undefined }),
      fc.option(fc.constantFrom(...(keys.length ? keys : ["none"])), { nil: undefined }),
      anyValue,
      fc.dictionary(fc.string({ maxLength: 12 }), anyValue, { maxKeys: 3 }),
      fc.nat(9),
    )
    .map(([payload, drop, replace, replacement, extra, mode]) => {
      const out: Record<string, unknown> = { ...payload };
      if (mode < 4) return out; // as generated: valid
      if (mode < 6 && drop) delete out[drop];
      if (mode >= 5 && replace) out[replace] = replacement;
      if (mode >= 7) Object.assign(out, extra);
      return out;
    });
}

/** An envelope of `type` around `data`, then one attribute replaced by any value or removed. */
export const mutatedEnvelope: fc.Arbitrary<unknown> = fc
  .tuple(
    fc.constantFrom("MODEL_PROMOTED", "TRAINING_COMPLETED", "NOT_A_TYPE"),
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(
      "specversion",
      "id",
      "type",
      "source",
      "time",
      "subject",
      "datacontenttype",
      "dataversion",
      "data",
      "traceparent",
      "correlationid",
      "extra_attribute",
    ),
    fc.oneof(anyValue, fc.constant(undefined), fc.constant(""), fc.string()),
    fc.boolean(),
  )
  .map(([type, data, attribute, value, remove]) => {
    const envelope: Record<string, unknown> = {
      ...(createEnvelope({ type, source: "fuzz", data }) as Envelope),
    };
    if (remove) delete envelope[attribute];
    else envelope[attribute] = value;
    return envelope;
  });
