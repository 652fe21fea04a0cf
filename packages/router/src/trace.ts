import { randomFillSync } from "node:crypto";

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

// Every publish mints ids: random bytes come from a pooled buffer (one getrandom call per 170
// traceparents), hex-encoded through a table — a fresh randomBytes() per id would cost more than
// the rest of the envelope.
const pool = Buffer.alloc(4096);
let used = pool.length;

function randomHex(bytes: number): string {
  if (used + bytes > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  let hex = "";
  for (let end = used + bytes; used < end; used++) hex += HEX[pool[used]!]!;
  return hex;
}

/** A new W3C `traceparent` starting a trace (sampled). */
export function newTraceparent(): string {
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}

/**
 * The `traceparent` of an operation caused by one carrying `parent`: same trace id and flags, a
 * new span id. `undefined` when `parent` is absent or malformed.
 */
export function childTraceparent(parent: string | undefined): string | undefined {
  if (parent === undefined) return undefined;
  const match = TRACEPARENT.exec(parent);
  if (!match) return undefined;
  return `00-${match[2]}-${randomHex(8)}-${match[4]}`;
}

/** The trace id of a W3C `traceparent` (32 hex digits), or `undefined` when it is absent or malformed. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  if (traceparent === undefined) return undefined;
  const match = TRACEPARENT.exec(traceparent);
  return match ? match[2] : undefined;
}
