import { createEnvelope } from "@switchyard/event-schema";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { getEventId, getTraceparent } from "./ids";

const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

describe("getEventId", () => {
  it.each([
    [
      "the id of an envelope",
      createEnvelope({ type: "X", source: "s", data: {}, id: "e-1" }),
      "e-1",
    ],
    ["event_id", { event_id: "e-2", payload: {} }, "e-2"],
    ["id", { id: "e-3", config_key: "hex8_2p" }, "e-3"],
    ["metadata.id", { metadata: { id: "e-4" } }, "e-4"],
    ["event_id before id", { event_id: "e-5", id: "e-6" }, "e-5"],
    ["id before metadata.id", { id: "e-7", metadata: { id: "e-8" } }, "e-7"],
    ["the envelope id before event_id", { specversion: "1.0", id: "e-9", event_id: "x" }, "e-9"],
    ["the id of a JSON string", '{"event_id":"e-10"}', "e-10"],
    ["event_id when id is not a string", { id: 5, event_id: "e-11" }, "e-11"],
  ])("returns %s", (_case, event, expected) => {
    expect(getEventId(event)).toBe(expected);
  });

  it.each([
    ["a numeric id", { id: 42 }],
    ["an empty id", { id: "" }],
    ["an id only inside the payload", { payload: { id: "e-1" } }],
    ["a non-object metadata", { metadata: "e-1" }],
    ["null", null],
    ["a string that is not JSON", "e-1"],
  ])("returns undefined for %s", (_case, event) => {
    expect(getEventId(event)).toBeUndefined();
  });

  it("never throws, whatever it is given", () => {
    fc.assert(
      fc.property(fc.anything({ withObjectString: true }), (value) => {
        const id = getEventId(value);
        if (id !== undefined) expect(typeof id).toBe("string");
      }),
    );
  });
});

describe("getTraceparent", () => {
  it.each([
    ["an envelope", createEnvelope({ type: "X", source: "s", data: {}, traceparent: TRACEPARENT })],
    ["a top-level field", { traceparent: TRACEPARENT, payload: {} }],
    ["metadata", { metadata: { traceparent: TRACEPARENT } }],
    [
      "metadata when the top-level one is malformed",
      { traceparent: "x", metadata: { traceparent: TRACEPARENT } },
    ],
    ["a JSON string", JSON.stringify({ traceparent: TRACEPARENT })],
  ])("returns a valid traceparent from %s", (_case, event) => {
    expect(getTraceparent(event)).toBe(TRACEPARENT);
  });

  it("accepts a version other than 00 and any flags", () => {
    const value = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff";
    expect(getTraceparent({ traceparent: value })).toBe(value);
  });

  it.each([
    ["an all-zero trace id", "00-00000000000000000000000000000000-b7ad6b7169203331-01"],
    ["an all-zero span id", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"],
    ["the forbidden version ff", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
    ["uppercase hex", "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"],
    ["a short trace id", "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01"],
    ["a short span id", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01"],
    ["a missing flags field", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"],
    ["a trailing field", `${TRACEPARENT}-00`],
    ["surrounding whitespace", ` ${TRACEPARENT}`],
    ["non-hex characters", "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01"],
    ["an empty string", ""],
    ["a number", 1],
  ])("returns undefined for %s", (_case, traceparent) => {
    expect(getTraceparent({ traceparent })).toBeUndefined();
  });

  it("returns undefined when there is no traceparent", () => {
    expect(getTraceparent({ payload: { traceparent: TRACEPARENT } })).toBeUndefined();
    expect(getTraceparent(null)).toBeUndefined();
  });

  it("never throws, whatever it is given", () => {
    fc.assert(
      fc.property(fc.anything({ withObjectString: true }), (value) => {
        expect(() => getTraceparent(value)).not.toThrow();
      }),
    );
  });
});
