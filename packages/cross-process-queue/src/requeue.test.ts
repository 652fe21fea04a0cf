import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEnvelope, type Envelope } from "@switchyard/event-schema";
import { type Delivery, UnknownSubscriptionError } from "@switchyard/router";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type SqliteTransport, sqliteTransport } from "./queue";
import { eventually } from "./test/fixtures";

let dir: string;
let path: string;
let transport: SqliteTransport;
const others: SqliteTransport[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "cpq-requeue-"));
  path = join(dir, "coordination.db");
  transport = sqliteTransport({ path, pruneIntervalMs: 0 });
});
afterEach(async () => {
  await transport.close();
  await Promise.all(others.splice(0).map((t) => t.close()));
  rmSync(dir, { recursive: true, force: true });
});

/** Another connection to the same file, as another process would open it. */
function otherProcess(): SqliteTransport {
  const t = sqliteTransport({ path, pruneIntervalMs: 0 });
  others.push(t);
  return t;
}

/** Rows of `deliveries` for a subscriber, read on a separate connection. */
function deliveryRows(subscriber: string): { status: string; attempts: number }[] {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .prepare(`SELECT status, attempts FROM deliveries WHERE subscriber = ?`)
      .all(subscriber) as { status: string; attempts: number }[];
  } finally {
    db.close();
  }
}

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

/** A promise and the function that resolves it. */
function gate(): { open: () => void; opened: Promise<void> } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe("requeue", () => {
  it("makes a dead delivery due again for that subscriber only, with the same id", async () => {
    const failed: Envelope[] = [];
    const other: Envelope[] = [];
    await subscribe("distributor", failed, true);
    await subscribe("auditor", other);
    const e = event();
    await transport.publish([e]);
    await eventually(
      () => deliveryRows("distributor")[0]?.status === "dead" && other.length === 1,
      "the dead delivery and the other subscriber's copy",
    );
    expect(failed).toHaveLength(1);
    await transport.requeue("distributor", e);
    await eventually(() => failed.length === 2, "the requeued delivery");
    await eventually(
      () => deliveryRows("distributor")[0]?.status === "dead",
      "the requeued delivery to fail again",
    );
    expect(failed.map((x) => x.id)).toEqual([e.id, e.id]);
    expect(other).toHaveLength(1);
    expect(deliveryRows("auditor")).toEqual([]);
  });

  it("stores the event again, out of every other subscriber's reach, when retention removed it", async () => {
    const got: Envelope[] = [];
    const other: Envelope[] = [];
    await subscribe("distributor", got);
    await subscribe("auditor", other);
    const e = event();
    await transport.publish([e]);
    await eventually(() => got.length === 1 && other.length === 1, "both deliveries");
    const db = new Database(path);
    db.prepare("DELETE FROM deliveries").run();
    db.prepare("DELETE FROM events").run();
    const stored = db.prepare("SELECT seq FROM events WHERE id = ?").pluck();
    await transport.requeue("distributor", e);
    // Stored again below every cursor: no other subscriber's claim can reach it.
    expect(stored.get(e.id)).toBeLessThan(0);
    db.close();
    await transport.publish([event()]); // later events still flow to everyone
    await eventually(() => got.length === 3 && other.length === 2, "the requeued and later events");
    expect(got.map((x) => x.id)).toContain(e.id);
    expect(other.filter((x) => x.id === e.id)).toHaveLength(1);
    await eventually(
      () => deliveryRows("distributor").length === 0 && deliveryRows("auditor").length === 0,
      "every delivery acked",
    );
    expect(other).toHaveLength(2);
  });

  it("refuses a subscriber that is not registered for the type", async () => {
    await subscribe("distributor", []);
    await expect(transport.requeue("retired", event())).rejects.toBeInstanceOf(
      UnknownSubscriptionError,
    );
    await expect(transport.requeue("retired", event())).rejects.toThrow(/known: distributor/);
  });

  it("regression: a requeue from another process never takes over a live lease; the running handler's outcome stands and the event runs once", async () => {
    const runs: number[] = [];
    const release = gate();
    await transport.subscribe({
      subscriber: "trainer",
      types: ["MODEL_PROMOTED"],
      handler: async (d) => {
        runs.push(d.attempt);
        if (runs.length === 1) await release.opened;
      },
    });
    const e = event();
    await transport.publish([e]);
    await eventually(() => runs.length === 1, "the handler to start");
    // Two replays of the same event at once, from another process, while the handler runs.
    const replayer = otherProcess();
    await Promise.all([replayer.requeue("trainer", e), replayer.requeue("trainer", e)]);
    expect(deliveryRows("trainer")).toMatchObject([{ status: "leased" }]);
    release.open();
    // Acked and deleted: nothing left that could run again.
    await eventually(() => deliveryRows("trainer").length === 0, "the outcome to be saved");
    expect(runs).toEqual([1]);
  });

  it.each([
    ["a dead-letter sink", true],
    ["no sink (the row is marked dead)", false],
  ])(
    "runs a delivery again when a requeue met its last attempt failing, instead of dead-lettering it (%s)",
    async (_, withSink) => {
      const runs: number[] = [];
      const release = gate();
      const sink: unknown[] = [];
      await transport.subscribe({
        subscriber: "trainer",
        types: ["MODEL_PROMOTED"],
        maxAttempts: 1,
        ...(withSink ? { deadLetter: { deadLetter: (record) => void sink.push(record) } } : {}),
        handler: async (d) => {
          runs.push(d.attempt);
          if (runs.length === 1) {
            await release.opened;
            throw new Error("the last attempt fails");
          }
        },
      });
      const e = event();
      await transport.publish([e]);
      await eventually(() => runs.length === 1, "the handler to start");
      await otherProcess().requeue("trainer", e);
      release.open();
      await eventually(() => runs.length === 2, "the requeued run");
      await eventually(() => deliveryRows("trainer").length === 0, "the second run's ack");
      expect(runs).toEqual([1, 1]);
      expect(sink).toEqual([]);
    },
  );

  it("takes back a delivery whose lease expired (its holder is gone) and makes it due at once", async () => {
    const e = event();
    const runs: number[] = [];
    await transport.subscribe({
      subscriber: "trainer",
      types: ["MODEL_PROMOTED"],
      handler: async (d) => void runs.push(d.attempt),
    });
    await transport.publish([e]);
    await eventually(() => deliveryRows("trainer").length === 0 && runs.length === 1, "the ack");
    // A lease left behind by a process that died long ago.
    const db = new Database(path);
    db.prepare(
      `INSERT INTO deliveries (subscriber, event_seq, type, status, attempts, available_at,
                               lease_token, lease_until, updated_at)
       SELECT 'trainer', seq, type, 'leased', 3, 1, 999, 1, 1 FROM events WHERE id = ?`,
    ).run(e.id);
    db.close();
    await otherProcess().requeue("trainer", e);
    await eventually(() => runs.length === 2, "the requeued delivery");
    expect(runs).toEqual([1, 1]);
  });
});

describe("sequence numbers", () => {
  it("regression: an event published after retention removed every older event still reaches subscribers", async () => {
    const got: Envelope[] = [];
    await subscribe("reader", got);
    for (let i = 0; i < 3; i++) await transport.publish([event()]);
    await eventually(
      () => got.length === 3 && deliveryRows("reader").length === 0,
      "three acked deliveries",
    );
    const db = new Database(path);
    db.prepare("DELETE FROM deliveries").run();
    db.prepare("DELETE FROM events").run(); // what retention does to an idle, fully acked queue
    db.close();
    await transport.publish([event()]);
    await eventually(() => got.length === 4, "the event published after the deletion");
  });
});
