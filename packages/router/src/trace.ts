import { randomBytes } from "node:crypto";

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A new W3C `traceparent` starting a trace (sampled). */
export function newTraceparent(): string {
  return `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`;
}

/**
 * The `traceparent` of an operation caused by one carrying `parent`: same trace id and flags, a
 * new span id. `undefined` when `parent` is absent or malformed.
 */
export function childTraceparent(parent: string | undefined): string | undefined {
  if (parent === undefined) return undefined;
  const match = TRACEPARENT.exec(parent);
  if (!match) return undefined;
  return `00-${match[2]}-${randomBytes(8).toString("hex")}-${match[4]}`;
}
