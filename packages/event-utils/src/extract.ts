import { configKeyOf, parseConfigKey } from "./config-key";
import { normalizeEventPayload } from "./normalize";
import { nonEmptyString } from "./shape";

/** The config key of a stage event and its two parts. */
export interface ConfigFields {
  /** `config_key` (or one formatted from `board_type` and `num_players`), e.g. `"hex8_2p"`. */
  readonly configKey: string;
  /** The board type parsed from the config key, e.g. `"hex8"`. */
  readonly boardType: string;
  /** The player count parsed from the config key, e.g. `2`. */
  readonly numPlayers: number;
}

/** The fields of an `EVALUATION_COMPLETED` payload, camelCased. */
export interface EvaluationFields extends ConfigFields {
  /** `model_path`: the evaluated checkpoint. */
  readonly modelPath: string;
  /** `elo`: the Elo estimate. */
  readonly elo: number;
  /** `games_played`: a non-negative integer. */
  readonly gamesPlayed: number;
  /** `win_rate`, between 0 and 1; optional. */
  readonly winRate: number | undefined;
}

/** The fields of a `TRAINING_COMPLETED` payload, camelCased. */
export interface TrainingFields extends ConfigFields {
  /** `model_path`: the checkpoint training wrote. */
  readonly modelPath: string;
  /** `loss`: the final training loss. */
  readonly loss: number;
  /** `epochs`, a non-negative integer; optional. */
  readonly epochs: number | undefined;
  /** `samples`, a non-negative integer; optional. */
  readonly samples: number | undefined;
  /** `val_loss`; optional. */
  readonly valLoss: number | undefined;
  /** `duration_seconds`, non-negative; optional. */
  readonly durationSeconds: number | undefined;
}

/**
 * What an extractor returns: when `isValid` is `true` every required field is there with the
 * right type; when `false` each field is its value if that one was well-formed, else `undefined`
 * (never `NaN`).
 */
export type Extracted<T> =
  | ({ readonly isValid: true } & Readonly<T>)
  | ({ readonly isValid: false } & { readonly [K in keyof T]: T[K] | undefined });

/** Result of {@link extractEvaluationData}. */
export type EvaluationData = Extracted<EvaluationFields>;

/** Result of {@link extractTrainingData}. */
export type TrainingData = Extracted<TrainingFields>;

/**
 * The fields of an `EVALUATION_COMPLETED` event or payload, typed and camelCased. Valid when the
 * config key parses and `model_path` (non-empty string), `elo` (finite number) and
 * `games_played` (non-negative integer) are present; `win_rate` is kept when it is between 0 and
 * 1. Never throws: a malformed event gives `isValid: false`.
 *
 * @example
 * ```ts
 * const data = extractEvaluationData(event);
 * if (data.isValid) console.log(data.boardType, data.numPlayers, data.elo, data.winRate);
 * ```
 */
export function extractEvaluationData(payloadOrEvent: unknown): EvaluationData {
  try {
    const payload = normalizeEventPayload(payloadOrEvent);
    const { configKey, boardType, numPlayers } = configFields(payload);
    const modelPath = nonEmptyString(payload.model_path);
    const elo = finite(payload.elo);
    const gamesPlayed = count(payload.games_played);
    const winRate = ratio(payload.win_rate);
    if (
      configKey !== undefined &&
      boardType !== undefined &&
      numPlayers !== undefined &&
      modelPath !== undefined &&
      elo !== undefined &&
      gamesPlayed !== undefined
    ) {
      return Object.freeze({
        isValid: true,
        configKey,
        boardType,
        numPlayers,
        modelPath,
        elo,
        gamesPlayed,
        winRate,
      });
    }
    return Object.freeze({
      isValid: false,
      configKey,
      boardType,
      numPlayers,
      modelPath,
      elo,
      gamesPlayed,
      winRate,
    });
  } catch {
    return INVALID_EVALUATION;
  }
}

/**
 * The fields of a `TRAINING_COMPLETED` event or payload, typed and camelCased. Valid when the
 * config key parses and `model_path` (non-empty string) and `loss` (finite number) are present;
 * `epochs` and `samples` are kept when they are non-negative integers, `val_loss` when finite,
 * `duration_seconds` when finite and non-negative. Never throws.
 *
 * @example
 * ```ts
 * const data = extractTrainingData({ config_key: "hex8_2p", model_path: "m.pt", loss: 0.42 });
 * data.isValid; // true
 * data.loss;    // 0.42
 * ```
 */
export function extractTrainingData(payloadOrEvent: unknown): TrainingData {
  try {
    const payload = normalizeEventPayload(payloadOrEvent);
    const { configKey, boardType, numPlayers } = configFields(payload);
    const modelPath = nonEmptyString(payload.model_path);
    const loss = finite(payload.loss);
    const epochs = count(payload.epochs);
    const samples = count(payload.samples);
    const valLoss = finite(payload.val_loss);
    const durationSeconds = nonNegative(payload.duration_seconds);
    if (
      configKey !== undefined &&
      boardType !== undefined &&
      numPlayers !== undefined &&
      modelPath !== undefined &&
      loss !== undefined
    ) {
      return Object.freeze({
        isValid: true,
        configKey,
        boardType,
        numPlayers,
        modelPath,
        loss,
        epochs,
        samples,
        valLoss,
        durationSeconds,
      });
    }
    return Object.freeze({
      isValid: false,
      configKey,
      boardType,
      numPlayers,
      modelPath,
      loss,
      epochs,
      samples,
      valLoss,
      durationSeconds,
    });
  } catch {
    return INVALID_TRAINING;
  }
}

const INVALID_EVALUATION: EvaluationData = Object.freeze({
  isValid: false,
  configKey: undefined,
  boardType: undefined,
  numPlayers: undefined,
  modelPath: undefined,
  elo: undefined,
  gamesPlayed: undefined,
  winRate: undefined,
});

const INVALID_TRAINING: TrainingData = Object.freeze({
  isValid: false,
  configKey: undefined,
  boardType: undefined,
  numPlayers: undefined,
  modelPath: undefined,
  loss: undefined,
  epochs: undefined,
  samples: undefined,
  valLoss: undefined,
  durationSeconds: undefined,
});

function configFields(payload: Readonly<Record<string, unknown>>): {
  [K in keyof ConfigFields]: ConfigFields[K] | undefined;
} {
  const configKey = configKeyOf(payload);
  const parts = parseConfigKey(configKey);
  return { configKey, boardType: parts?.boardType, numPlayers: parts?.numPlayers };
}

function finite(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

function nonNegative(value: unknown): number | undefined {
  const n = finite(value);
  return n !== undefined && n >= 0 ? n : undefined;
}

function count(value: unknown): number | undefined {
  return Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : undefined;
}

function ratio(value: unknown): number | undefined {
  const n = finite(value);
  return n !== undefined && n >= 0 && n <= 1 ? n : undefined;
}
