// The retry delay the SQLite queue applies is the one outcome policy's, with the delivery's keyed
// jitter: the same number the router's trace states (`switchyard.retry.delay_ms`).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEnvelope } from "@switchyard/event-schema";
import { type Driver, decideOutcome, openDriver } from "@switchyard/transport";
import { afterEach, expect, it } from "vitest";
import { sqliteDriver } from "./driver";

let dir: string | undefined;
let driver: Driver | undefined;
afterEach(async () => {
  await driver?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it("retries after decideOutcome's delay keyed by the envelope id (what a trace reports)", async () => {
  dir = mkdtempSync(join(tmpdir(), "keyed-"));
  driver = await openDriver(join(dir, "q.db"), { drivers: [sqliteDriver] });
  const transport = driver.transport();
  const backoff = { initialMs: 40_000, maxMs: 120_000, jitter: 0.5 };
  let failedAt = 0;
  await transport.subscribe({
    subscriber: "keyed",
    types: ["KEYED"],
    maxAttempts: 5,
    backoff,
    handler: () => {
      failedAt = Date.now();
      throw new Error("once");
    },
  });
  const envelope = createEnvelope({ type: "KEYED", source: "test", data: { n: 1 } });
  await transport.publish([envelope]);
  const inspector = driver.inspector();
  let availableAt: string | undefined;
  await expect
    .poll(
      async () => {
        const [delivery] = await inspector.deliveries(envelope.id);
        availableAt = delivery?.state === "retrying" ? delivery.availableAt : undefined;
        return availableAt !== undefined;
      },
      { timeout: 15_000, interval: 20 },
    )
    .toBe(true);
  const predicted = decideOutcome(
    { failed: true, error: new Error("once") },
    1,
    { maxAttempts: 5, backoff },
    envelope.id,
  );
  expect(predicted.kind).toBe("retry");
  const applied = Date.parse(availableAt!) - failedAt;
  // Unkeyed jitter lands anywhere in 20–60 s; keyed, it is the predicted delay.
  expect(Math.abs(applied - (predicted as { delayMs: number }).delayMs)).toBeLessThan(1_500);
}, 30_000);
