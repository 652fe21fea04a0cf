import type { z } from "zod";
import type { PipelineCatalog } from "./catalog/pipeline";
import type { Catalog, DefinitionMap } from "./define";
import type { Envelope } from "./envelope";

/** Any catalog. */
export type AnyCatalog = Catalog<DefinitionMap>;

/** The definition map behind a catalog. */
export type DefinitionsOf<C extends AnyCatalog> = C["definitions"];

/** The event type names of a catalog (the pipeline catalog by default). */
export type EventType<C extends AnyCatalog = PipelineCatalog> = keyof DefinitionsOf<C> & string;

/**
 * The parsed payload of one event type.
 *
 * @example
 * ```ts
 * type T = EventData<"TRAINING_COMPLETED">; // { config_key: string; model_path: string; loss: number; … }
 * type U = EventData<"MY_EVENT", typeof myCatalog>;
 * ```
 */
export type EventData<T extends EventType<C>, C extends AnyCatalog = PipelineCatalog> = z.output<
  DefinitionsOf<C>[T]["data"]
>;

/** The payload a publisher passes for one event type (before schema defaults apply). */
export type EventInput<T extends EventType<C>, C extends AnyCatalog = PipelineCatalog> = z.input<
  DefinitionsOf<C>[T]["data"]
>;

/** The envelope of one event type, with its typed payload. */
export type EventOf<T extends EventType<C>, C extends AnyCatalog = PipelineCatalog> = Envelope<
  T,
  EventData<T, C>
>;

/** The union of every envelope of a catalog, discriminated by `type`. */
export type AnyEventOf<C extends AnyCatalog = PipelineCatalog> = {
  [T in EventType<C>]: EventOf<T, C>;
}[EventType<C>];
