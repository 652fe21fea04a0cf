import { randomFillSync } from "node:crypto";

// Random bytes are drawn in blocks: one syscall per 256 ids instead of one per id.
const POOL_SIZE = 256 * 10;
const pool = new Uint8Array(POOL_SIZE);
let poolOffset = POOL_SIZE;

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

let lastMs = -1;
let sequence = 0;

/**
 * A new UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Ids created in the same
 * process sort in creation order, also within one millisecond (a 12-bit counter seeded randomly).
 */
export function uuidv7(now: number = Date.now()): string {
  if (poolOffset + 10 > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const r = poolOffset;
  poolOffset += 10;

  let ms = now;
  if (ms > lastMs) {
    lastMs = ms;
    sequence = ((pool[r]! << 4) | (pool[r + 1]! >> 4)) & 0x7ff; // random start, room to count up
  } else {
    ms = lastMs;
    sequence++;
    if (sequence > 0xfff) {
      // Counter exhausted within one millisecond: borrow the next millisecond to stay monotonic.
      lastMs = ms = lastMs + 1;
      sequence = 0;
    }
  }

  const high = Math.floor(ms / 0x1000000); // upper 24 bits of the 48-bit timestamp
  const low = ms % 0x1000000; // lower 24 bits
  return (
    HEX[(high >>> 16) & 0xff]! +
    HEX[(high >>> 8) & 0xff]! +
    HEX[high & 0xff]! +
    HEX[(low >>> 16) & 0xff]! +
    "-" +
    HEX[(low >>> 8) & 0xff]! +
    HEX[low & 0xff]! +
    "-" +
    HEX[0x70 | (sequence >>> 8)]! +
    HEX[sequence & 0xff]! +
    "-" +
    HEX[0x80 | (pool[r + 2]! & 0x3f)]! +
    HEX[pool[r + 3]!]! +
    "-" +
    HEX[pool[r + 4]!]! +
    HEX[pool[r + 5]!]! +
    HEX[pool[r + 6]!]! +
    HEX[pool[r + 7]!]! +
    HEX[pool[r + 8]!]! +
    HEX[pool[r + 9]!]!
  );
}

/** The creation time (Unix ms) encoded in a UUIDv7, or `undefined` for anything else. */
export function uuidv7Time(id: string): number | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id))
    return undefined;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
