import { randomFillSync } from "node:crypto";

// Random bits are drawn in blocks and hex-encoded once: one syscall and one encode per 256 ids.
const BLOCK_IDS = 256;
const RANDOM_HEX_PER_ID = 16; // 62 random bits of rand_b, hex-encoded (variant applied per id)
let randomHex = "";
let randomOffset = 0;
const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const VARIANT = "89ab";

let lastMs = -1;
let sequence = 0;
let prefix = "";

function refill(): void {
  const bytes = new Uint8Array(BLOCK_IDS * (RANDOM_HEX_PER_ID / 2));
  randomFillSync(bytes);
  randomHex = Buffer.from(bytes.buffer).toString("hex");
  randomOffset = 0;
}

function randomNibble(): number {
  if (randomOffset >= randomHex.length) refill();
  return parseInt(randomHex[randomOffset++]!, 16);
}

/**
 * A new UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Ids created in the same
 * process sort in creation order, also within one millisecond (a 12-bit counter seeded randomly).
 */
export function uuidv7(now: number = Date.now()): string {
  let ms = now;
  if (ms > lastMs) {
    lastMs = ms;
    sequence = (randomNibble() << 7) | (randomNibble() << 3) | (randomNibble() >> 1); // random start, room to count up
    prefix = timePrefix(ms);
  } else {
    ms = lastMs;
    sequence++;
    if (sequence > 0xfff) {
      // Counter exhausted within one millisecond: borrow the next millisecond to stay monotonic.
      lastMs = ms = lastMs + 1;
      sequence = 0;
      prefix = timePrefix(ms);
    }
  }
  if (randomOffset + RANDOM_HEX_PER_ID > randomHex.length) refill();
  const r = randomHex.slice(randomOffset, randomOffset + RANDOM_HEX_PER_ID);
  randomOffset += RANDOM_HEX_PER_ID;
  return (
    prefix +
    "7" +
    HEX[sequence >>> 8]![1] +
    HEX[sequence & 0xff] +
    "-" +
    VARIANT[parseInt(r[0]!, 16) & 3] +
    r.slice(1, 4) +
    "-" +
    r.slice(4, 16)
  );
}

/** "tttttttt-tttt-" for a millisecond timestamp. */
function timePrefix(ms: number): string {
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
    "-"
  );
}

/** The creation time (Unix ms) encoded in a UUIDv7, or `undefined` for anything else. */
export function uuidv7Time(id: string): number | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id))
    return undefined;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
