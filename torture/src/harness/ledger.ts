import { existsSync, readFileSync } from "node:fs";

/**
 * What consumer processes write, one line per step, with `appendFileSync` to a file of their own
 * (so a SIGKILL loses at most the line being written, and the parent knows who did what):
 *
 *     start <key> <attempt> <ms>    the handler began (attempt 1, 2, … as the transport counts)
 *     done <key> <attempt> <ms>     the handler finished: the transport will ack it
 *     reject <key> <attempt> <ms>   the handler threw UnrecoverableError (poison, by design)
 *     abort <key> <attempt> <ms> [closed|lease|other]
 *                                   the handler gave up because its signal was aborted: `closed`
 *                                   = its subscription closed (the delivery is handed back on
 *                                   close, not an attempt), `lease` = its lease ran out
 *     error <text>                  the transport or the process logged an error
 */
export interface Entry {
  readonly kind: "start" | "done" | "reject" | "abort";
  readonly key: string;
  readonly attempt: number;
  readonly at: number;
  /** Index of the process (log file) that wrote it. */
  readonly proc: number;
  /** For `abort`: why the signal was aborted (older logs have none). */
  readonly reason?: "closed" | "lease" | "other";
}

/** One consumer process of a run: its log, and how it ended. */
export interface ProcessRecord {
  readonly log: string;
  readonly stderr: string;
  /** How it ended: killed by the test, stopped by SIGTERM (drained), stopped at the end, or crashed. */
  end: "sigkill" | "sigterm" | "stopped" | "running" | "crashed";
  exitCode?: number | null;
  exitSignal?: string | null;
  /** When the test sent it SIGKILL (ms), where the test records it. */
  killedAt?: number;
}

/** All processes' entries of one run, with the errors they reported. */
export interface Ledger {
  readonly entries: readonly Entry[];
  /** When each SIGTERMed process received the signal (process index → ms). */
  readonly sigterms: ReadonlyMap<number, number>;
  readonly errors: readonly string[];
  /** Lines that could not be parsed (a SIGKILL in the middle of a write). */
  readonly torn: number;
}

/** Read every consumer log (and stderr) of a run. */
export function readLedger(processes: readonly ProcessRecord[]): Ledger {
  const entries: Entry[] = [];
  const errors: string[] = [];
  const sigterms = new Map<number, number>();
  let torn = 0;
  processes.forEach((p, proc) => {
    const text = existsSync(p.log) ? readFileSync(p.log, "utf8") : "";
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const [kind, key, attempt, at, why] = line.split(" ");
      if (kind === "sigterm" && Number.isFinite(Number(key))) sigterms.set(proc, Number(key));
      if (kind === "error") {
        errors.push(`${p.log}: ${line.slice(6)}`);
      } else if (
        (kind === "start" || kind === "done" || kind === "reject" || kind === "abort") &&
        key &&
        Number.isInteger(Number(attempt)) &&
        Number.isFinite(Number(at))
      ) {
        entries.push({
          kind,
          key,
          attempt: Number(attempt),
          at: Number(at),
          proc,
          ...(kind === "abort" && (why === "closed" || why === "lease" || why === "other")
            ? { reason: why }
            : {}),
        });
      } else if (!["ready", "sigterm", "closed", "warn"].includes(kind ?? "")) {
        torn++;
      }
    }
    const stderr = existsSync(p.stderr) ? readFileSync(p.stderr, "utf8").trim() : "";
    if (stderr) errors.push(`${p.stderr}: ${stderr.slice(0, 2_000)}`);
    if (p.end === "crashed")
      errors.push(`${p.log}: process crashed (code ${p.exitCode}, signal ${p.exitSignal})`);
  });
  return { entries, errors, torn, sigterms };
}

/** The numbers every torture run prints, and asserts on. */
export interface Reconciliation {
  readonly published: number;
  readonly handledUnique: number;
  readonly duplicatesJustified: number;
  readonly duplicatesUnjustified: number;
  readonly lost: number;
  readonly deadLetteredExpected: number;
  readonly deadLetteredUnexpected: number;
  readonly kills: number;
  readonly restarts: number;
  readonly errors: number;
  /** Handler starts at attempt 2 or later (lease expired, handed back, or retried). */
  readonly redeliveries: number;
  /** Keys that were never handled (first few). */
  readonly lostKeys: readonly string[];
  /** Why each unjustified duplicate is one (first few). */
  readonly unjustified: readonly string[];
  /** Dead letters nobody designed (first few). */
  readonly unexpectedDeadLetters: readonly string[];
  /** Poison keys missing from the dead-letter store. */
  readonly missingDeadLetters: readonly string[];
}

/** Inputs of {@link reconcile}. */
export interface ReconcileInput {
  /** Keys published that must be handled. */
  readonly expected: readonly string[];
  /** Keys published that must end in the dead-letter store, exactly once each. */
  readonly poison: readonly string[];
  /** Keys found in the dead-letter store (one per record). */
  readonly deadLettered: readonly string[];
  readonly ledger: Ledger;
  readonly processes: readonly ProcessRecord[];
  readonly kills: number;
  readonly restarts: number;
  /** Errors seen outside the consumers (publishers, the test process). */
  readonly otherErrors?: readonly string[];
  /**
   * Drain check: a completion in a process that shut down gracefully must have been saved, so
   * the same key must not start again at a later attempt, unless that completion came after the
   * lease would have ended anyway (`leaseMs` from its start). Off unless given.
   */
  readonly drainedLeaseMs?: number;
}

