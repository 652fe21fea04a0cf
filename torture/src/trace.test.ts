// One trace across processes, with the real OpenTelemetry SDK in each: a publishing daemon, a
// consuming daemon whose handler fails once (retry), then for good (dead letter), and a replay
// of the dead letter from a third party (the driver's admin, as `switchyard dlq replay` does).
// Over SQLite and over NATS: every span of the event's life carries the publisher's trace.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sqliteDriver } from "@switchyard/cross-process-queue";
import { openDriver } from "@switchyard/transport";
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
  attributes: Record<string, unknown>;
  events: { name: string; attributes?: Record<string, unknown> }[];
}

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

    for (const t of targets) {
      const run = t.skip && process.env.CI !== "true" ? it.skip : it;
      if (t.skip) console.log(`trace test on ${t.name} skipped: ${t.skip}`);
      run(
        `on ${t.name}`,
        async () => {
          const dir = mkdtempSync(join(tmpdir(), "trace-"));
          dirs.push(dir);
          const target = t.target(dir);
          const spans = join(dir, "spans.jsonl");
          const consumer = startChild(
            "traced.ts",
            { role: "consumer", target, spans, log: join(dir, "consumer.log") },
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
          expect(send.parentSpanId).toBe(cycle.spanId);
          expect(send.attributes["messaging.message.id"]).toBe(published);
          const processes = mine.filter((s) => s.name === "process TORTURE_JOB");
          expect(processes).toHaveLength(3);
          for (const p of processes) {
            expect(p.pid).toBe(consumer.pid);
            expect(p.parentSpanId).toBe(send.spanId); // each attempt, and the replay, a child of the send
            expect(p.attributes["messaging.consumer.group.name"]).toBe("traced-consumer");
          }
          const settles = processes
            .sort(
              (a, b) =>
                (a.attributes["switchyard.delivery.attempt"] as number) -
                (b.attributes["switchyard.delivery.attempt"] as number),
            )
            .map(
              (p) =>
                p.events.find((e) => e.name === "settle")?.attributes?.[
                  "switchyard.settle.outcome"
                ],
            );
          expect(settles.sort()).toEqual(["ack", "dead_letter", "retry"]);
          // Nothing of this event's life went to another trace.
          expect(
            lines.filter((s) => s.name.endsWith("TORTURE_JOB") && s.traceId !== trace),
          ).toEqual([]);
        },
        180_000,
      );
    }
  },
);
