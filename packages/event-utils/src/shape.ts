// Internal helpers shared by the modules of this package: how to tell the shapes an event
// arrives in apart, without ever throwing on garbage.

/** A non-null, non-array object whose properties can be read. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An object literal or `JSON.parse` result: not a class instance such as `Date` or `Map`. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (!isObject(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Envelope detection stays loose on purpose: anything carrying `specversion`, or a string `type`
 * beside an object `data` (or a `data` holding the JSON text of an object, as a row read from a
 * table often does), is unwrapped, even when it would not pass `isEnvelope`.
 */
export function isEnvelopeLike(value: Record<string, unknown>): boolean {
  if ("specversion" in value) return true;
  if (typeof value.type !== "string") return false;
  const data = value.data;
  return isObject(data) || (typeof data === "string" && isObject(parseJson(data)));
}

/** Parse a JSON string; `undefined` for anything that is not valid JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The value itself when it is an object, or the object a JSON string holds; else `undefined`. */
export function toObject(value: unknown): Record<string, unknown> | undefined {
  if (typeof value === "string") value = parseJson(value);
  return isObject(value) ? value : undefined;
}

/** A plain object as-is, or the plain object a JSON string holds; else `undefined`. */
export function toPlainObject(value: unknown): Record<string, unknown> | undefined {
  if (typeof value === "string") value = parseJson(value);
  return isPlainObject(value) ? value : undefined;
}

/** A non-empty string, else `undefined`. */
export function nonEmptyString(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}
