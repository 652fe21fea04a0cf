import { describeType } from "@switchyard/event-schema";
import { normalizeEventPayload } from "./normalize";

/** A config key taken apart: `"hex8_2p"` is `{ boardType: "hex8", numPlayers: 2 }`. */
export interface ConfigKeyParts {
  /** Lowercase letters and digits, starting with a letter, e.g. `"hex8"`, `"square19"`. */
  readonly boardType: string;
  /** Number of players, an integer from 1 to 999. */
  readonly numPlayers: number;
}

const CONFIG_KEY = /^([a-z][a-z0-9]*)_([1-9][0-9]{0,2})p$/;
const BOARD_TYPE = /^[a-z][a-z0-9]*$/;
const PLAYER_COUNT = /^[1-9][0-9]{0,2}$/;
const MAX_PLAYERS = 999;

/**
 * Take a config key apart. The grammar is strict, so that every key it accepts is exactly the one
 * {@link formatConfigKey} writes: a board type (`[a-z][a-z0-9]*`), one `_`, a player count from 1
 * to 999 without leading zeros, and a lowercase `p`. Anything else, including non-strings and
 * keys with surrounding whitespace, gives `null`.
 *
 * @example
 * ```ts
 * parseConfigKey("hex8_2p");  // → { boardType: "hex8", numPlayers: 2 }
 * parseConfigKey("hex8_0p");  // → null
 * parseConfigKey("Hex8_2P");  // → null
 * ```
 */
export function parseConfigKey(key: unknown): ConfigKeyParts | null {
  if (typeof key !== "string") return null;
  const match = CONFIG_KEY.exec(key);
  if (!match) return null;
  return { boardType: match[1]!, numPlayers: Number(match[2]) };
}

/**
 * Write the config key of a board type and player count; the inverse of {@link parseConfigKey}.
 * Throws a `RangeError` when the board type is not lowercase letters and digits starting with a
 * letter, or the player count is not an integer from 1 to 999.
 *
 * @example
 * ```ts
 * formatConfigKey("hex8", 2);                           // → "hex8_2p"
 * formatConfigKey({ boardType: "square19", numPlayers: 4 }); // → "square19_4p"
 * ```
 */
export function formatConfigKey(parts: ConfigKeyParts): string;
export function formatConfigKey(boardType: string, numPlayers: number): string;
export function formatConfigKey(
  boardTypeOrParts: string | ConfigKeyParts,
  numPlayers?: number,
): string {
  const parts: { boardType: unknown; numPlayers: unknown } =
    typeof boardTypeOrParts === "object" && boardTypeOrParts !== null
      ? boardTypeOrParts
      : { boardType: boardTypeOrParts, numPlayers };
  if (typeof parts.boardType !== "string" || !BOARD_TYPE.test(parts.boardType)) {
    throw new RangeError(
      `formatConfigKey: board type ${show(parts.boardType)} is invalid; it must be lowercase letters and digits starting with a letter, e.g. "hex8".`,
    );
  }
  if (!isPlayerCount(parts.numPlayers)) {
    throw new RangeError(
      `formatConfigKey: player count ${show(parts.numPlayers)} is invalid; it must be an integer from 1 to ${MAX_PLAYERS}.`,
    );
  }
  return `${parts.boardType}_${parts.numPlayers}p`;
}

/**
 * The config key of an event or payload (normalized first with `normalizeEventPayload`): its
 * `config_key`, else `configKey`, else one formatted from `board_type` and `num_players`. Only
 * returns a key that {@link parseConfigKey} accepts: a malformed candidate is skipped, and
 * `undefined` comes back when none is valid.
 *
 * @example
 * ```ts
 * extractConfigKey({ data: { config_key: "hex8_2p" }, type: "EVALUATION_COMPLETED" }); // → "hex8_2p"
 * extractConfigKey({ board_type: "square8", num_players: 4 });                          // → "square8_4p"
 * extractConfigKey({ config_key: "hex8" });                                             // → undefined
 * ```
 */
export function extractConfigKey(payloadOrEvent: unknown): string | undefined {
  return configKeyOf(normalizeEventPayload(payloadOrEvent));
}

/** {@link extractConfigKey} over an already normalized payload (normalizing twice could unwrap a field). */
export function configKeyOf(payload: Readonly<Record<string, unknown>>): string | undefined {
  try {
    for (const candidate of [payload.config_key, payload.configKey]) {
      if (typeof candidate === "string" && parseConfigKey(candidate)) return candidate;
    }
    const boardType = payload.board_type;
    const numPlayers = toPlayerCount(payload.num_players);
    if (typeof boardType === "string" && BOARD_TYPE.test(boardType) && numPlayers !== undefined) {
      return `${boardType}_${numPlayers}p`;
    }
    return undefined;
  } catch {
    return undefined;
  }
}

function isPlayerCount(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= MAX_PLAYERS;
}

/** Payloads written by other languages sometimes carry the count as a digit string. */
function toPlayerCount(value: unknown): number | undefined {
  if (isPlayerCount(value)) return value;
  if (typeof value === "string" && PLAYER_COUNT.test(value)) return Number(value);
  return undefined;
}

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") return String(value);
  return `of type ${describeType(value)}`;
}
