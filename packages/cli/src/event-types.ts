import type { AnyCatalog } from "@switchyard/event-schema";

/**
 * The event type a user named, checked against the catalog in use: the runbook's lower-case
 * names (`training_completed`) are accepted, a type the database holds passes even when the
 * catalog does not define it, and anything else is refused with the catalog's
 * `EventValidationError`, which suggests the closest known name.
 */
export function checkEventType(
  catalog: AnyCatalog,
  type: string,
  isStored: (type: string) => boolean,
): string {
  // `has` is a type guard, which would narrow a plain string to never.
  const known = (name: string): boolean => catalog.has(name);
  if (known(type)) return type;
  const upper = type.toUpperCase();
  if (known(upper)) return upper;
  if (isStored(type)) return type;
  // Throws EventValidationError ("Did you mean …?").
  catalog.get(type);
  return type;
}

/**
 * {@link checkEventType} for a store that answers asynchronously (a NATS stream); `isStored` is
 * asked only for a type the catalog does not know.
 */
export async function checkEventTypeAsync(
  catalog: AnyCatalog,
  type: string,
  isStored: (type: string) => Promise<boolean>,
): Promise<string> {
  const known = (name: string): boolean => catalog.has(name);
  if (known(type) || known(type.toUpperCase())) return checkEventType(catalog, type, () => false);
  const stored = await isStored(type);
  return checkEventType(catalog, type, () => stored);
}
