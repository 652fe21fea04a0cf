import { describe, expect, it } from "vitest";
import { percentNear } from "./harness";

describe("percentNear", () => {
  it("prints a tenth, rounded down, within half a point of the goal: never a rounded-up goal marked not met", () => {
    expect(percentNear(0.897, 0.9)).toBe("89.7 %");
    expect(percentNear(0.5996, 0.6)).toBe("59.9 %");
    expect(percentNear(0.9031, 0.9)).toBe("90.3 %");
  });

  it("prints whole percentages away from the goal", () => {
    expect(percentNear(0.684, 0.6)).toBe("68 %");
    expect(percentNear(1.31, 0.9)).toBe("131 %");
  });
});
