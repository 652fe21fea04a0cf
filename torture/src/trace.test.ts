// One trace across processes, with the real OpenTelemetry SDK in each: a publishing daemon, a
// consuming daemon whose handler fails once (retry), then for good (dead letter), and a replay
// of the dead letter from a third party (the driver's admin, as `switchyard dlq replay` does).
// Over SQLite and over NATS, with `process` spans children of the send (the default) or linked to
// it: every span of the event's life carries the publisher's trace, with the semconv span kinds,
// and each settle says what the transport did (the retry's delay, the dead letter's reason).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sqliteDriver } from "@switchyard/cross-process-queue";
import { decideOutcome, openDriver } from "@switchyard/transport";
import { natsDriver } from "@switchyard/transport-nats";
import { afterEach, describe, expect, it } from "vitest";
import { type Child, isReady, reapAll, startChild } from "./harness/children";
import { NATS_URL, deleteStream, natsAvailability, uniqueStream } from "./harness/nats";

interface SpanLine {
  pid: number;
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  links: { traceId: string; spanId: string }[];
  attributes: Record<string, unknown>;
  events: { name: string; attributes?: Record<string, unknown> }[];
}

/** `SpanKind` as `@opentelemetry/api` numbers it (what traced.ts writes). */
const PRODUCER = 3;
const CONSUMER = 4;
/** The consumer's policy in traced.ts: the delay the transport applies before its second attempt. */
const retryDelayOf = (id: string) => {
  const outcome = decideOutcome(
    { failed: true, error: new Error("transient") },
    1,
    { maxAttempts: 2, backoff: { initialMs: 20, maxMs: 20 } },
    id,
  );
  if (outcome.kind !== "retry") throw new Error(`expected a retry, got ${outcome.kind}`);
  return outcome.delayMs;
};

const nats = await natsAvailability();
const streams: string[] = [];

const targets: { name: string; target: (dir: string) => string; skip?: string }[] = [
  { name: "sqlite", target: (dir) => `sqlite:${join(dir, "coordination.db")}` },
  {
    name: "nats",
    target: () => {
      const { stream, prefix } = uniqueStream("trace");
      streams.push(stream);
      return `${NATS_URL}/${stream}?prefix=${prefix}`;
    },
    ...(nats.ok ? {} : { skip: nats.reason }),
  },
];

