import { createEnvelope } from "@switchyard/event-schema";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { extractEvaluationData, extractTrainingData } from "./extract";

const evaluation = {
  config_key: "hex8_2p",
  model_path: "models/hex8_2p.pt",
  elo: 1612.5,
  games_played: 200,
  win_rate: 0.58,
};

const training = {
  config_key: "square8_4p",
  model_path: "models/square8_4p.pt",
  loss: 0.42,
  epochs: 12,
  samples: 50_000,
  val_loss: 0.47,
  duration_seconds: 3600,
};

const garbage = fc.anything({ withObjectString: true, withNullPrototype: true, withBigInt: true });

describe("extractEvaluationData", () => {
  it("returns every field, camelCased, with the parsed config key", () => {
    expect(extractEvaluationData(evaluation)).toEqual({
      isValid: true,
      configKey: "hex8_2p",
      boardType: "hex8",
      numPlayers: 2,
      modelPath: "models/hex8_2p.pt",
      elo: 1612.5,
      gamesPlayed: 200,
      winRate: 0.58,
    });
  });

  it.each([
    [
      "an envelope",
      createEnvelope({ type: "EVALUATION_COMPLETED", source: "d", data: evaluation }),
    ],
    ["a { payload } event", { event_type: "EVALUATION_COMPLETED", payload: evaluation }],
    ["a JSON string", JSON.stringify(evaluation)],
    [
      "a { type, data } row whose data is a JSON string",
      { type: "EVALUATION_COMPLETED", data: JSON.stringify(evaluation) },
    ],
  ])("reads the payload out of %s", (_shape, event) => {
    expect(extractEvaluationData(event)).toMatchObject({ isValid: true, elo: 1612.5 });
  });

  it("is valid without the optional win_rate, leaving winRate undefined", () => {
    const { win_rate: _, ...rest } = evaluation;
    expect(extractEvaluationData(rest)).toMatchObject({ isValid: true, winRate: undefined });
  });

  it("builds the config key from board_type and num_players when config_key is absent", () => {
    const { config_key: _, ...rest } = evaluation;
    expect(extractEvaluationData({ ...rest, board_type: "hex8", num_players: 3 })).toMatchObject({
      isValid: true,
      configKey: "hex8_3p",
      boardType: "hex8",
      numPlayers: 3,
    });
  });

  it.each([
    [
      "config_key is missing",
      { config_key: undefined },
      { configKey: undefined, boardType: undefined },
    ],
    [
      "config_key does not parse",
      { config_key: "hex8" },
      { configKey: undefined, numPlayers: undefined },
    ],
    ["model_path is missing", { model_path: undefined }, { modelPath: undefined }],
    ["model_path is empty", { model_path: "" }, { modelPath: undefined }],
    ["model_path is not a string", { model_path: 7 }, { modelPath: undefined }],
    ["elo is missing", { elo: undefined }, { elo: undefined }],
    ["elo is a numeric string", { elo: "1612" }, { elo: undefined }],
    ["elo is NaN", { elo: Number.NaN }, { elo: undefined }],
    ["elo is infinite", { elo: Number.POSITIVE_INFINITY }, { elo: undefined }],
    ["games_played is missing", { games_played: undefined }, { gamesPlayed: undefined }],
    ["games_played is negative", { games_played: -1 }, { gamesPlayed: undefined }],
    ["games_played is fractional", { games_played: 2.5 }, { gamesPlayed: undefined }],
  ])("is invalid when %s, leaving that field undefined", (_case, override, expected) => {
    const data = extractEvaluationData({ ...evaluation, ...override });
    expect(data).toMatchObject({ isValid: false, ...expected });
  });

  it.each([
    ["above 1", 58],
    ["negative", -0.1],
    ["NaN", Number.NaN],
    ["a string", "0.5"],
  ])("drops a win_rate that is %s but stays valid", (_case, winRate) => {
    expect(extractEvaluationData({ ...evaluation, win_rate: winRate })).toMatchObject({
      isValid: true,
      winRate: undefined,
    });
  });

  it("keeps the well-formed fields of an invalid payload", () => {
    expect(extractEvaluationData({ config_key: "hex8_2p", elo: 1500 })).toEqual({
      isValid: false,
      configKey: "hex8_2p",
      boardType: "hex8",
      numPlayers: 2,
      modelPath: undefined,
      elo: 1500,
      gamesPlayed: undefined,
      winRate: undefined,
    });
  });

  it("returns a frozen result", () => {
    expect(Object.isFrozen(extractEvaluationData(evaluation))).toBe(true);
  });

  it("never throws and never returns NaN, whatever it is given", () => {
    fc.assert(
      fc.property(garbage, (value) => {
        const data = extractEvaluationData(value);
        expect(typeof data.isValid).toBe("boolean");
        for (const field of Object.values(data)) expect(field).not.toBeNaN();
      }),
    );
  });
});

