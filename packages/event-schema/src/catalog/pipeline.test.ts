import { describe, expect, expectTypeOf, it } from "vitest";
import type { EventData, EventOf, EventsOf, EventType } from "../types";
import { type PipelineCatalog, pipelineCatalog, pipelineStages } from "./pipeline";

type P = PipelineCatalog;

// The required payload fields of the original system's event reference, verbatim.
const required: Record<string, string[]> = {
  TRAINING_COMPLETED: ["config_key", "model_path", "loss"],
  EVALUATION_COMPLETED: ["config_key", "model_path", "elo", "games_played"],
  MODEL_PROMOTED: ["config_key", "model_path", "elo"],
  DATA_SYNC_COMPLETED: ["source", "target", "files_synced"],
  REGRESSION_DETECTED: ["config_key", "model_path", "elo_drop"],
  QUALITY_ALERT: ["config_key", "quality_score", "timestamp"],
};

const valid: Record<string, Record<string, unknown>> = {
  TRAINING_COMPLETED: { config_key: "hex8_2p", model_path: "m.pt", loss: 0.42 },
  EVALUATION_COMPLETED: { config_key: "hex8_2p", model_path: "m.pt", elo: 1500, games_played: 200 },
  MODEL_PROMOTED: { config_key: "hex8_2p", model_path: "m.pt", elo: 1510 },
  DATA_SYNC_COMPLETED: { source: "node-a", target: "node-b", files_synced: 12 },
  REGRESSION_DETECTED: { config_key: "hex8_2p", model_path: "m.pt", elo_drop: 40 },
  QUALITY_ALERT: { config_key: "hex8_2p", quality_score: 0.3, timestamp: 1_700_000_000.5 },
};

describe("pipelineCatalog", () => {
  it("holds every event the pipeline and its runbook name", () => {
    expect([...pipelineCatalog.types].sort()).toEqual(
      [
        "DAEMON_PERMANENTLY_FAILED",
        "DATA_SYNC_COMPLETED",
        "DATA_SYNC_FAILED",
        "DLQ_DEPTH_EXCEEDED",
        "DLQ_PERMANENTLY_FAILED",
        "EVALUATION_COMPLETED",
        "MODEL_DISTRIBUTION_COMPLETE",
        "MODEL_PROMOTED",
        "NEW_GAMES_AVAILABLE",
        "NPZ_EXPORT_COMPLETE",
        "PROGRESS_STALL_DETECTED",
        "QUALITY_ALERT",
        "REGRESSION_CRITICAL",
        "REGRESSION_DETECTED",
        "SELFPLAY_COMPLETE",
        "SPLIT_BRAIN_DETECTED",
        "TRAINING_COMPLETED",
        "TRAINING_FAILED",
      ].sort(),
    );
  });

  it.each(Object.entries(required))(
    "%s accepts its required fields and rejects each one missing",
    (type, fields) => {
      const payload = valid[type]!;
      expect(pipelineCatalog.safeParse(type as EventType<P>, payload).success).toBe(true);
      for (const field of fields) {
        const { [field]: _dropped, ...rest } = payload;
        const result = pipelineCatalog.safeParse(type as EventType<P>, rest);
        expect(result.success, `${type} without ${field}`).toBe(false);
        expect(result.error?.issues.map((i) => i.path)).toEqual([field]);
      }
    },
  );

  it("rejects a mistyped required field", () => {
    const result = pipelineCatalog.safeParse("EVALUATION_COMPLETED", {
      config_key: "hex8_2p",
      model_path: "m.pt",
      elo: "1500",
      games_played: 1.5,
    });
    expect(result.error?.issues.map((i) => i.path)).toEqual(["elo", "games_played"]);
  });

  it("marks the runbook's critical events and their alert rules", () => {
    const alerts = Object.fromEntries(
      pipelineCatalog.types.map((t) => [t, pipelineCatalog.get(t).alert]),
    );
    expect(alerts).toMatchObject({
      DAEMON_PERMANENTLY_FAILED: { kind: "any" },
      REGRESSION_CRITICAL: { kind: "any" },
      SPLIT_BRAIN_DETECTED: { kind: "any" },
      TRAINING_FAILED: { kind: "any" },
      DATA_SYNC_FAILED: { kind: "rate", moreThan: 3, withinMs: 3_600_000 },
    });
    expect(pipelineCatalog.get("SELFPLAY_COMPLETE").severity).toBe("informational");
    expect(pipelineCatalog.get("MODEL_PROMOTED").severity).toBe("critical");
  });

  it("lists the pipeline stages in flow order", () => {
    expect(pipelineStages[0]).toBe("NEW_GAMES_AVAILABLE");
    expect(pipelineStages.at(-1)).toBe("MODEL_DISTRIBUTION_COMPLETE");
    for (const stage of pipelineStages) expect(pipelineCatalog.isDurable(stage)).toBe(true);
  });
});

describe("catalog types", () => {
  it("types payloads from the catalog", () => {
    expectTypeOf<EventData<"TRAINING_COMPLETED", P>>()
      .toHaveProperty("loss")
      .toEqualTypeOf<number>();
    expectTypeOf<EventData<"EVALUATION_COMPLETED", P>["win_rate"]>().toEqualTypeOf<
      number | undefined
    >();
    expectTypeOf<EventOf<"MODEL_PROMOTED", P>["type"]>().toEqualTypeOf<"MODEL_PROMOTED">();
    const parsePromoted = () => pipelineCatalog.parse("MODEL_PROMOTED", {});
    expectTypeOf(parsePromoted).returns.toHaveProperty("elo").toEqualTypeOf<number>();
    expectTypeOf<"TRAINING_COMPLETED">().toExtend<EventType<P>>();
    expectTypeOf<"TRAINNG_COMPLETED">().not.toExtend<EventType<P>>();
  });

  it("does not compile with a wrong event name or a missing field", () => {
    // These lines are checked by `pnpm typecheck`: each must be a compile error.
    // @ts-expect-error — not an event type of the catalog
    const _wrongName: EventData<"TRAINNG_COMPLETED", P> = {};
    // @ts-expect-error — loss is required
    const _missing: EventData<"TRAINING_COMPLETED", P> = {
      config_key: "hex8_2p",
      model_path: "m.pt",
    };
    type Pipeline = EventsOf<P>;
    // @ts-expect-error — loss is required
    const _missingInEnvelope: Pipeline["TRAINING_COMPLETED"]["data"] = {
      config_key: "k",
      model_path: "m",
    };
    // @ts-expect-error — not an event type of the catalog
    type _WrongEnvelope = Pipeline["TRAINNG_COMPLETED"];
    // @ts-expect-error — unknown type in parse()
    expect(() => pipelineCatalog.parse("TRAINNG_COMPLETED", {})).toThrow();
  });

  it("indexes a catalog's envelopes by event type", () => {
    type Pipeline = EventsOf<P>;
    expectTypeOf<Pipeline["MODEL_PROMOTED"]>().toEqualTypeOf<EventOf<"MODEL_PROMOTED", P>>();
    expectTypeOf<Pipeline["MODEL_PROMOTED"]["data"]["elo"]>().toEqualTypeOf<number>();
  });

  it("names no catalog by default: the catalog argument is required", () => {
    // @ts-expect-error — EventOf needs its catalog (it no longer means the pipeline's)
    type _NoCatalog = EventOf<"MODEL_PROMOTED">;
    // @ts-expect-error — EventData needs its catalog
    type _NoCatalogData = EventData<"MODEL_PROMOTED">;
    // @ts-expect-error — EventType needs its catalog
    type _NoCatalogType = EventType;
  });
});
