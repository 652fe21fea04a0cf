import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { type Envelope, createEnvelope } from "@switchyard/event-schema";
import type { Transport } from "@switchyard/router";
import type { NatsTransport } from "@switchyard/transport-nats";
import { expect, it } from "vitest";
import { tortureCatalog } from "./harness/catalog";
import { type Child, isReady, reapAll, startChild } from "./harness/children";
import { explainDuplicates } from "./harness/duplicates";
import {
  type ProcessRecord,
  type Reconciliation,
  printReconciliation,
  printTable,
  readLedger,
  reconcile,
} from "./harness/ledger";
import { describeNats, natsAvailability, uniqueStream } from "./harness/nats";
import { natsServerBinary, startNatsServer } from "./harness/nats-server";
import { type TransportSpec, loadNats, openTransport } from "./harness/transports";
import { between, delay, eventually } from "./harness/wait";
import { size, testTimeoutMs } from "./size";

const { serverCrash } = size;

/** One subscriber of the scenario: its processes and their ledgers. */
interface Group {
  readonly subscriber: string;
  readonly processes: ProcessRecord[];
  readonly live: Map<Child, ProcessRecord>;
  readonly children: Child[];
}

/** A consumer's numbers as the server reports them (the evidence around each server kill). */
interface ConsumerSnapshot {
  readonly name: string;
  readonly delivered: number;
  readonly ackFloor: number;
  readonly ackPending: number;
  readonly pending: number;
}

async function snapshot(url: string, stream: string) {
  const nc = await connect({ servers: url, timeout: 2_000, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    const info = await jsm.streams.info(stream);
    const consumers: ConsumerSnapshot[] = [];
    for await (const c of jsm.consumers.list(stream))
      consumers.push({
        name: c.name,
        delivered: c.delivered.stream_seq,
        ackFloor: c.ack_floor.stream_seq,
        ackPending: c.num_ack_pending,
        pending: c.num_pending,
      });
    return {
      first: info.state.first_seq,
      last: info.state.last_seq,
      messages: info.state.messages,
      consumers: consumers.sort((a, b) => a.name.localeCompare(b.name)),
    };
  } finally {
    await nc.close();
  }
}

/** Publish with the same envelopes until stored: ids make a repeat a duplicate, never a new event. */
async function publishUntilStored(transport: Transport, envelopes: readonly Envelope[]) {
  const deadline = Date.now() + 60_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await transport.publish(envelopes);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await delay(Math.min(1_000, 50 * attempt));
    }
  }
}

const LEASE_MS = 3_000;

/**
 * The crash combination of issue 14: one durable subscriber served by 3 processes that are
 * SIGKILLed every 200–400 ms and restarted, a second subscriber in one process never killed, and
 * the nats-server itself SIGKILLed twice mid-stream and restarted on the same store.
 */
