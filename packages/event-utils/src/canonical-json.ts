import { types } from "node:util";

// Canonical JSON for content hashing: the same content gives the same text whatever the key
// order, and no input makes it throw or hang.

/** Past this nesting depth a value is replaced by a marker, so the call stack cannot overflow. */
const MAX_DEPTH = 1000;
/**
 * Past this many values the rest are replaced by a marker. Far above any real payload; it bounds
 * the work on object graphs that share references, whose JSON text grows exponentially.
 */
const MAX_VALUES = 1_000_000;
const TRUNCATED = '"[Truncated]"';
const UNREADABLE = '"[Unreadable]"';

/**
 * `JSON.stringify` with object keys sorted recursively (UTF-16 code unit order) and no
 * whitespace. As in JSON, `undefined`, functions and symbols are left out of objects and are
 * `null` in arrays, non-finite numbers are `null`, a boxed primitive (`new Number(1)`) is the
 * value it wraps, and `toJSON` is honoured (so a `Date` is its ISO string): a payload hashes as
 * the JSON a transport carries. Strings are written code unit for code unit, without Unicode
 * normalisation: `"é"` (NFC) and `"e\u0301"` (NFD) are different text. What `JSON.stringify`
 * cannot write is written as a marker outside any JSON string, so it never reads like JSON data:
 * a bigint as `#bigint(-5)`, a reference back to an enclosing object as `#circular(n)` (`n` levels
 * up: cycles to different ancestors differ). Instead of throwing or hanging, nesting deeper than
 * 1000 or values past the millionth are `"[Truncated]"`, and an object whose properties cannot be
 * read (a revoked proxy, a throwing getter) is `"[Unreadable]"` (both make the text incomplete).
 */
export function canonicalJson(value: unknown): string {
  return canonicalJsonOf(value).text;
}

/**
 * {@link canonicalJson}, and whether the text holds all of `value`: `complete` is false when a
 * part of it was replaced by `"[Truncated]"` or `"[Unreadable]"`, so that two different values
 * may have given the same text.
 */
export function canonicalJsonOf(value: unknown): { text: string; complete: boolean } {
  const writer = new CanonicalWriter();
  const text = writer.write(value, 0) ?? "null";
  return { text, complete: !writer.lossy };
}

class CanonicalWriter {
  /** Objects on the path from the root to the value being written, with their depth. */
  private readonly ancestors = new Map<object, number>();
  private values = 0;
  /** A part was left out (truncated or unreadable). */
  lossy = false;

  write(value: unknown, depth: number): string | undefined {
    if (++this.values > MAX_VALUES) return this.truncated();
    switch (typeof value) {
      case "string":
        return JSON.stringify(value);
      case "number":
        // For finite numbers String() and JSON agree (-0 included) and String() is faster.
        return Number.isFinite(value) ? String(value) : "null";
      case "boolean":
        return value ? "true" : "false";
      case "bigint":
        // Not `"5"`: a bigint must not read like the string its digits spell.
        return `#bigint(${value.toString()})`;
      case "undefined":
      case "function":
      case "symbol":
        return undefined;
      case "object":
        return value === null ? "null" : this.writeObject(value, depth);
    }
  }

  private writeObject(value: object, depth: number): string | undefined {
    const ancestor = this.ancestors.get(value);
    // Not the string "[Circular]", which a payload may hold; and which ancestor it points to counts.
    if (ancestor !== undefined) return `#circular(${depth - ancestor})`;
    if (depth >= MAX_DEPTH) return this.truncated();
    this.ancestors.set(value, depth);
    try {
      return this.writeContent(value, depth);
    } catch {
      this.lossy = true;
      return UNREADABLE;
    } finally {
      this.ancestors.delete(value);
    }
  }

  private truncated(): string {
    this.lossy = true;
    return TRUNCATED;
  }

  private writeContent(value: object, depth: number): string | undefined {
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    // As in JSON, the replacement is written as-is, without consulting its own toJSON.
    const replaced: unknown = typeof toJSON === "function" ? toJSON.call(value, "") : value;
    if (typeof replaced !== "object" || replaced === null) return this.write(replaced, depth + 1);
    // As in JSON, a boxed primitive is the value it wraps: new Number(1) and new Number(2) would
    // both be {} otherwise, and hash alike.
    const primitive = unboxed(replaced);
    return primitive === undefined
      ? this.writeStructure(replaced, depth)
      : this.write(primitive, depth + 1);
  }

  private writeStructure(value: object, depth: number): string {
    if (Array.isArray(value)) {
      const items: string[] = [];
      // Stopping at the budget also bounds arrays whose length is huge but mostly holes.
      for (let i = 0; i < value.length && this.values < MAX_VALUES; i++) {
        items.push(this.write((value as unknown[])[i], depth + 1) ?? "null");
      }
      if (items.length < value.length) items.push(this.truncated());
      return `[${items.join(",")}]`;
    }
    const record = value as Record<string, unknown>;
    const fields: string[] = [];
    for (const key of Object.keys(record).sort()) {
      if (this.values >= MAX_VALUES) {
        fields.push(`${JSON.stringify(key)}:${this.truncated()}`);
        break;
      }
      const text = this.write(record[key], depth + 1);
      if (text !== undefined) fields.push(`${JSON.stringify(key)}:${text}`);
    }
    return `{${fields.join(",")}}`;
  }
}

/**
 * The primitive a `Number`, `String`, `Boolean` or `BigInt` object wraps, read through the
 * built-in `valueOf` so that no code of the object runs; else `undefined`.
 */
function unboxed(value: object): string | number | boolean | bigint | undefined {
  if (!types.isBoxedPrimitive(value)) return undefined;
  if (types.isNumberObject(value)) return Number.prototype.valueOf.call(value);
  if (types.isStringObject(value)) return String.prototype.valueOf.call(value);
  if (types.isBooleanObject(value)) return Boolean.prototype.valueOf.call(value);
  if (types.isBigIntObject(value)) return BigInt.prototype.valueOf.call(value);
  // A boxed Symbol is an object with no fields to JSON as well.
  return undefined;
}
