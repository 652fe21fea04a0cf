import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEnvelope, type Envelope } from "@switchyard/event-schema";
import {
  type DaemonHeartbeat,
  type Delivery,
  type Driver,
  type StoredEvent,
  type Transport,
  type TransportSubscribeOptions,
  type TransportSubscription,
  InspectorQueryError,
  UnrecoverableError,
  UnsupportedOperationError,
} from "@switchyard/transport";
import { type TestContext, afterEach, beforeEach, describe, expect, it } from "vitest";
import type { InspectorFeature } from "./features";
import type { InspectorHarness, InspectorSuiteOptions } from "./harness";

const A = "TK_INSPECT_A";
const B = "TK_INSPECT_B";

interface Payload {
  n: number;
  /** What the handler does: succeed, throw `UnrecoverableError`, or throw every time. */
  fate?: "ok" | "unrecoverable" | "fails";
}

const event = (
  n: number,
  type: string,
  extra: Partial<Envelope> & { fate?: Payload["fate"] } = {},
) => {
  const { fate, ...rest } = extra;
  return {
    ...createEnvelope({
      type,
      source: "inspector-suite",
      data: { n, ...(fate ? { fate } : {}) } satisfies Payload,
    }),
    ...rest,
  };
};
const dataOf = (e: Envelope) => e.data as Payload;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Every page of a listing, following `next`. */
async function allPages<T>(
  page: (cursor: string | undefined) => Promise<{ items: readonly T[]; next?: string }>,
  maxPages = 100,
): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (let pages = 1; pages <= maxPages; pages++) {
    const got = await page(cursor);
    items.push(...got.items);
    if (got.next === undefined) return { items, pages };
    cursor = got.next;
  }
  throw new Error(`more than ${maxPages} pages: the cursor does not advance`);
}

/** A heartbeat as a `DaemonManager` writes it. */
function beat(
  daemon: string,
  status: DaemonHeartbeat["status"],
  restarts: number,
  at = new Date(),
): DaemonHeartbeat {
  return {
    daemon,
    pid: 4242,
    host: "inspector-suite",
    status,
    health: { healthy: true, status: "healthy", message: "ok", details: {} },
    stats: {
      eventsProcessed: 3,
      eventsDeduplicated: 0,
      successCount: 3,
      errorsCount: 0,
      successRate: 1,
      lastActivity: at.getTime(),
      cyclesRun: 1,
      cycleFailures: 0,
      consecutiveCycleFailures: 0,
      eventsEmitted: 1,
      emitFailures: 0,
      consecutiveEmitFailures: 0,
    },
    restarts,
    startedAt: status === "running" ? at.toISOString() : null,
    at: at.toISOString(),
  };
}

/**
 * Register the inspector contract as vitest tests, on drivers from `harness`: the numbers an
 * inspector reports match what the test did — backlog per subscriber (pending, in flight,
 * retrying, dead, lag), events (filters, cursor paging), one event and its deliveries, the
 * causation tree, counts over time, heartbeats, dead letters and their counts — and the admin
 * actions (replay, purge) do what they say, or reject with `UnsupportedOperationError` exactly
 * where the driver's `capabilities` say they are unsupported. Call it at the top level of a test
 * file.
 *
 * @example
 * ```ts
 * // not runnable (registers tests inside a vitest file)
 * runInspectorSuite({
 *   name: "memory",
 *   harness: async () => {
 *     const target = `memory:${randomUUID()}`;
 *     return { driver: () => openDriver(target, { drivers: [memoryDriver] }), cleanup: async () => {} };
 *   },
 * });
 * ```
 */
