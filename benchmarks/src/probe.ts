// The machine's weather, read at the start and the end of a run, for comparing runs made on
// different days: what one-row commits cost on the disk the benchmarks write to, and what a fixed
// loop of plain arithmetic costs. Neither involves any library measured here.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";

/** What {@link machineProbe} read. */
export interface MachineProbe {
  /** One-row INSERT commits per second: raw better-sqlite3, WAL, `synchronous = NORMAL`, 80 B rows. */
  readonly commitsPerSec: number;
  /** Milliseconds for 10⁸ iterations of an integer loop. */
  readonly cpuLoopMs: number;
}

/** Median of three short readings each (about a second in all). */
export function machineProbe(): MachineProbe {
  const dir = mkdtempSync(join(tmpdir(), "bench-probe-"));
  try {
    const commits: number[] = [];
    const loops: number[] = [];
    for (let round = 0; round < 3; round++) {
      const db = new Database(join(dir, `probe-${round}.db`));
      try {
        db.pragma("journal_mode = WAL");
        db.pragma("synchronous = NORMAL");
        db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
        const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
        const row = "x".repeat(80);
        const count = 5_000;
        const t0 = performance.now();
        for (let i = 0; i < count; i++) insert.run(row);
        commits.push((count / (performance.now() - t0)) * 1000);
      } finally {
        db.close();
      }
      const t1 = performance.now();
      let x = 0;
      for (let i = 0; i < 1e8; i++) x = (x + i) | 0;
      if (x === 42) console.log(""); // keeps the loop from being dropped
      loops.push(performance.now() - t1);
    }
    const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
    return { commitsPerSec: mid(commits), cpuLoopMs: mid(loops) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One line for RESULTS.md. */
export function describeProbe(probe: MachineProbe): string {
  return `${(probe.commitsPerSec / 1000).toFixed(1)} k one-row commits/s, CPU loop ${probe.cpuLoopMs.toFixed(0)} ms`;
}
