import { SwitchyardError, createEnvelope, type Envelope } from "@switchyard/event-schema";
import {
  LeaseLostError,
  TransportClosedError,
  UnknownSubscriptionError,
  UnrecoverableError,
  type DeadLetterRecord,
  type DeadLetterSink,
  type Delivery,
  type Transport,
  type TransportSubscribeOptions,
  type TransportSubscription,
} from "@switchyard/transport";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type OrderingGuarantee,
  type PublishAtomicity,
  type TransportFeature,
  optInFeatures,
} from "./features";
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
  const ordering: OrderingGuarantee =
    features.ordering === "perSubscriberAndType" ? "perSubscriberAndType" : "perSubscriber";
  const publishBatch: PublishAtomicity = features.publishBatch ?? "atomic";
  /** `it` for a feature: skipped with its reason (in the test name) when the transport lacks it. */
  const itFeature = (
    feature: TransportFeature,
    name: string,
    fn: () => Promise<void>,
    /** For tests that restart subscriptions several times: a multiple of the test timeout. */
    slow = 1,
  ) => {
    const reason = skipReason(feature);
    if (reason) it.skip(`${name} — skipped: ${reason}`, fn);
    else it(name, { timeout: (options.testTimeoutMs ?? 20_000) * slow }, fn);
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

    it("refuses subscribe options no transport can work with, naming the option, and registers nothing", async () => {
      const transport = await connect();
      const refused: [string, Partial<TransportSubscribeOptions>][] = [
        // A NaN maxAttempts would never dead-letter (retrying forever); a NaN delay or lease
        // could not be scheduled at all.
        ["maxAttempts", { maxAttempts: Number.NaN }],
        ["maxAttempts", { maxAttempts: 0 }],
        ["concurrency", { concurrency: 1.5 }],
        ["leaseMs", { leaseMs: Number.NaN }],
        ["backoff.initialMs", { backoff: { initialMs: Number.NaN } }],
        ["backoff.jitter", { backoff: { jitter: 2 } }],
        ["types", { types: [] }],
        // Names that UTF-8 cannot keep apart: a lone surrogate becomes U+FFFD in every store, so
        // two such names would share one cursor.
        ["subscriber", { subscriber: "lone-\uD800" }],
        ["subscriber", { subscriber: "\uDC00" }],
        ["subscriber", { subscriber: "" }],
        ["types", { types: [PING, "TK_\uDBFF"] }],
        ["types", { types: [""] }],
        [
          "handler",
          { handler: "not a function" as unknown as TransportSubscribeOptions["handler"] },
        ],
        ["maxAttempts", { maxAttempts: Number.POSITIVE_INFINITY }],
        ["concurrency", { concurrency: 0 }],
        ["leaseMs", { leaseMs: 0 }],
        ["backoff", { backoff: null as unknown as TransportSubscribeOptions["backoff"] }],
        ["backoff.maxMs", { backoff: { maxMs: -1 } }],
        ["backoff.multiplier", { backoff: { multiplier: 0 } }],
      ];
      for (const [option, extra] of refused) {
        const error: unknown = await subscribe(transport, "refused", () => {}, extra).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error, option).toBeInstanceOf(SwitchyardError);
        expect(error, option).toMatchObject({ option });
        // The message names the option too: it is what a person reads in a log.
        expect((error as Error).message, option).toContain(option);
      }
      if (transport.hasSubscribers) expect(await transport.hasSubscribers(PING)).toBe(false);
      const names = (await transport.stats()).subscribers.map((s) => s.subscriber);
      expect(names).not.toContain("refused");
      expect(names.filter((n) => n.startsWith("lone-") || n === "" || n.length === 1)).toEqual([]);
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

    /** PING and PONG interleaved over three batches, as [type, n] in publish order. */
    const publishInterleaved = async (transport: Transport) => {
      const sent: Envelope[] = [];
      for (let batch = 0; batch < 3; batch++) {
        const envelopes = Array.from({ length: 10 }, (_, j) => {
          const n = batch * 10 + j;
          return testEnvelope(n, (n * 7) % 3 === 0 ? PONG : PING);
        });
        await transport.publish(envelopes);
        sent.push(...envelopes);
      }
      return sent;
    };

    if (ordering === "perSubscriber") {
      itFeature(
        "ordering",
        "starts deliveries in publish order across every type of a subscriber (ordering: perSubscriber)",
        async () => {
          const transport = await connect();
          const got: number[] = [];
          await subscribe(transport, "ordered-types", (d) => void got.push(nOf(d.envelope)), {
            types: [PING, PONG],
          });
          const sent = await publishInterleaved(transport);
          await until(() => got.length === sent.length, wait, `${sent.length} deliveries`);
          expect(got).toEqual(sent.map(nOf));
        },
      );
    } else {
      itFeature(
        "ordering",
        "starts deliveries in publish order within each type of a subscriber (ordering: perSubscriberAndType)",
        async () => {
          const transport = await connect();
          const got: Envelope[] = [];
          await subscribe(transport, "ordered-per-type", (d) => void got.push(d.envelope), {
            types: [PING, PONG],
          });
          const sent = await publishInterleaved(transport);
          await until(() => got.length === sent.length, wait, `${sent.length} deliveries`);
          // Within a type, publish order; across types, no order is promised, so none is checked.
          for (const type of [PING, PONG]) {
            expect(got.filter((e) => e.type === type).map(nOf)).toEqual(
              sent.filter((e) => e.type === type).map(nOf),
            );
          }
        },
      );
    }

    if (publishBatch === "atomic") {
      it(
        "stores a batch all or nothing: one invalid envelope rejects the call and stores none of it (publishBatch: atomic)",
        { timeout: options.testTimeoutMs ?? 20_000 },
        async () => {
          const transport = await connect();
          const got: number[] = [];
          await subscribe(transport, "atomic-reader", (d) => void got.push(nOf(d.envelope)));
          const first = testEnvelope(1);
          const last = testEnvelope(3);
          const invalid = { ...testEnvelope(2), specversion: "0.3" } as unknown as Envelope;
          await expect(transport.publish([first, invalid, last])).rejects.toThrow();
          await sleep(t(200));
          expect(got).toEqual([]);
          // Nothing of the batch was stored: its valid envelopes are new, not duplicates.
          expect(await transport.publish([first, last])).toEqual({
            published: 2,
            duplicates: 0,
          });
          await until(() => got.length === 2, wait, "the two deliveries");
          expect(got).toEqual([1, 3]);
        },
      );

      it(
        "stores a batch at once: when its first event is delivered, every event of it is stored (publishBatch: atomic)",
        { timeout: options.testTimeoutMs ?? 20_000 },
        async () => {
          const transport = await connect();
          let release!: () => void;
          const gate = new Promise<void>((r) => (release = r));
          let lagAtFirst: number | undefined;
          const got: number[] = [];
          await subscribe(transport, "batch-watcher", async (d) => {
            if (got.length === 0) {
              const stats = await transport.stats();
              lagAtFirst = stats.subscribers.find((s) => s.subscriber === "batch-watcher")?.lag;
              await gate;
            }
            got.push(nOf(d.envelope));
          });
          const publishing = transport.publish(
            Array.from({ length: 50 }, (_, i) => testEnvelope(i)),
          );
          try {
            await until(() => lagAtFirst !== undefined, wait, "the first delivery");
            expect(lagAtFirst).toBe(50);
          } finally {
            release();
          }
          await publishing;
          await until(() => got.length === 50, wait, "the whole batch");
        },
      );
    }

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
        // Still open (waiting to retry, or running again): `lag` counts it whichever state it is in.
        expect(row?.lag).toBe(1);
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
        const attempts: number[] = [];
        await subscribe(
          transport,
          "crash-loop",
          // Like a handler that crashes its process: it never settles and ignores its signal.
          (d) => {
            attempts.push(d.attempt);
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
        // A lease that expired (a crash) counts as an attempt, unlike a graceful hand-back.
        expect(attempts).toEqual([1, 2]);
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
      "idempotentPublish",
      `stores each event once when a batch is published again after a partial publish (publishBatch: ${publishBatch})`,
      async () => {
        const transport = await connect();
        const got: number[] = [];
        await subscribe(transport, "republished", (d) => void got.push(nOf(d.envelope)));
        const batch = Array.from({ length: 6 }, (_, i) => testEnvelope(i));
        // What a failed per-message publish may leave behind: the first part stored.
        expect(await transport.publish(batch.slice(0, 2))).toEqual({
          published: 2,
          duplicates: 0,
        });
        expect(await transport.publish(batch)).toEqual({ published: 4, duplicates: 2 });
        await until(() => got.length >= 6, wait, "six deliveries");
        await sleep(t(100));
        expect([...got].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
      },
    );

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

    /** Wait until `subscriber`'s stats show `expected` (fails with the last row seen). */
    const backlogOf = async (
      transport: Transport,
      subscriber: string,
      expected: { pending?: number; inFlight?: number; lag?: number },
    ) => {
      const deadline = Date.now() + wait;
      for (;;) {
        const row = (await transport.stats()).subscribers.find((s) => s.subscriber === subscriber);
        const matches =
          row !== undefined &&
          Object.entries(expected).every(
            ([key, value]) => row[key as keyof typeof expected] === value,
          );
        if (matches) return;
        if (Date.now() > deadline) {
          expect(row, `${subscriber}'s stats after ${wait} ms`).toMatchObject(expected);
          throw new Error(`${subscriber}'s stats never matched ${JSON.stringify(expected)}`);
        }
        await sleep(10);
      }
    };
    /** Wait until `subscriber` has nothing pending or in flight (its acks are recorded). */
    const settled = (transport: Transport, subscriber: string) =>
      backlogOf(transport, subscriber, { pending: 0, inFlight: 0, lag: 0 });

    /** The transport's `requeue`, or a failure saying how to skip the feature. */
    const requeueOf = (transport: Transport) => {
      if (!transport.requeue)
        throw new Error(
          `the ${transport.name} transport has no requeue(): skip the "requeue" feature with a reason`,
        );
      return transport.requeue.bind(transport);
    };

    itFeature(
      "requeue",
      "requeues an envelope to one subscriber only, keeping its id",
      async () => {
        const transport = await connect();
        const a: Envelope[] = [];
        const b: Envelope[] = [];
        await subscribe(transport, "requeue-a", (d) => void a.push(d.envelope));
        await subscribe(transport, "requeue-b", (d) => void b.push(d.envelope));
        const sent = testEnvelope(1, PING, { correlationid: "c-requeue" });
        await transport.publish([sent]);
        await until(() => a.length === 1 && b.length === 1, wait, "both first deliveries");
        // Handled is not yet acked: a requeue while the lease is live merges into that attempt.
        await settled(transport, "requeue-a");
        await requeueOf(transport)("requeue-a", sent);
        await until(() => a.length === 2, wait, "the requeued delivery");
        await sleep(t(200));
        expect(a).toEqual([sent, sent]);
        expect(b).toEqual([sent]);
      },
    );

    itFeature(
      "requeue",
      "rejects a requeue to a subscriber not registered for the type with UnknownSubscriptionError",
      async () => {
        const transport = await connect();
        const got: Envelope[] = [];
        await subscribe(transport, "requeue-known", (d) => void got.push(d.envelope));
        const sent = testEnvelope(1);
        await transport.publish([sent]);
        await until(() => got.length === 1, wait, "the delivery");
        const requeue = requeueOf(transport);
        await expect(requeue("requeue-nobody", sent)).rejects.toBeInstanceOf(
          UnknownSubscriptionError,
        );
        await expect(requeue("requeue-known", testEnvelope(2, PONG))).rejects.toBeInstanceOf(
          UnknownSubscriptionError,
        );
        await sleep(t(100));
        expect(got).toEqual([sent]);
      },
    );

    itFeature(
      "requeueDuringLease",
      "never lets a requeue take over a live lease: the running attempt's success stands and the event runs once",
      async () => {
        const transport = await connect();
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        const runs: number[] = [];
        await subscribe(
          transport,
          "requeue-live",
          async (d) => {
            runs.push(d.attempt);
            if (runs.length === 1) await gate;
          },
          { concurrency: 4, leaseMs: t(10_000) },
        );
        const sent = testEnvelope(1);
        await transport.publish([sent]);
        await until(() => runs.length === 1, wait, "the handler to start");
        const requeue = requeueOf(transport);
        await Promise.all([requeue("requeue-live", sent), requeue("requeue-live", sent)]);
        await sleep(t(300));
        release();
        await settled(transport, "requeue-live");
        await sleep(t(200));
        expect(runs).toEqual([1]);
      },
    );

    itFeature(
      "requeueDuringLease",
      "runs a delivery again, with fresh attempts, when a requeue met its last attempt failing",
      async () => {
        const sink = collectingSink();
        const transport = await connect({ deadLetter: sink });
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        const runs: number[] = [];
        await subscribe(
          transport,
          "requeue-last",
          async (d) => {
            runs.push(d.attempt);
            if (runs.length === 1) {
              await gate;
              throw new Error("the last attempt fails");
            }
          },
          { maxAttempts: 1, leaseMs: t(10_000), deadLetter: sink },
        );
        const sent = testEnvelope(1);
        await transport.publish([sent]);
        await until(() => runs.length === 1, wait, "the handler to start");
        await requeueOf(transport)("requeue-last", sent);
        release();
        await until(() => runs.length === 2, wait, "the requeued run");
        await settled(transport, "requeue-last");
        expect(runs).toEqual([1, 1]);
        expect(sink.records).toEqual([]);
      },
    );

    itFeature("signal", "closes a subscription when its signal is aborted", async () => {
      const transport = await connect();
      const controller = new AbortController();
      const got: number[] = [];
      const sub = await subscribe(transport, "aborted", (d) => void got.push(nOf(d.envelope)), {
        signal: controller.signal,
      });
      await transport.publish([testEnvelope(1)]);
      await until(() => got.length === 1, wait, "the first delivery");
      controller.abort();
      // Closing is asynchronous: give it a moment, without calling close() ourselves.
      await sleep(t(200));
      await transport.publish([testEnvelope(2)]);
      await sleep(t(300));
      expect(got).toEqual([1]);
      // The subscriber is not gone, only that subscription: a new one takes the event.
      const later: number[] = [];
      await subscribe(transport, "aborted", (d) => void later.push(nOf(d.envelope)));
      await until(() => later.length === 1, wait, "the event to the next subscription");
      expect(later).toEqual([2]);
      await sub.close(); // idempotent after the abort
    });

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

    describe("edges of the contract", () => {
      it("closes a subscription and the transport idempotently, concurrently too", async () => {
        const transport = await connect();
        const sub = await subscribe(transport, "closer", () => {});
        expect(sub.subscriber).toBe("closer");
        await Promise.all([sub.close(), sub.close()]);
        await sub.close();
        await sub[Symbol.asyncDispose]();
        const other = await subscribe(transport, "closer-2", () => {});
        await Promise.all([transport.close(), transport.close()]);
        await transport.close();
        // A subscription of a closed transport closes as well, without error.
        await other.close();
      });

      it("refuses publish, subscribe, requeue and register after close() with TransportClosedError, storing nothing", async () => {
        const transport = await connect();
        await subscribe(transport, "after-close", () => {});
        await transport.close();
        const sent = testEnvelope(1);
        const calls: [string, () => Promise<unknown>][] = [
          ["publish", () => transport.publish([sent])],
          ["subscribe", () => subscribe(transport, "after-close", () => {})],
          ["subscribe (new name)", () => subscribe(transport, "after-close-new", () => {})],
        ];
        if (transport.requeue)
          calls.push(["requeue", () => transport.requeue!("after-close", sent)]);
        if (transport.register)
          calls.push(["register", () => transport.register!("after-close-new", [PING])]);
        for (const [what, call] of calls) {
          const error: unknown = await call().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error, what).toBeInstanceOf(TransportClosedError);
          expect(error, what).toMatchObject({ code: "CLOSED" });
        }
        // Nothing of it happened: another handle sees the event as new and no new subscriber.
        const again = await connect();
        const names = (await again.stats()).subscribers.map((row) => row.subscriber);
        expect(names).not.toContain("after-close-new");
        expect(await again.publish([sent])).toEqual({ published: 1, duplicates: 0 });
      });

      it("rejects a publish whose signal is already aborted with the signal's reason, storing nothing", async () => {
        const transport = await connect();
        const got: number[] = [];
        await subscribe(transport, "abort-publish", (d) => void got.push(nOf(d.envelope)));
        const controller = new AbortController();
        const reason = new Error("the caller gave up");
        controller.abort(reason);
        const sent = testEnvelope(1);
        await expect(transport.publish([sent], { signal: controller.signal })).rejects.toBe(reason);
        expect(await transport.publish([sent])).toEqual({ published: 1, duplicates: 0 });
        await until(() => got.length === 1, wait, "the delivery of the second publish");
        await sleep(t(100));
        expect(got).toEqual([1]);
      });

      itFeature(
        "signal",
        "never runs the handler of a subscription whose signal was aborted before subscribe()",
        async () => {
          const transport = await connect();
          const first = await subscribe(transport, "pre-aborted", () => {});
          await first.close();
          await transport.publish([testEnvelope(1)]);
          const controller = new AbortController();
          controller.abort();
          const ran: number[] = [];
          // Resolving with a closed subscription or rejecting are both fine: nothing may run.
          await subscribe(transport, "pre-aborted", (d) => void ran.push(nOf(d.envelope)), {
            signal: controller.signal,
          }).catch(() => undefined);
          await sleep(t(300));
          expect(ran).toEqual([]);
          // The event waits for the next subscription, as the first attempt.
          const later: number[] = [];
          await subscribe(transport, "pre-aborted", (d) => void later.push(d.attempt));
          await until(() => later.length === 1, wait, "the event to the next subscription");
          expect(later).toEqual([1]);
        },
      );

      itFeature(
        "deadLetter",
        "dead-letters at the first failure under maxAttempts 1, keeping the error's name, message and code",
        async () => {
          const sink = collectingSink();
          const transport = await connect({ deadLetter: sink });
          let calls = 0;
          await subscribe(
            transport,
            "one-shot",
            () => {
              calls++;
              throw new SwitchyardError("TK_BROKEN", "broken for good");
            },
            { maxAttempts: 1, deadLetter: sink },
          );
          await transport.publish([testEnvelope(1)]);
          await until(() => sink.records.length === 1, wait, "the dead letter");
          await settled(transport, "one-shot");
          expect(calls).toBe(1);
          expect(sink.records[0]).toMatchObject({
            subscriber: "one-shot",
            reason: "max_attempts",
            attempts: 1,
            error: { name: "SwitchyardError", message: "broken for good", code: "TK_BROKEN" },
            origin: transport.name,
          });
          // When the last attempt failed, as RFC 3339.
          const failedAt = sink.records[0]!.failedAt;
          expect(failedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
          expect(Math.abs(Date.parse(failedAt) - Date.now())).toBeLessThan(wait * 2);
          const row = (await transport.stats()).subscribers.find(
            (r) => r.subscriber === "one-shot",
          );
          expect(row?.deadLettered).toBe(1);
        },
      );

      itFeature(
        "deadLetter",
        "retries and dead-letters whatever a handler throws like an Error: undefined, a string, an unreadable object",
        async () => {
          const sink = collectingSink();
          const transport = await connect({ deadLetter: sink });
          const revoked = Proxy.revocable({}, {});
          revoked.revoke();
          const hostile = {
            get name(): string {
              throw new Error("no name");
            },
            get message(): string {
              throw new Error("no message");
            },
            get stack(): string {
              throw new Error("no stack");
            },
            toJSON(): never {
              throw new Error("no JSON");
            },
            toString(): never {
              throw new Error("no string");
            },
          };
          const throwers: Record<string, unknown> = {
            "throws-undefined": undefined,
            "throws-string": "a bare string",
            "throws-hostile": hostile,
            "throws-revoked": revoked.proxy,
          };
          const attempts: Record<string, number[]> = {};
          for (const [subscriber, value] of Object.entries(throwers)) {
            attempts[subscriber] = [];
            await subscribe(
              transport,
              subscriber,
              (d) => {
                attempts[subscriber]!.push(d.attempt);
                throw value;
              },
              { maxAttempts: 2, deadLetter: sink },
            );
          }
          await transport.publish([testEnvelope(1)]);
          await until(() => sink.records.length === 4, wait, "four dead letters");
          for (const subscriber of Object.keys(throwers)) await settled(transport, subscriber);
          for (const subscriber of Object.keys(throwers)) {
            expect(attempts[subscriber], subscriber).toEqual([1, 2]);
            const record = sink.records.find((r) => r.subscriber === subscriber);
            expect(record, subscriber).toMatchObject({ reason: "max_attempts", attempts: 2 });
            expect(typeof record!.error.name, subscriber).toBe("string");
            expect(typeof record!.error.message, subscriber).toBe("string");
          }
          expect(sink.records.find((r) => r.subscriber === "throws-string")!.error.message).toBe(
            "a bare string",
          );
        },
      );

      itFeature(
        "retry",
        "awaits what a handler returns as await would: odd thenables settle, a throwing then fails the attempt",
        async () => {
          const sink = collectingSink();
          const transport = await connect({ deadLetter: sink });
          type Returns = (attempt: number) => unknown;
          const handlers: Record<string, Returns> = {
            // Settles twice and then throws: the first settlement counts.
            "thenable-twice": () => ({
              then(resolve: () => void, reject: (e: unknown) => void) {
                resolve();
                reject(new Error("too late"));
                throw new Error("later still");
              },
            }),
            // Its then throws on the first attempt: that attempt failed.
            "thenable-throws": (attempt) => ({
              then(resolve: () => void) {
                // A non-Error, on purpose: what user code throws is not ours to choose.
                // eslint-disable-next-line @typescript-eslint/only-throw-error
                if (attempt === 1) throw "then threw";
                resolve();
              },
            }),
            // Reading then throws on the first attempt.
            "then-getter-throws": (attempt) => ({
              get then() {
                if (attempt === 1) throw new Error("no then");
                return undefined;
              },
            }),
            // Not async at all: throws synchronously on the first attempt.
            "sync-throws": (attempt) => {
              if (attempt === 1) throw new Error("sync failure");
              return undefined;
            },
            // Returns something that is not a thenable: a success.
            "returns-value": () => ({ then: "not a function" }),
          };
          const attempts: Record<string, number[]> = {};
          for (const [subscriber, returns] of Object.entries(handlers)) {
            attempts[subscriber] = [];
            await subscribe(transport, subscriber, () => {}, {
              deadLetter: sink,
              // Passed as is, not wrapped in an async function, so the transport meets the value.
              handler: ((d: Delivery) => {
                attempts[subscriber]!.push(d.attempt);
                return returns(d.attempt);
              }) as unknown as TransportSubscribeOptions["handler"],
            });
          }
          await transport.publish([testEnvelope(1)]);
          for (const subscriber of Object.keys(handlers)) await settled(transport, subscriber);
          expect(attempts).toEqual({
            "thenable-twice": [1],
            "thenable-throws": [1, 2],
            "then-getter-throws": [1, 2],
            "sync-throws": [1, 2],
            "returns-value": [1],
          });
          expect(sink.records).toEqual([]);
        },
      );
    });

    describe("hand-backs", () => {
      itFeature(
        "handBack",
        "does not count a graceful hand-back as an attempt: rolling restarts never dead-letter a slow event",
        async () => {
          const sink = collectingSink();
          const attempts: number[] = [];
          // Four restarts, each closing (short drain) while the handler still runs: more
          // hand-backs than maxAttempts. The lease outlasts the drain: no lease expires here.
          for (let restart = 0; restart < 4; restart++) {
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
            // Handed back: waiting again, not held by anyone.
            await backlogOf(transport, "rolling", { pending: 1, inFlight: 0 });
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
          await settled(transport, "rolling");
          expect(sink.records).toEqual([]);
          expect(handled).toEqual([1]);
          // Every run was the first attempt: none of the hand-backs counted.
          expect(attempts).toEqual([1, 1, 1, 1, 1]);
        },
        2,
      );

      itFeature(
        "handBack",
        "aborts a handler still running after the drain timeout and hands its delivery back as the same attempt",
        async () => {
          const transport = await connect({ drainTimeoutMs: t(100) });
          let signal: AbortSignal | undefined;
          await subscribe(
            transport,
            "slowpoke",
            async (d) => {
              signal = d.signal;
              // Ignores its signal for longer than the drain timeout.
              await sleep(t(3_000));
            },
            { leaseMs: t(10_000) },
          );
          await transport.publish([testEnvelope(1)]);
          await until(() => signal !== undefined, wait, "the delivery");
          const started = Date.now();
          await transport.close();
          expect(Date.now() - started).toBeLessThan(t(2_500));
          expect(signal!.aborted).toBe(true);
          const again = await connect();
          const attempts: number[] = [];
          await subscribe(again, "slowpoke", (d) => void attempts.push(d.attempt), {
            leaseMs: t(10_000),
          });
          await until(() => attempts.length === 1, wait, "the handed-back delivery");
          await sleep(t(100));
          expect(attempts).toEqual([1]);
        },
      );

      itFeature(
        "handBack",
        "hands back only the closing handle's deliveries, never a sibling's",
        async () => {
          const leaving = await connect({ drainTimeoutMs: t(50) });
          const staying = await connect();
          let finish!: () => void;
          const finished = new Promise<void>((r) => (finish = r));
          const runs: { handle: string; n: number; attempt: number }[] = [];
          let siblingAborted = false;
          await subscribe(
            leaving,
            "pair",
            async (d) => {
              runs.push({ handle: "leaving", n: nOf(d.envelope), attempt: d.attempt });
              await new Promise<void>((resolve) =>
                d.signal.addEventListener("abort", () => resolve()),
              );
            },
            { leaseMs: t(10_000) },
          );
          await leaving.publish([testEnvelope(1)]);
          await until(() => runs.length === 1, wait, "the leaving handle's delivery");
          await subscribe(
            staying,
            "pair",
            async (d) => {
              runs.push({ handle: "staying", n: nOf(d.envelope), attempt: d.attempt });
              if (nOf(d.envelope) === 2) {
                d.signal.addEventListener("abort", () => (siblingAborted = true));
                await finished;
              }
            },
            { leaseMs: t(10_000) },
          );
          await staying.publish([testEnvelope(2)]);
          await until(() => runs.length === 2, wait, "the staying handle's delivery");
          await leaving.close();
          expect(siblingAborted).toBe(false);
          finish();
          // The handed-back event 1 goes to the staying handle as the same attempt; 2 runs once.
          await until(() => runs.length === 3, wait, "the handed-back delivery");
          await settled(staying, "pair");
          expect(runs).toEqual([
            { handle: "leaving", n: 1, attempt: 1 },
            { handle: "staying", n: 2, attempt: 1 },
            { handle: "staying", n: 1, attempt: 1 },
          ]);
        },
      );
    });
  });
}
