import { describe, expect, it } from "vitest";
import { natsReplicas, natsServers } from "./transport";

describe("the demo's NATS location", () => {
  it("splits --nats-url on commas into trimmed server URLs, dropping blanks", () => {
    expect(
      natsServers(" nats://127.0.0.1:4222, nats://127.0.0.1:4223 ,,nats://127.0.0.1:4224,"),
    ).toEqual(["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"]);
  });

  it("replicates the streams R3 when three or more servers are named, R1 for one", () => {
    expect(natsReplicas({ natsUrl: "nats://a:4222" })).toBe(1);
    expect(natsReplicas({ natsUrl: "nats://a:4222,nats://b:4222" })).toBe(1);
    expect(natsReplicas({ natsUrl: "nats://a:4222,nats://b:4222,nats://c:4222" })).toBe(3);
  });

  it("takes --nats-replicas over the number of servers", () => {
    expect(
      natsReplicas({ natsUrl: "nats://a:4222,nats://b:4222,nats://c:4222", natsReplicas: 1 }),
    ).toBe(1);
  });
});
