import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { countPending, deadDeliveries, openQueueReadOnly } from "@switchyard/cross-process-queue";
import { describe, expect, it } from "vitest";
import { type Child, isReady, reapAll, startChild } from "./harness/children";
import { printTable } from "./harness/ledger";
import { eventually } from "./harness/wait";
import { size, testTimeoutMs } from "./size";

const { contention } = size;
const WRITERS = 4;
const READERS = 4;

type Type = "TORTURE_JOB" | "TORTURE_TICK";
/**
 * Three subscribers, each served by all four consumer processes: `all` takes both types in every
 * process; `jobs` only TORTURE_JOB; `split` is registered for both types but each process handles
 * one of them (workers covering part of their subscriber's types take another claim path).
 */
const subscriptionsOf = (reader: number): { subscriber: string; types: Type[] }[] => [
  { subscriber: "all", types: ["TORTURE_JOB", "TORTURE_TICK"] },
  { subscriber: "jobs", types: ["TORTURE_JOB"] },
  { subscriber: "split", types: [reader % 2 === 0 ? "TORTURE_JOB" : "TORTURE_TICK"] },
];
const receives = (subscriber: string, key: string): boolean => {
  const isTick = Number(key.slice(key.indexOf("-") + 1)) % 3 === 2;
  return subscriber !== "jobs" || !isTick;
};

interface PublisherReport {
  readonly published: number;
  readonly attempted: number;
  readonly duplicates: number;
  readonly errors: readonly string[];
}

