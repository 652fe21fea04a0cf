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
});
