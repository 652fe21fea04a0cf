import { randomFillSync } from "node:crypto";

// Every publish mints an id, so the random tail of each id ("Vxxx-xxxxxxxxxxxx": the variant
// nibble, 15 random hex digits and the dash) is formatted ahead, BLOCK_IDS at a time, into one
// Latin-1 string: one getrandom call and one string per block, and per id one slice and two
// concatenations. Building it per id (slices, parseInt, six concatenations) cost as much as the
// rest of an envelope. A slice keeps its block (2.2 KB) alive while it lives: blocks stay small.
const BLOCK_IDS = 128;
const TAIL = 17; // "Vxxx-xxxxxxxxxxxx"
const RANDOM_BYTES_PER_ID = 8; // 64 bits drawn, 62 used (rand_b)
const HEX_CODES = new TextEncoder().encode("0123456789abcdef");
const VARIANT_CODES = new TextEncoder().encode("89ab");
const DASH = 0x2d;
/** Two hex digits per byte value, as the 16-bit little-endian word that writes them in order. */
const HEX_PAIRS = new Uint16Array(256);
for (let i = 0; i < 256; i++) HEX_PAIRS[i] = HEX_CODES[i >> 4]! | (HEX_CODES[i & 15]! << 8);

/**
 * Write `count` bytes of `bytes`, from index `from`, as lowercase hex (two Latin-1 characters per
 * byte) into `out` at byte offset `at`. One 32-bit store per two bytes: the way to format random ids
 * ahead into a buffer that is then read as one Latin-1 string (see `uuidv7`). Returns the offset
 * after the last digit written.
 *
 * @example
 * ```ts
 * const out = Buffer.alloc(4);
 * writeHex(new DataView(out.buffer, out.byteOffset, 4), 0, Uint8Array.of(0xab, 0x01), 0, 2);
 * out.toString("latin1"); // "ab01"
 * ```
 */
export function writeHex(
  out: DataView,
  at: number,
  bytes: Uint8Array,
  from: number,
  count: number,
): number {
  const pairs = HEX_PAIRS; // a local: a module binding read in the loop costs a load and a check
  const end = from + count;
  let b = from;
  // Two bytes (four digits) per 32-bit store, then the odd one out.
  for (; b + 1 < end; b += 2, at += 4)
    out.setUint32(at, pairs[bytes[b]!]! | (pairs[bytes[b + 1]!]! << 16), true);
  if (b < end) {
    out.setUint16(at, pairs[bytes[b]!]!, true);
    at += 2;
  }
  return at;
}
// Random bytes are drawn 64 KiB at a time: a randomFillSync call costs microseconds whatever its size.
const random = new Uint8Array(BLOCK_IDS * RANDOM_BYTES_PER_ID * 64);
let randomOffset = random.length;
const formatted = Buffer.alloc(BLOCK_IDS * TAIL);
const view = new DataView(formatted.buffer, formatted.byteOffset, formatted.byteLength);
let tails = "";
let tailOffset = 0;
const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
/** "7xxx-": the version nibble and the 12-bit sequence, by sequence; filled on first use. */
const VERSION_AND_SEQUENCE: (string | undefined)[] = new Array<string | undefined>(0x1000);

let lastMs = -1;
let sequence = 0;
let prefix = "";
/** Random bits for the sequence seeds, drawn with each block. */
let seeds = new Uint8Array(0);
let seedOffset = 0;

function refill(): void {
  if (randomOffset === random.length) {
    randomFillSync(random);
    randomOffset = 0;
  }
  const first = randomOffset;
  randomOffset += BLOCK_IDS * RANDOM_BYTES_PER_ID;
  // Module bindings copied to locals: read in the loop, each costs a context load and a check.
  const out = formatted;
  const words = view;
  const bytes = random;
  const pairs = HEX_PAIRS;
  const hex = HEX_CODES;
  const variants = VARIANT_CODES;
  for (let id = 0; id < BLOCK_IDS; id++) {
    const r = first + id * RANDOM_BYTES_PER_ID;
    let o = id * TAIL;
    // Byte 0: its low 2 bits pick the variant (10xx), its high nibble is the next hex digit.
    out[o++] = variants[bytes[r]! & 3]!;
    out[o++] = hex[bytes[r]! >> 4]!;
    words.setUint16(o, pairs[bytes[r + 1]!]!, true);
    out[o + 2] = DASH;
    writeHex(words, o + 3, bytes, r + 2, RANDOM_BYTES_PER_ID - 2);
  }
  tails = formatted.toString("latin1");
  tailOffset = 0;
}

/** A random 11-bit sequence start, leaving room to count up within one millisecond. */
function randomSeed(): number {
  if (seedOffset + 2 > seeds.length) {
    seeds = new Uint8Array(512);
    randomFillSync(seeds);
    seedOffset = 0;
  }
  const seed = ((seeds[seedOffset]! << 8) | seeds[seedOffset + 1]!) >> 5;
  seedOffset += 2;
  return seed;
}

/**
 * A new UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Ids created in the same
 * process sort in creation order, also within one millisecond (a 12-bit counter seeded randomly).
 */
export function uuidv7(now: number = Date.now()): string {
  let ms = now;
  if (ms > lastMs) {
    lastMs = ms;
    sequence = randomSeed(); // random start, room to count up
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
  if (tailOffset === tails.length) refill();
  const tail = tails.slice(tailOffset, tailOffset + TAIL);
  tailOffset += TAIL;
  return prefix + (VERSION_AND_SEQUENCE[sequence] ?? versionAndSequence(sequence)) + tail;
}

function versionAndSequence(seq: number): string {
  const text = "7" + HEX[seq >>> 8]![1] + HEX[seq & 0xff] + "-";
  VERSION_AND_SEQUENCE[seq] = text;
  return text;
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
