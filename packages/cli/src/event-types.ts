import { type EventDefinition, pipelineCatalog } from "@switchyard/event-schema";

/**
 * The event type a user named, checked against the pipeline catalog: the runbook's lower-case
 * names (`training_completed`) are accepted, a type the database holds passes even when the
 * catalog does not define it, and anything else is refused with the catalog's
 * `EventValidationError`, which suggests the closest known name.
 */
export function checkEventType(type: string, isStored: (type: string) => boolean): string {
  if (pipelineCatalog.has(type)) return type;
  const upper = type.toUpperCase();
  if (pipelineCatalog.has(upper)) return upper;
  if (isStored(type)) return type;
  // Throws EventValidationError ("Did you mean …?").
  pipelineCatalog.get(type as never);
  return type;
}

/**
 * {@link checkEventType} for a store that answers asynchronously (a NATS stream); `isStored` is
 * asked only for a type the catalog does not know.
 */
export async function checkEventTypeAsync(
  type: string,
  isStored: (type: string) => Promise<boolean>,
): Promise<string> {
  if (pipelineCatalog.has(type) || pipelineCatalog.has(type.toUpperCase()))
    return checkEventType(type, () => false);
  const stored = await isStored(type);
  return checkEventType(type, () => stored);
}

/** Every event type of the catalog with an alert rule. */
export function alertingTypes(): EventDefinition[] {
  return pipelineCatalog.types
    .map((type) => pipelineCatalog.definitions[type] as EventDefinition)
    .filter((def) => def.alert !== undefined);
}
