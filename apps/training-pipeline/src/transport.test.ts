import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { drivers } from "@switchyard/cli";
import { sqlitePath } from "@switchyard/cross-process-queue";
import { createEnvelope } from "@switchyard/event-schema";
import { openDriver, parseTarget } from "@switchyard/transport";
import {
  natsReplicas,
  natsServers,
  pipelineTarget,
  runDeadLetters,
  sqliteTarget,
} from "./transport";

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

describe("the run's target", () => {
  const base = {
    db: "/tmp/run/coordination.db",
    natsUrl: "nats://127.0.0.1:4222",
    natsStream: "SWITCHYARD_DEMO_1",
    natsPrefix: "switchyard.demo1",
  };

  it("is sqlite:<db> for SQLite, which the SQLite driver opens as that file", () => {
    const target = pipelineTarget({ ...base, transport: "sqlite" });
    expect(target).toBe("sqlite:/tmp/run/coordination.db");
    expect(sqlitePath(parseTarget(target))).toBe("/tmp/run/coordination.db");
  });

  it("names every NATS server, the stream and the prefix, as the NATS driver reads them", () => {
    const target = pipelineTarget({
      ...base,
      transport: "nats",
      natsUrl: "nats://a:4222, b:4223,tls://c:4224",
    });
    expect(target).toBe("nats://a:4222,b:4223,c:4224/SWITCHYARD_DEMO_1?prefix=switchyard.demo1");
    expect(parseTarget(target)).toMatchObject({
      scheme: "nats",
      rest: "//a:4222,b:4223,c:4224/SWITCHYARD_DEMO_1",
      params: { prefix: "switchyard.demo1" },
    });
  });
});

describe("the run's dead-letter store", () => {
  it("is the driver's own store, which its inspector lists (SQLite)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchyard-demo-dlq-"));
    const db = join(dir, "coordination.db");
    try {
      const envelope = createEnvelope({
        type: "TRAINING_COMPLETED",
        source: "training",
        data: { config_key: "hex8_2p", model_path: "models/hex8_2p/gen-1.pt", loss: 0.25 },
      });
      const driver = await openDriver(sqliteTarget(db), { drivers });
      try {
        const store = runDeadLetters(driver);
        expect(store).toBe(driver.deadLetterSink());
        await store.deadLetter({
          envelope,
          subscriber: "evaluation:TRAINING_COMPLETED",
          reason: "max_attempts",
          attempts: 4,
          error: { name: "Error", message: "flaky" },
          failedAt: new Date().toISOString(),
          origin: "router",
        });
        expect(await store.stats()).toMatchObject({ depth: 1 });
        const page = await driver.inspector().deadLetters();
        expect(page.deadLetters.map((d) => d.eventId)).toEqual([envelope.id]);
      } finally {
        await driver.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
