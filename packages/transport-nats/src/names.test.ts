import { describe, expect, it } from "vitest";
import {
  describeConsumer,
  durableName,
  isInternalSubject,
  isStreamName,
  isSubjectPrefix,
  isSubjectToken,
  parseConsumerTag,
  replayDurableName,
  replaySubject,
  subjectCovers,
  subjectMatches,
  subscriberToken,
} from "./names";
import { leaseMargin, parseAckSubject } from "./subscription";

const P = "switchyard.events";
const NATS_NAME = /^[A-Za-z0-9_-]{1,62}$/;

describe("durable consumer names", () => {
  it("keeps a readable subscriber and type in the name", () => {
    expect(durableName(P, "evaluator", "TRAINING_COMPLETED")).toMatch(
      /^evaluator__TRAINING_COMPLETED__[0-9a-f]{10}$/,
    );
  });

  it("is deterministic, so every process finds the same consumer", () => {
    expect(durableName(P, "evaluator", "TRAINING_COMPLETED")).toBe(
      durableName(P, "evaluator", "TRAINING_COMPLETED"),
    );
  });

  it.each([
    "quality.monitor",
    "a*b",
    "a>b",
    "with space",
    "tab\there",
    "ünïcödé",
    "",
    "x".repeat(300),
  ])("turns %j into a valid NATS name", (subscriber) => {
    expect(durableName(P, subscriber, "TYPE")).toMatch(NATS_NAME);
    expect(replayDurableName(P, subscriber)).toMatch(NATS_NAME);
    expect(subscriberToken(subscriber)).toMatch(NATS_NAME);
  });

  it("never lets two names collide after sanitising", () => {
    const names = ["a.b", "a_b", "a b", "a*b", "a>b"].map((s) => durableName(P, s, "T"));
    expect(new Set(names).size).toBe(names.length);
    const long = "y".repeat(100);
    expect(durableName(P, `${long}1`, "T")).not.toBe(durableName(P, `${long}2`, "T"));
  });

  it("separates subscribers, types, prefixes and the replay consumer", () => {
    const all = [
      durableName(P, "a", "T"),
      durableName(P, "a", "U"),
      durableName(P, "b", "T"),
      durableName("other.prefix", "a", "T"),
      replayDurableName(P, "a"),
      replayDurableName("other.prefix", "a"),
    ];
    expect(new Set(all).size).toBe(all.length);
  });
});

describe("subject and stream names", () => {
  it.each([
    ["TRAINING_COMPLETED", true],
    ["a-b", true],
    ["a.b", false],
    ["*", false],
    [">", false],
    ["a b", false],
    ["", false],
  ])("treats %j as a subject token: %s", (value, ok) => {
    expect(isSubjectToken(value)).toBe(ok);
  });

  it("accepts dotted prefixes without wildcards", () => {
    expect(isSubjectPrefix("switchyard.events")).toBe(true);
    expect(isSubjectPrefix("switchyard..events")).toBe(false);
    expect(isSubjectPrefix("switchyard.*")).toBe(false);
    expect(isSubjectPrefix("switchyard.>")).toBe(false);
  });

  it("rejects stream names NATS would refuse", () => {
    expect(isStreamName("SWITCHYARD")).toBe(true);
    expect(isStreamName("a.b")).toBe(false);
    expect(isStreamName("a/b")).toBe(false);
    expect(isStreamName("a b")).toBe(false);
  });

  it("knows which stream subjects already cover a prefix", () => {
    expect(subjectCovers("switchyard.events.>", P)).toBe(true);
    expect(subjectCovers("switchyard.>", P)).toBe(true);
    expect(subjectCovers(">", P)).toBe(true);
    expect(subjectCovers("*.events.>", P)).toBe(true);
    expect(subjectCovers("switchyard.events.*", P)).toBe(false);
    expect(subjectCovers("switchyard.other.>", P)).toBe(false);
    expect(subjectCovers("switchyard.events", P)).toBe(false);
  });

  it("matches a subject against a stream subject with NATS wildcards (* one token, > the rest)", () => {
    const S = "switchyard.events.JOB";
    for (const pattern of [S, "switchyard.events.*", "switchyard.>", ">", "*.*.*", "*.events.>"])
      expect(subjectMatches(pattern, S), pattern).toBe(true);
    for (const pattern of [
      "switchyard.events",
      "switchyard.events.JOB.>",
      "switchyard.events.JOB.x",
      "switchyard.*",
      "switchyard.events.OTHER",
      "switchyard.events_other.>",
      "*.*",
      "switchyard.>.JOB",
    ])
      expect(subjectMatches(pattern, S), pattern).toBe(false);
  });
});

describe("consumer tags", () => {
  it("round-trips through the consumer description", () => {
    const tag = { subscriber: "evaluator", type: "T", ephemeral: false, prefix: P };
    expect(parseConsumerTag(describeConsumer(tag))).toEqual(tag);
    expect(
      parseConsumerTag(describeConsumer({ subscriber: "s", type: null, ephemeral: true })),
    ).toEqual({
      subscriber: "s",
      type: null,
      ephemeral: true,
    });
  });

  it("ignores consumers this package did not create", () => {
    expect(parseConsumerTag(undefined)).toBeUndefined();
    expect(parseConsumerTag("orders processor")).toBeUndefined();
    expect(parseConsumerTag('{"switchyard-transport-nats":2}')).toBeUndefined();
  });
});

describe("lease margin", () => {
  it("ends the client-side lease a little before the server's AckWait", () => {
    expect(leaseMargin(300)).toBe(30);
    expect(leaseMargin(30_000)).toBe(1_000);
    expect(leaseMargin(50)).toBe(10);
  });
});

describe("ack subjects", () => {
  it("reads the delivery count and stream sequence in the old and the new format", () => {
    expect(
      parseAckSubject("$JS.ACK.SWITCHYARD.sy_evaluator_JOB.3.1042.977.1700000000000000000.5"),
    ).toEqual({ deliveryCount: 3, streamSeq: 1042 });
    expect(
      parseAckSubject(
        "$JS.ACK.hub.ACCHASH.SWITCHYARD.sy_evaluator_JOB.1.7.7.1700000000000000000.0.x9",
      ),
    ).toEqual({ deliveryCount: 1, streamSeq: 7 });
    expect(
      parseAckSubject(
        "$JS.ACK._.ACCHASH.SWITCHYARD.sy_evaluator_JOB.12.99.98.1700000000000000000.0",
      ),
    ).toEqual({ deliveryCount: 12, streamSeq: 99 });
  });
});

describe("replay subjects", () => {
  it("address one subscriber under the prefix, and are told apart from event subjects", () => {
    const subject = replaySubject(P, "evaluator", "TRAINING_COMPLETED");
    expect(subject).toBe(`${P}.__replay.${subscriberToken("evaluator")}.TRAINING_COMPLETED`);
    expect(isInternalSubject(P, subject)).toBe(true);
    expect(isInternalSubject(P, `${P}.TRAINING_COMPLETED`)).toBe(false);
    expect(isInternalSubject("other", subject)).toBe(false);
  });
});
