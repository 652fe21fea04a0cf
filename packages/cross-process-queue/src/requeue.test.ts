import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEnvelope, type Envelope } from "@switchyard/event-schema";
import { type Delivery, UnknownSubscriptionError } from "@switchyard/router";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type SqliteTransport, sqliteTransport } from "./queue";

let dir: string;
let path: string;
let transport: SqliteTransport;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "cpq-requeue-"));
  path = join(dir, "coordination.db");
  transport = sqliteTransport({ path });
});
afterEach(async () => {
  await transport.close();
  rmSync(dir, { recursive: true, force: true });
});

async function subscribe(name: string, got: Envelope[], fail = false) {
  return transport.subscribe({
    subscriber: name,
    types: ["MODEL_PROMOTED"],
    maxAttempts: 1,
    handler: async (d: Delivery) => {
      got.push(d.envelope);
      if (fail) throw new Error("fails");
    },
  });
}

const event = () =>
  createEnvelope({
    type: "MODEL_PROMOTED",
    source: "t",
    data: { config_key: "hex8_2p", model_path: "m", elo: 1 },
  });

describe("requeue", () => {
  it("makes a dead delivery due again for that subscriber only, with the same id", async () => {
    const failed: Envelope[] = [];
    const other: Envelope[] = [];
    await subscribe("distributor", failed, true);
    await subscribe("auditor", other);
    const e = event();
    await transport.publish([e]);
    await sleep(100);
    expect(failed).toHaveLength(1);
    expect(other).toHaveLength(1);
    await transport.requeue("distributor", e);
    await sleep(100);
    expect(failed.map((x) => x.id)).toEqual([e.id, e.id]);
    expect(other).toHaveLength(1);
  });

  it("stores the event again, out of every other subscriber's reach, when retention removed it", async () => {
    const got: Envelope[] = [];
    const other: Envelope[] = [];
    await subscribe("distributor", got);
    await subscribe("auditor", other);
    const e = event();
    await transport.publish([e]);
    await sleep(100);
    const db = new Database(path);
    db.prepare("DELETE FROM deliveries").run();
    db.prepare("DELETE FROM events").run();
    db.close();
    await transport.requeue("distributor", e);
    await transport.publish([event()]); // later events still flow to everyone
    await sleep(150);
    expect(got.map((x) => x.id)).toContain(e.id);
    expect(got).toHaveLength(3);
    expect(other).toHaveLength(2);
    expect(other.filter((x) => x.id === e.id)).toHaveLength(1);
  });

  it("refuses a subscriber that is not registered for the type", async () => {
    await subscribe("distributor", []);
    await expect(transport.requeue("retired", event())).rejects.toBeInstanceOf(
      UnknownSubscriptionError,
    );
    await expect(transport.requeue("retired", event())).rejects.toThrow(/known: distributor/);
  });
});

describe("sequence numbers", () => {
  it("regression: an event published after retention removed every older event still reaches subscribers", async () => {
    const got: Envelope[] = [];
    await subscribe("reader", got);
    for (let i = 0; i < 3; i++) await transport.publish([event()]);
    await sleep(100);
    const db = new Database(path);
    db.prepare("DELETE FROM deliveries").run();
    db.prepare("DELETE FROM events").run(); // what retention does to an idle, fully acked queue
    db.close();
    await transport.publish([event()]);
    await sleep(150);
    expect(got).toHaveLength(4);
  });
});
