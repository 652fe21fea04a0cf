import { describe, expect, it } from "vitest";
import { assertEnvelope, createEnvelope, envelopeSchema, isEnvelope } from "./envelope";
import { EventValidationError } from "./errors";
import { uuidv7, uuidv7Time } from "./uuid";

describe("createEnvelope", () => {
  it("fills specversion, a UUIDv7 id, an RFC 3339 time and the content type", () => {
    const before = Date.now();
    const e = createEnvelope({
      type: "TRAINING_COMPLETED",
      source: "training_daemon",
      data: { loss: 0.1 },
    });
    expect(e.specversion).toBe("1.0");
    expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(uuidv7Time(e.id)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(e.time)).toBeGreaterThanOrEqual(before);
    expect(e.datacontenttype).toBe("application/json");
    expect(e.dataversion).toBe(1);
    expect(envelopeSchema.safeParse(e).success).toBe(true);
  });

  it("takes the subject from config_key when the payload has one", () => {
    const e = createEnvelope({ type: "X", source: "s", data: { config_key: "hex8_2p" } });
    expect(e.subject).toBe("hex8_2p");
  });

  it("leaves absent optional attributes out of the object instead of setting undefined", () => {
    const e = createEnvelope({ type: "X", source: "s", data: { a: 1 } });
    expect(Object.keys(e).sort()).toEqual(
      [
        "data",
        "datacontenttype",
        "dataversion",
        "id",
        "source",
        "specversion",
        "time",
        "type",
      ].sort(),
    );
  });

  it("writes attributes in one order whichever optional ones are present", () => {
    const order = (extra: Record<string, string>, data: object = { config_key: "k" }) =>
      Object.keys(createEnvelope({ type: "X", source: "s", data, ...extra }));
    const base = ["specversion", "id", "type", "source", "time", "datacontenttype"];
    const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    expect(order({ traceparent: tp, correlationid: "c" })).toEqual([
      ...base,
      "dataversion",
      "data",
      "subject",
      "traceparent",
      "correlationid",
    ]);
    expect(order({ traceparent: tp }, { a: 1 })).toEqual([
      ...base,
      "dataversion",
      "data",
      "traceparent",
    ]);
    expect(order({ causationid: "p" })).toEqual([
      ...base,
      "dataversion",
      "data",
      "subject",
      "causationid",
    ]);
  });

  it("keeps explicit id, time, subject and trace attributes", () => {
    const e = createEnvelope({
      type: "X",
      source: "s",
      data: { config_key: "hex8_2p" },
      id: "evt-1",
      time: new Date("2026-01-02T03:04:05.000Z"),
      subject: "other",
      dataversion: 3,
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      correlationid: "gen-7",
      causationid: "evt-0",
    });
    expect(e).toMatchObject({
      id: "evt-1",
      time: "2026-01-02T03:04:05.000Z",
      subject: "other",
      dataversion: 3,
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      correlationid: "gen-7",
      causationid: "evt-0",
    });
  });
});

