import { createEnvelope, type Envelope } from "@switchyard/event-schema";
import {
  LeaseLostError,
  UnrecoverableError,
  type DeadLetterRecord,
  type DeadLetterSink,
  type Delivery,
  type Transport,
  type TransportSubscribeOptions,
  type TransportSubscription,
} from "@switchyard/transport";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type TransportFeature, optInFeatures } from "./features";
import type { TransportHarness, TransportSuiteOptions } from "./harness";

const PING = "TK_PING";
const PONG = "TK_PONG";

/** A fresh envelope for the suite. */
export function testEnvelope(
  n: number,
  type: string = PING,
  extra: Partial<Envelope> = {},
): Envelope {
  return { ...createEnvelope({ type, source: "transport-testkit", data: { n } }), ...extra };
}

const nOf = (e: Envelope) => (e.data as { n: number }).n;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** A dead-letter sink that keeps records in memory. */
export function collectingSink(): DeadLetterSink & { records: DeadLetterRecord[] } {
  const records: DeadLetterRecord[] = [];
  return { records, deadLetter: (record) => void records.push(record) };
}

/**
 * Register the transport contract as vitest tests: publish/subscribe, fan-out, competing consumers,
 * ordering, retries with backoff, lease expiry and redelivery, fencing, idempotent publish,
 * dead-letter hand-off, draining close, persistence, ephemeral subscribers and reconnects. Call it
 * at the top level of a test file; features a transport lacks are skipped with their reason.
 *
 * @example
 * ```ts
 * // not runnable (registers tests inside a vitest file)
 * runTransportSuite({
 *   name: "sqlite",
 *   harness: async () => { const dir = mkdtempSync(join(tmpdir(), "q-")); return {
 *     connect: () => sqliteTransport({ path: join(dir, "q.db") }),
 *     cleanup: async () => rmSync(dir, { recursive: true, force: true }) }; },
 *   features: { reconnect: { skip: "embedded: there is no connection to lose" } },
 * });
 * ```
 */
