import type { AnyCatalog, EventType } from "@switchyard/event-schema";

/** Every `PREFIX_*` pattern of one event type name: "A_B_C" → "A_*" | "A_B_*". */
type PrefixesOf<S extends string, Acc extends string = ""> = S extends `${infer Head}_${infer Rest}`
  ? `${Acc}${Head}_*` | PrefixesOf<Rest, `${Acc}${Head}_`>
  : never;

/**
 * What `subscribe` accepts: an exact event type, `"*"` for every type, or a prefix wildcard
 * ending at an underscore (`"TRAINING_*"`). A pattern that matches nothing does not compile.
 */
export type Pattern<C extends AnyCatalog> = EventType<C> | "*" | PrefixesOf<EventType<C>>;

/** The event types a pattern matches. */
export type MatchedType<C extends AnyCatalog, P> = P extends "*"
  ? EventType<C>
  : P extends `${infer Prefix}*`
    ? Extract<EventType<C>, `${Prefix}${string}`>
    : Extract<P, EventType<C>>;

/**
 * Resolve patterns to the catalog's event types, in catalog order. Unknown exact types and
 * patterns matching nothing throw (via `catalog.get`, an `EventValidationError`); an empty list,
 * or a pattern that is not a string, throws `TypeError` (it would match nothing, silently).
 */
export function resolvePatterns(catalog: AnyCatalog, patterns: readonly string[]): string[] {
  if (!Array.isArray(patterns) || patterns.length === 0)
    throw new TypeError(
      `patterns must be an event type, "*", a prefix such as "JOB_*", or a non-empty list of them; got ${Array.isArray(patterns) ? "an empty list" : typeof patterns}`,
    );
  const matched = new Set<string>();
  for (const pattern of patterns as unknown[]) {
    if (typeof pattern !== "string")
      throw new TypeError(
        `a pattern must be a string (an event type, "*" or a prefix such as "JOB_*"), got ${pattern === null ? "null" : typeof pattern}`,
      );
    if (pattern === "*") {
      for (const type of catalog.types) matched.add(type);
    } else if (pattern.endsWith("*")) {
      const prefix = pattern.slice(0, -1);
      const hits = catalog.types.filter((t) => t.startsWith(prefix));
      if (hits.length === 0) catalog.get(pattern); // throws: no event type matches
      for (const type of hits) matched.add(type);
    } else {
      catalog.get(pattern);
      matched.add(pattern);
    }
  }
  return catalog.types.filter((t) => matched.has(t));
}
