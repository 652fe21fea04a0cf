import { describe, expect, it } from "vitest";
import { describeAlertRule, evaluateAlertRule } from "./alerts";

const HOUR = 3_600_000;
const now = 1_800_000_000_000;

describe("evaluateAlertRule", () => {
  it("fires an any-occurrence rule on a single occurrence", () => {
    expect(evaluateAlertRule({ kind: "any" }, [now - 5])).toMatchObject({ firing: true, count: 1 });
    expect(evaluateAlertRule({ kind: "any" }, [])).toMatchObject({ firing: false, count: 0 });
  });

  it("fires a rate rule only above the threshold inside the window", () => {
    const rule = { kind: "rate", moreThan: 3, withinMs: HOUR } as const;
    const three = [now - 1, now - 2, now - 3];
    expect(evaluateAlertRule(rule, three, now)).toMatchObject({ firing: false, count: 3 });
    expect(evaluateAlertRule(rule, [...three, now - 4], now)).toMatchObject({
      firing: true,
      count: 4,
    });
    expect(evaluateAlertRule(rule, [...three, now - HOUR - 1], now)).toMatchObject({
      firing: false,
      count: 3,
    });
  });

  it("describes rules in words", () => {
    expect(describeAlertRule({ kind: "any" })).toBe("any occurrence");
    expect(describeAlertRule({ kind: "rate", moreThan: 3, withinMs: HOUR })).toBe(
      "more than 3 in 1 hour",
    );
    expect(describeAlertRule({ kind: "rate", moreThan: 1, withinMs: 90_000 })).toBe(
      "more than 1 in 90 seconds",
    );
  });
});
