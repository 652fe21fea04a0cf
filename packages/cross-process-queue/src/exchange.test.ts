import { afterEach, describe, expect, it } from "vitest";
import { exchangeRequest, job, tempQueue, workerStore } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue>;
const closers: (() => unknown)[] = [];
afterEach(() => {
  for (const close of closers.splice(0).reverse()) close();
  queue?.cleanup();
});

const store = (path: string) => workerStore(path, closers);
const request = (limit: number, outcomes: Parameters<typeof exchangeRequest>[0] = []) =>
  exchangeRequest(outcomes, limit);

describe("a claim's exchange", () => {
  it("reads the next due time in its own transaction when it comes back short", () => {
    queue = tempQueue();
    const s = store(queue.path);
    s.register("w", ["JOB"], false);
    const t0 = Date.now();
    // Nothing to claim, nothing open: short, and nothing will become due.
    expect(s.exchange(request(4), t0)).toMatchObject({ claimed: [], more: false, nextDue: null });
    s.publish([job(1), job(2)]);
    // Two of four: short; the next due time is the end of the leases it just took.
    const short = s.exchange(request(4), t0);
    expect(short.claimed).toHaveLength(2);
    expect(short.nextDue).toBe(t0 + 1_000);
    expect(short.nextDue).toBe(s.nextDue("w", JSON.stringify(["JOB"])));
    // A retry of the first, due later than the other's lease end: the earlier of the two.
    const [first] = short.claimed;
    const retried = s.exchange(
      request(4, [
        {
          kind: "retry",
          seq: first!.seq,
          token: first!.token,
          attempt: first!.attempt,
          availableAt: t0 + 5_000,
          delayMs: 5_000,
          error: JSON.stringify({ name: "Error", message: "try later" }),
        },
      ]),
      t0 + 10,
    );
    expect(retried.claimed).toEqual([]);
    expect(retried.nextDue).toBe(t0 + 1_000);
    // A full claim leaves it out: it says nothing of what is left.
    s.publish([job(3), job(4)]);
    const full = s.exchange(request(2), t0 + 20);
    expect(full.claimed).toHaveLength(2);
    expect(full.nextDue).toBeUndefined();
  });

  // The claim knows the next due time without asking the index again when nothing was due and
  // the worker covers its subscriber's types: it must still be the index's answer.
  it("reports the earlier of an open delivery and the leases it just took, as the index does", () => {
    queue = tempQueue();
    const s = store(queue.path);
    s.register("w", ["JOB"], false);
    const t0 = Date.now();
    const typesJson = JSON.stringify(["JOB"]);
    s.publish([job(1)]);
    const [first] = s.exchange(request(4), t0).claimed;
    // Retried in 300 ms, before the 1 s lease of what the next claim takes.
    const retry = {
      kind: "retry" as const,
      seq: first!.seq,
      token: first!.token,
      attempt: first!.attempt,
      availableAt: t0 + 300,
      delayMs: 300,
      error: JSON.stringify({ name: "Error", message: "try later" }),
    };
    s.publish([job(2)]);
    const soon = s.exchange(request(4, [retry]), t0 + 10);
    expect(soon.claimed).toHaveLength(1);
    expect(soon.nextDue).toBe(t0 + 300);
    expect(soon.nextDue).toBe(s.nextDue("w", typesJson));
    // An empty claim with only the lease open: the lease's end.
    const [second] = soon.claimed;
    const acked = s.exchange(
      request(4, [{ kind: "ack", seq: second!.seq, token: second!.token, attempt: 1 }]),
      t0 + 20,
    );
    expect(acked.nextDue).toBe(t0 + 300);
    expect(acked.nextDue).toBe(s.nextDue("w", typesJson));
  });

  it("leaves out deliveries of types the worker does not handle", () => {
    queue = tempQueue();
    const s = store(queue.path);
    s.register("w", ["JOB", "OTHER"], false);
    const t0 = Date.now();
    s.publish([job(1, "OTHER")]);
    // Another worker of "w" handles OTHER and took it for 100 ms.
    const other = s.exchange(
      { ...request(4), types: new Set(["OTHER"]), typesJson: '["OTHER"]', leaseMs: 100 },
      t0,
    );
    expect(other.claimed).toHaveLength(1);
    // The JOB worker claims a JOB: OTHER's lease is not its next due time.
    s.publish([job(2)]);
    const mine = s.exchange(request(4), t0 + 10);
    expect(mine.claimed).toHaveLength(1);
    expect(mine.nextDue).toBe(t0 + 10 + 1_000);
    expect(mine.nextDue).toBe(s.nextDue("w", JSON.stringify(["JOB"])));
  });

  it("never reports a due time that has passed for a hand-written delivery of a foreign type", () => {
    queue = tempQueue();
    const s = store(queue.path);
    s.register("w", ["JOB"], false);
    const t0 = Date.now();
    s.publish([job(1, "ALIEN")]);
    const write = (availableAt: number) =>
      s.db
        .prepare(
          `INSERT OR REPLACE INTO deliveries (subscriber, event_seq, type, status, attempts, available_at, updated_at)
           SELECT 'w', seq, type, 'pending', 1, ?, ? FROM events WHERE type = 'ALIEN'`,
        )
        .run(availableAt, t0);
    // Due already: a poller told "due now" by every claim would spin.
    write(t0 - 1_000);
    const past = s.exchange(request(4), t0);
    expect(past.claimed).toEqual([]);
    expect(past.nextDue).toBeNull();
    // Due later: the claim may wake early for it; once there, it is not told "due now" again.
    write(t0 + 500);
    const ahead = s.exchange(request(4), t0);
    expect(ahead.nextDue ?? Infinity).toBeGreaterThanOrEqual(t0 + 500);
    const there = s.exchange(request(4), t0 + 500);
    expect(there.claimed).toEqual([]);
    expect(there.nextDue).toBeNull();
  });
});
