import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createEnvelope,
  defineCatalog,
  defineEvent,
  type Envelope,
} from "@switchyard/event-schema";
import type { Logger } from "@switchyard/router";
import type { DeadLetterRecord } from "@switchyard/transport";
import Database from "better-sqlite3";
import { type ExchangeRequest, QueueStore } from "../claim";
import { Writer, openDatabase } from "../database";
import { z } from "zod";

/** Durable event types for router round trips between processes. */
export const testCatalog = defineCatalog([
  defineEvent({
    type: "PING",
    description: "asks the echo process for a PONG",
    durable: true,
    data: z.looseObject({ n: z.number().int() }),
  }),
  defineEvent({
    type: "PONG",
    description: "the echo process's answer",
    durable: true,
    data: z.looseObject({ n: z.number().int(), pid: z.number().int() }),
  }),
]);

/** A fresh envelope of `type` carrying `{ n }`. */
export function job(n: number, type = "JOB", extra: Partial<Envelope> = {}): Envelope {
  return { ...createEnvelope({ type, source: "cpq-test", data: { n } }), ...extra };
}

/** A temp directory with a queue path in it, removed by `cleanup()`. */
export function tempQueue(): { dir: string; path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "cpq-test-"));
  return {
    dir,
    path: join(dir, "coordination.db"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Resolves after `ms`. */
export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Poll `check` until it returns true; throws after `timeoutMs` naming `what`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(5);
  }
}

/** A logger that remembers what it was told. */
export function memoryLogger(): Logger & {
  lines: { level: string; obj: unknown; msg: string | undefined }[];
} {
  const lines: { level: string; obj: unknown; msg: string | undefined }[] = [];
  const at = (level: string) => (obj: unknown, msg?: string) =>
    void lines.push({ level, obj, msg });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/**
 * A queue store over its own connection, as one worker process has it (subscriber "w", types
 * `["JOB"]` in {@link exchangeRequest}); its connection's close goes on `closers`.
 */
export function workerStore(path: string, closers: (() => unknown)[]): QueueStore {
  const db = openDatabase(path);
  closers.push(() => db.close());
  return new QueueStore(db, new Writer(db, path, 5_000), {
    maxPayloadBytes: 1_000_000,
    keepAcked: false,
  });
}

/** An exchange of subscriber "w" (types `["JOB"]`, lease 1 s): save `outcomes`, claim up to `limit`. */
export const exchangeRequest = (outcomes: ExchangeRequest["outcomes"], limit: number) => ({
  subscriber: "w",
  outcomes,
  limit,
  types: new Set(["JOB"]),
  typesJson: JSON.stringify(["JOB"]),
  leaseMs: 1_000,
});

/** A dead letter of the evaluator's TRAINING_COMPLETED `n` (5 attempts, failed now). */
export const deadLetterRecord = (
  n: number,
  overrides: Partial<DeadLetterRecord> = {},
): DeadLetterRecord => ({
  envelope: createEnvelope({ type: "TRAINING_COMPLETED", source: "trainer", data: { n } }),
  subscriber: "evaluator",
  reason: "max_attempts",
  attempts: 5,
  error: { name: "Error", message: "GPU out of memory" },
  failedAt: new Date().toISOString(),
  origin: "sqlite",
  ...overrides,
});

/** Run `sql` on a plain connection of its own to the file at `path`, as another program would. */
export function foreignWrite(path: string, sql: string, ...params: unknown[]): void {
  const db = new Database(path);
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}

/**
 * Another connection (of this thread: it can only let go if the event loop keeps turning) takes
 * the write lock of the file at `path` and releases it after `ms`, or when `release()` is called.
 */
export function holdWriteLock(
  path: string,
  ms: number,
): { released: Promise<void>; release: () => Promise<void> } {
  const other = new Database(path);
  other.exec("BEGIN IMMEDIATE");
  let release!: () => Promise<void>;
  const released = new Promise<void>((resolve) => {
    const timer = setTimeout(() => void release(), ms);
    release = () => {
      clearTimeout(timer);
      if (other.open) {
        other.exec("COMMIT");
        other.close();
      }
      resolve();
      return released;
    };
  });
  return { released, release };
}
