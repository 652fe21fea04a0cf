// The SQLite queues under comparison behind one small interface, each configured for the same
// durability: WAL, synchronous = NORMAL (a commit survives a process crash; a power loss may undo
// the last few), busy timeout 5 s. Used by the benchmark process (publishing) and by worker
// processes (consuming).
import { type FSWatcher, watch } from "node:fs";
import { register } from "node:module";
import Database from "better-sqlite3";
import { type SqliteTransportOptions, sqliteTransport } from "@switchyard/cross-process-queue";
import { createEnvelope, uuidv7 } from "@switchyard/event-schema";
import { silentLogger } from "@switchyard/transport";
import type * as Liteque from "liteque";
// The raw rows checkpoint with the queue's own checkpointer (its source, not a public export), so
// that a ceiling pays for checkpoints exactly what the queue does.
import { startCheckpointer } from "../../packages/cross-process-queue/src/checkpoint";
import { type Logger as PlainjobLogger, better, defineQueue, defineWorker } from "plainjob";

/** `raw`: the claim+ack ceiling, better-sqlite3 by hand (see {@link rawQueue}). */
export type Lib = "switchyard" | "plainjob" | "liteque" | "raw";

export const payload = {
  config_key: "hex8_2p",
  model_path: "models/hex8_2p/gen-3.pt",
  elo: 1612,
};

const silent: PlainjobLogger = { error() {}, warn() {}, info() {}, debug() {} };

/**
 * liteque 0.8 runs drizzle's async transaction callbacks, which better-sqlite3 ≥ 11.10 refuses
 * ("Transaction function cannot return a promise"). It gets its own better-sqlite3 11.9
 * (`better-sqlite3-11`, an npm alias in devDependencies): a resolve hook answers liteque's
 * `import "better-sqlite3"` with it. Everything else keeps better-sqlite3 12.
 */
let litequeHook = false;
export async function loadLiteque(): Promise<typeof Liteque> {
  if (!litequeHook) {
    const hook = `export async function resolve(specifier, context, next) {
      if (specifier === "better-sqlite3" && context.parentURL?.includes("/liteque@"))
        return next("better-sqlite3-11", { ...context, parentURL: ${JSON.stringify(import.meta.url)} });
      return next(specifier, context);
    }`;
    register(`data:text/javascript,${encodeURIComponent(hook)}`);
    litequeHook = true;
  }
  return import("liteque");
}

/** drizzle 0.33 keeps the better-sqlite3 connection private: close it all the same. */
function closeDrizzle(db: unknown): void {
  (db as { session?: { client?: { close?: () => void } } }).session?.client?.close?.();
}

/** The publishing side of one library on one file. */
export interface Producer {
  publish(type: string, data: unknown): Promise<void>;
  /** One transaction for the whole list (liteque has none: `undefined`). */
  publishMany: ((type: string, data: readonly unknown[]) => Promise<void>) | undefined;
  /** Make `subscriber` receive `type` from now on (only the switchyard queue needs it). */
  register(subscriber: string, type: string): Promise<void>;
  close(): Promise<void>;
}

export async function producer(lib: Lib, path: string): Promise<Producer> {
  switch (lib) {
    case "switchyard": {
      const t = sqliteTransport({ path });
      return {
        publish: async (type, data) => {
          await t.publish([createEnvelope({ type, source: "bench", data })]);
        },
        publishMany: async (type, list) => {
          await t.publish(list.map((data) => createEnvelope({ type, source: "bench", data })));
        },
        register: async (subscriber, type) => {
          const s = await t.subscribe({ subscriber, types: [type], handler: async () => {} });
          await s.close();
        },
        close: () => t.close(),
      };
    }
    case "plainjob": {
      const queue = defineQueue({ connection: better(new Database(path)), logger: silent });
      return {
        publish: async (type, data) => void queue.add(type, data),
        publishMany: async (type, list) => void queue.addMany(type, [...list]),
        register: async () => {},
        close: async () => queue.close(),
      };
    }
    case "raw": {
      const q = rawQueue(path);
      return {
        publish: async (type, data) => q.add(type, [data]),
        publishMany: async (type, list) => q.add(type, list),
        register: async () => {},
        close: async () => q.close(),
      };
    }
    case "liteque": {
      const { buildDBClient, SqliteQueue } = await loadLiteque();
      const db = buildDBClient(path, { runMigrations: true });
      const queues = new Map<string, InstanceType<typeof SqliteQueue<unknown>>>();
      const queue = (type: string) => {
        let q = queues.get(type);
        if (!q) {
          q = new SqliteQueue<unknown>(type, db, {
            defaultJobArgs: { numRetries: 0 },
            keepFailedJobs: false,
          });
          queues.set(type, q);
        }
        return q;
      };
      return {
        publish: async (type, data) => void (await queue(type).enqueue(data)),
        publishMany: undefined,
        register: async () => {},
        close: async () => closeDrizzle(db),
      };
    }
  }
}

