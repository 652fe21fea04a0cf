import { randomUUID } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, it } from "vitest";
import { loadNats } from "./transports";

/** The NATS server the NATS variants use. */
export const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const CI = process.env.CI === "true";

/** Whether the NATS variants can run: the package exports `natsDriver` and JetStream answers. */
export type NatsAvailability =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: string; readonly missingPackage: boolean };

/** Check the package first (a missing one may skip, even in CI), then the server. */
export async function natsAvailability(
  url = NATS_URL,
  timeoutMs = 2_000,
): Promise<NatsAvailability> {
  const loaded = await loadNats();
  if (!loaded.ok) return { ok: false, reason: loaded.reason, missingPackage: true };
  try {
    const nc = await connect({ servers: url, timeout: timeoutMs, reconnect: false });
    try {
      await jetstreamManager(nc, { timeout: timeoutMs });
    } finally {
      await nc.close();
    }
    return { ok: true };
  } catch (error) {
    return {
      ok: false,
      reason: `NATS with JetStream does not answer at ${url}: ${(error as Error).message}`,
      missingPackage: false,
    };
  }
}

/**
 * `describe` when NATS is usable; otherwise a skip with a printed reason. Under `CI=true` an
 * unreachable server fails instead (CI must not pass by skipping); a missing package still skips.
 */
export function describeNats(
  availability: NatsAvailability,
  name: string,
  options: { tags: string[] },
  body: () => void,
): void {
  if (availability.ok) {
    describe(name, options, body);
    return;
  }
  if (CI && !availability.missingPackage) {
    describe(name, options, () => {
      it("has a NATS server (CI=true does not allow skipping)", () => {
        throw new Error(`${availability.reason}. Under CI=true the NATS variants must run.`);
      });
    });
    return;
  }
  console.warn(`skipping "${name}": ${availability.reason}`);
  describe.skip(`${name} — skipped: ${availability.reason}`, options, body);
}

/** A stream and subject prefix of our own, so runs never see each other's events. */
export function uniqueStream(label: string): { stream: string; prefix: string } {
  const id = randomUUID().replaceAll("-", "").slice(0, 12);
  return { stream: `TORTURE_${label.toUpperCase()}_${id}`, prefix: `torture.${label}.${id}` };
}

/** Delete a torture stream (one already gone is fine). */
export async function deleteStream(url: string, stream: string): Promise<void> {
  const nc = await connect({ servers: url, timeout: 2_000, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    await jsm.streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}
