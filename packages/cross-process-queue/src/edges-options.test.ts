import { readdirSync, readlinkSync } from "node:fs";
import { createEnvelope } from "@switchyard/event-schema";
import { type DeadLetterRecord, InspectorQueryError } from "@switchyard/transport";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteDeadLetterStore } from "./dead-letters";
import { openDatabase } from "./database";
import { QueueOptionsError } from "./errors";
import { SqliteHeartbeatSink } from "./heartbeats";
import { deadDeliveries, eventsPerMinute, failuresByType, recentEvents } from "./introspect";
import { tempQueue } from "./test/fixtures";

// Options and query values from JavaScript callers: a clear error naming the option, never a
// bare SQLite error, a silently wider selection or a wait without end.

let queue: ReturnType<typeof tempQueue> | undefined;
const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  queue?.cleanup();
  queue = undefined;
});

const path = () => (queue ??= tempQueue()).path;

function store(options: ConstructorParameters<typeof SqliteDeadLetterStore>[0] = {}) {
  const s = new SqliteDeadLetterStore({ path: path(), retryBackoff: { initialMs: 0 }, ...options });
  closers.push(() => s.close());
  return s;
}

const record = (n: number): DeadLetterRecord => ({
  envelope: createEnvelope({ type: "JOB", source: "cpq-test", data: { n } }),
  subscriber: "w",
  reason: "max_attempts",
  attempts: 3,
  error: { name: "Error", message: "failed" },
  failedAt: new Date().toISOString(),
  origin: "sqlite",
});

/** What `fn` threw, for assertions on its class and fields. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

const hostile: [string, unknown][] = [
  ["NaN", Number.NaN],
  ["Infinity", Infinity],
  ["-1", -1],
  ["1.5", 1.5],
  ['"100"', "100"],
];

describe("the dead-letter store's query limit", () => {
  it.each(hostile)(
    "regression: list({ limit: %s }) is a QueueOptionsError naming limit",
    async (_, limit) => {
      const s = store();
      await s.deadLetter(record(1));
      // Before: SQLite's bare "datatype mismatch" (NaN, Infinity, 1.5), or every record (-1).
      const error = thrown(() => s.list({ limit: limit as number }));
      expect(error).toBeInstanceOf(QueueOptionsError);
      expect(error).toMatchObject({ option: "limit" });
    },
  );

  it("regression: a replay of { limit: -1 } replays nothing and says why (it replayed every match)", async () => {
    const s = store();
    for (let n = 0; n < 3; n++) await s.deadLetter(record(n));
    const replayed: number[] = [];
    const to = { replay: async (r: { id: number }) => void replayed.push(r.id) };
    await expect(s.replay({ subscriber: "w", limit: -1 }, { to, dryRun: true })).rejects.toThrow(
      QueueOptionsError,
    );
    await expect(s.replay({ subscriber: "w", limit: -1 }, { to })).rejects.toMatchObject({
      option: "limit",
    });
    expect(replayed).toEqual([]);
    expect(s.list({ status: "pending_retry" })).toHaveLength(3);
    // A limit that is an integer ≥ 1 still takes that many.
    const report = await s.replay({ subscriber: "w", limit: 2 }, { to });
    expect(report.replayed).toHaveLength(2);
  });
});

describe("constructor options checked before anything is opened", () => {
  it.each(hostile)(
    "regression: SqliteDeadLetterStore refuses busyTimeoutMs %s with QueueOptionsError",
    (_, busyTimeoutMs) => {
      const error = thrown(() => store({ busyTimeoutMs: busyTimeoutMs as number }));
      expect(error).toBeInstanceOf(QueueOptionsError);
      expect(error).toMatchObject({ option: "busyTimeoutMs" });
    },
  );

  it.each(["maxErrorChars", "maxStackChars"] as const)(
    "regression: SqliteDeadLetterStore refuses %s NaN (every message or stack was stored empty)",
    (option) => {
      const error = thrown(() => store({ [option]: Number.NaN }));
      expect(error).toBeInstanceOf(QueueOptionsError);
      expect(error).toMatchObject({ option });
    },
  );

  it("keeps accepting maxErrorChars 0 and caps the message at it", async () => {
    const s = store({ maxErrorChars: 0 });
    await s.deadLetter(record(1));
    expect(s.list()[0]!.error.message).toBe("…[truncated 6 chars]");
  });

  it.each(hostile)(
    "regression: SqliteHeartbeatSink refuses busyTimeoutMs %s with QueueOptionsError",
    (_, busyTimeoutMs) => {
      // Before: accepted; with NaN or Infinity a heartbeat that met a locked file was never given
      // up, so flush() and close() waited for as long as another process held the lock.
      const error = thrown(() => {
        const sink = new SqliteHeartbeatSink({
          path: path(),
          busyTimeoutMs: busyTimeoutMs as number,
        });
        closers.push(() => sink.close());
      });
      expect(error).toBeInstanceOf(QueueOptionsError);
      expect(error).toMatchObject({ option: "busyTimeoutMs" });
    },
  );
});

describe("the introspection queries' limit and window", () => {
  function db() {
    const connection = openDatabase(path());
    closers.push(() => connection.close());
    return connection;
  }

  it.each(hostile)("regression: limit %s is an InspectorQueryError naming limit", (_, limit) => {
    const d = db();
    // Before: SQLite's bare "datatype mismatch", or no limit at all for -1.
    for (const query of [
      () => recentEvents(d, { limit: limit as number }),
      () => failuresByType(d, { limit: limit as number }),
      () => deadDeliveries(d, { limit: limit as number }),
    ]) {
      const error = thrown(query);
      expect(error).toBeInstanceOf(InspectorQueryError);
      expect(error).toMatchObject({ option: "limit" });
    }
  });

  it.each([
    ["NaN", Number.NaN],
    ["-1", -1],
    ["Infinity", Infinity],
    ['"60000"', "60000"],
  ])("regression: windowMs %s is an InspectorQueryError, not an empty answer", (_, windowMs) => {
    const d = db();
    for (const query of [
      () => eventsPerMinute(d, { windowMs: windowMs as number }),
      () => failuresByType(d, { windowMs: windowMs as number }),
    ]) {
      const error = thrown(query);
      expect(error).toBeInstanceOf(InspectorQueryError);
      expect(error).toMatchObject({ option: "windowMs" });
    }
    const error = thrown(() => eventsPerMinute(d, { now: Number.NaN }));
    expect(error).toMatchObject({ option: "now" });
  });
});

describe("a store refused for its options", () => {
  /** This process's open file descriptors on `file` (Linux). */
  const openFds = (file: string) =>
    readdirSync("/proc/self/fd").filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === file;
      } catch {
        return false;
      }
    }).length;

  it("regression: leaves no connection open when retention options are refused", () => {
    const file = path();
    store().close(); // the file exists from here on
    closers.pop();
    const before = openFds(file);
    for (let i = 0; i < 3; i++) {
      const error = thrown(() => store({ retention: { olderThanMs: Number.NaN } }));
      expect(error).toMatchObject({ option: "retention.olderThanMs" });
    }
    // Before: each refused store had opened the file first and never closed it.
    expect(openFds(file)).toBe(before);
  });
});
