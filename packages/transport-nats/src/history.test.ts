import { createEnvelope } from "@switchyard/event-schema";
import {
  type DeliveryInfo,
  type DeliveryStep,
  type Driver,
  type Inspector,
  openDriver,
} from "@switchyard/transport";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type NatsTransport, natsDriver } from "./index";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { type JournalEntry, attemptJournalDepth, natsDeadLetterStore } from "./dead-letters";
import { timeline } from "./inspector";
import { attemptStreamName } from "./names";
import {
  NATS_URL,
  deleteStreams,
  describeIf,
  eventually,
  natsAvailable,
  uniqueNames,
} from "./test/nats";

const job = (n: number) => createEnvelope({ type: "JOB", source: "history-test", data: { n } });
const kinds = (steps: readonly DeliveryStep[] | undefined) => (steps ?? []).map((s) => s.kind);
const inOrder = (steps: readonly DeliveryStep[]) =>
  steps.every((s, i) => i === 0 || Date.parse(s.at) >= Date.parse(steps[i - 1]!.at));

describe("the NATS delivery timeline from journal entries", () => {
  const entry = (
    over: Partial<JournalEntry> & Pick<JournalEntry, "state" | "attempts" | "at">,
  ): JournalEntry => ({
    subscriber: "w",
    eventId: "e",
    consumer: "w__JOB__h",
    seq: 7,
    journalSeq: 1,
    ...over,
  });

  it("infers an expired lease for an attempt that ended with nothing noted", () => {
    const { history, truncated } = timeline(
      {
        entries: [
          entry({ state: "retrying", attempts: 1, at: "2026-01-01T00:00:01.000Z", delayMs: 10 }),
          // attempt 2's worker died: nothing noted; attempt 3 acked
          entry({ state: "acked", attempts: 3, at: "2026-01-01T00:00:40.000Z" }),
        ],
        truncated: false,
      },
      undefined,
      "w__JOB__h",
      7,
      100,
    );
    expect(truncated).toBe(false);
    expect(history.map((s) => [s.kind, s.attempt])).toEqual([
      ["retry_scheduled", 1],
      ["lease_expired", 2],
      ["acked", 3],
    ]);
    expect(history[1]?.detail).toMatch(/inferred/);
    expect(history[0]?.delayMs).toBe(10);
  });

  it("keeps the newest steps within the limit and says so", () => {
    const entries = Array.from({ length: 5 }, (_, i) =>
      entry({
        state: "retrying",
        attempts: i + 1,
        at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      }),
    );
    const { history, truncated } = timeline(
      { entries, truncated: false },
      undefined,
      "w__JOB__h",
      7,
      3,
    );
    expect(truncated).toBe(true);
    expect(history.map((s) => s.attempt)).toEqual([3, 4, 5]);
  });
});

