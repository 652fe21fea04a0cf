import { join } from "node:path";
import { SqliteDeadLetterStore } from "@switchyard/dlq";
import { createRouter } from "@switchyard/router";
import { tortureCatalog } from "./catalog";
import { type Child, isReady, reapAll, startChild } from "./children";
import {
  type Ledger,
  type ProcessRecord,
  type Reconciliation,
  printReconciliation,
  readLedger,
  reconcile,
} from "./ledger";
import { type TransportSpec, openTransport } from "./transports";
import { between, delay, eventually } from "./wait";

/** One consumer torture run: load through a transport while consumer processes are interrupted. */
export interface ConsumerTortureOptions {
  readonly title: string;
  readonly spec: TransportSpec;
  /** Temp directory for logs. */
  readonly dir: string;
  /** The dead-letter store's file (the transport's sink in every consumer). */
  readonly dlqPath: string;
  readonly subscriber: string;
  readonly events: number;
  /** Events marked `poison: true`, rejected with `UnrecoverableError` by design. */
  readonly poison: number;
  readonly consumers: number;
  /** Publishing is spread over this long, so interruptions land while events flow. */
  readonly publishMs: number;
  readonly interrupt: {
    readonly signal: "SIGKILL" | "SIGTERM";
    readonly max: number;
    readonly gapMs: readonly [number, number];
  };
  readonly consumer: {
    readonly concurrency: number;
    readonly leaseMs: number;
    readonly maxAttempts: number;
    readonly workMs: number;
    readonly drainTimeoutMs: number;
    readonly drainOnSigterm: boolean;
  };
  /** Every `slowEvery`-th event asks for `slowMs` of work (long in-flight handlers). */
  readonly slow?: { readonly every: number; readonly ms: number };
  /** How long the backlog may take to drain after publishing. */
  readonly drainMs: number;
  /** Pass to {@link reconcile}: check that drained processes saved their acks. */
  readonly drainedLeaseMs?: number;
}

/** What a run produced. */
export interface ConsumerTortureResult {
  readonly reconciliation: Reconciliation;
  readonly errors: readonly string[];
  readonly elapsedMs: number;
  /** Interruptions that hit a process with handlers in flight. */
  readonly interruptsMidStream: number;
  readonly torn: number;
  /** Handlers aborted by a drain, and the longest wait until the next attempt of one started. */
  readonly handBacks: {
    readonly count: number;
    readonly maxGapMs: number;
    readonly neverRetried: number;
    /** Attempts whose previous attempt never reached a handler (taken, then not handed back). */
    readonly unstarted: number;
    /** The longest wait from the last SIGTERM before such an attempt until it started. */
    readonly unstartedMaxWaitMs: number;
  };
}

/**
 * Handlers aborted while their process drained (SIGTERM) and how soon the next attempt started:
 * a hand-back makes the delivery claimable at once, a lost one waits for its lease to end.
 */
function handedBack(ledger: Ledger, processes: readonly ProcessRecord[]) {
  const { entries } = ledger;
  let count = 0;
  let maxGapMs = 0;
  let neverRetried = 0;
  for (const abort of entries) {
    if (abort.kind !== "abort" || processes[abort.proc]?.end !== "sigterm") continue;
    count++;
    // A hand-back is not an attempt: the next run may carry the same attempt number.
    const next = entries
      .filter(
        (e) =>
          e.kind === "start" &&
          e.key === abort.key &&
          e.at >= abort.at &&
          (e.attempt > abort.attempt || (e.attempt === abort.attempt && e.proc !== abort.proc)),
      )
      .sort((a, b) => a.at - b.at)[0];
    if (next) maxGapMs = Math.max(maxGapMs, next.at - abort.at);
    else neverRetried++;
  }
  // Attempts that never reached a handler: a process took the delivery (a claim, a pull) and
  // went away without starting it. After a drain it should have been handed back at once.
  const seen = new Set(
    entries.filter((e) => e.kind === "start").map((e) => `${e.key}/${e.attempt}`),
  );
  const lastTerm = [...ledger.sigterms.values()].sort((a, b) => a - b);
  let unstarted = 0;
  let unstartedMaxWaitMs = 0;
  for (const e of entries) {
    if (e.kind !== "start" || e.attempt === 1 || seen.has(`${e.key}/${e.attempt - 1}`)) continue;
    unstarted++;
    const term = lastTerm.filter((t) => t <= e.at).pop();
    if (term !== undefined) unstartedMaxWaitMs = Math.max(unstartedMaxWaitMs, e.at - term);
  }
  return { count, maxGapMs, neverRetried, unstarted, unstartedMaxWaitMs };
}

