import type { z } from "zod";
import type { Catalog, DefinitionMap } from "./define";
import type { Envelope } from "./envelope";

// Every type here takes its catalog explicitly: there is no default, so a name from one catalog
// never silently resolves against another (the pipeline catalog is only the demo's).

/** Any catalog. */
export type AnyCatalog = Catalog<DefinitionMap>;

/** The definition map behind a catalog. */
export type DefinitionsOf<C extends AnyCatalog> = C["definitions"];

/** The event type names of a catalog. */
export type EventType<C extends AnyCatalog> = keyof DefinitionsOf<C> & string;

/**
 * The parsed payload of one event type of a catalog.
 *
 * @example
 * ```ts
 * type Placed = EventData<"ORDER_PLACED", typeof shopCatalog>; // { order_id: string; amount: number }
 * ```
 */
export type EventData<T extends EventType<C>, C extends AnyCatalog> = z.output<
  DefinitionsOf<C>[T]["data"]
>;

/** The payload a publisher passes for one event type (before schema defaults apply). */
export type EventInput<T extends EventType<C>, C extends AnyCatalog> = z.input<
  DefinitionsOf<C>[T]["data"]
>;

/** The envelope of one event type of a catalog, with its typed payload. */
export type EventOf<T extends EventType<C>, C extends AnyCatalog> = Envelope<T, EventData<T, C>>;

/**
 * Every envelope of a catalog, by event type: name the catalog once, then index by type.
 *
 * @example
 * ```ts
 * type ShopEvent = EventsOf<typeof shopCatalog>;
 * const onPlaced = (event: ShopEvent["ORDER_PLACED"]) => event.data.amount; // number
 * ```
 */
export type EventsOf<C extends AnyCatalog> = { readonly [T in EventType<C>]: EventOf<T, C> };

/** The union of every envelope of a catalog, discriminated by `type`. */
export type AnyEventOf<C extends AnyCatalog> = EventsOf<C>[EventType<C>];