describe("contention on one queue file", { tags: ["slow"] }, () => {
  it(
    `4 publishing and 4 consuming processes for ${contention.durationMs / 1000} s: no SQLITE_BUSY, exact counts per subscriber (${size.mode})`,
    async () => {
      const began = Date.now();
      const dir = mkdtempSync(join(tmpdir(), "torture-contention-"));
      const path = join(dir, "coordination.db");
      const children: Child[] = [];
      const logs: string[] = [];
      const start = (file: string, label: string, config: Record<string, unknown>) => {
        const log = join(dir, `${label}.log`);
        logs.push(log, join(dir, `${label}.stderr`));
        const child = startChild(file, { ...config, log }, join(dir, `${label}.stderr`), label);
        children.push(child);
        return child;
      };
      try {
        // Consumers first: subscribers receive what is published after they registered.
        const readers = Array.from({ length: READERS }, (_, r) =>
          start("tally.ts", `reader-${r}`, {
            path,
            tally: join(dir, `reader-${r}.tally`),
            concurrency: 16,
            subscriptions: subscriptionsOf(r),
          }),
        );
        await Promise.all(readers.map((c) => c.next(isReady, 60_000)));
        const writers = Array.from({ length: WRITERS }, (_, w) =>
          start("publisher.ts", `writer-${w}`, {
            path,
            writer: w,
            durationMs: contention.durationMs,
            maxCount: contention.maxPerPublisher,
          }),
        );
        await Promise.all(writers.map((c) => c.next(isReady, 60_000)));
        const loadStarted = Date.now();
        const reports = writers.map((w) =>
          w.next<PublisherReport>(
            (m) => typeof m === "object" && m !== null && "published" in m,
            contention.durationMs + 60_000,
          ),
        );
        for (const w of writers) w.send("go");
        const published = await Promise.all(reports);
        const loadMs = Date.now() - loadStarted;

        const db = openQueueReadOnly(path);
        let dead = 0;
        try {
          await eventually(
            () => countPending(db) === 0,
            "every subscriber's backlog to drain",
            size.drainMs,
            100,
          );
          dead = deadDeliveries(db, { limit: 1_000 }).length;
        } finally {
          db.close();
        }
        const stopped = readers.map((r) =>
          r.next((m) => typeof m === "object" && m !== null && "stopped" in m, 30_000),
        );
        for (const r of readers) r.send("stop");
        await Promise.all(stopped);
        await Promise.all(children.map((c) => c.exited));

        // Reconcile: per subscriber, every acknowledged key handled exactly once.
        const expected = new Map<string, Set<string>>();
        for (const subscriber of ["all", "jobs", "split"]) {
          const keys = new Set<string>();
          published.forEach((p, w) => {
            for (let n = 0; n < p.attempted; n++) {
              const key = `w${w}-${n}`;
              if (receives(subscriber, key)) keys.add(key);
            }
          });
          expected.set(subscriber, keys);
        }
        const handled = new Map<string, Map<string, number[]>>();
        for (let r = 0; r < READERS; r++) {
          const file = join(dir, `reader-${r}.tally`);
          const text = existsSync(file) ? readFileSync(file, "utf8") : "";
          for (const line of text.split("\n")) {
            if (!line) continue;
            const [, subscriber, key, attempt] = line.split(" ") as [
              string,
              string,
              string,
              string,
            ];
            const bySub = handled.get(subscriber) ?? new Map<string, number[]>();
            handled.set(subscriber, bySub);
            bySub.set(key, [...(bySub.get(key) ?? []), Number(attempt)]);
          }
        }
        const errors: string[] = [];
        published.forEach((p, w) => {
          for (const e of p.errors) errors.push(`writer-${w}: ${e}`);
          if (p.published !== p.attempted)
            errors.push(
              `writer-${w}: ${p.attempted - p.published} of ${p.attempted} not acknowledged`,
            );
          if (p.duplicates !== 0) errors.push(`writer-${w}: ${p.duplicates} duplicates on publish`);
        });
        for (const file of logs) {
          if (!existsSync(file)) continue;
          for (const line of readFileSync(file, "utf8").split("\n")) {
            if (/^(error|warn) /.test(line) || (file.endsWith(".stderr") && line.trim()))
              errors.push(`${file.slice(dir.length + 1)}: ${line}`);
          }
        }
        const busy = errors.filter((e) => /SQLITE_BUSY|SQLITE_LOCKED|QUEUE_BUSY/.test(e));
        const rows: [string, string | number][] = [
          ["publishers / consumers", `${WRITERS} / ${READERS}`],
          ["load time (s)", Math.round(loadMs / 100) / 10],
          ["published", published.reduce((n, p) => n + p.published, 0)],
        ];
        const problems: string[] = [];
        for (const [subscriber, keys] of expected) {
          const got = handled.get(subscriber) ?? new Map<string, number[]>();
          let lost = 0;
          let dup = 0;
          for (const key of keys) {
            const attempts = got.get(key);
            if (!attempts) {
              lost++;
              if (problems.length < 10) problems.push(`${subscriber} never handled ${key}`);
            } else if (attempts.length > 1) {
              dup += attempts.length - 1;
              if (problems.length < 10)
                problems.push(`${subscriber} handled ${key} at attempts ${attempts.join(", ")}`);
            }
          }
          const unknown = [...got.keys()].filter((k) => !keys.has(k)).length;
          if (unknown > 0)
            problems.push(`${subscriber} handled ${unknown} keys nobody published to it`);
          rows.push([
            `${subscriber}: expected / handled unique`,
            `${keys.size} / ${keys.size - lost}`,
          ]);
          rows.push([`${subscriber}: lost / duplicates`, `${lost} / ${dup}`]);
        }
        rows.push(["dead-lettered (none designed)", dead]);
        rows.push(["errors", errors.length], ["SQLITE_BUSY surfaced", busy.length]);
        rows.push(["kills / restarts", "0 / 0"]);
        printTable(
          `contention · sqlite · ${size.mode} (${Math.round((Date.now() - began) / 100) / 10} s)`,
          rows,
        );
        for (const p of [...problems, ...errors.slice(0, 10)]) console.log(`  ${p}`);

        expect(busy).toEqual([]);
        expect(errors).toEqual([]);
        expect(problems).toEqual([]);
        expect(dead).toBe(0);
        for (const p of published) expect(p.published).toBeGreaterThan(0);
      } finally {
        await reapAll(children);
        rmSync(dir, { recursive: true, force: true });
      }
    },
    testTimeoutMs,
  );
});