describe("uuidv7", () => {
  it("sorts in creation order, also many ids within one millisecond", () => {
    const ids = Array.from({ length: 5000 }, () => uuidv7(1_700_000_000_000));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("encodes the millisecond timestamp it was given", () => {
    expect(uuidv7Time(uuidv7(1_800_000_000_123))).toBeGreaterThanOrEqual(1_800_000_000_123);
  });

  it("returns undefined as time for strings that are not UUIDv7", () => {
    expect(uuidv7Time("not-a-uuid")).toBeUndefined();
    expect(uuidv7Time("123e4567-e89b-42d3-a456-426614174000")).toBeUndefined();
  });
});

describe("isEnvelope", () => {
  it("accepts an envelope with unknown extension attributes", () => {
    const e = { ...createEnvelope({ type: "X", source: "s", data: {} }), myextension: "x" };
    expect(isEnvelope(e)).toBe(true);
  });

  it.each([
    ["null", null],
    ["a plain payload", { config_key: "hex8_2p" }],
    [
      "a wrong specversion",
      { ...createEnvelope({ type: "X", source: "s", data: {} }), specversion: "0.3" },
    ],
    [
      "a time that is not RFC 3339",
      { ...createEnvelope({ type: "X", source: "s", data: {} }), time: "yesterday" },
    ],
  ])("rejects %s", (_name, value) => {
    expect(isEnvelope(value)).toBe(false);
  });
});

describe("assertEnvelope", () => {
  const good = createEnvelope({ type: "X", source: "s", data: { a: 1 } });

  it("accepts an envelope, with or without optional attributes", () => {
    expect(() => assertEnvelope(good)).not.toThrow();
    expect(() =>
      assertEnvelope({ ...good, time: "2026-01-02T03:04:05+02:00", subject: "k" }),
    ).not.toThrow();
  });

  it.each([
    ["null", null, ""],
    ["a string", "{}", ""],
    ["a missing data field", (({ data: _d, ...rest }) => rest)(good), "data"],
    ["specversion 0.3", { ...good, specversion: "0.3" }, "specversion"],
    ["an empty id", { ...good, id: "" }, "id"],
    ["a time of yesterday", { ...good, time: "yesterday" }, "time"],
    ["dataversion 0", { ...good, dataversion: 0 }, "dataversion"],
    ["a numeric traceparent", { ...good, traceparent: 5 }, "traceparent"],
    ["an object correlationid", { ...good, correlationid: {} }, "correlationid"],
    ["a missing datacontenttype", { ...good, datacontenttype: undefined }, "datacontenttype"],
  ])("rejects %s with an EventValidationError naming the attribute", (_what, value, path) => {
    let error: unknown;
    try {
      assertEnvelope(value);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EventValidationError);
    expect((error as EventValidationError).reason).toBe("invalid_envelope");
    if (path) expect((error as EventValidationError).issues.map((i) => i.path)).toContain(path);
    expect(isEnvelope(value)).toBe(false);
  });

  it("regression: given JSON text, says a string came and to JSON.parse it first", () => {
    let error: unknown;
    try {
      assertEnvelope(JSON.stringify(good));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EventValidationError);
    // Before the fix: "… expected object, received string (received string). …", no hint.
    expect((error as EventValidationError).message).toBe(
      "Not an event envelope: expected an envelope object, received a string that looks like " +
        "JSON text: JSON.parse it first. Build envelopes with createEnvelope() or router.publish().",
    );
  });
});

describe("envelope times", () => {
  const withTime = (time: string) => ({
    ...createEnvelope({ type: "X", source: "s", data: {} }),
    time,
  });

  // The fields are range-checked by hand (no Date.parse per envelope): these are the edges.
  it.each([
    "2026-12-06T21:30:15.123Z",
    "2026-12-06T21:30:15Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "2026-04-31T00:00:00Z", // rolls over, as Date.parse does
    "2026-12-06T24:00:00Z",
    "2026-12-06T24:00:00.000Z",
    "2026-12-06T12:00:00+23:59",
    "2026-12-06T12:00:00-00:00",
  ])("accepts %s", (time) => {
    expect(isEnvelope(withTime(time))).toBe(true);
    expect(Number.isNaN(Date.parse(time))).toBe(false);
  });

  it.each([
    "2026-00-06T12:00:00Z",
    "2026-13-06T12:00:00Z",
    "2026-12-00T12:00:00Z",
    "2026-12-32T12:00:00Z",
    "2026-12-06T25:00:00Z",
    "2026-12-06T24:00:01Z",
    "2026-12-06T24:01:00Z",
    "2026-12-06T24:00:00.001Z",
    "2026-12-06T12:60:00Z",
    "2026-12-06T23:59:60Z",
    "2026-12-06T12:00:00+24:00",
    "2026-12-06T12:00:00+23:60",
    "2026-12-06 12:00:00Z",
    "2026-12-06T12:00:00",
    "2026-12-06T12:00:00.Z",
    "2026-12-06T12:00:00z",
  ])("rejects %s", (time) => {
    expect(isEnvelope(withTime(time))).toBe(false);
    expect(() => assertEnvelope(withTime(time))).toThrow(EventValidationError);
  });
});

describe("ids and names that cannot survive UTF-8", () => {
  const valid = () => createEnvelope({ type: "X", source: "s", data: { a: 1 }, id: "evt-1" });

  it.each(["\ud800", "evt-\udc00-1", "a\ud83d"])(
    "rejects an id with an unpaired surrogate (%j) with an EventValidationError naming id",
    (id) => {
      const envelope = { ...valid(), id };
      expect(isEnvelope(envelope)).toBe(false);
      let caught: unknown;
      try {
        assertEnvelope(envelope);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(EventValidationError);
      expect((caught as EventValidationError).reason).toBe("invalid_envelope");
      expect((caught as EventValidationError).message).toMatch(/id.*unpaired UTF-16 surrogate/);
    },
  );

  it("rejects ill-formed subject, source, causationid and correlationid too", () => {
    for (const key of ["subject", "source", "causationid", "correlationid"]) {
      expect(() => assertEnvelope({ ...valid(), [key]: "x\udfff" })).toThrow(EventValidationError);
    }
  });

  it("refuses to create an envelope with an ill-formed explicit id", () => {
    expect(() => createEnvelope({ type: "X", source: "s", data: {}, id: "a\ud800b" })).toThrow(
      EventValidationError,
    );
  });

  it("checks every type, source and subject, also after well-formed ones were accepted", () => {
    createEnvelope({ type: "X", source: "s", data: {} });
    for (let i = 0; i < 3; i++) {
      expect(() => createEnvelope({ type: "X\ud800", source: "s", data: {} })).toThrow(
        EventValidationError,
      );
    }
    for (let i = 0; i < 3; i++) {
      expect(() => createEnvelope({ type: "X", source: "s\udfff", data: {} })).toThrow(
        EventValidationError,
      );
    }
    createEnvelope({ type: "X", source: "s", data: { config_key: "k" } });
    for (let i = 0; i < 3; i++) {
      expect(() =>
        createEnvelope({ type: "X", source: "s", data: {}, subject: "k\ud800" }),
      ).toThrow(EventValidationError);
      expect(() =>
        createEnvelope({ type: "X", source: "s", data: { config_key: "k\ud800" } }),
      ).toThrow(EventValidationError);
    }
    expect(() => createEnvelope({ type: "X", source: "s", data: {} })).not.toThrow();
  });

  it("accepts ids with well-formed surrogate pairs (emoji) and keeps them intact", () => {
    const e = createEnvelope({ type: "X", source: "s", data: {}, id: "evt-😀" });
    expect(() => assertEnvelope(e)).not.toThrow();
    expect(e.id).toBe("evt-😀");
    expect(envelopeSchema.safeParse({ ...e, id: "\ud800" }).success).toBe(false);
  });
});

describe("tracestate", () => {
  it("is kept by createEnvelope and must be a string", () => {
    const e = createEnvelope({ type: "X", source: "s", data: {}, tracestate: "vendor=abc" });
    expect(e.tracestate).toBe("vendor=abc");
    expect(() => assertEnvelope({ ...e, tracestate: 7 })).toThrow(EventValidationError);
  });
});

describe("values that cannot be read", () => {
  const revoked = () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    return proxy;
  };
  const throwingId = () => ({
    ...createEnvelope({ type: "X", source: "s", data: {} }),
    get id(): string {
      throw new Error("id getter exploded");
    },
  });

  it("are not envelopes: isEnvelope answers false instead of throwing", () => {
    expect(isEnvelope(revoked())).toBe(false);
    expect(isEnvelope(throwingId())).toBe(false);
  });

  it("fail assertEnvelope with EventValidationError (invalid_envelope), the reader's error as cause", () => {
    for (const value of [revoked(), throwingId()]) {
      let caught: unknown;
      try {
        assertEnvelope(value);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(EventValidationError);
      expect(caught).toMatchObject({
        reason: "invalid_envelope",
        issues: [{ code: "unreadable" }],
      });
      expect((caught as Error).cause).toBeInstanceOf(Error);
    }
  });
});
