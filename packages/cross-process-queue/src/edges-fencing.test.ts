import { afterEach, describe, expect, it } from "vitest";
import type { ClaimedDelivery, QueueStore } from "./claim";
import { exchangeRequest, foreignWrite, job, tempQueue, workerStore } from "./test/fixtures";

// A subscriber's lease-token counter damaged by another program: the fence must still hold.

let queue: ReturnType<typeof tempQueue>;
const closers: (() => unknown)[] = [];
afterEach(() => {
  for (const close of closers.splice(0).reverse()) close();
  queue?.cleanup();
});

/** Run `sql` on a connection of its own, as another program would. */
const foreign = (sql: string, ...params: unknown[]) => foreignWrite(queue.path, sql, ...params);

const damageCounter = (value: unknown) =>
  foreign(`UPDATE subscribers SET lease_token = ? WHERE name = 'w'`, value);

/** One claim of subscriber "w" at `now` (lease 1 s), limit 1. */
function claim(s: QueueStore, now: number): ClaimedDelivery {
  const [claimed] = s.exchange(exchangeRequest([], 1), now).claimed;
  expect(claimed).toBeDefined();
  return claimed!;
}

/** Ack `c` at `now`: whether the fence refused it. */
function ackRefused(s: QueueStore, c: ClaimedDelivery, now: number): boolean {
  const ack = { kind: "ack" as const, seq: c.seq, token: c.token, attempt: c.attempt };
  return s.exchange(exchangeRequest([ack], 0), now).lost.length === 1;
}

function setUp(events = 1): QueueStore {
  queue = tempQueue();
  const s = workerStore(queue.path, closers);
  s.register("w", ["JOB"], false);
  s.publish(Array.from({ length: events }, (_, i) => job(i + 1)));
  return s;
}

const isToken = (t: unknown) => Number.isSafeInteger(t) && (t as number) > 0;

describe("a subscriber's lease-token counter damaged by another program", () => {
  it.each<[string, unknown]>([
    ["1e300", 1e300],
    ["2^53", 2 ** 53],
    ["Number.MAX_SAFE_INTEGER", Number.MAX_SAFE_INTEGER],
    ["1.5", 1.5],
    ["-3", -3],
    ["text", "junk"],
    ["a BLOB", Buffer.from([1, 2])],
  ])(
    "regression: a counter holding %s never hands a re-claimed delivery its stale holder's token",
    (_, damaged) => {
      const s = setUp();
      const t0 = Date.now();
      damageCounter(damaged);
      const first = claim(s, t0);
      // The first holder hangs; its lease runs out and the delivery is claimed again.
      const second = claim(s, t0 + 2_000);
      expect(second.seq).toBe(first.seq);
      // Before the fix (1e300, 2^53 − 1, 2^53) both claims got the same token and the stale
      // holder's ack deleted the delivery under the new holder; the others handed out tokens that
      // were not integers (2.5, -2, the text "junk1").
      expect(ackRefused(s, first, t0 + 2_010), "the stale holder's ack is fenced").toBe(true);
      expect(ackRefused(s, second, t0 + 2_020), "the holder's ack is applied").toBe(false);
      expect(isToken(first.token), `first token ${String(first.token)}`).toBe(true);
      expect(isToken(second.token), `second token ${String(second.token)}`).toBe(true);
    },
  );

  it("restarts above every token its other leased deliveries still hold", () => {
    const s = setUp(2);
    const t0 = Date.now();
    const a = claim(s, t0); // token 1, lease until t0 + 1 s
    const b = claim(s, t0 + 900); // token 2, lease until t0 + 1.9 s
    damageCounter(1e300);
    // `a`'s lease ran out, `b`'s has not: the re-claim of `a` must not reuse tokens 1 or 2.
    const again = claim(s, t0 + 1_500);
    expect(again.seq).toBe(a.seq);
    expect(again.token).toBe(Math.max(a.token, b.token) + 1);
    expect(ackRefused(s, a, t0 + 1_510)).toBe(true);
    expect(ackRefused(s, b, t0 + 1_520)).toBe(false);
    expect(ackRefused(s, again, t0 + 1_530)).toBe(false);
  });

  it.each<[string, (held: number) => number]>([
    ["0", () => 0],
    ["one below the stale holder's token", (held) => held - 1],
  ])(
    "regression: a counter written back down to %s (still a sane integer) never hands out a token a lease holds",
    (_, setBack) => {
      const s = setUp(3);
      const t0 = Date.now();
      damageCounter(6); // a sane counter: the leases below hold tokens 7 and 8
      const a = claim(s, t0); // lease until t0 + 1 s
      const b = claim(s, t0 + 900); // lease until t0 + 1.9 s
      expect([a.token, b.token]).toEqual([7, 8]);
      damageCounter(setBack(a.token));
      // `a`'s lease ran out, `b`'s has not: the re-claim of `a` must get a token neither holds.
      const again = claim(s, t0 + 1_500);
      expect(again.seq).toBe(a.seq);
      // Before the fix the counter counted on from where it was set: the re-claim got token 1 (or
      // 7, `a`'s own), and `a`'s stale holder's ack deleted the delivery under its new holder.
      expect(again.token).toBeGreaterThan(Math.max(a.token, b.token));
      expect(ackRefused(s, a, t0 + 1_510), "the stale holder's ack is fenced").toBe(true);
      expect(ackRefused(s, b, t0 + 1_520)).toBe(false);
      // The counter counts on from the restart: the next claim's token is above it too.
      const c = claim(s, t0 + 1_530);
      expect(c.seq).not.toBe(a.seq);
      expect(c.token).toBeGreaterThan(again.token);
      expect(ackRefused(s, again, t0 + 1_540)).toBe(false);
      expect(ackRefused(s, c, t0 + 1_550)).toBe(false);
    },
  );

  it("fences off a lease holding the highest token rather than count past it", () => {
    const s = setUp();
    const t0 = Date.now();
    damageCounter(Number.MAX_SAFE_INTEGER - 1);
    const first = claim(s, t0);
    expect(first.token).toBe(Number.MAX_SAFE_INTEGER);
    // Twice more after the leases run out: each restart must stay clear of the tokens held.
    const second = claim(s, t0 + 2_000);
    const third = claim(s, t0 + 4_000);
    for (const c of [second, third]) {
      expect(c.seq).toBe(first.seq);
      expect(isToken(c.token), `token ${c.token}`).toBe(true);
    }
    expect(new Set([first.token, second.token, third.token]).size).toBe(3);
    expect(ackRefused(s, first, t0 + 4_010)).toBe(true);
    expect(ackRefused(s, second, t0 + 4_020)).toBe(true);
    expect(ackRefused(s, third, t0 + 4_030)).toBe(false);
  });
});
