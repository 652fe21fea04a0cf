import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteTransport } from "@switchyard/cross-process-queue";
import { createEnvelope } from "@switchyard/event-schema";
import { parseTarget } from "@switchyard/transport";
import { afterAll, describe, expect, it } from "vitest";
import { openTransport, targetOf } from "./transports";

describe("the torture harness's transports", () => {
  const dir = mkdtempSync(join(tmpdir(), "torture-transports-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("names a spec as the target a user types", () => {
    expect(targetOf({ kind: "sqlite", path: "/tmp/t/queue.db" })).toBe("sqlite:/tmp/t/queue.db");
    const nats = targetOf({
      kind: "nats",
      url: "nats://127.0.0.1:4222, nats://127.0.0.1:4223",
      stream: "TORTURE_X",
      prefix: "torture.x",
    });
    expect(nats).toBe("nats://127.0.0.1:4222,127.0.0.1:4223/TORTURE_X?prefix=torture.x");
    expect(parseTarget(nats)).toMatchObject({
      scheme: "nats",
      rest: "//127.0.0.1:4222,127.0.0.1:4223/TORTURE_X",
      params: { prefix: "torture.x" },
    });
  });

  it("opens the transport through its driver, keeps its class, and closes both once", async () => {
    const transport = await openTransport({ kind: "sqlite", path: join(dir, "queue.db") });
    expect(transport).toBeInstanceOf(SqliteTransport);
    const seen: string[] = [];
    const subscription = await transport.subscribe({
      subscriber: "s",
      types: ["TORTURE_JOB"],
      handler: async (delivery) => void seen.push(delivery.envelope.id),
    });
    const envelope = createEnvelope({ type: "TORTURE_JOB", source: "t", data: { key: "k" } });
    await transport.publish([envelope]);
    await expect.poll(() => seen, { timeout: 5_000 }).toEqual([envelope.id]);
    await subscription.close();
    const first = transport.close();
    expect(transport.close()).toBe(first);
    await first;
    await expect(transport.publish([envelope])).rejects.toThrow();
  });
});