// A real nats-server: the steps a transport opened by natsDriver notes, read by another driver.
describeIf(await natsAvailable(), "NATS delivery history", {}, () => {
  let names: { stream: string; prefix: string };
  let drivers: Driver[] = [];

  const open = async () => {
    const driver = await openDriver(`${NATS_URL}/${names.stream}?prefix=${names.prefix}`, {
      drivers: [natsDriver],
    });
    drivers.push(driver);
    return driver;
  };
  const deliveryOf = async (inspector: Inspector, id: string): Promise<DeliveryInfo> => {
    const [delivery] = await inspector.deliveries(id);
    if (!delivery) throw new Error(`no delivery of ${id}`);
    return delivery;
  };

  beforeEach(() => {
    names = uniqueNames("history");
  });
  afterEach(async () => {
    await Promise.allSettled(drivers.map((d) => d.close()));
    drivers = [];
    await deleteStreams(NATS_URL, names.stream);
  });

  it("deepens an attempt journal made by an older version (one entry per message)", async () => {
    const nc = await connect({ servers: NATS_URL });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({
        name: attemptStreamName(names.stream),
        subjects: [`${names.prefix}_attempts.>`],
        max_msgs_per_subject: 1,
      });
      const store = natsDeadLetterStore({
        servers: NATS_URL,
        stream: names.stream,
        prefix: names.prefix,
      });
      try {
        await store.ready();
      } finally {
        await store.close();
      }
      const info = await jsm.streams.info(attemptStreamName(names.stream));
      expect(info.config.max_msgs_per_subject).toBe(attemptJournalDepth);
    } finally {
      await nc.close();
    }
  });

  it("says it has history and shows nothing for a delivery acked on its first attempt", async () => {
    const driver = await open();
    const transport = driver.transport({ pullExpiresMs: 2_000 }) as NatsTransport;
    const done = new Set<string>();
    await transport.subscribe({
      subscriber: "worker",
      types: ["JOB"],
      handler: async (d) => void done.add(d.envelope.id),
    });
    const e = job(1);
    await transport.publish([e]);
    await eventually(() => done.has(e.id), "handled");
    const inspector = (await open()).inspector();
    expect(inspector.capabilities.history).toBe(true);
    await eventually(async () => (await deliveryOf(inspector, e.id)).state === "acked", "acked");
    expect((await deliveryOf(inspector, e.id)).history).toEqual([]);
  });

  it("shows retries with error and delay, the dead-lettering, the replay and the copy's retry in order", async () => {
    const driver = await open();
    const transport = driver.transport({ pullExpiresMs: 2_000 }) as NatsTransport;
    let failing = true;
    let calls = 0;
    await transport.subscribe({
      subscriber: "worker",
      types: ["JOB"],
      maxAttempts: 2,
      backoff: { initialMs: 50, maxMs: 50, jitter: 0 },
      handler: async (d) => {
        calls++;
        // After the replay: the copy fails once more, then succeeds.
        if (failing || d.attempt === 1) throw new Error(`boom ${calls}`);
      },
    });
    const e = job(2);
    await transport.publish([e]);
    const inspector = (await open()).inspector();
    await eventually(
      async () => (await deliveryOf(inspector, e.id)).state === "dead",
      "dead-lettered",
    );
    failing = false;
    const replay = await driver.admin().replay({ eventId: e.id });
    expect(replay.replayed).toHaveLength(1);
    await eventually(async () => {
      const steps = (await deliveryOf(inspector, e.id)).history ?? [];
      return kinds(steps).at(-1) === "acked";
    }, "the replayed copy acked after a retry");
    const { history, historyTruncated } = await deliveryOf(inspector, e.id);
    expect(historyTruncated).toBeUndefined();
    expect(kinds(history)).toEqual([
      "retry_scheduled",
      "dead_lettered",
      "replayed",
      "retry_scheduled",
      "acked",
    ]);
    const [retry, dead, , copyRetry, acked] = history!;
    expect(retry).toMatchObject({ attempt: 1, delayMs: 50, error: { message: "boom 1" } });
    expect(dead).toMatchObject({
      attempt: 2,
      reason: "max_attempts",
      error: { message: "boom 2" },
    });
    expect(copyRetry).toMatchObject({ attempt: 1, error: { message: "boom 3" } });
    expect(acked).toMatchObject({ attempt: 2 });
    expect(inOrder(history!)).toBe(true);
  });

  it("notes a lease that ran out under a hung attempt and the outcome it fenced off", async () => {
    const driver = await open();
    const transport = driver.transport({ pullExpiresMs: 2_000 }) as NatsTransport;
    const attempts: number[] = [];
    let release: (() => void) | undefined;
    await transport.subscribe({
      subscriber: "worker",
      types: ["JOB"],
      concurrency: 2,
      leaseMs: 1_000,
      handler: async (d) => {
        attempts.push(d.attempt);
        // The first attempt hangs past its lease (ignoring its signal); the second lets it
        // return (its outcome is fenced off), then succeeds.
        if (d.attempt === 1) await new Promise<void>((r) => (release = r));
        else {
          release?.();
          await new Promise((r) => setTimeout(r, 300));
        }
      },
    });
    const e = job(3);
    await transport.publish([e]);
    const inspector = (await open()).inspector();
    await eventually(async () => {
      const steps = kinds((await deliveryOf(inspector, e.id)).history);
      return steps.includes("fenced") && steps.includes("acked");
    }, "fenced and acked noted");
    const { history } = await deliveryOf(inspector, e.id);
    expect(history?.map((s) => [s.kind, s.attempt])).toEqual([
      ["lease_expired", 1],
      ["fenced", 1],
      ["acked", 2],
    ]);
    expect(inOrder(history!)).toBe(true);
  });
});
