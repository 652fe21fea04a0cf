import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEnvelope } from "@switchyard/event-schema";
import { afterEach, expect, it } from "vitest";
import { sqliteTransport } from "./queue";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

it("logs claimed and settled at debug, with the outcome, the retry delay and the trace id", async () => {
  const dir = mkdtempSync(join(tmpdir(), "lifecycle-"));
  dirs.push(dir);
  const lines: { level: string; obj: Record<string, unknown>; msg?: string }[] = [];
  const at = (level: string) => (obj: unknown, msg?: string) =>
    void lines.push({ level, obj: obj as Record<string, unknown>, ...(msg ? { msg } : {}) });
  const logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  const transport = sqliteTransport({ path: join(dir, "q.db"), logger });
  let runs = 0;
  await transport.subscribe({
    subscriber: "worker",
    types: ["JOB"],
    backoff: { initialMs: 10, maxMs: 10, jitter: 0 },
    handler: async () => {
      if (++runs === 1) throw new Error("once");
    },
  });
  const envelope = createEnvelope({
    type: "JOB",
    source: "t",
    data: {},
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  });
  await transport.publish([envelope]);
  await expect.poll(() => runs, { timeout: 10_000 }).toBe(2);
  await expect
    .poll(() => lines.filter((l) => l.msg?.startsWith("settled")).length, { timeout: 10_000 })
    .toBe(2);
  await transport.close();
  const mine = lines.filter((l) => l.level === "debug" && l.obj.eventId === envelope.id);
  expect(mine.map((l) => l.msg)).toEqual([
    `claimed JOB ${envelope.id} for worker (attempt 1)`,
    `settled JOB ${envelope.id} for worker: retry`,
    `claimed JOB ${envelope.id} for worker (attempt 2)`,
    `settled JOB ${envelope.id} for worker: ack`,
  ]);
  expect(mine[1]!.obj).toMatchObject({
    transport: "sqlite",
    delayMs: 10,
    traceId: "0af7651916cd43dd8448eb211c80319c",
  });
});
