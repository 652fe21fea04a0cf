import { z } from "zod";
import type { AlertRule } from "./alerts";
import { type PipelineDefinition, checkPipelines } from "./pipelines";
import { type Envelope, envelopeSchema } from "./envelope";
import {
  EventValidationError,
  describeType,
  envelopeProblemText,
  formatIssues,
  shortText,
  toIssues,
  unreadableError,
} from "./errors";

/** How much attention an event type deserves from operators. */
export type Severity = "critical" | "informational";

/** A payload schema: a zod object schema (extra fields should pass through: use `z.looseObject`). */
export type PayloadSchema = z.ZodType<Record<string, unknown>>;

/** One event type's contract, as returned by {@link defineEvent}. */
export interface EventDefinition<
  T extends string = string,
  S extends PayloadSchema = PayloadSchema,
> {
  /** The event type name, `UPPER_SNAKE_CASE`. */
  readonly type: T;
  /** Payload schema version, written to the envelope's `dataversion`. */
  readonly version: number;
  /** The payload schema. */
  readonly data: S;
  /** One sentence: when is this emitted. */
  readonly description: string;
  /** Whether the event crosses processes: the router bridges durable types to its transport. */
  readonly durable: boolean;
  readonly severity: Severity;
  /** When an occurrence should alert an operator; `undefined` for never. */
  readonly alert: AlertRule | undefined;
}

/** Options of {@link defineEvent}. */
export interface DefineEventOptions<T extends string, S extends PayloadSchema> {
  readonly type: T;
  readonly data: S;
  readonly description: string;
  /** @defaultValue 1 */
  readonly version?: number;
  /** @defaultValue false */
  readonly durable?: boolean;
  /** @defaultValue "informational" */
  readonly severity?: Severity;
  /** @defaultValue undefined (never alerts) */
  readonly alert?: AlertRule;
}

const TYPE_NAME = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$/;

/**
 * Declare one event type: its name, payload schema and operational metadata.
 *
 * @example
 * ```ts
 * const TrainingCompleted = defineEvent({
 *   type: "TRAINING_COMPLETED",
 *   description: "Training finished for a config",
 *   durable: true,
 *   severity: "critical",
 *   data: z.looseObject({ config_key: z.string(), model_path: z.string(), loss: z.number() }),
 * });
 * ```
 */
export function defineEvent<const T extends string, S extends PayloadSchema>(
  options: DefineEventOptions<T, S>,
): EventDefinition<T, S> {
  if (typeof options !== "object" || options === null)
    throw new TypeError(`defineEvent: expected an options object, got ${describeType(options)}.`);
  checkTypeName("defineEvent", options.type);
  const version = options.version ?? 1;
  if (!Number.isInteger(version) || version < 1) {
    throw new TypeError(
      `defineEvent(${options.type}): version must be a positive integer, got ${String(version)}.`,
    );
  }
  checkSchema(`defineEvent(${options.type})`, options.data);
  if (options.durable !== undefined && typeof options.durable !== "boolean") {
    throw new TypeError(
      `defineEvent(${options.type}): durable must be true or false, got ${describeType(options.durable)}.`,
    );
  }
  if (
    options.severity !== undefined &&
    options.severity !== "critical" &&
    options.severity !== "informational"
  ) {
    throw new TypeError(
      `defineEvent(${options.type}): severity must be "critical" or "informational", got ${shortText(options.severity)}.`,
    );
  }
  return Object.freeze({
    type: options.type,
    version,
    data: options.data,
    description: options.description,
    durable: options.durable ?? false,
    severity: options.severity ?? "informational",
    alert: options.alert,
  });
}

/** Throw a `TypeError` unless `type` is an `UPPER_SNAKE_CASE` string. */
function checkTypeName(owner: string, type: unknown): asserts type is string {
  if (typeof type !== "string" || !TYPE_NAME.test(type)) {
    throw new TypeError(
      `${owner}: type ${shortText(type)} is not UPPER_SNAKE_CASE (e.g. "TRAINING_COMPLETED").`,
    );
  }
}

/**
 * Throw a `TypeError` unless `schema` is a zod schema: otherwise the mistake would surface only
 * on the first publish, reported as a payload that could not be read.
 */