/** The consuming side: one worker of one library, started on demand. */
export interface Consumer {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ConsumerOptions {
  readonly subscriber: string;
  readonly type: string;
  /** Handlers in flight at once (plainjob runs one at a time per worker). */
  readonly concurrency: number;
  /** Poll interval of plainjob and liteque; the switchyard queue wakes on file notifications. */
  readonly pollMs: number;
  readonly handler: (data: unknown) => void;
  /** switchyard only: subscriptions in this process, each its own subscriber (fan-out). @defaultValue 1 */
  readonly subscribers?: number;
  /** switchyard only: `sqliteTransport()` options besides `path` (A/B runs of one setting). */
  readonly transport?: Omit<SqliteTransportOptions, "path">;
}

export async function consumer(lib: Lib, path: string, o: ConsumerOptions): Promise<Consumer> {
  switch (lib) {
    case "switchyard": {
      const t = sqliteTransport({ ...o.transport, path });
      const count = o.subscribers ?? 1;
      return {
        start: async () => {
          for (let i = 0; i < count; i++) {
            await t.subscribe({
              subscriber: count === 1 ? o.subscriber : `${o.subscriber}-${i}`,
              types: [o.type],
              concurrency: o.concurrency,
              handler: async (d) => o.handler(d.envelope.data),
            });
          }
        },
        stop: () => t.close(),
      };
    }
    case "raw": {
      const q = rawQueue(path);
      // An async handler like the other libraries' (they await theirs).
      const handle = async (data: unknown) => o.handler(data);
      if (o.pollMs === 0) return rawWatching(path, q, o.type, handle);
      let stopped = false;
      let running: Promise<void> | undefined;
      const loop = async () => {
        while (!stopped) {
          const job = q.claim(o.type);
          if (!job) {
            await new Promise((resolve) => setTimeout(resolve, o.pollMs));
            continue;
          }
          await handle(JSON.parse(job.payload));
          q.ack(job.id);
        }
      };
      return {
        start: async () => void (running = loop()),
        stop: async () => {
          stopped = true;
          await running;
          q.close();
        },
      };
    }
    case "plainjob": {
      const queue = defineQueue({ connection: better(new Database(path)), logger: silent });
      const worker = defineWorker(o.type, async (job) => o.handler(JSON.parse(job.data)), {
        queue,
        pollIntervall: o.pollMs,
        logger: silent,
      });
      let running: Promise<void> | undefined;
      return {
        start: async () => void (running = worker.start()),
        stop: async () => {
          await worker.stop();
          await running;
          queue.close();
        },
      };
    }
    case "liteque": {
      const { buildDBClient, Runner, SqliteQueue } = await loadLiteque();
      const db = buildDBClient(path, { runMigrations: true });
      const queue = new SqliteQueue<unknown>(o.type, db, {
        defaultJobArgs: { numRetries: 0 },
        keepFailedJobs: false,
      });
      const runner = new Runner<unknown>(
        queue,
        { run: async (job) => o.handler(job.data) },
        { concurrency: o.concurrency, pollIntervalMs: o.pollMs, timeoutSecs: 60 },
      );
      let running: Promise<void> | undefined;
      return {
        start: async () => void (running = runner.run()),
        stop: async () => {
          runner.stop();
          await running;
          closeDrizzle(db);
        },
      };
    }
  }
}

/** The queue's follow-up checks after a notification that showed no commit yet (its poller's). */
const RECHECK_DELAYS_MS = [1, 4];

/**
 * The latency floor of a queue woken by file notifications, by hand: the switchyard queue's
 * wake-up path and nothing else. `fs.watch` on the WAL file; a notification queues one check on the
 * next turn of the event loop; the check reads `PRAGMA data_version` and, when another connection
 * committed, claims and acks one row at a time (the {@link rawQueue} transactions) until none is
 * left; a check that saw nothing looks again after 1 and 4 ms (the commit becomes visible a moment
 * after the WAL is written); a 1 s fallback poll.
 */
function rawWatching(
  path: string,
  q: RawQueue,
  type: string,
  handle: (data: unknown) => Promise<void>,
): Consumer {
  let version = q.dataVersion();
  let stopped = false;
  let queued = false;
  let draining: Promise<void> | undefined;
  let watcher: FSWatcher | undefined;
  let fallback: NodeJS.Timeout | undefined;
  const drain = async () => {
    for (let job = q.claim(type); job && !stopped; job = q.claim(type)) {
      await handle(JSON.parse(job.payload));
      q.ack(job.id);
    }
  };
  const check = (): boolean => {
    const now = q.dataVersion();
    if (now === version) return false;
    version = now;
    // A drain already running claims what this commit added.
    draining ??= drain().finally(() => (draining = undefined));
    return true;
  };
  const recheck = (attempt: number) => {
    if (attempt >= RECHECK_DELAYS_MS.length || stopped) return;
    setTimeout(() => {
      if (!stopped && !check()) recheck(attempt + 1);
    }, RECHECK_DELAYS_MS[attempt]);
  };
  const notified = () => {
    if (queued || stopped) return;
    queued = true;
    setImmediate(() => {
      queued = false;
      if (!stopped && !check()) recheck(0);
    });
  };
  return {
    start: async () => {
      watcher = watch(`${path}-wal`, { persistent: false }, notified);
      fallback = setInterval(() => void check(), 1000);
      check();
    },
    stop: async () => {
      stopped = true;
      watcher?.close();
      clearInterval(fallback);
      await draining;
      q.close();
    },
  };
}

/**
 * Work left for `subscriber` / `type` in a queue file, read over its own read-only connection:
 * `left()` is cheap (an index probe), `count()` exact.
 */
export interface Backlog {
  /** Whether anything is left (cheap). */
  left(): boolean;
  /** How much is left (exact). */
  count(): number;
  close(): void;
}

export function backlog(lib: Lib, path: string, subscriber: string, type: string): Backlog {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma("busy_timeout = 5000");
  const [left, count] =
    lib === "switchyard"
      ? [
          `SELECT EXISTS (SELECT 1 FROM deliveries WHERE subscriber = @s)
               OR (SELECT cursor_seq FROM subscribers WHERE name = @s) < (SELECT MAX(seq) FROM events)`,
          `SELECT (SELECT COUNT(*) FROM deliveries WHERE subscriber = @s)
                + (SELECT COUNT(*) FROM events WHERE seq > (SELECT cursor_seq FROM subscribers WHERE name = @s))`,
        ]
      : lib === "plainjob"
        ? [
            `SELECT EXISTS (SELECT 1 FROM plainjob_jobs WHERE status IN (0, 1) AND type = @t)`,
            `SELECT COUNT(*) FROM plainjob_jobs WHERE status IN (0, 1) AND type = @t`,
          ]
        : lib === "raw"
          ? [
              `SELECT EXISTS (SELECT 1 FROM jobs WHERE type = @t)`,
              `SELECT COUNT(*) FROM jobs WHERE type = @t`,
            ]
          : [
              `SELECT EXISTS (SELECT 1 FROM tasks WHERE queue = @t)`,
              `SELECT COUNT(*) FROM tasks WHERE queue = @t`,
            ];
  const leftStmt = db.prepare(left).pluck();
  const countStmt = db.prepare(count).pluck();
  return {
    left: () => Boolean(leftStmt.get({ s: subscriber, t: type })),
    count: () => countStmt.get({ s: subscriber, t: type }) as number,
    close: () => void db.close(),
  };
}

/**
 * WAL checkpoints of a raw connection, as the switchyard queue does them by default: SQLite's
 * inline auto-checkpoint off, and the queue's checkpointer thread (PASSIVE every 100 ms after
 * commits, RESTART at 4000 WAL pages) on its own connection. Returns the release.
 */
function rawCheckpoints(db: Database.Database, path: string): () => void {
  db.pragma("wal_autocheckpoint = 0");
  const handle = startCheckpointer(db, path, { intervalMs: 100, maxWalPages: 4000 }, silentLogger);
  return () => void handle.release();
}

/** The ceiling: better-sqlite3 inserting into a table like `events`, the queue's pragmas. */
export interface RawTable {
  one(type: string, data: unknown): void;
  many(type: string, list: readonly unknown[]): void;
  close(): void;
}

export function rawTable(path: string): RawTable {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  db.exec(`CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    payload TEXT NOT NULL, created_at INTEGER NOT NULL)`);
  const release = rawCheckpoints(db, path);
  const insert = db.prepare(
    `INSERT INTO events (id, type, payload, created_at) VALUES (?, ?, ?, ?)`,
  );
  // A batch is one multi-row INSERT of its size (prepared once per size), in one transaction:
  // the fastest a batch goes in by hand, and what the queue itself does.
  const multi = new Map<number, Database.Statement>();
  const insertMany = db.transaction((type: string, list: readonly unknown[]) => {
    const now = Date.now();
    let statement = multi.get(list.length);
    if (!statement) {
      const rows = Array.from({ length: list.length }, () => "(?, ?, ?, ?)").join(", ");
      statement = db.prepare(`INSERT INTO events (id, type, payload, created_at) VALUES ${rows}`);
      multi.set(list.length, statement);
    }
    const args: unknown[] = [];
    for (const data of list) args.push(uuidv7(now), type, JSON.stringify(data), now);
    statement.run(args);
  });
  return {
    one: (type: string, data: unknown) => {
      const now = Date.now();
      insert.run(uuidv7(now), type, JSON.stringify(data), now);
    },
    many: (type: string, list: readonly unknown[]) => void insertMany.immediate(type, list),
    close: () => {
      release();
      db.close();
    },
  };
}

/**
 * The claim+ack ceiling: better-sqlite3 by hand, the queue's durability (WAL, `synchronous =
 * NORMAL`), one event per claim transaction and one per ack transaction — what any queue that
 * claims one row, runs the handler, then acks has to pay at least. Claim: `BEGIN IMMEDIATE`, the
 * oldest pending row of the type, mark it taken, commit. Ack: `BEGIN IMMEDIATE`, delete it, commit.
 */
export interface RawQueue {
  add(type: string, list: readonly unknown[]): void;
  claim(type: string): { id: number; payload: string } | undefined;
  ack(id: number): void;
  /** `PRAGMA data_version` of this connection: changes when another connection commits. */
  dataVersion(): number;
  close(): void;
}

export function rawQueue(path: string): RawQueue {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  db.exec(`CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, payload TEXT NOT NULL,
    taken INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (type, id) WHERE taken = 0;`);
  const release = rawCheckpoints(db, path);
  const insert = db.prepare(`INSERT INTO jobs (type, payload, created_at) VALUES (?, ?, ?)`);
  const next = db.prepare(
    `SELECT id, payload FROM jobs WHERE type = ? AND taken = 0 ORDER BY id LIMIT 1`,
  );
  const take = db.prepare(`UPDATE jobs SET taken = 1 WHERE id = ?`);
  const done = db.prepare(`DELETE FROM jobs WHERE id = ?`);
  const add = db.transaction((type: string, list: readonly unknown[]) => {
    const now = Date.now();
    for (const data of list) insert.run(type, JSON.stringify(data), now);
  });
  const claim = db.transaction((type: string) => {
    const row = next.get(type) as { id: number; payload: string } | undefined;
    if (row) take.run(row.id);
    return row;
  });
  const ack = db.transaction((id: number) => void done.run(id));
  const version = db.prepare("PRAGMA data_version").pluck();
  return {
    dataVersion: () => version.get() as number,
    add: (type, list) => void add.immediate(type, list),
    claim: (type) => claim.immediate(type),
    ack: (id) => void ack.immediate(id),
    close: () => {
      release();
      db.close();
    },
  };
}