describe(
  "one trace across processes, through a retry, a dead letter and its replay",
  { tags: ["slow"] },
  () => {
    const children: Child[] = [];
    const dirs: string[] = [];
    afterEach(async () => {
      await reapAll(children.splice(0));
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
      for (const stream of streams.splice(0)) {
        await deleteStream(NATS_URL, stream).catch(() => {});
        await deleteStream(NATS_URL, `${stream}_DLQ`).catch(() => {});
      }
    });

    for (const t of targets)
      for (const relationship of ["parent", "link"] as const) {
        const run = t.skip && process.env.CI !== "true" ? it.skip : it;
        if (t.skip && relationship === "parent")
          console.log(`trace test on ${t.name} skipped: ${t.skip}`);
        run(
          `on ${t.name}, process spans ${relationship === "parent" ? "children of" : "linked to"} the send`,
          async () => {
            const dir = mkdtempSync(join(tmpdir(), "trace-"));
            dirs.push(dir);
            const target = t.target(dir);
            const spans = join(dir, "spans.jsonl");
            const consumer = startChild(
              "traced.ts",
              { role: "consumer", target, spans, log: join(dir, "consumer.log"), relationship },
              join(dir, "consumer.err"),
              "consumer",
            );
            children.push(consumer);
            await consumer.next(isReady, 60_000);
            const publisher = startChild(
              "traced.ts",
              { role: "publisher", target, spans, log: join(dir, "publisher.log") },
              join(dir, "publisher.err"),
              "publisher",
            );
            children.push(publisher);
            const { published, traceparent } = await publisher.next<{
              published: string;
              traceparent: string;
            }>((m) => typeof (m as { published?: unknown }).published === "string", 60_000);
            await consumer.next((m) => (m as { run?: number }).run === 2, 30_000);

            // The dead letter, replayed by a third party through the driver, as the CLI does.
            const driver = await openDriver(target, { drivers: [sqliteDriver, natsDriver] });
            try {
              let replayed = 0;
              const deadline = Date.now() + 30_000;
              while (replayed === 0 && Date.now() < deadline) {
                const result = await driver.admin().replay({ subscriber: "traced-consumer" });
                replayed = result.replayed.length;
                if (replayed === 0) await new Promise((r) => setTimeout(r, 100));
              }
              expect(replayed).toBe(1);
            } finally {
              await driver.close();
            }
            await consumer.next((m) => (m as { run?: number }).run === 3, 30_000);
            consumer.send("stop");
            publisher.send("stop");
            await consumer.next((m) => (m as { stopped?: boolean }).stopped === true, 30_000);

            const lines = readFileSync(spans, "utf8")
              .trim()
              .split("\n")
              .map((l) => JSON.parse(l) as SpanLine);
            const trace = traceparent.split("-")[1];
            const mine = lines.filter((s) => s.traceId === trace);
            const send = mine.find((s) => s.name === "send TORTURE_JOB")!;
            const cycle = mine.find((s) => s.name === "export cycle")!;
            expect(send.pid).toBe(publisher.pid);
            expect(send.kind).toBe(PRODUCER);
            expect(send.parentSpanId).toBe(cycle.spanId);
            expect(send.attributes["messaging.message.id"]).toBe(published);
            // Linked, each attempt is the root of its own trace: the file holds this one event's.
            const processes = (relationship === "parent" ? mine : lines).filter(
              (s) => s.name === "process TORTURE_JOB",
            );
            expect(processes).toHaveLength(3);
            for (const p of processes) {
              expect(p.pid).toBe(consumer.pid);
              expect(p.kind).toBe(CONSUMER);
              expect(p.attributes["messaging.consumer.group.name"]).toBe("traced-consumer");
              const toSend = { traceId: trace, spanId: send.spanId };
              if (relationship === "parent") {
                // Each attempt, and the replay, a child of the send, and linked to it too (the
                // semantic conventions ask every process span to link its creation context).
                expect(p.parentSpanId).toBe(send.spanId);
                expect(p.links).toEqual([toSend]);
              } else {
                // A root span in a trace of its own (no other context is active), linked to the send.
                expect(p.parentSpanId).toBeUndefined();
                expect(p.traceId).not.toBe(trace);
                expect(p.links).toEqual([toSend]);
              }
            }
            const settles = Object.fromEntries(
              processes.map((p) => {
                const settle = p.events.find((e) => e.name === "settle")?.attributes ?? {};
                return [settle["switchyard.settle.outcome"] as string, settle];
              }),
            );
            expect(Object.keys(settles).sort()).toEqual(["ack", "dead_letter", "retry"]);
            expect(settles.retry).toEqual({
              "messaging.operation.type": "settle",
              "switchyard.settle.outcome": "retry",
              "switchyard.retry.delay_ms": retryDelayOf(published),
            });
            expect(settles.dead_letter).toEqual({
              "messaging.operation.type": "settle",
              "switchyard.settle.outcome": "dead_letter",
              "switchyard.dead_letter.reason": "unrecoverable",
            });
            expect(settles.ack).toEqual({
              "messaging.operation.type": "settle",
              "switchyard.settle.outcome": "ack",
            });
            // Parented, nothing of this event's life went to another trace.
            if (relationship === "parent")
              expect(
                lines.filter((s) => s.name.endsWith("TORTURE_JOB") && s.traceId !== trace),
              ).toEqual([]);
          },
          180_000,
        );
      }
  },
);