async function serverCrashRun(run: number) {
  const dir = mkdtempSync(join(tmpdir(), "torture-server-crash-"));
  const began = Date.now();
  const server = await startNatsServer(join(dir, "server"));
  const spec: TransportSpec = {
    kind: "nats",
    url: server.url,
    ...uniqueStream("crash"),
    receipts: true,
    // TORTURE_RETENTION=interest runs the scenario on the retention that lost events (issue 14).
    ...(process.env.TORTURE_RETENTION === "interest" ? { retention: "interest" as const } : {}),
  };
  const killed: Group = {
    subscriber: "crash-killed",
    processes: [],
    live: new Map(),
    children: [],
  };
  const steady: Group = {
    subscriber: "crash-steady",
    processes: [],
    live: new Map(),
    children: [],
  };
  const otherErrors: string[] = [];
  const evidence: string[] = [];
  let consumerKills = 0;
  let serverKills = 0;
  let publisher: Transport | undefined;

  const start = (group: Group): Child => {
    const n = group.processes.length;
    const record: ProcessRecord = {
      log: join(dir, `${group.subscriber}-${n}.log`),
      stderr: join(dir, `${group.subscriber}-${n}.stderr`),
      end: "running",
    };
    const child = startChild(
      "consumer.ts",
      {
        transport: spec,
        dlqPath: join(dir, "dead-letters.db"),
        subscriber: group.subscriber,
        log: record.log,
        concurrency: 4,
        leaseMs: LEASE_MS,
        maxAttempts: 50,
        workMs: 12,
        drainTimeoutMs: 2_000,
        drainOnSigterm: false,
      },
      record.stderr,
      `${group.subscriber}-${n}`,
    );
    group.processes.push(record);
    group.children.push(child);
    group.live.set(child, record);
    void child.exited.then((exit) => {
      record.exitCode = exit.code;
      record.exitSignal = exit.signal;
      group.live.delete(child);
      if (record.end === "running") record.end = "crashed";
    });
    return child;
  };
  const allReady = (group: Group) =>
    Promise.all([...group.live.keys()].map((c) => c.next(isReady, 60_000)));

  try {
    const first = [...Array.from({ length: 3 }, () => start(killed)), start(steady)];
    await Promise.all(first.map((c) => c.next(isReady, 60_000)));
    publisher = await openTransport(spec);

    const keys = Array.from({ length: serverCrash.events }, (_, n) => `k${n}`);
    const envelopes = keys.map((key, n) =>
      createEnvelope({
        type: "TORTURE_JOB",
        source: "server-crash",
        // Some long handlers, so a kill often lands on work in flight.
        data: tortureCatalog.parse("TORTURE_JOB", n % 40 === 39 ? { key, work_ms: 150 } : { key }),
      }),
    );
    let published = false;
    let serverDown = false;
    /** When each server kill happened (ms), to tell why a delivery came again. */
    const serverKilledAt: number[] = [];
    let publishedCount = 0;
    const publishing = (async () => {
      const tick = 50;
      const batches = Math.max(1, Math.ceil(serverCrash.publishMs / tick));
      const per = Math.ceil(envelopes.length / batches);
      const t0 = Date.now();
      for (let b = 0; b * per < envelopes.length; b++) {
        await publishUntilStored(publisher, envelopes.slice(b * per, (b + 1) * per));
        publishedCount = Math.min(envelopes.length, (b + 1) * per);
        const due = t0 + (b + 1) * tick;
        if (due > Date.now()) await delay(due - Date.now());
      }
      published = true;
    })();

    // SIGKILL a random process of the killed subscriber every 200–400 ms; restart one at once
    // (not while the server is down: a process must be able to connect to start).
    const killing = (async () => {
      // A restarted process needs a second or two before it consumes (and is worth killing), so
      // kills go on after publishing until `minKills`, bounded in time.
      const stopBy = Date.now() + serverCrash.publishMs + 30_000;
      while (
        !(published && consumerKills >= serverCrash.minKills) &&
        consumerKills < serverCrash.maxKills &&
        Date.now() < stopBy
      ) {
        await delay(between(200, 400));
        if (serverDown) continue;
        const candidates = [...killed.live.entries()].filter(([, r]) => r.end === "running");
        const picked = candidates[Math.floor(Math.random() * candidates.length)];
        if (!picked || !picked[0].messages.some(isReady)) continue;
        picked[1].end = "sigkill";
        picked[1].killedAt = Date.now();
        picked[0].kill("SIGKILL");
        consumerKills++;
        start(killed);
      }
    })();

    // SIGKILL the server twice mid-stream, each time within AckWait of a consumer kill, so
    // deliveries a killed process held are still unacknowledged when the server dies.
    const crashing = (async () => {
      for (let k = 1; k <= 2; k++) {
        // At a third and two thirds of the events, while they flow.
        await eventually(
          () => publishedCount >= (envelopes.length * k) / 3,
          `${k} third(s) of the events published`,
          serverCrash.publishMs + 60_000,
          20,
        );
        serverDown = true; // no replacement starts now: it could not connect
        await allReady(killed);
        const before = await snapshot(server.url, spec.stream).catch(() => undefined);
        serverKilledAt.push(Date.now());
        await server.kill();
        serverKills++;
        await delay(between(300, 1_000));
        await server.start();
        serverDown = false;
        const after = await snapshot(server.url, spec.stream).catch(() => undefined);
        evidence.push(
          `server kill ${k}: before ${JSON.stringify(before)}`,
          `server kill ${k}: after restart ${JSON.stringify(after)}`,
        );
      }
    })();

    await publishing;
    await Promise.all([killing, crashing]);

    const reconcileGroup = (group: Group): Reconciliation =>
      reconcile({
        expected: keys,
        poison: [],
        deadLettered: [],
        ledger: readLedger(group.processes),
        processes: group.processes,
        kills: group === killed ? consumerKills : 0,
        restarts: group === killed ? consumerKills : 0,
      });
    // Done when the server has nothing left to deliver to either subscriber.
    const drained = async () => {
      const stats = await publisher!.stats();
      const settled = stats.subscribers.every((s) => s.pending === 0 && s.inFlight === 0);
      return settled && reconcileGroup(killed).lost === 0 && reconcileGroup(steady).lost === 0;
    };
    const backlogEmpty = async () => {
      const stats = await publisher!.stats();
      return stats.subscribers.every((s) => s.pending === 0 && s.inFlight === 0);
    };
    await eventually(drained, "every event handled by both subscribers", 20_000, 250).catch(
      () => {},
    );
    // What the server will never deliver: the audit names it (receipts) and hands it back.
    await eventually(backlogEmpty, "an empty backlog", size.drainMs, 250).catch((error: unknown) =>
      otherErrors.push((error as Error).message),
    );
    const lostBeforeAudit = {
      killed: reconcileGroup(killed).lost,
      steady: reconcileGroup(steady).lost,
    };
    const notDone = (group: Group) => {
      const done = new Set(
        readLedger(group.processes)
          .entries.filter((e) => e.kind === "done")
          .map((e) => e.key),
      );
      return keys.filter((k) => !done.has(k));
    };
    const lostKeysBeforeAudit = [...notDone(killed), ...notDone(steady)];
    const repairAt = Date.now();
    const report = await (publisher as NatsTransport).audit({ repair: true });
    const keyOf = new Map(envelopes.map((e) => [e.id, (e.data as { key: string }).key]));
    const named = new Set(
      report.consumers.flatMap((c) => (c.unhandled ?? []).map((u) => keyOf.get(u.id))),
    );
    // What the repair handed back, per subscriber: a later run of it may have the same attempt.
    const repairedBy = (subscriber: string) =>
      new Set(
        report.consumers
          .filter((c) => c.subscriber === subscriber)
          .flatMap((c) => (c.unhandled ?? []).map((u) => keyOf.get(u.id) ?? u.id)),
      );
    // Sound: every event the server skipped is named by the audit.
    const missedByAudit = lostKeysBeforeAudit.filter((k) => !named.has(k));
    if (missedByAudit.length > 0)
      otherErrors.push(
        `the audit did not name lost events: ${missedByAudit.slice(0, 10).join(", ")}`,
      );
    evidence.push(
      `audit: ${JSON.stringify(report.consumers.map((c) => ({ ...c, unhandled: c.unhandled?.map((u) => u.seq) })))}`,
    );
    if (report.requeued > 0)
      await eventually(drained, "the handed-back events handled", size.drainMs, 250).catch(
        (error: unknown) => otherErrors.push((error as Error).message),
      );
    const final = await snapshot(server.url, spec.stream).catch(() => undefined);
    evidence.push(`end: ${JSON.stringify(final)}`);

    for (const group of [killed, steady]) {
      for (const [c, r] of group.live) {
        r.end = "stopped";
        c.send("stop");
      }
    }
    const survivors = [...killed.live.keys(), ...steady.live.keys()];
    await Promise.race([Promise.all(survivors.map((c) => c.exited)), delay(20_000)]);

    const results = [killed, steady].map((group) => {
      const ledger = readLedger(group.processes);
      const r = reconcileGroup(group);
      const errors = [...ledger.errors];
      const why = explainDuplicates(ledger.entries, {
        serverKilledAt,
        leaseMs: LEASE_MS,
        processes: group.processes,
        order: (key) => Number(key.slice(1)),
        ...(report.requeued > 0
          ? { repaired: { keys: repairedBy(group.subscriber), at: repairAt } }
          : {}),
      });
      printReconciliation(
        `server crash · nats · ${size.mode} · run ${run} · ${group.subscriber} (${Math.round((Date.now() - began) / 100) / 10} s)`,
        { ...r, errors: errors.length },
        {
          "server kills (SIGKILL, same store)": serverKills,
          "consumer processes": group.processes.length,
          "duplicates: a later attempt (a lease ended: a kill)": why.laterAttempt,
          "duplicates: same attempt again after a server kill": why.afterServerCrash,
          "duplicates: same attempt again after a hand-back on close": why.afterHandBack,
          "duplicates: same attempt again after the audit's repair": why.afterRepair,
          "duplicates: same attempt again, the server stepped back (#5305)": why.serverRewound,
          "duplicates: unexplained": why.unexplained.length,
          "skipped by the server, found by the audit":
            group === killed ? lostBeforeAudit.killed : lostBeforeAudit.steady,
          "handed back by the audit (both subscribers)": report.requeued,
        },
        errors,
      );
      for (const u of why.explained.slice(0, 10)) console.log(`  explained duplicate: ${u}`);
      for (const u of why.unexplained.slice(0, 10)) console.log(`  unexplained duplicate: ${u}`);
      return { group: group.subscriber, r, errors, why };
    });
    console.log(["evidence:", ...evidence, ...otherErrors].join("\n  "));
    return { results, consumerKills, serverKills, otherErrors, lostBeforeAudit, report };
  } finally {
    await reapAll([...killed.children, ...steady.children]);
    await publisher?.close().catch(() => {});
    await server.kill();
    if (process.env.TORTURE_KEEP) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

const binary = natsServerBinary();
const loaded = await loadNats();
const available = binary.ok
  ? loaded.ok
    ? await natsAvailability()
    : { ok: false as const, reason: loaded.reason, missingPackage: true }
  : { ok: false as const, reason: binary.reason, missingPackage: false };
describeNats(available, "consumer and server crashes on NATS JetStream", { tags: ["slow"] }, () => {
  for (let run = 1; run <= serverCrash.runs; run++) {
    it(
      `loses nothing when killed consumers and a killed server combine (run ${run} of ${serverCrash.runs}, ${serverCrash.events} events, ${size.mode})`,
      async () => {
        const { results, consumerKills, serverKills, otherErrors } = await serverCrashRun(run);
        printTable(`server crash · run ${run} · summary`, [
          ["consumer kills", consumerKills],
          ["server kills", serverKills],
          ...results.map(
            (x) =>
              [`${x.group}: handled / lost`, `${x.r.handledUnique} / ${x.r.lost}`] as [
                string,
                string,
              ],
          ),
        ]);
        expect(otherErrors).toEqual([]);
        expect(serverKills).toBe(2);
        expect(consumerKills).toBeGreaterThan(0);
        for (const { r, errors, why } of results) {
          expect(r.lostKeys).toEqual([]);
          expect(why.unexplained).toEqual([]);
          expect(errors).toEqual([]);
          expect(r.handledUnique).toBe(serverCrash.events);
        }
      },
      testTimeoutMs,
    );
  }
});
