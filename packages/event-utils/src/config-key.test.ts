import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { extractConfigKey, formatConfigKey, parseConfigKey } from "./config-key";

const boardTypeArb = fc.stringMatching(/^[a-z][a-z0-9]{0,11}$/);
const numPlayersArb = fc.integer({ min: 1, max: 999 });
const partsArb = fc.record({ boardType: boardTypeArb, numPlayers: numPlayersArb });
const configKeyArb = fc.stringMatching(/^[a-z][a-z0-9]{0,11}_[1-9][0-9]{0,2}p$/);

describe("parseConfigKey", () => {
  it.each([
    ["hex8_2p", "hex8", 2],
    ["square19_4p", "square19", 4],
    ["x_1p", "x", 1],
    ["hexagonal_12p", "hexagonal", 12],
    ["b_999p", "b", 999],
  ])("takes %s apart into board type and player count", (key, boardType, numPlayers) => {
    expect(parseConfigKey(key)).toEqual({ boardType, numPlayers });
  });

  it.each([
    ["a key without player count", "hex8"],
    ["zero players", "hex8_0p"],
    ["a leading zero in the player count", "hex8_02p"],
    ["more than 999 players", "hex8_1000p"],
    ["a negative player count", "hex8_-2p"],
    ["a missing board type", "_2p"],
    ["a trailing segment", "hex8_2p_x"],
    ["two underscores", "hex8__2p"],
    ["a board type with an underscore", "hex_8_2p"],
    ["a missing p suffix", "hex8_2"],
    ["an uppercase P suffix", "hex8_2P"],
    ["an uppercase board type", "Hex8_2p"],
    ["a board type starting with a digit", "8hex_2p"],
    ["a hyphen instead of an underscore", "hex8-2p"],
    ["leading whitespace", " hex8_2p"],
    ["trailing whitespace", "hex8_2p "],
    ["a trailing newline", "hex8_2p\n"],
    ["only whitespace", "   "],
    ["an empty string", ""],
    ["a fractional player count", "hex8_2.5p"],
    ["non-ASCII digits", "hex8_٢p"],
    ["a number", 2],
    ["null", null],
    ["undefined", undefined],
    ["an object", { boardType: "hex8", numPlayers: 2 }],
  ])("returns null for %s", (_case, key) => {
    expect(parseConfigKey(key)).toBeNull();
  });
});

describe("formatConfigKey", () => {
  it("writes board type and player count as a key", () => {
    expect(formatConfigKey("hex8", 2)).toBe("hex8_2p");
  });

  it("accepts the parts as one object", () => {
    expect(formatConfigKey({ boardType: "square19", numPlayers: 4 })).toBe("square19_4p");
  });

  it.each([
    ["an uppercase board type", "Hex8", 2, /board type "Hex8" is invalid/],
    ["an empty board type", "", 2, /board type "" is invalid/],
    ["a board type with an underscore", "hex_8", 2, /board type "hex_8" is invalid/],
    ["a board type with whitespace", "hex8 ", 2, /board type "hex8 " is invalid/],
    ["a board type that is a number", 8, 2, /board type 8 is invalid/],
    ["a missing board type", undefined, 2, /board type of type undefined is invalid/],
    ["zero players", "hex8", 0, /player count 0 is invalid; it must be an integer from 1 to 999/],
    ["a negative player count", "hex8", -1, /player count -1 is invalid/],
    ["a fractional player count", "hex8", 2.5, /player count 2.5 is invalid/],
    ["more than 999 players", "hex8", 1000, /player count 1000 is invalid/],
    ["a NaN player count", "hex8", Number.NaN, /player count NaN is invalid/],
    ["a player count given as a string", "hex8", "2", /player count "2" is invalid/],
    ["a missing player count", "hex8", undefined, /player count of type undefined is invalid/],
  ])("throws a RangeError naming the value for %s", (_case, boardType, numPlayers, message) => {
    expect(() => formatConfigKey(boardType as string, numPlayers as number)).toThrow(RangeError);
    expect(() => formatConfigKey(boardType as string, numPlayers as number)).toThrow(message);
  });

  it("parses back to the parts it was given", () => {
    fc.assert(
      fc.property(partsArb, (parts) => {
        expect(parseConfigKey(formatConfigKey(parts))).toEqual(parts);
        expect(parseConfigKey(formatConfigKey(parts.boardType, parts.numPlayers))).toEqual(parts);
      }),
    );
  });

  it("writes back exactly the key it parsed", () => {
    fc.assert(
      fc.property(configKeyArb, (key) => {
        const parts = parseConfigKey(key);
        expect(parts).not.toBeNull();
        expect(formatConfigKey(parts!)).toBe(key);
      }),
    );
  });

  it("only parses strings that it could have written", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary-ascii", maxLength: 12 }), (key) => {
        const parts = parseConfigKey(key);
        if (parts !== null) expect(formatConfigKey(parts)).toBe(key);
      }),
    );
  });
});