function checkSchema(owner: string, schema: unknown): void {
  if (
    (typeof schema !== "object" && typeof schema !== "function") ||
    schema === null ||
    typeof (schema as { safeParse?: unknown }).safeParse !== "function"
  ) {
    throw new TypeError(
      `${owner}: data must be a zod schema (e.g. z.looseObject({ ... })), got ${describeType(schema)}.`,
    );
  }
}

/** A map from event type to its definition. */
export type DefinitionMap = Record<string, EventDefinition>;

type MapOf<D extends readonly EventDefinition[]> = { [K in D[number] as K["type"]]: K };

/** Result of {@link Catalog.safeParse}. */
export type SafeParseResult<D> =
  | { readonly success: true; readonly data: D; readonly error?: undefined }
  | { readonly success: false; readonly data?: undefined; readonly error: EventValidationError };

/** A JSON Schema document (draft 2020-12) describing one event's payload. */
export type JsonSchema = Record<string, unknown>;

/**
 * The single source of payload contracts: a typed map from event type to definition.
 * Created with {@link defineCatalog}.
 */
export interface Catalog<M extends DefinitionMap = DefinitionMap> {
  /** The definitions, by type. */
  readonly definitions: Readonly<M>;
  /** Every event type, in declaration order. */
  readonly types: readonly (keyof M & string)[];
  /** The types marked `durable: true`: these cross processes through the router's transport. */
  readonly durableTypes: ReadonlySet<keyof M & string>;
  /** Whether `type` is in the catalog. */
  has(type: unknown): type is keyof M & string;
  /** The definition of `type`; throws {@link EventValidationError} (`unknown_type`) if absent. */
  get<T extends keyof M & string>(type: T): M[T];
  /** Whether `type` is known and durable. */
  isDurable(type: string): boolean;
  /**
   * Validate a payload against its type's schema and return the parsed payload (extra fields
   * kept). Throws {@link EventValidationError} naming every failing field.
   */
  parse<T extends keyof M & string>(type: T, data: unknown): z.output<M[T]["data"]>;
  /** Like {@link Catalog.parse}, returning the error instead of throwing. */
  safeParse<T extends keyof M & string>(
    type: T,
    data: unknown,
  ): SafeParseResult<z.output<M[T]["data"]>>;
  /**
   * Validate a whole envelope received from elsewhere: attributes, known type, and payload.
   * Returns the envelope with the parsed payload.
   */
  parseEnvelope(value: unknown): EnvelopeUnion<M>;
  /** One JSON Schema per event type, for consumers written in other languages. */
  toJSONSchema(): Record<keyof M & string, JsonSchema>;
  /**
   * The pipelines this catalog declares, in declaration order: each an ordered list of stages
   * (event types) linked by one payload key. Empty when none is declared.
   */
  readonly pipelines: readonly PipelineDefinition<keyof M & string>[];
  /**
   * The pipeline named `name`, or the first declared when `name` is omitted; `undefined` when
   * there is no such pipeline.
   */
  pipeline(name?: string): PipelineDefinition<keyof M & string> | undefined;
  /**
   * A new catalog with these pipelines added. A stage that is not an event type of the catalog is
   * a compile error and, at run time, a `TypeError` naming the stage.
   *
   * @example
   * ```ts
   * const shop = defineCatalog([OrderPlaced, OrderShipped]).withPipelines([
   *   { name: "fulfilment", key: "order_id", stages: ["ORDER_PLACED", "ORDER_SHIPPED"] },
   * ]);
   * ```
   */
  withPipelines(pipelines: readonly PipelineDefinition<keyof M & string>[]): Catalog<M>;
  /** A new catalog with these definitions added (a type already present is an error). */
  extend<const D extends readonly EventDefinition[]>(definitions: D): Catalog<M & MapOf<D>>;
}

/** Options of {@link defineCatalog}. */
export interface DefineCatalogOptions<T extends string = string> {
  /**
   * The pipelines of this catalog: ordered stages (event types of the catalog) and the payload
   * key that links one run through them. `switchyard pipeline verify` checks them.
   * @defaultValue [] (no pipeline)
   */
  readonly pipelines?: readonly PipelineDefinition<NoInfer<T>>[];
}

