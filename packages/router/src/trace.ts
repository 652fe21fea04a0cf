import { randomFillSync } from "node:crypto";
import { writeHex } from "@switchyard/event-schema";

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

// Every publish mints a trace context. Random ids are formatted ahead, BLOCK at a time, into one
// Latin-1 string ("00-<32 hex>-<16 hex>-01" each, back to back): one getrandom call and one string
// per block, one slice per traceparent. Hex-encoding 24 bytes per publish (24 concatenations)
// cost more than the rest of the envelope. A slice keeps its block (3.5 KB) alive while it lives:
// blocks stay small so an envelope kept alone (a dead letter) costs little more.
const BLOCK = 64;
const LENGTH = 55; // "00-" + 32 + "-" + 16 + "-01"
const RANDOM_BYTES = 24; // trace id 16, span id 8
// Random bytes are drawn 64 KiB at a time: a randomFillSync call costs microseconds whatever its size.
const random = new Uint8Array(BLOCK * RANDOM_BYTES * 42);
let randomOffset = random.length;
const formatted = Buffer.alloc(BLOCK * LENGTH);
const view = new DataView(formatted.buffer, formatted.byteOffset, formatted.byteLength);
for (let i = 0; i < BLOCK; i++)
  formatted.write(`00-${"0".repeat(32)}-${"0".repeat(16)}-01`, i * LENGTH, "latin1");
let traceparents = "";
let offset = 0;

function refill(): void {
  if (randomOffset === random.length) {
    randomFillSync(random);
    randomOffset = 0;
  }
  let b = randomOffset;
  randomOffset += BLOCK * RANDOM_BYTES;
  // Module bindings copied to locals: read in the loop, each costs a context load and a check.
  const out = view;
  const bytes = random;
  for (let o = 3; o < BLOCK * LENGTH; o += LENGTH, b += RANDOM_BYTES) {
    // after "00-": 16 bytes of trace id, "-", 8 bytes of span id
    writeHex(out, o, bytes, b, 16);
    writeHex(out, o + 33, bytes, b + 16, 8);
  }
  traceparents = formatted.toString("latin1");
  offset = 0;
}

/** A new W3C `traceparent` starting a trace (sampled). */
export function newTraceparent(): string {
  if (offset === traceparents.length) refill();
  const start = offset;
  offset += LENGTH;
  return traceparents.slice(start, offset);
}

/** 16 random hex digits: a new span id. */
function newSpanId(): string {
  if (offset === traceparents.length) refill();
  const start = offset + 36; // the span id of the next unused traceparent
  offset += LENGTH;
  return traceparents.slice(start, start + 16);
}

/**
 * The `traceparent` of an operation caused by one carrying `parent`: same trace id and flags, a
 * new span id. `undefined` when `parent` is absent or malformed.
 */
export function childTraceparent(parent: string | undefined): string | undefined {
  if (parent === undefined) return undefined;
  const match = TRACEPARENT.exec(parent);
  if (!match) return undefined;
  return `00-${match[2]}-${newSpanId()}-${match[4]}`;
}

/** The trace id of a W3C `traceparent` (32 hex digits), or `undefined` when it is absent or malformed. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  if (traceparent === undefined) return undefined;
  const match = TRACEPARENT.exec(traceparent);
  return match ? match[2] : undefined;
}