/**
 * Start `consumers` consumer processes, publish `events` TORTURE_JOB events (some poison) through
 * the parent's own router over a pace of `publishMs`, and meanwhile interrupt a random consumer
 * every `gapMs` (SIGKILL, or SIGTERM for a drain) and start a replacement at once. Then wait for
 * every event to be handled or dead-lettered and the backlog to be empty, stop the consumers
 * gracefully and reconcile their ledgers against what was published and dead-lettered.
 */
export async function runConsumerTorture(
  o: ConsumerTortureOptions,
): Promise<ConsumerTortureResult> {
  const began = Date.now();
  const processes: ProcessRecord[] = [];
  const children: Child[] = [];
  const live = new Map<Child, ProcessRecord>();
  const otherErrors: string[] = [];
  let interrupts = 0;
  let restarts = 0;
  let midStream = 0;

  const start = (): Child => {
    const n = processes.length;
    const record: ProcessRecord = {
      log: join(o.dir, `consumer-${n}.log`),
      stderr: join(o.dir, `consumer-${n}.stderr`),
      end: "running",
    };
    const child = startChild(
      "consumer.ts",
      {
        transport: o.spec,
        dlqPath: o.dlqPath,
        subscriber: o.subscriber,
        log: record.log,
        ...o.consumer,
      },
      record.stderr,
      `consumer-${n}`,
    );
    processes.push(record);
    children.push(child);
    live.set(child, record);
    void child.exited.then((exit) => {
      record.exitCode = exit.code;
      record.exitSignal = exit.signal;
      live.delete(child);
      if (record.end === "running") record.end = "crashed";
    });
    return child;
  };

  const publisherTransport = await openTransport(o.spec);
  const publisher = createRouter({ catalog: tortureCatalog, transport: publisherTransport });
  const store = new SqliteDeadLetterStore({ path: o.dlqPath });
  try {
    // The subscriber must exist before the first publish (it receives what comes after it).
    const first = Array.from({ length: o.consumers }, start);
    await Promise.all(first.map((c) => c.next(isReady, 60_000)));

    const keys = Array.from({ length: o.events }, (_, n) => `k${n}`);
    const poisonAt = new Set(
      Array.from({ length: o.poison }, (_, i) => Math.floor(((i + 0.5) * o.events) / o.poison)),
    );
    const expected = keys.filter((_, n) => !poisonAt.has(n));
    const poison = keys.filter((_, n) => poisonAt.has(n));

    let published = false;
    const publishing = (async () => {
      const tick = 50;
      const batches = Math.max(1, Math.ceil(o.publishMs / tick));
      const per = Math.ceil(o.events / batches);
      const t0 = Date.now();
      for (let b = 0, n = 0; n < o.events; b++) {
        const items = [];
        for (let i = 0; i < per && n < o.events; i++, n++) {
          const slow =
            o.slow && n % o.slow.every === o.slow.every - 1 ? { work_ms: o.slow.ms } : {};
          items.push({
            type: "TORTURE_JOB" as const,
            data: { key: `k${n}`, ...(poisonAt.has(n) ? { poison: true } : {}), ...slow },
          });
        }
        await publisher.publishBatch(items);
        // Pace against the clock: a slow machine publishes late, never in a burst.
        const due = t0 + (b + 1) * tick;
        if (due > Date.now()) await delay(due - Date.now());
      }
      published = true;
    })();

    // Interrupt random consumers while events flow, each replaced at once.
    const interrupting = (async () => {
      const stopBy = Date.now() + o.publishMs + 15_000;
      while (
        interrupts < o.interrupt.max &&
        !(published && interrupts > 0) &&
        Date.now() < stopBy
      ) {
        await delay(between(o.interrupt.gapMs[0], o.interrupt.gapMs[1]));
        const candidates = [...live.entries()].filter(([, r]) => r.end === "running");
        const picked = candidates[Math.floor(Math.random() * candidates.length)];
        if (!picked) continue;
        const [victim, record] = picked;
        // Only a process that is already consuming makes an interesting victim.
        if (!victim.messages.some(isReady)) continue;
        record.end = o.interrupt.signal === "SIGKILL" ? "sigkill" : "sigterm";
        const before = readLedger([record]).entries;
        const open = new Set<string>();
        for (const e of before) {
          const id = `${e.key}/${e.attempt}`;
          if (e.kind === "start") open.add(id);
          else open.delete(id);
        }
        if (open.size > 0) midStream++;
        victim.kill(o.interrupt.signal);
        interrupts++;
        start();
        restarts++;
        if (o.interrupt.signal === "SIGTERM") {
          const exit = await victim.exited;
          if (exit.code !== 0) {
            record.end = "crashed";
            otherErrors.push(
              `consumer ${victim.label} did not exit cleanly on SIGTERM: ${exit.code ?? exit.signal}`,
            );
          }
        }
      }
    })();

    await publishing;
    await interrupting;
    // Drained: every event handled (or dead-lettered by design) and nothing left in the backlog.
    const done = async () => {
      const r = reconcileNow();
      if (r.lost > 0 || r.deadLetteredExpected < poison.length) return false;
      const stats = await publisherTransport.stats();
      const mine = stats.subscribers.find((s) => s.subscriber === o.subscriber);
      return mine !== undefined && mine.pending === 0 && mine.inFlight === 0;
    };
    const deadLettered = () =>
      store.list({ subscriber: o.subscriber, limit: 1_000_000 }).map((d) => {
        const key = (d.envelope?.data as { key?: unknown } | undefined)?.key;
        const name = typeof key === "string" ? key : `event ${d.eventId}`;
        // Poison is rejected with UnrecoverableError: any other reason is not what was designed.
        return d.reason === "unrecoverable" ? name : `${name} (${d.reason}: ${d.error.message})`;
      });
    const reconcileNow = () =>
      reconcile({
        expected,
        poison,
        deadLettered: deadLettered(),
        ledger: readLedger(processes),
        processes,
        kills: interrupts,
        restarts,
        otherErrors,
        ...(o.drainedLeaseMs !== undefined ? { drainedLeaseMs: o.drainedLeaseMs } : {}),
      });
    let drainError: unknown;
    await eventually(
      done,
      `${o.title}: every event handled and the backlog empty`,
      o.drainMs,
      250,
    ).catch((error: unknown) => {
      drainError = error;
    });
    // Stop the survivors gracefully, then reconcile.
    const survivors = [...live.keys()];
    for (const c of survivors) {
      live.get(c)!.end = "stopped";
      c.send("stop");
    }
    await Promise.race([Promise.all(survivors.map((c) => c.exited)), delay(20_000)]);
    for (const c of survivors)
      if (c.alive()) otherErrors.push(`consumer ${c.label} did not stop within 20 s of "stop"`);
    const ledger = readLedger(processes);
    const reconciliation = reconcileNow();
    if (drainError) otherErrors.push(String((drainError as Error).message));
    const errors = [...ledger.errors, ...otherErrors];
    const elapsedMs = Date.now() - began;
    const handBacks = handedBack(ledger, processes);
    printReconciliation(
      `${o.title} (${Math.round(elapsedMs / 100) / 10} s)`,
      { ...reconciliation, errors: errors.length },
      {
        "interrupt signal": o.interrupt.signal,
        "interrupted mid-handler": midStream,
        "consumer processes": processes.length,
        "torn log lines": ledger.torn,
        ...(o.interrupt.signal === "SIGTERM"
          ? {
              "aborted at drain, handed back": handBacks.count,
              "handed back → next attempt (max ms)": handBacks.maxGapMs,
              "taken but never started": handBacks.unstarted,
              "  → redelivered after SIGTERM (max ms)": handBacks.unstartedMaxWaitMs,
            }
          : {}),
      },
      errors,
    );
    return {
      reconciliation: { ...reconciliation, errors: errors.length },
      errors,
      elapsedMs,
      interruptsMidStream: midStream,
      torn: ledger.torn,
      handBacks,
    };
  } finally {
    await reapAll(children);
    store.close();
    await publisher.shutdown();
  }
}