/** The union of every envelope a catalog admits, discriminated by `type`. */
export type EnvelopeUnion<M extends DefinitionMap> = {
  [K in keyof M & string]: Envelope<K, z.output<M[K]["data"]>>;
}[keyof M & string];

/**
 * Build a catalog from event definitions.
 *
 * @example
 * ```ts
 * const catalog = defineCatalog([TrainingCompleted, ModelPromoted], {
 *   pipelines: [
 *     { name: "training", key: "config_key", stages: ["TRAINING_COMPLETED", "MODEL_PROMOTED"] },
 *   ],
 * });
 * catalog.parse("TRAINING_COMPLETED", payload); // typed, or EventValidationError
 * ```
 */
export function defineCatalog<const D extends readonly EventDefinition[]>(
  definitions: D,
  options: DefineCatalogOptions<D[number]["type"]> = {},
): Catalog<MapOf<D>> {
  return createCatalog(definitions, options.pipelines ?? []) as unknown as Catalog<MapOf<D>>;
}

function createCatalog(
  list: readonly EventDefinition[],
  declaredPipelines: readonly PipelineDefinition[],
): Catalog {
  const definitions: Record<string, EventDefinition> = Object.create(null) as Record<
    string,
    EventDefinition
  >;
  const given: unknown = list;
  if (!Array.isArray(given))
    throw new TypeError(
      `defineCatalog: expected an array of defineEvent() results, got ${describeType(list)}.`,
    );
  for (const def of list as readonly unknown[]) {
    if (typeof def !== "object" || def === null)
      throw new TypeError(
        `defineCatalog: each definition must be a defineEvent() result, got ${describeType(def)}.`,
      );
  }
  for (const def of list) {
    checkTypeName("defineCatalog", def.type);
    checkSchema(`defineCatalog(${def.type})`, def.data);
    if (definitions[def.type]) {
      throw new TypeError(`defineCatalog: event type ${def.type} is defined twice.`);
    }
    definitions[def.type] = def;
  }
  const types = list.map((d) => d.type);
  const durableTypes = new Set(list.filter((d) => d.durable).map((d) => d.type));
  const pipelines = checkPipelines(declaredPipelines, types, (stage) => closest(stage, types));

  const unknownType = (type: unknown, data?: unknown) => {
    const name = typeof type === "string" ? type : describeType(type);
    const hint = typeof type === "string" ? closest(type, types) : undefined;
    return new EventValidationError({
      eventType: name,
      reason: "unknown_type",
      receivedType: describeType(data),
      message:
        `Unknown event type ${shortText(name)}: it is not in the catalog` +
        (hint ? `. Did you mean "${hint}"?` : ". Add it with defineEvent() or fix the name."),
    });
  };

  // Each type's payload schema compiled by zod on its first parse (`z.compile`: a generated fast
  // path for valid payloads, zod's runtime parser for invalid ones and for whatever the compiler
  // cannot model): the same parsed output and the same issues, in about half the time of the
  // runtime parser. Every publish validates, so this is most of what validation costs.
  const compiled: Record<string, PayloadSchema> = Object.create(null) as Record<
    string,
    PayloadSchema
  >;
  const schemaOf = (def: EventDefinition): PayloadSchema =>
    (compiled[def.type] ??= compileSchema ? compileSchema(def.data) : def.data);

  // The type looked up last, with its definition and (once parsed) its compiled schema: a producer
  // publishes the same type over and over, and comparing a string with the same string is one
  // pointer compare, where a lookup in the definitions hashes it.
  let lastType: string | undefined;
  let lastDef: EventDefinition | undefined;
  let lastSchema: PayloadSchema | undefined;

  const validate = (type: string, data: unknown): SafeParseResult<Record<string, unknown>> => {
    // A non-string (from JavaScript) is no key: looking it up would run its toString().
    const def = typeof type === "string" ? definitions[type] : undefined;
    if (!def) return { success: false, error: unknownType(type, data) };
    let result: ReturnType<PayloadSchema["safeParse"]>;
    try {
      result = schemaOf(def).safeParse(data);
    } catch (error) {
      // A getter or proxy trap of the payload threw while the schema read it.
      return { success: false, error: unreadableError(type, "invalid_payload", data, error) };
    }
    if (result.success) return { success: true, data: result.data };
    return { success: false, error: payloadError(type, data, result.error) };
  };

  const catalog: Catalog = {
    definitions,
    types,
    durableTypes,
    has: (type): type is string => typeof type === "string" && definitions[type] !== undefined,
    get(type) {
      if (type === lastType) return lastDef!;
      const def = typeof type === "string" ? definitions[type] : undefined;
      if (!def) throw unknownType(type);
      lastType = type;
      lastDef = def;
      lastSchema = undefined;
      return def;
    },
    isDurable: (type) => durableTypes.has(type),
    parse(type, data) {
      // Every publish comes through here: no result object of our own on the way.
      let schema = lastSchema;
      if (type !== lastType || schema === undefined) {
        const def = typeof type === "string" ? definitions[type] : undefined;
        if (!def) throw unknownType(type, data);
        schema = schemaOf(def);
        lastType = type;
        lastDef = def;
        lastSchema = schema;
      }
      let result: ReturnType<PayloadSchema["safeParse"]>;
      try {
        result = schema.safeParse(data);
      } catch (error) {
        // A getter or proxy trap of the payload threw while the schema read it.
        throw unreadableError(type, "invalid_payload", data, error);
      }
      if (result.success) return result.data;
      throw payloadError(type, data, result.error);
    },
    safeParse: validate,
    parseEnvelope(value) {
      let attrs: ReturnType<typeof envelopeSchema.safeParse>;
      try {
        attrs = envelopeSchema.safeParse(value);
      } catch (error) {
        throw unreadableError("<unknown>", "invalid_envelope", value, error);
      }
      if (!attrs.success) {
        const type =
          typeof (value as { type?: unknown } | null)?.type === "string"
            ? (value as { type: string }).type
            : "<unknown>";
        const issues = toIssues(value, attrs.error);
        throw new EventValidationError({
          eventType: type,
          reason: "invalid_envelope",
          issues,
          receivedType: describeType(value),
          message: `Not a valid event envelope${envelopeProblemText(type, value, issues)}.`,
          cause: attrs.error,
        });
      }
      const envelope = attrs.data as unknown as Envelope;
      const data = catalog.parse(envelope.type, envelope.data);
      return { ...envelope, data };
    },
    toJSONSchema() {
      const out: Record<string, JsonSchema> = {};
      for (const def of list) {
        out[def.type] = {
          ...(z.toJSONSchema(def.data, { io: "input", unrepresentable: "any" }) as JsonSchema),
          $id: `switchyard:event/${def.type}/v${def.version}`,
          title: def.type,
          description: def.description,
          "x-switchyard": {
            version: def.version,
            durable: def.durable,
            severity: def.severity,
            ...(def.alert ? { alert: def.alert } : {}),
          },
        };
      }
      return out;
    },
    pipelines,
    pipeline: (name) =>
      name === undefined ? pipelines[0] : pipelines.find((p) => p.name === name),
    withPipelines(more) {
      return createCatalog(list, [...pipelines, ...more]);
    },
    extend(more) {
      return createCatalog([...list, ...more], pipelines) as never;
    },
  };
  return Object.freeze(catalog);
}

/**
 * `z.compile` (a zod 4 minor newer than the oldest the peer range admits): `undefined` on a zod
 * without it, and then payloads are validated by the runtime parser, with the same results.
 */
const compileSchema = (z as { compile?: <S extends PayloadSchema>(schema: S) => S }).compile;

function payloadError(type: string, data: unknown, error: z.ZodError): EventValidationError {
  const issues = toIssues(data, error);
  return new EventValidationError({
    eventType: type,
    reason: "invalid_payload",
    issues,
    receivedType: describeType(data),
    message: `Invalid ${type} payload: ${formatIssues(issues)}. Fix the publisher, or change the catalog definition if the contract moved.`,
    cause: error,
  });
}

/** The closest known name within edit distance 3, to suggest a fix for a typo. */
function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 4;
  const upper = name.toUpperCase();
  for (const candidate of candidates) {
    // The distance is at least the difference in length: a name off by more is no typo, and
    // comparing it would cost its length times the candidate's (a huge type from the wire would
    // block the event loop).
    if (Math.abs(upper.length - candidate.length) >= bestDistance) continue;
    const d = editDistance(upper, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
