import { describe, expect, it } from "vitest";
import {
  TransportOptionsError,
  describeOptionValue,
  subscribeOptionsProblem,
} from "./subscribe-options";

const handler = async () => {};

describe("subscribeOptionsProblem: names", () => {
  it("refuses a subscriber name with a lone surrogate (it would share bytes with another name)", () => {
    // "\uD800" and "\uDBFF" both become U+FFFD once UTF-8 encoded: one column value, one cursor.
    for (const subscriber of ["a\uD800", "\uDC00b", "x\uD800\uD800"])
      expect(subscribeOptionsProblem({ subscriber, types: ["T"], handler })).toMatchObject({
        option: "subscriber",
      });
  });

  it("refuses an event type with a lone surrogate", () => {
    expect(
      subscribeOptionsProblem({ subscriber: "s", types: ["T", "U\uD800"], handler }),
    ).toMatchObject({ option: "types" });
  });

  it("accepts names with paired surrogates (emoji) and other Unicode", () => {
    expect(
      subscribeOptionsProblem({ subscriber: "trainer-🚂", types: ["événement.😀"], handler }),
    ).toBeUndefined();
  });
});

describe("describeOptionValue", () => {
  it("quotes strings as JSON and names other kinds", () => {
    expect(describeOptionValue("1s\n")).toBe('"1s\\n"');
    expect(describeOptionValue(Number.NaN)).toBe("NaN");
    expect(describeOptionValue(10n)).toBe("10");
    expect(describeOptionValue(undefined)).toBe("undefined");
    expect(describeOptionValue(null)).toBe("null");
    expect(describeOptionValue([1])).toBe("array");
    expect(describeOptionValue({})).toBe("object");
    expect(describeOptionValue(() => {})).toBe("function");
  });

  it("is what TransportOptionsError quotes", () => {
    const error = new TransportOptionsError("memory transport", {
      option: "types",
      value: ["x"],
      expected: "a non-empty array of event type names",
    });
    expect(error.message).toBe(
      "Option types of the memory transport is array; expected a non-empty array of event type names.",
    );
  });
});