describe("extractTrainingData", () => {
  it("returns every field, camelCased, with the parsed config key", () => {
    expect(extractTrainingData(training)).toEqual({
      isValid: true,
      configKey: "square8_4p",
      boardType: "square8",
      numPlayers: 4,
      modelPath: "models/square8_4p.pt",
      loss: 0.42,
      epochs: 12,
      samples: 50_000,
      valLoss: 0.47,
      durationSeconds: 3600,
    });
  });

  it("is valid with only config_key, model_path and loss", () => {
    expect(extractTrainingData({ config_key: "hex8_2p", model_path: "m.pt", loss: 0.1 })).toEqual({
      isValid: true,
      configKey: "hex8_2p",
      boardType: "hex8",
      numPlayers: 2,
      modelPath: "m.pt",
      loss: 0.1,
      epochs: undefined,
      samples: undefined,
      valLoss: undefined,
      durationSeconds: undefined,
    });
  });

  it("reads the payload out of an envelope", () => {
    const event = createEnvelope({ type: "TRAINING_COMPLETED", source: "d", data: training });
    expect(extractTrainingData(event)).toMatchObject({ isValid: true, loss: 0.42 });
  });

  it.each([
    ["config_key is missing", { config_key: undefined }, { configKey: undefined }],
    ["config_key is uppercase", { config_key: "HEX8_2P" }, { configKey: undefined }],
    ["model_path is missing", { model_path: undefined }, { modelPath: undefined }],
    ["loss is missing", { loss: undefined }, { loss: undefined }],
    ["loss is null", { loss: null }, { loss: undefined }],
    ["loss is NaN", { loss: Number.NaN }, { loss: undefined }],
    ["loss is a string", { loss: "0.42" }, { loss: undefined }],
  ])("is invalid when %s, leaving that field undefined", (_case, override, expected) => {
    expect(extractTrainingData({ ...training, ...override })).toMatchObject({
      isValid: false,
      ...expected,
    });
  });

  it.each([
    ["epochs is fractional", { epochs: 1.5 }, { epochs: undefined }],
    ["samples is negative", { samples: -3 }, { samples: undefined }],
    ["val_loss is infinite", { val_loss: Number.NEGATIVE_INFINITY }, { valLoss: undefined }],
    ["duration_seconds is negative", { duration_seconds: -1 }, { durationSeconds: undefined }],
  ])("drops an optional field when %s but stays valid", (_case, override, expected) => {
    expect(extractTrainingData({ ...training, ...override })).toMatchObject({
      isValid: true,
      ...expected,
    });
  });

  it("returns an invalid result with every field undefined for null", () => {
    const data = extractTrainingData(null);
    expect(data.isValid).toBe(false);
    expect(Object.entries(data).filter(([, v]) => v !== undefined)).toEqual([["isValid", false]]);
  });

  it("narrows the fields to defined values when isValid is true", () => {
    const data = extractTrainingData(training);
    if (!data.isValid) throw new Error("expected a valid payload");
    const loss: number = data.loss;
    const numPlayers: number = data.numPlayers;
    expect(loss + numPlayers).toBeCloseTo(4.42);
  });

  it("never throws and never returns NaN, whatever it is given", () => {
    fc.assert(
      fc.property(garbage, (value) => {
        const data = extractTrainingData(value);
        expect(typeof data.isValid).toBe("boolean");
        for (const field of Object.values(data)) expect(field).not.toBeNaN();
      }),
    );
  });
});