export function runInspectorSuite(options: InspectorSuiteOptions): void {
  const scale = options.timeScale ?? 1;
  const t = (ms: number) => Math.round(ms * scale);
  const wait = t(10_000);
  const poll = { timeout: wait, interval: Math.max(20, t(50)) };
  const features = options.features ?? {};
  const testTimeout = options.testTimeoutMs ?? 30_000;

  const itPart = (
    part: InspectorFeature,
    name: string,
    fn: (context: TestContext) => Promise<void>,
  ) => {
    const setting = features[part];
    if (setting !== undefined && setting !== true)
      it.skip(`${name} — skipped: ${setting.skip}`, fn);
    else it(name, { timeout: testTimeout }, (context) => fn(context));
  };

  describe(`inspector contract: ${options.name}`, () => {
    let harness: InspectorHarness;
    let drivers: Driver[] = [];
    let subs: TransportSubscription[] = [];

    /** Another driver on this test's store (the first call: "this process"). */
    const open = async () => {
      const driver = await harness.driver();
      drivers.push(driver);
      return driver;
    };
    const transportOf = (driver: Driver): Transport =>
      driver.transport({ ...harness.transportOptions, drainTimeoutMs: t(2_000) });
    const subscribe = async (
      transport: Transport,
      subscriber: string,
      types: readonly string[],
      handler: (d: Delivery) => Promise<void> | void,
      extra: Partial<TransportSubscribeOptions> = {},
    ) => {
      const sub = await transport.subscribe({
        subscriber,
        types,
        handler: async (d) => handler(d),
        leaseMs: t(10_000),
        maxAttempts: 2,
        backoff: { initialMs: t(20), maxMs: t(100), jitter: 0 },
        ...extra,
      });
      subs.push(sub);
      return sub;
    };
    /** A handler that does what the payload's `fate` says. */
    const fated = (handled: Envelope[]) => (d: Delivery) => {
      const { fate } = dataOf(d.envelope);
      if (fate === "unrecoverable") throw new UnrecoverableError(`poison ${dataOf(d.envelope).n}`);
      if (fate === "fails") throw new Error(`broken ${dataOf(d.envelope).n}`);
      handled.push(d.envelope);
    };
    /** A subscriber registered for `types` that nobody consumes now: its backlog grows. */
    const registerIdle = async (transport: Transport, subscriber: string, types: string[]) => {
      const sub = await subscribe(transport, subscriber, types, () => {});
      await sub.close();
    };

    beforeEach(async () => {
      harness = await options.harness();
    });
    afterEach(async () => {
      await Promise.allSettled(subs.map((s) => s.close()));
      await Promise.allSettled(drivers.map((d) => d.close()));
      subs = [];
      drivers = [];
      await harness.cleanup();
    });

    itPart(
      "backlog",
      "reports the backlog, dead letters and their counts that match what was published, handled and failed",
      async () => {
        const driver = await open();
        const transport = transportOf(driver);
        const handled: Envelope[] = [];
        await subscribe(transport, "worker", [A, B], fated(handled));
        await registerIdle(transport, "idle", [A]);
        const sent = [
          event(1, A),
          event(2, A, { fate: "unrecoverable" }),
          event(3, A),
          event(4, A, { fate: "fails" }),
          event(5, A),
          event(6, B),
          event(7, B, { fate: "unrecoverable" }),
          event(8, B),
        ];
        expect(await transport.publish(sent)).toEqual({ published: 8, duplicates: 0 });
        await until(() => handled.length === 5, wait, "5 handled deliveries");
        expect(handled.map((e) => dataOf(e).n).sort()).toEqual([1, 3, 5, 6, 8]);

        const inspector = driver.inspector();
        const dead = (n: number) => sent[n - 1]!.id;
        if (driver.capabilities.deadLetters) {
          await expect.poll(async () => (await inspector.deadLetterCounts()).depth, poll).toBe(3);
        }
        // Read from another driver on the same store, as the CLI in another process would.
        const other = (await open()).inspector();
        for (const reader of [inspector, other]) {
          await expect
            .poll(
              async () =>
                Object.fromEntries(
                  (await reader.subscribers()).map((s) => [
                    s.subscriber,
                    {
                      pending: s.pending,
                      inFlight: s.inFlight,
                      retrying: s.retrying,
                      dead: s.dead,
                      lag: s.lag,
                    },
                  ]),
                ),
              poll,
            )
            .toMatchObject({
              worker: { pending: 0, inFlight: 0, retrying: 0, dead: 3, lag: 0 },
              idle: { pending: 5, inFlight: 0, retrying: 0, dead: 0, lag: 5 },
            });
        }
        const rows = await inspector.subscribers();
        const worker = rows.find((s) => s.subscriber === "worker")!;
        const idle = rows.find((s) => s.subscriber === "idle")!;
        expect([...worker.types].sort()).toEqual([A, B]);
        expect(worker.ephemeral).toBe(false);
        expect(worker.oldestPendingMs).toBeUndefined();
        expect(idle.types).toEqual([A]);
        expect(idle.oldestPendingMs).toBeGreaterThanOrEqual(0);

        if (!driver.capabilities.deadLetters) {
          expect((await inspector.deadLetters()).deadLetters).toEqual([]);
          return;
        }
        const { deadLetters } = await inspector.deadLetters();
        expect(deadLetters.map((d) => d.eventId).sort()).toEqual(
          [dead(2), dead(4), dead(7)].sort(),
        );
        const byEvent = new Map(deadLetters.map((d) => [d.eventId, d]));
        expect(byEvent.get(dead(2))).toMatchObject({
          eventType: A,
          subscriber: "worker",
          reason: "unrecoverable",
          attempts: 1,
          error: { message: "poison 2" },
        });
        expect(byEvent.get(dead(4))).toMatchObject({
          eventType: A,
          subscriber: "worker",
          reason: "max_attempts",
          attempts: 2,
          error: { message: "broken 4" },
        });
        expect(byEvent.get(dead(7))).toMatchObject({
          eventType: B,
          reason: "unrecoverable",
          attempts: 1,
        });
        expect(byEvent.get(dead(7))!.envelope).toEqual(sent[6]);
        for (const record of deadLetters) {
          expect(record.status).not.toMatch(/replayed|purged/);
          expect(await inspector.deadLetter(record.id)).toEqual(record);
        }
        expect(await inspector.deadLetter("no-such-dead-letter-0")).toBeUndefined();
        // Filters narrow the list.
        const onlyB = await inspector.deadLetters({ type: B });
        expect(onlyB.deadLetters.map((d) => d.eventId)).toEqual([dead(7)]);
        const exhausted = await inspector.deadLetters({ reason: "max_attempts" });
        expect(exhausted.deadLetters.map((d) => d.eventId)).toEqual([dead(4)]);
        const ofOneEvent = await inspector.deadLetters({ eventId: dead(2) });
        expect(ofOneEvent.deadLetters.map((d) => d.eventId)).toEqual([dead(2)]);
        expect((await inspector.deadLetters({ eventId: "no-such-event" })).deadLetters).toEqual([]);
        const paged = await allPages(async (cursor) => {
          const page = await inspector.deadLetters({ limit: 2, ...(cursor ? { cursor } : {}) });
          return { items: page.deadLetters, ...(page.next ? { next: page.next } : {}) };
        });
        expect(paged.pages).toBe(2);
        expect(paged.items.map((d) => d.id)).toEqual(deadLetters.map((d) => d.id));

        const counts = await inspector.deadLetterCounts();
        expect(counts).toMatchObject({
          depth: 3,
          byReason: { unrecoverable: 2, max_attempts: 1 },
          byType: { [A]: 2, [B]: 1 },
          bySubscriber: { worker: 3 },
        });
        expect(counts.byReason.timeout ?? 0).toBe(0);
        expect(counts.oldestAgeMs).toBeGreaterThanOrEqual(0);

        // A dead letter written while someone pages is neither repeated nor makes one skipped.
        const firstPage = await inspector.deadLetters({ limit: 2 });
        await transport.publish([event(9, B, { fate: "unrecoverable" })]);
        await expect.poll(async () => (await inspector.deadLetterCounts()).depth, poll).toBe(4);
        const rest = await allPages(async (cursor) => {
          const page = await inspector.deadLetters({ limit: 2, cursor: cursor ?? firstPage.next! });
          return { items: page.deadLetters, ...(page.next ? { next: page.next } : {}) };
        });
        expect([...firstPage.deadLetters, ...rest.items].map((d) => d.id)).toEqual(
          deadLetters.map((d) => d.id),
        );
      },
    );

    itPart(
      "backlog",
      "counts a running delivery as in flight, the one behind it as pending and a failed one waiting for its backoff as retrying",
      async () => {
        const driver = await open();
        const transport = transportOf(driver);
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        const started: Envelope[] = [];
        let failures = 0;
        await subscribe(transport, "holder", [A], async (d) => {
          started.push(d.envelope);
          await gate;
        });
        await subscribe(
          transport,
          "failer",
          [B],
          () => {
            failures++;
            throw new Error("not yet");
          },
          // The retry waits far longer than the test: the delivery stays "retrying".
          { maxAttempts: 5, backoff: { initialMs: t(60_000), maxMs: t(60_000), jitter: 0 } },
        );
        const first = event(1, A);
        const second = event(2, A);
        const failing = event(3, B);
        await transport.publish([first]);
        await transport.publish([second]);
        await transport.publish([failing]);
        try {
          await until(() => started.length === 1 && failures === 1, wait, "both subscribers");
          const inspector = driver.inspector();
          await expect
            .poll(
              async () =>
                Object.fromEntries(
                  (await inspector.subscribers()).map((s) => [
                    s.subscriber,
                    { pending: s.pending, inFlight: s.inFlight, retrying: s.retrying, lag: s.lag },
                  ]),
                ),
              poll,
            )
            .toMatchObject({
              holder: { pending: 1, inFlight: 1, retrying: 0, lag: 2 },
              failer: { pending: 0, inFlight: 0, retrying: 1, lag: 1 },
            });
          const failer = (await inspector.subscribers()).find((s) => s.subscriber === "failer")!;
          expect(failer.oldestPendingMs).toBeGreaterThanOrEqual(0);
          if (!driver.capabilities.deliveries) return;
          const of = async (e: Envelope, subscriber: string) =>
            (await inspector.deliveries(e.id)).find((d) => d.subscriber === subscriber);
          expect(await of(first, "holder")).toMatchObject({ state: "in_flight", attempts: 1 });
          expect((await of(first, "holder"))!.leaseUntil).toEqual(expect.any(String));
          expect(await of(second, "holder")).toMatchObject({ state: "pending", attempts: 0 });
          expect(await of(failing, "failer")).toMatchObject({
            state: "retrying",
            attempts: 1,
            lastError: { message: "not yet" },
          });
          expect(await of(failing, "holder")).toBeUndefined();
        } finally {
          release();
        }
        await until(() => started.length === 2, wait, "the second delivery");
        const inspector = driver.inspector();
        await expect
          .poll(
            async () => (await inspector.subscribers()).find((s) => s.subscriber === "holder")?.lag,
            poll,
          )
          .toBe(0);
        if (driver.capabilities.deliveries) {
          await expect
            .poll(
              async () =>
                (await inspector.deliveries(first.id)).find((d) => d.subscriber === "holder"),
              poll,
            )
            .toMatchObject({ state: "acked", attempts: 1 });
        }
      },
    );

    itPart(
      "backlog",
      "counts an expired lease where the driver's capabilities say: retrying by the contract, in flight where stated",
      async () => {
        const driver = await open();
        const transport = transportOf(driver);
        const expected = driver.capabilities.expiredLeases ?? "retrying";
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        let started = 0;
        const leaseMs = t(300);
        // A stuck worker: it ignores its signal and holds the only slot, so nothing takes the
        // delivery again while its lease is expired.
        await subscribe(
          transport,
          "stuck",
          [A],
          async () => {
            started++;
            await gate;
          },
          { leaseMs, concurrency: 1, maxAttempts: 5 },
        );
        await transport.publish([event(1, A)]);
        try {
          await until(() => started === 1, wait, "the delivery to start");
          await sleep(leaseMs * 2);
          const inspector = driver.inspector();
          await expect
            .poll(async () => {
              const row = (await inspector.subscribers()).find((s) => s.subscriber === "stuck");
              return (
                row && {
                  pending: row.pending,
                  inFlight: row.inFlight,
                  retrying: row.retrying,
                  lag: row.lag,
                }
              );
            }, poll)
            .toEqual({
              pending: 0,
              inFlight: expected === "inFlight" ? 1 : 0,
              retrying: expected === "retrying" ? 1 : 0,
              lag: 1,
            });
        } finally {
          release();
        }
      },
    );

    itPart(
      "deliveries",
      "reports one event's delivery to each subscriber: acked, dead with its reason, attempts and last error",
      async () => {
        const driver = await open();
        const transport = transportOf(driver);
        const handled: Envelope[] = [];
        let flakyRuns = 0;
        await subscribe(transport, "steady", [A], fated(handled));
        await subscribe(transport, "flaky", [A], (d) => {
          flakyRuns++;
          if (d.attempt < 2) throw new Error(`flaky ${d.attempt}`);
        });
        const poison = event(1, A, { fate: "unrecoverable" });
        await transport.publish([poison]);
        await until(() => flakyRuns === 2, wait, "the flaky subscriber's second attempt");
        const inspector = driver.inspector();
        if (!driver.capabilities.deliveries) {
          expect(await inspector.deliveries(poison.id)).toEqual([]);
          return;
        }
        await expect
          .poll(
            async () =>
              Object.fromEntries(
                (await inspector.deliveries(poison.id)).map((d) => [d.subscriber, d.state]),
              ),
            poll,
          )
          .toEqual({ steady: "dead", flaky: "acked" });
        const rows = await inspector.deliveries(poison.id);
        expect(rows.find((d) => d.subscriber === "steady")).toMatchObject({
          state: "dead",
          attempts: 1,
          deadReason: "unrecoverable",
          lastError: { message: "poison 1" },
        });
        expect(rows.find((d) => d.subscriber === "flaky")).toMatchObject({
          state: "acked",
          attempts: 2,
        });
        expect(await inspector.deliveries("no-such-event-0")).toEqual([]);
      },
    );

    itPart(
      "deliveries",
      "keeps each delivery's timeline: a retry with its error and delay, the dead letter with its reason, then the replay",
      async (context) => {
        const driver = await open();
        if (!driver.capabilities.history || !driver.capabilities.deliveries)
          return context.skip("the driver's capabilities.history is false");
        const transport = transportOf(driver);
        let flakyRuns = 0;
        let fragileRuns = 0;
        let broken = true;
        await subscribe(transport, "flaky", [A], (d) => {
          flakyRuns++;
          if (d.attempt === 1) throw new Error("flaky first run");
        });
        await subscribe(transport, "fragile", [A], () => {
          fragileRuns++;
          if (broken) throw new UnrecoverableError("broken for now");
        });
        const sent = event(1, A);
        await transport.publish([sent]);
        const inspector = driver.inspector();
        const of = async (subscriber: string) =>
          (await inspector.deliveries(sent.id)).find((d) => d.subscriber === subscriber);
        await expect
          .poll(async () => [(await of("flaky"))?.state, (await of("fragile"))?.state], poll)
          .toEqual(["acked", "dead"]);
        const inOrder = (steps: readonly { at: string }[]) => {
          const times = steps.map((s) => Date.parse(s.at));
          expect(times.every((t) => Number.isFinite(t))).toBe(true);
          expect(times).toEqual([...times].sort((a, b) => a - b));
        };

        const flaky = (await of("flaky"))!;
        expect(flaky.history).toBeDefined();
        const flakySteps = flaky.history!;
        inOrder(flakySteps);
        const retry = flakySteps.findIndex((s) => s.kind === "retry_scheduled");
        expect(retry, JSON.stringify(flakySteps)).toBeGreaterThanOrEqual(0);
        expect(flakySteps[retry]).toMatchObject({
          attempt: 1,
          error: { message: "flaky first run" },
        });
        expect(flakySteps[retry]!.delayMs).toBeGreaterThanOrEqual(0);
        // Nothing after the retry says it failed again; its settle, where recorded, comes after.
        const later = flakySteps.slice(retry + 1).map((s) => s.kind);
        expect(later).not.toContain("retry_scheduled");
        expect(later).not.toContain("dead_lettered");
        const acked = flakySteps.findIndex((s) => s.kind === "acked");
        if (acked >= 0) expect(acked).toBeGreaterThan(retry);
        expect(flakyRuns).toBe(2);

        const fragile = (await of("fragile"))!;
        inOrder(fragile.history!);
        expect(fragile.history!.at(-1)).toMatchObject({
          kind: "dead_lettered",
          reason: "unrecoverable",
          error: { message: "broken for now" },
        });
        expect(fragileRuns).toBe(1);

        if (!driver.capabilities.replay || !driver.capabilities.deadLetters) return;
        broken = false;
        const [record] = (await inspector.deadLetters({ eventId: sent.id })).deadLetters;
        expect(record).toBeDefined();
        expect((await driver.admin().replay({ id: record!.id })).replayed).toEqual([record!.id]);
        await until(() => fragileRuns === 2, wait, "the replayed delivery");
        await expect.poll(async () => (await of("fragile"))?.state, poll).toBe("acked");
        const replayed = (await of("fragile"))!.history!;
        inOrder(replayed);
        const dead = replayed.findIndex((s) => s.kind === "dead_lettered");
        const replay = replayed.findIndex((s) => s.kind === "replayed");
        expect(replay, JSON.stringify(replayed)).toBeGreaterThan(dead);
        expect(dead).toBeGreaterThanOrEqual(0);
      },
    );

    itPart(
      "events",
      "lists events by type, subject and time, and pages them with cursors without gaps or repeats",
      async () => {
        const driver = await open();
        const transport = transportOf(driver);
        const inspector = driver.inspector();
        const early: Envelope[] = [];
        const late: Envelope[] = [];
        for (let n = 0; n < 6; n++) {
          const e = event(n, n % 2 ? B : A, { subject: n % 3 ? "hex8_2p" : "sq19_4p" });
          await transport.publish([e]);
          early.push(e);
        }
        // A clear gap between the two halves, wider than any clock step between the test and
        // the store.
        await sleep(t(300));
        const mark = new Date();
        await sleep(t(300));
        for (let n = 6; n < 13; n++) {
          const e = event(n, n % 2 ? B : A, { subject: n % 3 ? "hex8_2p" : "sq19_4p" });
          await transport.publish([e]);
          late.push(e);
        }
        const all = [...early, ...late];
        const ids = (events: readonly StoredEvent[]) => events.map((e) => e.id);

        await expect
          .poll(async () => ids((await inspector.events({ order: "oldest" })).events), poll)
          .toEqual(all.map((e) => e.id));
        const newest = await inspector.events();
        expect(ids(newest.events)).toEqual(all.map((e) => e.id).reverse());
        expect(newest.next).toBeUndefined();
        const seqs = newest.events.map((e) => e.seq);
        for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeLessThan(seqs[i - 1]!);

        const onlyA = await inspector.events({ types: [A], order: "oldest" });
        expect(ids(onlyA.events)).toEqual(all.filter((e) => e.type === A).map((e) => e.id));
        const subject = await inspector.events({ subject: "sq19_4p", order: "oldest" });
        expect(ids(subject.events)).toEqual(
          all.filter((e) => e.subject === "sq19_4p").map((e) => e.id),
        );
        const both = await inspector.events({ types: [B], subject: "hex8_2p", order: "oldest" });
        expect(ids(both.events)).toEqual(
          all.filter((e) => e.type === B && e.subject === "hex8_2p").map((e) => e.id),
        );
        const since = await inspector.events({ since: mark, order: "oldest" });
        expect(ids(since.events)).toEqual(late.map((e) => e.id));
        const until_ = await inspector.events({ until: mark.toISOString(), order: "oldest" });
        expect(ids(until_.events)).toEqual(early.map((e) => e.id));
        const window = await inspector.events({
          since: mark.getTime(),
          until: Date.now() + t(60_000),
          types: [A],
          order: "oldest",
        });
        expect(ids(window.events)).toEqual(late.filter((e) => e.type === A).map((e) => e.id));

        for (const order of ["oldest", "newest"] as const) {
          for (const limit of [1, 4, 5]) {
            const paged = await allPages(async (cursor) => {
              const page = await inspector.events({ order, limit, ...(cursor ? { cursor } : {}) });
              expect(page.events.length).toBeLessThanOrEqual(limit);
              return { items: page.events, ...(page.next ? { next: page.next } : {}) };
            });
            const expected = all.map((e) => e.id);
            expect(paged.items.map((e) => e.id)).toEqual(
              order === "oldest" ? expected : expected.reverse(),
            );
            expect(paged.pages).toBe(Math.ceil(all.length / limit));
          }
        }
        // Paging a filtered listing keeps the filter.
        const pagedB = await allPages(async (cursor) => {
          const page = await inspector.events({
            types: [B],
            limit: 2,
            ...(cursor ? { cursor } : {}),
          });
          return { items: page.events, ...(page.next ? { next: page.next } : {}) };
        });
        expect(pagedB.items.map((e) => e.id)).toEqual(
          all
            .filter((e) => e.type === B)
            .map((e) => e.id)
            .reverse(),
        );

        const one = await inspector.event(late[2]!.id);
        expect(one).toMatchObject({
          id: late[2]!.id,
          type: late[2]!.type,
          source: "inspector-suite",
          subject: late[2]!.subject,
          time: late[2]!.time,
        });
        expect(one!.envelope).toEqual(late[2]);
        expect(Date.parse(one!.storedAt)).toBeGreaterThanOrEqual(mark.getTime());
        expect(await inspector.event("no-such-event-0")).toBeUndefined();
        // Another driver (process) reads the same events.
        const other = (await open()).inspector();
        expect(ids((await other.events({ limit: 3 })).events)).toEqual(
          all
            .slice(-3)
            .map((e) => e.id)
            .reverse(),
        );

        // Events published while someone pages (a live listing): a cursor neither repeats nor
        // skips what it already passed; newest-first never reaches the newcomers, oldest-first
        // ends with them.
        const firstNewest = await inspector.events({ limit: 4 });
        const firstOldest = await inspector.events({ limit: 4, order: "oldest" });
        const newcomers = [event(100, A), event(101, B)];
        for (const e of newcomers) await transport.publish([e]);
        await expect
          .poll(async () => (await inspector.events({ limit: 1 })).events[0]?.id, poll)
          .toBe(newcomers[1]!.id);
        for (const [order, first, expected] of [
          ["newest", firstNewest, all.map((e) => e.id).reverse()],
          ["oldest", firstOldest, [...all, ...newcomers].map((e) => e.id)],
        ] as const) {
          const rest = await allPages(async (cursor) => {
            const page = await inspector.events({
              order,
              limit: 4,
              cursor: cursor ?? first.next!,
            });
            return { items: page.events, ...(page.next ? { next: page.next } : {}) };
          });
          expect([...ids(first.events), ...ids(rest.items)], `${order} first`).toEqual(expected);
        }
      },
    );

    itPart(
      "causation",
      "follows causation: the chain of causes up, and the tree of effects down to a depth",
      async () => {
        const driver = await open();
        const transport = transportOf(driver);
        const inspector = driver.inspector();
        const a = event(1, A);
        const b = event(2, B, { causationid: a.id });
        const c = event(3, A, { causationid: b.id });
        const d = event(4, B, { causationid: a.id });
        const unrelated = event(5, A);
        for (const e of [a, b, c, d, unrelated]) await transport.publish([e]);
        await expect
          .poll(async () => (await inspector.event(unrelated.id))?.id, poll)
          .toBe(unrelated.id);

        const fromC = await inspector.causation(c.id);
        expect(fromC!.causes.map((e) => e.id)).toEqual([a.id, b.id]);
        expect(fromC!.root.event.id).toBe(c.id);
        expect(fromC!.root.caused).toEqual([]);
        expect(fromC!.truncated).toBe(false);

        const fromA = await inspector.causation(a.id);
        expect(fromA!.causes).toEqual([]);
        expect(fromA!.root.event.id).toBe(a.id);
        expect(fromA!.root.caused.map((n) => n.event.id).sort()).toEqual([b.id, d.id].sort());
        const nodeB = fromA!.root.caused.find((n) => n.event.id === b.id)!;
        expect(nodeB.event.causedBy).toBe(a.id);
        expect(nodeB.caused.map((n) => n.event.id)).toEqual([c.id]);
        expect(fromA!.truncated).toBe(false);

        const shallow = await inspector.causation(a.id, { depth: 1 });
        expect(shallow!.root.caused.map((n) => n.event.id).sort()).toEqual([b.id, d.id].sort());
        expect(shallow!.root.caused.flatMap((n) => n.caused)).toEqual([]);
        expect(shallow!.truncated).toBe(true);

        expect(await inspector.causation("no-such-event-0")).toBeUndefined();
      },
    );

    itPart("counts", "counts events per type in time buckets, empty buckets included", async () => {
      const driver = await open();
      const transport = transportOf(driver);
      const inspector = driver.inspector();
      const since = new Date(Date.now() - t(2_000));
      const sent = [event(1, A), event(2, B), event(3, A), event(4, A), event(5, B)];
      for (const e of sent) await transport.publish([e]);
      await expect.poll(async () => (await inspector.events()).events.length, poll).toBe(5);
      const until = new Date(Date.now() + t(2_000));
      const bucketMs = t(500);
      const counts = await inspector.counts({ since, until, bucketMs });
      expect(counts.bucketMs).toBe(bucketMs);
      expect(counts.totals).toEqual({ [A]: 3, [B]: 2 });
      const starts = counts.buckets.map((b) => Date.parse(b.start));
      // The buckets cover the window, in order, one bucketMs apart, empty ones included.
      expect(starts[0]!).toBeLessThanOrEqual(since.getTime());
      expect(starts[0]! + bucketMs).toBeGreaterThan(since.getTime());
      expect(starts.at(-1)!).toBeLessThan(until.getTime());
      expect(starts.at(-1)! + bucketMs).toBeGreaterThanOrEqual(until.getTime());
      for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBe(bucketMs);
      expect(counts.buckets.some((b) => Object.values(b.counts).every((n) => n === 0))).toBe(true);
      // Each event is counted in the bucket its storage time falls in.
      const expected: Record<string, number>[] = counts.buckets.map(() => ({}));
      for (const stored of (await inspector.events()).events) {
        const at = Date.parse(stored.storedAt);
        const i = starts.findIndex((s) => s <= at && at < s + bucketMs);
        expect(i).toBeGreaterThanOrEqual(0);
        expected[i]![stored.type] = (expected[i]![stored.type] ?? 0) + 1;
      }
      const nonZero = (c: Readonly<Record<string, number>>) =>
        Object.fromEntries(Object.entries(c).filter(([, n]) => n > 0));
      expect(counts.buckets.map((b) => nonZero(b.counts))).toEqual(expected);

      const onlyB = await inspector.counts({ since, until, bucketMs, types: [B] });
      expect(onlyB.totals).toEqual({ [B]: 2 });
      const before = await inspector.counts({
        since: since.getTime() - t(60_000),
        until: since.getTime(),
        bucketMs: t(10_000),
      });
      expect(before.totals).toEqual({});
    });

    itPart(
      "heartbeats",
      "reads back the heartbeats written through the driver's sink: daemon, status and restarts",
      async () => {
        const driver = await open();
        const sink = driver.heartbeatSink();
        const other = (await open()).inspector();
        if (!driver.capabilities.heartbeats) {
          expect(await driver.inspector().heartbeats()).toEqual([]);
          return;
        }
        const at = new Date();
        await sink.write(beat("trainer", "running", 1, new Date(at.getTime() - 1_000)));
        await sink.write(beat("evaluator", "crashed", 0, at));
        await sink.write(beat("trainer", "running", 2, at));
        for (const inspector of [driver.inspector(), other]) {
          await expect
            .poll(
              async () =>
                (await inspector.heartbeats())
                  .map((h) => ({ daemon: h.daemon, status: h.status, restarts: h.restarts }))
                  .sort((x, y) => x.daemon.localeCompare(y.daemon)),
              poll,
            )
            .toEqual([
              { daemon: "evaluator", status: "crashed", restarts: 0 },
              { daemon: "trainer", status: "running", restarts: 2 },
            ]);
        }
        const trainer = (await other.heartbeats()).find((h) => h.daemon === "trainer")!;
        expect(trainer).toMatchObject({
          pid: 4242,
          host: "inspector-suite",
          at: at.toISOString(),
          startedAt: at.toISOString(),
          stats: { eventsProcessed: 3, eventsEmitted: 1 },
          health: { healthy: true, status: "healthy" },
        });
        expect(trainer.ageMs).toBeGreaterThanOrEqual(0);
        expect(trainer.ageMs).toBeLessThan(t(60_000));
      },
    );

    itPart(
      "heartbeats",
      "reads back the contracts a daemon announces with its heartbeat, and none for one that does not",
      async () => {
        const driver = await open();
        if (!driver.capabilities.heartbeats) return;
        const sink = driver.heartbeatSink();
        const contracts = {
          publishes: [{ type: "TK_PONG", version: 2, schemaHash: "0123456789abcdef" }],
          subscribes: [{ type: "TK_PING", version: 1, schemaHash: "fedcba9876543210" }],
          package: "@acme/worker@1.0.0",
        };
        await sink.write({ ...beat("announcer", "running", 0), contracts });
        await sink.write(beat("quiet", "running", 0));
        const other = (await open()).inspector();
        await expect
          .poll(async () => (await other.heartbeats()).map((h) => h.daemon).sort(), poll)
          .toEqual(["announcer", "quiet"]);
        const beats = await other.heartbeats();
        expect(beats.find((h) => h.daemon === "announcer")?.contracts).toEqual(contracts);
        expect(beats.find((h) => h.daemon === "quiet")?.contracts).toBeUndefined();
      },
    );

    describe("admin", () => {
      /** A subscriber that dead-letters its event while `broken`, and the dead letter's id. */
      const deadLettered = async (driver: Driver) => {
        const transport = transportOf(driver);
        const state = { broken: true, runs: 0 };
        await subscribe(transport, "fragile", [A], () => {
          state.runs++;
          if (state.broken) throw new UnrecoverableError("broken for now");
        });
        const sent = event(1, A);
        await transport.publish([sent]);
        const inspector = driver.inspector();
        await expect
          .poll(async () => (await inspector.deadLetters()).deadLetters.length, poll)
          .toBe(1);
        const [record] = (await inspector.deadLetters()).deadLetters;
        expect(record).toMatchObject({ eventId: sent.id, subscriber: "fragile" });
        return { state, id: record!.id, sent };
      };

      itPart(
        "admin",
        "replays a dead letter to its subscriber once; again only when asked; a dry run changes nothing",
        async () => {
          const driver = await open();
          if (!driver.capabilities.replay || !driver.capabilities.deadLetters) {
            if (!driver.capabilities.replay)
              await expect(driver.admin().replay({ id: "1" })).rejects.toBeInstanceOf(
                UnsupportedOperationError,
              );
            return;
          }
          const { state, id, sent } = await deadLettered(driver);
          const inspector = driver.inspector();
          const admin = driver.admin();
          state.broken = false;
          expect(state.runs).toBe(1);

          const dry = await admin.replay({ id }, { dryRun: true });
          expect(dry).toMatchObject({ dryRun: true, matched: 1, replayed: [], wouldReplay: [id] });
          await sleep(t(200));
          expect(state.runs).toBe(1);
          expect((await inspector.deadLetter(id))!.status).not.toBe("replayed");
          expect((await inspector.deadLetterCounts()).depth).toBe(1);

          const run = await admin.replay({ id });
          expect(run).toMatchObject({ dryRun: false, matched: 1, replayed: [id], failed: [] });
          await until(() => state.runs === 2, wait, "the replayed delivery");
          await expect
            .poll(async () => (await inspector.deadLetter(id))?.status, poll)
            .toBe("replayed");
          expect(await inspector.deadLetter(id)).toMatchObject({ replays: 1, eventId: sent.id });
          expect((await inspector.deadLetter(id))!.replayedAt).toEqual(expect.any(String));
          expect((await inspector.deadLetterCounts()).depth).toBe(0);
          if (driver.capabilities.deliveries) {
            await expect
              .poll(
                async () =>
                  (await inspector.deliveries(sent.id)).find((d) => d.subscriber === "fragile")
                    ?.state,
                poll,
              )
              .toBe("acked");
          }
          await expect
            .poll(
              async () =>
                (await inspector.subscribers()).find((s) => s.subscriber === "fragile")?.dead,
              poll,
            )
            .toBe(0);

          const twice = await admin.replay({ id });
          expect(twice.replayed).toEqual([]);
          expect(twice.skipped.map((s) => s.id)).toEqual([id]);
          await sleep(t(200));
          expect(state.runs).toBe(2);

          const again = await admin.replay({ id }, { again: true });
          expect(again.replayed).toEqual([id]);
          await until(() => state.runs === 3, wait, "the delivery replayed again");
          await expect.poll(async () => (await inspector.deadLetter(id))?.replays, poll).toBe(2);
        },
      );

      itPart(
        "admin",
        "purges a dead letter (a dry run changes nothing) and refuses a purge without a filter",
        async () => {
          const driver = await open();
          if (!driver.capabilities.purge || !driver.capabilities.deadLetters) {
            if (!driver.capabilities.purge)
              await expect(driver.admin().purge({ id: "1" })).rejects.toBeInstanceOf(
                UnsupportedOperationError,
              );
            return;
          }
          const { id } = await deadLettered(driver);
          const inspector = driver.inspector();
          const admin = driver.admin();
          expect(await admin.purge({ id }, { dryRun: true })).toMatchObject({
            dryRun: true,
            count: 1,
          });
          expect((await inspector.deadLetter(id))!.status).not.toBe("purged");
          expect((await inspector.deadLetterCounts()).depth).toBe(1);
          await expect(admin.purge({})).rejects.toThrow();
          expect((await inspector.deadLetterCounts()).depth).toBe(1);

          expect(await admin.purge({ id })).toMatchObject({ dryRun: false, count: 1 });
          expect((await inspector.deadLetterCounts()).depth).toBe(0);
          const after = await inspector.deadLetter(id);
          // Gone, or a tombstone without its envelope.
          if (after !== undefined) {
            expect(after.status).toBe("purged");
            expect(after.envelope).toBeUndefined();
          }
          const listed = (await inspector.deadLetters()).deadLetters.filter((d) => d.id === id);
          for (const d of listed) expect(d.status).toBe("purged");
          const replay = await driver.admin().replay({ id });
          expect(replay.replayed).toEqual([]);
        },
      );

      itPart(
        "admin",
        "rejects an admin action with UnsupportedOperationError exactly when capabilities says it is unsupported",
        async () => {
          const driver = await open();
          const admin = driver.admin();
          const dir = mkdtempSync(join(tmpdir(), "inspector-suite-"));
          try {
            const actions = {
              replay: () => admin.replay({ id: "0" }, { dryRun: true }),
              purge: () => admin.purge({ id: "0" }, { dryRun: true }),
              clearPending: () => admin.clearPending({ subscriber: "nobody" }, { dryRun: true }),
              backup: () => admin.backup({ dir, keep: 1 }),
              audit: () => admin.audit({ subscriber: "nobody" }),
            } as const;
            for (const [name, action] of Object.entries(actions)) {
              const supported = driver.capabilities[name as keyof typeof actions];
              const outcome = await action().then(
                () => undefined,
                (error: unknown) => error,
              );
              if (supported)
                expect(outcome, `${name} is supported`).not.toBeInstanceOf(
                  UnsupportedOperationError,
                );
              else
                expect(outcome, `${name} is unsupported`).toBeInstanceOf(UnsupportedOperationError);
            }
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        },
      );

      itPart(
        "admin",
        "audits ack floors exactly when capabilities.audit says so: a report naming no consumer of an unknown subscriber",
        async () => {
          const driver = await open();
          if (!driver.capabilities.audit) {
            await expect(driver.admin().audit()).rejects.toBeInstanceOf(UnsupportedOperationError);
            return;
          }
          const report = await driver.admin().audit({ subscriber: "nobody" });
          expect(report.consumers).toEqual([]);
          expect(report.gaps).toBe(0);
          expect(report.requeued).toBe(0);
          expect(report.lastSeq).toBeGreaterThanOrEqual(0);
          expect(report.firstSeq).toBeGreaterThanOrEqual(0);
          const aborted = new AbortController();
          aborted.abort(new Error("stop"));
          await expect(driver.admin().audit({ signal: aborted.signal })).rejects.toThrow("stop");
        },
      );
    });

    it("refuses a query it cannot use with InspectorQueryError naming the option", async () => {
      const inspector = (await open()).inspector();
      const refused: [string, () => Promise<unknown>][] = [
        ["limit", () => inspector.events({ limit: 0 })],
        ["since", () => inspector.events({ since: "not a time" })],
        // Past the last time a Date can hold: a later toISOString() would throw a bare RangeError.
        ["until", () => inspector.counts({ since: 0, until: 9e15 })],
        ["bucketMs", () => inspector.counts({ since: Date.now() - 1_000, bucketMs: 0 })],
        // Every bucket is listed, empty ones too: more than MAX_COUNT_BUCKETS is refused.
        ["bucketMs", () => inspector.counts({ since: 0, bucketMs: 1_000 })],
      ];
      for (const [option, read] of refused) {
        const error: unknown = await read().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error, option).toBeInstanceOf(InspectorQueryError);
        expect(error, option).toMatchObject({ option });
      }
    });

    it("rejects every read with a signal already aborted with the signal's reason", async () => {
      const inspector = (await open()).inspector();
      const controller = new AbortController();
      const reason = new Error("the reader gave up");
      controller.abort(reason);
      const signal = controller.signal;
      const reads: [string, () => Promise<unknown>][] = [
        ["subscribers", () => inspector.subscribers({ signal })],
        ["events", () => inspector.events({ signal })],
        ["event", () => inspector.event("no-such-event", { signal })],
        ["deliveries", () => inspector.deliveries("no-such-event", { signal })],
        ["causation", () => inspector.causation("no-such-event", { signal })],
        ["counts", () => inspector.counts({ since: Date.now() - 60_000, signal })],
        ["heartbeats", () => inspector.heartbeats({ signal })],
        ["deadLetters", () => inspector.deadLetters({ signal })],
        ["deadLetter", () => inspector.deadLetter("no-such-record", { signal })],
        ["deadLetterCounts", () => inspector.deadLetterCounts({ signal })],
      ];
      for (const [what, read] of reads) {
        const error: unknown = await read().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error, what).toBe(reason);
      }
    });

    it("closes a driver idempotently", async () => {
      const driver = await open();
      driver.inspector();
      await driver.close();
      await driver.close();
    });
  });
}
