// One monotonic clock read shared by the bookkeeping of one microtask checkpoint.
//
// Every delivery needs a start and an end time (durations, slow-handler warnings, deadlines). Read
// fresh each time, the clock cost as much as the rest of a delivery's bookkeeping: a publish to
// ten subscribers settles ten handler promises in one run of the microtask queue, and each read
// `performance.now()`. Here the first read of a run is kept until a microtask queued behind it
// expires it, and calling user code (a handler) expires it at once.
//
// Why a shared read is still exact enough for an END time: a value read at t0 is only reused by
// jobs that were already queued when t0 was read, with no handler of ours called in between. A
// handler promise whose settlement job was queued before t0 settled before t0, so t0 lies between
// its settlement and the moment we observe it — the same bracket a fresh read gives. Not for a
// START time: other code may have run for any time between t0 and the start (a publisher's own
// work between two awaited publishes), so a delivery starts on `freshClock()`. The subscriptions
// offered one event share that start read (a sibling's synchronous handler time is counted in the
// next sibling's start: the price of one read per publish instead of one per subscriber).

// The read is kept in a typed array: a number assigned to a module variable is a new heap number
// each time, and the store one from an old object to a young one.
const cached = new Float64Array(1);
// Node's queueMicrotask makes an AsyncResource and a bound function per call: a resolved promise's
// `then` is cheaper.
const RESOLVED = Promise.resolve();
let valid = false;
/** An expiring microtask is queued. A read after `expireClock()` reuses it: it sits earlier in
 * the queue, so it only narrows which jobs share the read. */
let pending = false;

function expire(): void {
  valid = false;
  pending = false;
}

/** `performance.now()`, read at most once per microtask checkpoint (see above). */
export function clock(): number {
  if (valid) return cached[0]!;
  const now = performance.now();
  cached[0] = now;
  valid = true;
  if (!pending) {
    pending = true;
    void RESOLVED.then(expire);
  }
  return now;
}

/** A fresh read, shared from now on like {@link clock}'s: for start times, after unknown code ran. */
export function freshClock(): number {
  valid = false;
  return clock();
}

/** Forget the shared read: user code (a handler) ran since, for an unknown time. */
export function expireClock(): void {
  valid = false;
}