export function runTransportSuite(options: TransportSuiteOptions): void {
  const scale = options.timeScale ?? 1;
  const t = (ms: number) => Math.round(ms * scale);
  const wait = t(5000);
  const features = options.features ?? {};

  const skipReason = (feature: TransportFeature): string | undefined => {
    const setting: unknown = features[feature];
    if (setting === undefined) return optInFeatures[feature];
    return typeof setting === "object" && setting !== null && "skip" in setting
      ? String(setting.skip)
      : undefined;
  };
  /** `it` for a feature: skipped with its reason (in the test name) when the transport lacks it. */
  const itFeature = (feature: TransportFeature, name: string, fn: () => Promise<void>) => {
    const reason = skipReason(feature);
    if (reason) it.skip(`${name} — skipped: ${reason}`, fn);
    else it(name, { timeout: options.testTimeoutMs ?? 20_000 }, fn);
  };

  describe(`transport contract: ${options.name}`, () => {
    let harness: TransportHarness;
    let open: Transport[] = [];
    let subs: TransportSubscription[] = [];

    const connect = async (opts?: { deadLetter?: DeadLetterSink; drainTimeoutMs?: number }) => {
      const transport = await harness.connect(opts);
      open.push(transport);
      return transport;
    };
    const subscribe = async (
      transport: Transport,
      subscriber: string,
      handler: (d: Delivery) => Promise<void> | void,
      extra: Partial<TransportSubscribeOptions> = {},
    ) => {
      const sub = await transport.subscribe({
        subscriber,
        types: [PING],
        handler: async (d) => handler(d),
        leaseMs: t(1000),
        maxAttempts: 5,
        backoff: { initialMs: t(20), maxMs: t(200), jitter: 0 },
        ...extra,
      });
      subs.push(sub);
      return sub;
    };

    beforeEach(async () => {
      harness = await options.harness();
    });
    afterEach(async () => {
      await Promise.allSettled(subs.map((s) => s.close()));
      await Promise.allSettled(open.map((tr) => tr.close()));
      subs = [];
      open = [];
      await harness.cleanup();
    });

    it("delivers a published envelope intact to a subscriber", async () => {
      const transport = await connect();
      const got: Envelope[] = [];
      await subscribe(transport, "reader", (d) => void got.push(d.envelope));
      const sent = testEnvelope(1, PING, {
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        correlationid: "c-1",
      });
      expect(await transport.publish([sent])).toEqual({ published: 1, duplicates: 0 });
      await until(() => got.length === 1, wait, "the delivery");
      expect(got[0]).toEqual(sent);
    });

    it("delivers only the subscribed types", async () => {
      const transport = await connect();
      const got: string[] = [];
      await subscribe(transport, "pings-only", (d) => void got.push(d.envelope.type));
      await transport.publish([testEnvelope(1, PONG), testEnvelope(2, PING)]);
      await until(() => got.length >= 1, wait, "the delivery");
      await sleep(t(100));
      expect(got).toEqual([PING]);
    });

    it("delivers every event of a batch publish once", async () => {
      const transport = await connect();
      const got: number[] = [];
      await subscribe(transport, "batch-reader", (d) => void got.push(nOf(d.envelope)), {
        concurrency: 4,
      });
      await transport.publish(Array.from({ length: 100 }, (_, i) => testEnvelope(i)));
      await until(() => got.length === 100, wait, "100 deliveries");
      await sleep(t(50));
      expect([...got].sort((a, b) => a - b)).toEqual([...Array(100).keys()]);
    });

    itFeature("fanOut", "gives every subscriber name its own copy of each event", async () => {
      const transport = await connect();
      const a: number[] = [];
      const b: number[] = [];
      await subscribe(transport, "fan-a", (d) => void a.push(nOf(d.envelope)));
      await subscribe(transport, "fan-b", (d) => void b.push(nOf(d.envelope)));
      await transport.publish([testEnvelope(1), testEnvelope(2), testEnvelope(3)]);
      await until(() => a.length === 3 && b.length === 3, wait, "both subscribers");
      expect(a).toEqual([1, 2, 3]);
      expect(b).toEqual([1, 2, 3]);
    });

    itFeature(
      "competingConsumers",
      "shares one subscriber's work between its handles, each event once",
      async () => {
        const t1 = await connect();
        const t2 = await connect();
        const byHandle: [number[], number[]] = [[], []];
        const slow = (i: 0 | 1) => async (d: Delivery) => {
          await sleep(t(5));
          byHandle[i].push(nOf(d.envelope));
        };
        await subscribe(t1, "workers", slow(0));
        await subscribe(t2, "workers", slow(1));
        await t1.publish(Array.from({ length: 40 }, (_, i) => testEnvelope(i)));
        await until(() => byHandle[0].length + byHandle[1].length >= 40, wait * 2, "40 deliveries");
        await sleep(t(100));
        const all = [...byHandle[0], ...byHandle[1]].sort((a, b) => a - b);
        expect(all).toEqual([...Array(40).keys()]);
        expect(byHandle[0].length).toBeGreaterThan(0);
        expect(byHandle[1].length).toBeGreaterThan(0);
      },
    );

    itFeature("ordering", "starts deliveries in publish order at concurrency 1", async () => {
      const transport = await connect();
      const got: number[] = [];
      await subscribe(transport, "ordered", (d) => void got.push(nOf(d.envelope)));
      for (let i = 0; i < 30; i += 10) {
        await transport.publish(Array.from({ length: 10 }, (_, j) => testEnvelope(i + j)));
      }
      await until(() => got.length === 30, wait, "30 deliveries");
      expect(got).toEqual([...Array(30).keys()]);
    });

    itFeature(
      "retry",
      "redelivers a failed delivery with backoff and a growing attempt number",
      async () => {
        const transport = await connect();
        const attempts: { attempt: number; at: number }[] = [];
        await subscribe(transport, "flaky", (d) => {
          attempts.push({ attempt: d.attempt, at: Date.now() });
          if (d.attempt < 3) throw new Error(`transient failure ${d.attempt}`);
        });
        await transport.publish([testEnvelope(1)]);
        await until(() => attempts.length === 3, wait, "three attempts");
        await sleep(t(100));
        expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
        // backoff: initialMs then twice that (no jitter), allowing for coarse transport timers
        expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(t(20) * 0.8);
      },
    );

    itFeature(
      "deadLetter",
      "hands a delivery that fails maxAttempts times to the dead-letter sink, intact",
      async () => {
        const sink = collectingSink();
        const transport = await connect({ deadLetter: sink });
        let calls = 0;
        await subscribe(
          transport,
          "always-fails",
          () => {
            calls++;
            throw new Error("still broken");
          },
          { maxAttempts: 2, deadLetter: sink },
        );
        const sent = testEnvelope(7, PING, {
          traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        });
        await transport.publish([sent]);
        await until(() => sink.records.length === 1, wait, "the dead letter");
        await sleep(t(150));
        expect(calls).toBe(2);
        expect(sink.records).toHaveLength(1);
        expect(sink.records[0]).toMatchObject({
          subscriber: "always-fails",
          reason: "max_attempts",
          attempts: 2,
          error: { message: "still broken" },
        });
        expect(sink.records[0]!.envelope).toEqual(sent);
      },
    );

    itFeature("deadLetter", "dead-letters an UnrecoverableError without retrying", async () => {
      const sink = collectingSink();
      const transport = await connect({ deadLetter: sink });
      let calls = 0;
      await subscribe(
        transport,
        "poisoned",
        () => {
          calls++;
          throw new UnrecoverableError("poison message");
        },
        { deadLetter: sink },
      );
      await transport.publish([testEnvelope(1)]);
      await until(() => sink.records.length === 1, wait, "the dead letter");
      await sleep(t(100));
      expect(calls).toBe(1);
      expect(sink.records[0]).toMatchObject({ reason: "unrecoverable", attempts: 1 });
    });

    itFeature(
      "deadLetter",
      "keeps a delivery whose dead-letter sink fails, and hands it over later",
      async () => {
        let failSink = true;
        let refused = 0;
        const records: DeadLetterRecord[] = [];
        const sink: DeadLetterSink = {
          deadLetter: (record) => {
            if (failSink) {
              refused++;
              throw new Error("dead-letter store unavailable");
            }
            records.push(record);
          },
        };
        const transport = await connect({ deadLetter: sink });
        await subscribe(
          transport,
          "sink-down",
          () => {
            throw new UnrecoverableError("poison");
          },
          { deadLetter: sink },
        );
        await transport.publish([testEnvelope(1)]);
        // The transport must have tried the sink (and been refused) without dropping the delivery.
        await until(() => refused >= 1, wait, "a dead-letter attempt while the sink is down");
        const stats = await transport.stats();
        const row = stats.subscribers.find((s) => s.subscriber === "sink-down");
        expect(row?.deadLettered ?? 0).toBe(0);
        expect((row?.pending ?? 0) + (row?.inFlight ?? 0)).toBe(1);
        failSink = false;
        await until(
          () => records.length === 1,
          wait * 2,
          "the dead letter after the sink recovers",
        );
        expect(records[0]!.reason).toBe("unrecoverable");
      },
    );

    itFeature(
      "leaseExpiry",
      "redelivers to another handle when a handler outlives its lease",
      async () => {
        const t1 = await connect();
        const t2 = await connect();
        const seen: { handle: number; attempt: number }[] = [];
        let firstSignal: AbortSignal | undefined;
        await subscribe(
          t1,
          "lease-holder",
          async (d) => {
            seen.push({ handle: 1, attempt: d.attempt });
            firstSignal = d.signal;
            await sleep(t(1500)); // ignores its signal: a stuck worker
          },
          { leaseMs: t(300) },
        );
        await t1.publish([testEnvelope(1)]);
        await until(() => seen.length === 1, wait, "the first delivery");
        await subscribe(
          t2,
          "lease-holder",
          (d) => void seen.push({ handle: 2, attempt: d.attempt }),
          { leaseMs: t(300) },
        );
        await until(() => seen.length >= 2, wait, "the redelivery");
        expect(seen[1]).toEqual({ handle: 2, attempt: 2 });
        await until(
          () => firstSignal?.aborted === true,
          wait,
          "the stale worker's signal to abort",
        );
      },
    );

    itFeature("leaseExpiry", "keeps the lease of a handler that extends it", async () => {
      const transport = await connect();
      const attempts: number[] = [];
      await subscribe(
        transport,
        "extender",
        async (d) => {
          attempts.push(d.attempt);
          for (let i = 0; i < 6; i++) {
            await sleep(t(100));
            await d.extendLease(t(300));
          }
        },
        { leaseMs: t(300) },
      );
      await transport.publish([testEnvelope(1)]);
      await until(() => attempts.length === 1, wait, "the delivery");
      await sleep(t(900));
      expect(attempts).toEqual([1]);
    });

    itFeature(
      "leaseExpiry",
      "dead-letters a delivery whose handler never finishes, instead of looping forever",
      async () => {
        const sink = collectingSink();
        const transport = await connect({ deadLetter: sink });
        let calls = 0;
        await subscribe(
          transport,
          "crash-loop",
          // Like a handler that crashes its process: it never settles and ignores its signal.
          () => {
            calls++;
            return new Promise<void>(() => {});
          },
          { leaseMs: t(200), maxAttempts: 2, concurrency: 4, deadLetter: sink },
        );
        await transport.publish([testEnvelope(1)]);
        await until(
          () => sink.records.length === 1,
          wait * 2,
          "the abandoned delivery's dead letter",
        );
        expect(calls).toBe(2);
        expect(sink.records[0]).toMatchObject({
          subscriber: "crash-loop",
          reason: "max_attempts",
          error: { name: "DeliveryAbandonedError" },
        });
      },
    );

    itFeature(
      "fencing",
      "ignores a stale worker's ack and rejects its lease extension",
      async () => {
        const t1 = await connect();
        const t2 = await connect();
        const attempts: number[] = [];
        let extendError: unknown;
        await subscribe(
          t1,
          "fenced",
          async (d) => {
            attempts.push(d.attempt);
            await sleep(t(700)); // lease (300 ms) expires meanwhile
            extendError = await d.extendLease().catch((e: unknown) => e);
            // then "succeeds": this ack must not count
          },
          { leaseMs: t(300) },
        );
        await t1.publish([testEnvelope(1)]);
        await until(() => attempts.length === 1, wait, "the first delivery");
        await subscribe(
          t2,
          "fenced",
          (d) => {
            attempts.push(d.attempt);
            if (d.attempt === 2) throw new Error("second worker fails once");
          },
          { leaseMs: t(300) },
        );
        await until(() => attempts.length >= 3, wait * 2, "a third attempt after the stale ack");
        expect(attempts.slice(0, 3)).toEqual([1, 2, 3]);
        await until(() => extendError !== undefined, wait, "the stale extension");
        expect(extendError).toBeInstanceOf(LeaseLostError);
      },
    );

    itFeature("idempotentPublish", "treats a re-published event id as a duplicate", async () => {
      const transport = await connect();
      const got: string[] = [];
      await subscribe(transport, "once", (d) => void got.push(d.envelope.id));
      const e = testEnvelope(1);
      expect(await transport.publish([e])).toEqual({ published: 1, duplicates: 0 });
      expect(await transport.publish([e, testEnvelope(2)])).toEqual({
        published: 1,
        duplicates: 1,
      });
      await until(() => got.length === 2, wait, "two deliveries");
      await sleep(t(100));
      expect(got.filter((id) => id === e.id)).toHaveLength(1);
    });

    itFeature(
      "drainOnClose",
      "finishes in-flight handlers before close resolves, and closes idempotently",
      async () => {
        const transport = await connect();
        let finished = false;
        let started = false;
        await subscribe(transport, "drained", async () => {
          started = true;
          await sleep(t(150));
          finished = true;
        });
        await transport.publish([testEnvelope(1)]);
        await until(() => started, wait, "the delivery to start");
        const closing = transport.close();
        expect(transport.close()).toBe(closing);
        await closing;
        expect(finished).toBe(true);
        await expect(transport.publish([testEnvelope(2)])).rejects.toThrow();
      },
    );

    itFeature(
      "persistent",
      "keeps a registered subscriber's backlog while no process is subscribed",
      async () => {
        const first = await connect();
        const sub = await subscribe(first, "offline-reader", () => {});
        await sub.close();
        await first.close();
        const publisher = await connect();
        await publisher.publish([testEnvelope(1), testEnvelope(2)]);
        const stats = await publisher.stats();
        expect(stats.subscribers.find((s) => s.subscriber === "offline-reader")).toMatchObject({
          pending: 2,
          lag: 2,
        });
        const later = await connect();
        const got: number[] = [];
        await subscribe(later, "offline-reader", (d) => void got.push(nOf(d.envelope)));
        await until(() => got.length === 2, wait, "the backlog");
        expect(got).toEqual([1, 2]);
      },
    );

    itFeature(
      "ephemeral",
      "gives an ephemeral subscriber only new events and forgets it on close",
      async () => {
        const transport = await connect();
        await transport.publish([testEnvelope(1)]);
        const got: number[] = [];
        const sub = await subscribe(
          transport,
          "tmp-reader",
          (d) => void got.push(nOf(d.envelope)),
          { ephemeral: true },
        );
        await transport.publish([testEnvelope(2)]);
        await until(() => got.length === 1, wait, "the new event");
        await sleep(t(50));
        expect(got).toEqual([2]);
        await sub.close();
        const stats = await transport.stats();
        expect(stats.subscribers.map((s) => s.subscriber)).not.toContain("tmp-reader");
      },
    );

    itFeature(
      "reconnect",
      "keeps delivering across a connection loss without losing events",
      async () => {
        const transport = await connect();
        const got = new Set<number>();
        await subscribe(transport, "survivor", (d) => void got.add(nOf(d.envelope)));
        await transport.publish(Array.from({ length: 5 }, (_, i) => testEnvelope(i)));
        await until(() => got.size === 5, wait, "the first five");
        await harness.disrupt!();
        for (let i = 5; i < 10; i++) {
          for (let tries = 0; ; tries++) {
            try {
              await transport.publish([testEnvelope(i)]);
              break;
            } catch (error) {
              if (tries > 50) throw error;
              await sleep(t(100));
            }
          }
        }
        await until(() => got.size === 10, wait * 3, "all ten events after the disruption");
      },
    );

    it("reports backlog per subscriber in stats", async () => {
      const transport = await connect();
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      await subscribe(transport, "busy", () => gate, { leaseMs: t(5000) });
      await transport.publish([testEnvelope(1), testEnvelope(2), testEnvelope(3)]);
      let busy;
      const deadline = Date.now() + wait;
      do {
        busy = (await transport.stats()).subscribers.find((s) => s.subscriber === "busy");
        if (busy?.inFlight === 1) break;
        await sleep(10);
      } while (Date.now() < deadline);
      expect(busy).toMatchObject({ inFlight: 1, pending: 2, lag: 3 });
      release();
    });

    describe("hand-backs", () => {
      itFeature(
        "handBack",
        "does not count a graceful hand-back as an attempt: rolling restarts never dead-letter a slow event",
        async () => {
          const sink = collectingSink();
          const attempts: number[] = [];
          // Three restarts, each closing (short drain) while the handler still runs: more
          // hand-backs than maxAttempts. The lease outlasts the drain: no lease expires here.
          for (let restart = 0; restart < 3; restart++) {
            const transport = await connect({ deadLetter: sink, drainTimeoutMs: t(50) });
            let started = false;
            const sub = await subscribe(
              transport,
              "rolling",
              async (d) => {
                attempts.push(d.attempt);
                started = true;
                await new Promise<void>((resolve) =>
                  d.signal.addEventListener("abort", () => resolve()),
                );
              },
              { maxAttempts: 2, leaseMs: t(10_000) },
            );
            if (restart === 0) await transport.publish([testEnvelope(1)]);
            await until(() => started, wait, `the delivery to start (restart ${restart})`);
            await sub.close();
          }
          const transport = await connect({ deadLetter: sink });
          const handled: number[] = [];
          await subscribe(
            transport,
            "rolling",
            (d) => {
              attempts.push(d.attempt);
              handled.push(nOf(d.envelope));
            },
            { maxAttempts: 2, leaseMs: t(10_000) },
          );
          await until(() => handled.length === 1, wait, "the delivery to be handled at last");
          expect(sink.records).toEqual([]);
          expect(handled).toEqual([1]);
          // Never beyond maxAttempts: the hand-backs were not counted.
          expect(Math.max(...attempts)).toBeLessThanOrEqual(2);
        },
      );
    });
  });
}
