import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type DuplicateEvidence, explainDuplicates } from "./duplicates";
import { type ProcessRecord, readLedger } from "./ledger";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Write one ledger per process (its lines as a consumer child writes them) and read them back. */
function ledgerOf(logs: readonly string[][], ends: Partial<ProcessRecord>[] = []) {
  const dir = mkdtempSync(join(tmpdir(), "torture-duplicates-"));
  dirs.push(dir);
  const processes: ProcessRecord[] = logs.map((lines, n) => {
    const log = join(dir, `p${n}.log`);
    writeFileSync(log, lines.map((l) => `${l}\n`).join(""));
    return { log, stderr: join(dir, `p${n}.stderr`), end: "stopped", ...ends[n] };
  });
  return { entries: readLedger(processes).entries, processes };
}

const evidence = (
  processes: ProcessRecord[],
  more: Partial<DuplicateEvidence> = {},
): DuplicateEvidence => ({
  serverKilledAt: [],
  leaseMs: 3_000,
  processes,
  order: (key) => Number(key.slice(1)),
  ...more,
});

describe("explaining a duplicate completion", () => {
  it("explains the newest event sent again at attempt 1 with a redelivery after a consumer kill", () => {
    // The flake of issue 14, as the ledgers showed it: process 0 completed k1999 (the last
    // event) and acked it; a process was SIGKILLed; the next pull (process 1, just started)
    // received a redelivery of k1805 first and then k1999 again at delivery count 1.
    const { entries, processes } = ledgerOf(
      [
        ["start k1999 1 1000", "done k1999 1 1150"],
        ["start k1805 2 2590", "start k1999 1 2600", "done k1805 2 2610", "done k1999 1 2750"],
      ],
      [{ end: "sigkill", killedAt: 1400 }],
    );
    const why = explainDuplicates(entries, evidence(processes));
    expect(why.unexplained).toEqual([]);
    expect(why.serverRewound).toBe(1);
    expect(why.explained[0]).toContain("the redelivery of k1805 (attempt 2)");
  });

  it("explains the newest event sent again at attempt 1 in the same pull as its own redelivery", () => {
    // The flake of session 10, as the ledgers showed it (times shifted): process 0 completed
    // k1319 (the newest event), got it again and was SIGKILLed holding it; after AckWait, process
    // 1's first pull held the redeliveries of k1279 and k1319 (attempt 2), then k1319 at delivery
    // count 1 again and k1320, started in that order within one millisecond. The two copies of
    // k1319 completed in the same millisecond, the attempt-2 copy first. Compared with that
    // completion instead of process 0's, the attempt-1 copy had looked unexplained.
    const { entries, processes } = ledgerOf(
      [["start k1319 1 1000", "done k1319 1 1150", "start k1319 1 1600"], []],
      [{ end: "sigkill", killedAt: 1700 }],
    );
    const p1 = ledgerOf([
      [
        "start k1279 2 4927",
        "start k1319 2 4928",
        "start k1319 1 4929",
        "start k1320 1 4929",
        "done k1320 1 4974",
        "done k1279 2 5123",
        "done k1319 2 5126",
        "done k1319 1 5126",
      ],
    ]);
    const all = [...entries, ...p1.entries.map((e) => ({ ...e, proc: 1 }))];
    const why = explainDuplicates(all, evidence(processes));
    expect(why.unexplained).toEqual([]);
    expect(why.serverRewound).toBe(1);
    expect(why.explained[0]).toContain("k1319: completed twice at attempt 1 (processes 0 and 1)");
    // A newer event started before it (earlier in the same millisecond) leaves it unexplained.
    const swapped = all.map((e) =>
      e.key === "k1320" && e.kind === "start" ? { ...e, at: 4928 } : e,
    );
    expect(explainDuplicates(swapped, evidence(processes)).unexplained).toHaveLength(1);
  });

  it("explains the newest event sent again at attempt 1 after its own redelivery when its first delivery was never started", () => {
    // The flake of session 11, as the ledgers showed it (times shifted): process 0 started k1997
    // and was SIGKILLed with k1998 and k1999 (the newest event) still buffered, never started.
    // After AckWait, process 1 received k1999's redelivery (attempt 2) and, 1 ms later in the
    // same pull, k1999 again at delivery count 1; both completed. No completion at attempt 1
    // came before, so the attempt-1 copy repeats the attempt-2 one.
    const { entries, processes } = ledgerOf(
      [
        ["start k1997 1 1000"],
        ["start k1999 2 4337", "start k1999 1 4338", "done k1999 2 4490", "done k1999 1 4492"],
      ],
      [{ end: "sigkill", killedAt: 1100 }],
    );
    const why = explainDuplicates(entries, evidence(processes));
    expect(why.unexplained).toEqual([]);
    expect(why.serverRewound).toBe(1);
    expect(why.explained[0]).toContain("the redelivery of k1999 (attempt 2)");
    // A kill longer than a lease plus a pull's lifetime before it explains nothing.
    const old = ledgerOf(
      [
        ["start k1997 1 1000"],
        ["start k1999 2 24337", "start k1999 1 24338", "done k1999 2 24490", "done k1999 1 24492"],
      ],
      [{ end: "sigkill", killedAt: 1100 }],
    );
    expect(explainDuplicates(old.entries, evidence(old.processes)).unexplained).toHaveLength(1);
    // Nor does the same pull without a kill.
    const alive = ledgerOf([
      ["start k1997 1 1000"],
      ["start k1999 2 4337", "start k1999 1 4338", "done k1999 2 4490", "done k1999 1 4492"],
    ]);
    expect(explainDuplicates(alive.entries, evidence(alive.processes)).unexplained).toHaveLength(1);
  });

  it("explains the newest event sent again at attempt 1 ahead of the redeliveries in its pull", () => {
    // The second flake of session 11 (times shifted): process 0 completed k1999 (the newest
    // event) and was SIGKILLed; process 1, just started, received k1999 again at delivery count
    // 1 and 3 ms later the redelivery of k1799 (attempt 2), which a killed process had held.
    const { entries, processes } = ledgerOf(
      [
        ["start k1999 1 1000", "done k1999 1 1155"],
        ["start k1999 1 2916", "start k1799 2 2919", "done k1799 2 2948", "done k1999 1 3067"],
      ],
      [{ end: "sigkill", killedAt: 1200 }],
    );
    const why = explainDuplicates(entries, evidence(processes));
    expect(why.unexplained).toEqual([]);
    expect(why.serverRewound).toBe(1);
    expect(why.explained[0]).toContain("the redelivery of k1799 (attempt 2)");
    // A redelivery more than a second away is not the same pull.
    const apart = ledgerOf(
      [
        ["start k1999 1 1000", "done k1999 1 1155"],
        ["start k1999 1 2916", "start k1799 2 4019", "done k1799 2 4048", "done k1999 1 3067"],
      ],
      [{ end: "sigkill", killedAt: 1200 }],
    );
    expect(explainDuplicates(apart.entries, evidence(apart.processes)).unexplained).toHaveLength(1);
  });

  it("leaves a repeat at a later attempt than 1 unexplained by a rewind", () => {
    // The server re-sends the stepped-back event at delivery count 1, never higher.
    const { entries, processes } = ledgerOf(
      [
        ["start k1999 2 1000", "done k1999 2 1150"],
        ["start k1805 3 2590", "start k1999 2 2600", "done k1805 3 2610", "done k1999 2 2750"],
      ],
      [{ end: "sigkill", killedAt: 1400 }],
    );
    expect(explainDuplicates(entries, evidence(processes)).unexplained).toHaveLength(1);
  });

  it("leaves it unexplained when no consumer was killed between the two runs", () => {
    const { entries, processes } = ledgerOf(
      [
        ["start k1999 1 1000", "done k1999 1 1150"],
        ["start k1805 2 2590", "start k1999 1 2600", "done k1805 2 2610", "done k1999 1 2750"],
      ],
      [{ end: "sigkill", killedAt: 3000 }],
    );
    expect(explainDuplicates(entries, evidence(processes)).unexplained).toHaveLength(1);
  });

  it("leaves it unexplained when a newer event had already started", () => {
    // The server steps back one sequence: only the newest event it delivered can come again.
    const { entries, processes } = ledgerOf(
      [
        ["start k1 1 1000", "done k1 1 1150", "start k2 1 1200", "done k2 1 1250"],
        ["start k0 2 2590", "start k1 1 2600", "done k0 2 2610", "done k1 1 2750"],
      ],
      [{ end: "sigkill", killedAt: 1400 }],
    );
    expect(explainDuplicates(entries, evidence(processes)).unexplained).toEqual([
      "k1: completed twice at attempt 1 (processes 0 and 1) with no server kill, hand-back, repair or server rewind between",
    ]);
  });

  it("leaves it unexplained without a redelivery in the same pull", () => {
    const { entries, processes } = ledgerOf(
      [
        ["start k1999 1 1000", "done k1999 1 1150"],
        ["start k1999 1 2600", "done k1999 1 2750"],
      ],
      [{ end: "sigkill", killedAt: 1400 }],
    );
    expect(explainDuplicates(entries, evidence(processes)).unexplained).toHaveLength(1);
  });

  it("explains the same attempt again after a hand-back on close, not after an expired lease", () => {
    const lines = (why: string) => [
      ["start k1 1 1000", "done k1 1 1100"],
      ["start k1 1 1200", `abort k1 1 1300 ${why}`],
      ["start k1 1 1400", "done k1 1 1500"],
    ];
    const closed = ledgerOf(lines("closed"));
    const handedBack = explainDuplicates(closed.entries, evidence(closed.processes));
    expect(handedBack.afterHandBack).toBe(1);
    expect(handedBack.unexplained).toEqual([]);
    const lease = ledgerOf(lines("lease"));
    expect(explainDuplicates(lease.entries, evidence(lease.processes)).unexplained).toHaveLength(1);
  });

  it("explains the same attempt again after the audit's repair, only for a key it handed back", () => {
    const { entries, processes } = ledgerOf([
      ["start k1 1 1000", "done k1 1 1100", "start k2 1 1000", "done k2 1 1100"],
      ["start k1 1 5000", "done k1 1 5100", "start k2 1 5000", "done k2 1 5100"],
    ]);
    const why = explainDuplicates(
      entries,
      evidence(processes, { repaired: { keys: new Set(["k1"]), at: 4_000 } }),
    );
    expect(why.afterRepair).toBe(1);
    expect(why.unexplained).toEqual([
      "k2: completed twice at attempt 1 (processes 0 and 1) with no server kill, hand-back, repair or server rewind between",
    ]);
  });

  it("counts a later attempt and a run after a server kill as before", () => {
    const { entries, processes } = ledgerOf([
      ["start k1 1 1000", "done k1 1 1100", "start k2 1 1000", "done k2 1 1100"],
      ["start k1 2 5000", "done k1 2 5100", "start k2 1 5000", "done k2 1 5100"],
    ]);
    const why = explainDuplicates(entries, evidence(processes, { serverKilledAt: [2_000] }));
    expect([why.laterAttempt, why.afterServerCrash, why.unexplained.length]).toEqual([1, 1, 0]);
  });
});