const firstFew = (list: readonly string[], n = 10) => list.slice(0, n);

/**
 * Reconcile one run. A duplicate completion (a second `done` of one key) is justified only when a
 * later attempt of that key was seen, i.e. the earlier holder lost its lease (killed, or too
 * slow); two completions of the same attempt mean two workers held one lease: unjustified.
 */
export function reconcile(input: ReconcileInput): Reconciliation {
  const { ledger } = input;
  const byKey = new Map<string, Entry[]>();
  for (const e of ledger.entries) {
    const list = byKey.get(e.key);
    if (list) list.push(e);
    else byKey.set(e.key, [e]);
  }
  const expected = new Set(input.expected);
  const poison = new Set(input.poison);
  let handledUnique = 0;
  let justified = 0;
  const unjustified: string[] = [];
  const lostKeys: string[] = [];
  for (const key of expected) {
    const entries = byKey.get(key) ?? [];
    const dones = entries.filter((e) => e.kind === "done").sort((a, b) => a.attempt - b.attempt);
    if (dones.length === 0) {
      lostKeys.push(key);
      continue;
    }
    handledUnique++;
    for (let i = 1; i < dones.length; i++) {
      if (dones[i]!.attempt > dones[i - 1]!.attempt) justified++;
      else
        unjustified.push(
          `${key}: completed twice at attempt ${dones[i]!.attempt} (processes ${dones[i - 1]!.proc} and ${dones[i]!.proc})`,
        );
    }
    if (input.drainedLeaseMs !== undefined) {
      const leaseMs = input.drainedLeaseMs;
      for (const done of dones) {
        if (input.processes[done.proc]?.end !== "sigterm") continue;
        const start = entries.find(
          (e) => e.kind === "start" && e.proc === done.proc && e.attempt === done.attempt,
        );
        if (!start || done.at - start.at >= leaseMs * 0.8) continue; // the lease may have ended
        const later = entries.find((e) => e.kind === "start" && e.attempt > done.attempt);
        if (later)
          unjustified.push(
            `${key}: completed at attempt ${done.attempt} by process ${done.proc}, which then drained ` +
              `and exited cleanly ${done.at - start.at} ms into its ${leaseMs} ms lease, yet it ` +
              `started again at attempt ${later.attempt} in process ${later.proc}: the ack was not saved on close`,
          );
      }
    }
  }
  for (const key of poison) {
    const dones = (byKey.get(key) ?? []).filter((e) => e.kind === "done");
    if (dones.length > 0) unjustified.push(`${key}: poison event completed`);
  }
  const dlCounts = new Map<string, number>();
  for (const key of input.deadLettered) dlCounts.set(key, (dlCounts.get(key) ?? 0) + 1);
  let deadExpected = 0;
  const unexpected: string[] = [];
  for (const [key, n] of dlCounts) {
    if (poison.has(key)) {
      deadExpected++;
      if (n > 1) unexpected.push(`${key}: dead-lettered ${n} times`);
    } else {
      unexpected.push(key);
    }
  }
  const missing = [...poison].filter((k) => !dlCounts.has(k));
  const errors = [...ledger.errors, ...(input.otherErrors ?? [])];
  return {
    published: expected.size + poison.size,
    handledUnique,
    duplicatesJustified: justified,
    duplicatesUnjustified: unjustified.length,
    lost: lostKeys.length,
    deadLetteredExpected: deadExpected,
    deadLetteredUnexpected: unexpected.length,
    kills: input.kills,
    restarts: input.restarts,
    errors: errors.length,
    redeliveries: ledger.entries.filter((e) => e.kind === "start" && e.attempt > 1).length,
    lostKeys: firstFew(lostKeys),
    unjustified: firstFew(unjustified),
    unexpectedDeadLetters: firstFew(unexpected),
    missingDeadLetters: firstFew(missing),
  };
}

/** Print a reconciliation table (and the details behind any non-zero failure column). */
export function printReconciliation(
  title: string,
  r: Reconciliation,
  extra: Record<string, string | number> = {},
  errors: readonly string[] = [],
): void {
  const rows: [string, string | number][] = [
    ["published", r.published],
    ["handled unique", r.handledUnique],
    ["duplicates justified", r.duplicatesJustified],
    ["duplicates unjustified", r.duplicatesUnjustified],
    ["lost", r.lost],
    ["dead-lettered expected", r.deadLetteredExpected],
    ["dead-lettered unexpected", r.deadLetteredUnexpected],
    ["kills", r.kills],
    ["restarts", r.restarts],
    ["errors", r.errors],
    ["redeliveries", r.redeliveries],
    ...Object.entries(extra),
  ];
  printTable(title, rows);
  const details = [
    ...r.lostKeys.map((k) => `lost: ${k}`),
    ...r.unjustified.map((k) => `unjustified duplicate: ${k}`),
    ...r.unexpectedDeadLetters.map((k) => `unexpected dead letter: ${k}`),
    ...r.missingDeadLetters.map((k) => `missing dead letter: ${k}`),
    ...errors.slice(0, 10).map((e) => `error: ${e}`),
  ];
  if (details.length > 0) console.log(details.map((d) => `  ${d}`).join("\n"));
}

/** Print `rows` as a two-column table under `title`. */
export function printTable(title: string, rows: readonly [string, string | number][]): void {
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `  ${k.padEnd(width)}  ${String(v).padStart(8)}`);
  console.log(`\n${title}\n${lines.join("\n")}`);
}
