import { describe, expect, it } from "vitest";
import { type DaemonContracts, isDaemonContracts } from "./heartbeat";
import type { HeartbeatInfo } from "./inspector";
import { contractTopology } from "./topology";

const t = (type: string, schemaHash = "aaaa", version = 1) => ({ type, version, schemaHash });
const beat = (daemon: string, contracts?: DaemonContracts, ageMs = 1000): HeartbeatInfo => ({
  daemon,
  pid: 1,
  host: "h",
  status: "running",
  health: {},
  stats: {},
  restarts: 0,
  startedAt: null,
  at: "2026-01-01T00:00:00.000Z",
  ageMs,
  ...(contracts ? { contracts } : {}),
});

describe("contract topology", () => {
  it("folds announcements per type: publishers, consumers, and the drift either way", () => {
    const topology = contractTopology([
      beat("trainer", { publishes: [t("TRAINING_COMPLETED")], subscribes: [t("DATA_EXPORTED")] }),
      beat("evaluator", {
        publishes: [t("EVALUATION_COMPLETED")],
        subscribes: [t("TRAINING_COMPLETED")],
      }),
      beat("legacy"),
    ]);
    expect(topology.silent).toEqual(["legacy"]);
    expect(
      topology.types.map((x) => [
        x.type,
        x.publishers.map((p) => p.daemon),
        x.consumers.map((c) => c.daemon),
        x.issues,
      ]),
    ).toEqual([
      ["DATA_EXPORTED", [], ["trainer"], ["consumed_not_published"]],
      ["EVALUATION_COMPLETED", ["evaluator"], [], ["published_not_consumed"]],
      ["TRAINING_COMPLETED", ["trainer"], ["evaluator"], []],
    ]);
    expect(topology.consistent).toBe(false);
  });

  it("flags two daemons announcing one type with different schemas, and differences from the catalog", () => {
    const topology = contractTopology(
      [
        beat("a", { publishes: [t("X", "1111")], subscribes: [] }),
        beat("b", { publishes: [], subscribes: [t("X", "2222")] }),
        beat("c", { publishes: [t("Y")], subscribes: [t("Y")] }),
      ],
      { catalog: [t("X", "1111")] },
    );
    expect(topology.types.find((x) => x.type === "X")?.issues).toEqual([
      "schema_mismatch",
      "differs_from_catalog",
    ]);
    expect(topology.types.find((x) => x.type === "Y")?.issues).toEqual(["not_in_catalog"]);
  });

  it("marks stale daemons, or leaves them out with skipStale", () => {
    const beats = [
      beat("gone", { publishes: [t("X")], subscribes: [] }, 600_000),
      beat("here", { publishes: [], subscribes: [t("X")] }),
    ];
    expect(contractTopology(beats).types[0]!.publishers[0]!.stale).toBe(true);
    const live = contractTopology(beats, { skipStale: true });
    expect(live.types[0]!.issues).toEqual(["consumed_not_published"]);
  });
});

describe("isDaemonContracts", () => {
  it("keeps the announced shape and rejects anything else read back from storage", () => {
    expect(isDaemonContracts({ publishes: [t("X")], subscribes: [] })).toBe(true);
    expect(isDaemonContracts({ publishes: [t("X")], subscribes: [], package: "a@1" })).toBe(true);
    expect(isDaemonContracts({ publishes: [{ type: "X" }], subscribes: [] })).toBe(false);
    expect(isDaemonContracts({ publishes: "X", subscribes: [] })).toBe(false);
    expect(isDaemonContracts(null)).toBe(false);
    expect(isDaemonContracts({ publishes: [], subscribes: [], package: 3 })).toBe(false);
  });
});

describe("schema comparison in the topology", () => {
  const object = (props: Record<string, string>, required: string[]) => ({
    type: "object",
    properties: Object.fromEntries(Object.entries(props).map(([k, v]) => [k, { type: v }])),
    required,
  });
  it("flags a breaking difference as incompatible, naming the field, and lets an additive one pass", () => {
    const producer = { ...t("ORDER", "p1"), schema: object({ id: "string" }, ["id"]) };
    const strict = {
      ...t("ORDER", "c1"),
      schema: object({ id: "string", currency: "string" }, ["id", "currency"]),
    };
    const lenient = {
      ...t("ORDER", "c2"),
      schema: object({ id: "string", currency: "string" }, ["id"]),
    };
    const broken = contractTopology([
      beat("shop", { publishes: [producer], subscribes: [] }),
      beat("billing", { publishes: [], subscribes: [strict] }),
    ]).types[0]!;
    expect(broken.issues).toEqual(["incompatible"]);
    expect(broken.breaks).toEqual([
      expect.objectContaining({
        publisher: "shop",
        consumer: "billing",
        path: "currency",
        problem: "required_not_sent",
      }),
    ]);
    const fine = contractTopology([
      beat("shop", { publishes: [producer], subscribes: [] }),
      beat("billing", { publishes: [], subscribes: [lenient] }),
    ]);
    expect(fine.types[0]!.issues).toEqual([]);
    expect(fine.consistent).toBe(true);
  });
});