describe("extractConfigKey", () => {
  it.each([
    ["config_key of a plain payload", { config_key: "hex8_2p" }, "hex8_2p"],
    ["configKey of a plain payload", { configKey: "hex8_2p" }, "hex8_2p"],
    [
      "config_key of an envelope",
      { specversion: "1.0", data: { config_key: "hex8_2p" } },
      "hex8_2p",
    ],
    ["config_key of a { payload } event", { payload: { config_key: "hex8_2p" } }, "hex8_2p"],
    ["config_key of a { metadata } event", { metadata: { config_key: "hex8_2p" } }, "hex8_2p"],
    ["config_key of a JSON string", '{"config_key":"hex8_2p"}', "hex8_2p"],
    ["board_type and num_players", { board_type: "square8", num_players: 4 }, "square8_4p"],
    [
      "num_players given as a digit string",
      { board_type: "square8", num_players: "4" },
      "square8_4p",
    ],
    ["config_key before configKey", { config_key: "hex8_2p", configKey: "hex8_3p" }, "hex8_2p"],
    [
      "config_key before board_type and num_players",
      { config_key: "hex8_2p", board_type: "square8", num_players: 4 },
      "hex8_2p",
    ],
    [
      "configKey when config_key is malformed",
      { config_key: "hex8", configKey: "hex8_3p" },
      "hex8_3p",
    ],
    [
      "board_type and num_players when config_key is malformed",
      { config_key: "HEX8_2P", board_type: "hex8", num_players: 2 },
      "hex8_2p",
    ],
  ])("returns %s", (_case, event, expected) => {
    expect(extractConfigKey(event)).toBe(expected);
  });

  it.each([
    ["an empty payload", {}],
    ["a malformed config_key", { config_key: "hex8" }],
    ["a config_key with whitespace", { config_key: " hex8_2p" }],
    ["a config_key that is not a string", { config_key: 82 }],
    ["board_type without num_players", { board_type: "hex8" }],
    ["num_players without board_type", { num_players: 2 }],
    ["zero players", { board_type: "hex8", num_players: 0 }],
    ["a fractional player count", { board_type: "hex8", num_players: 2.5 }],
    ["an uppercase board_type", { board_type: "HEX8", num_players: 2 }],
    ["null", null],
    ["a number", 7],
  ])("returns undefined for %s", (_case, event) => {
    expect(extractConfigKey(event)).toBeUndefined();
  });

  it("only returns keys that parse, whatever it is given", () => {
    fc.assert(
      fc.property(fc.anything({ withObjectString: true, withNullPrototype: true }), (value) => {
        const key = extractConfigKey(value);
        if (key !== undefined) expect(parseConfigKey(key)).not.toBeNull();
      }),
    );
  });

  it("returns a key that parses for any valid board_type and num_players", () => {
    fc.assert(
      fc.property(partsArb, ({ boardType, numPlayers }) => {
        const key = extractConfigKey({ board_type: boardType, num_players: numPlayers });
        expect(parseConfigKey(key)).toEqual({ boardType, numPlayers });
      }),
    );
  });
});
