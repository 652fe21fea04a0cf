import { randomUUID } from "node:crypto";
import { createEnvelope } from "@switchyard/event-schema";
import { describe, expect, it } from "vitest";
import { TransportClosedError, UnsupportedOperationError } from "./errors";
import { UnknownTargetError, openDriver } from "./driver";
import { memoryDriver } from "./memory-driver";

const drivers = [memoryDriver];
const target = () => `memory:driver-test-${randomUUID()}`;
const job = (n: number) =>
  createEnvelope({ type: "JOB", source: "memory-driver-test", data: { n } });

describe("memory driver", () => {
  it("opens the same store for the same name, like processes sharing one database", async () => {
    const name = target();
    await using writer = await openDriver(name, { drivers });
    await using reader = await openDriver(name, { drivers });
    await using stranger = await openDriver(target(), { drivers });
    await writer.transport().publish([job(1)]);
    expect((await reader.inspector().events()).events).toHaveLength(1);
    expect((await stranger.inspector().events()).events).toEqual([]);
    expect(reader.scheme).toBe("memory");
    expect(reader.target).toBe(name);
  });

  it("returns one transport per driver and dead-letters into the store the inspector reads", async () => {
    await using driver = await openDriver(target(), { drivers });
    const transport = driver.transport();
    expect(driver.transport()).toBe(transport);
    await transport.subscribe({
      subscriber: "poisoned",
      types: ["JOB"],
      maxAttempts: 1,
      handler: async () => {
        throw new Error("no");
      },
    });
    await transport.publish([job(1)]);
    const inspector = driver.inspector();
    await expect.poll(async () => (await inspector.deadLetterCounts()).depth).toBe(1);
    expect(driver.deadLetterSink()).toBeDefined();
  });

  it("opened read-only, refuses the transport, the heartbeat sink and admin writes", async () => {
    await using driver = await openDriver(target(), { drivers, readOnly: true });
    expect(() => driver.transport()).toThrow(UnsupportedOperationError);
    expect(() => driver.heartbeatSink()).toThrow(UnsupportedOperationError);
    expect(driver.deadLetterSink()).toBeUndefined();
    await expect(driver.admin().replay({ id: "1" })).rejects.toBeInstanceOf(
      UnsupportedOperationError,
    );
    await expect(driver.admin().replay({ id: "1" }, { dryRun: true })).resolves.toMatchObject({
      matched: 0,
    });
    expect(await driver.inspector().subscribers()).toEqual([]);
  });

  it("states honest capabilities: no clearPending, no backup, no audit", async () => {
    await using driver = await openDriver(target(), { drivers });
    expect(driver.capabilities).toMatchObject({
      clearPending: false,
      backup: false,
      audit: false,
      replay: true,
    });
    await expect(driver.admin().audit()).rejects.toBeInstanceOf(UnsupportedOperationError);
    await expect(driver.admin().clearPending({})).rejects.toBeInstanceOf(UnsupportedOperationError);
    await expect(driver.admin().backup()).rejects.toBeInstanceOf(UnsupportedOperationError);
    await expect(driver.admin().backup()).rejects.toThrow(
      "The memory transport cannot take a backup. It keeps nothing on disk",
    );
  });

  it("closes idempotently, and its parts refuse work afterwards", async () => {
    const driver = await openDriver(target(), { drivers });
    const inspector = driver.inspector();
    const transport = driver.transport();
    const closing = driver.close();
    expect(driver.close()).toBe(closing);
    await closing;
    expect(() => driver.inspector()).toThrow(TransportClosedError);
    await expect(inspector.events()).rejects.toBeInstanceOf(TransportClosedError);
    await expect(transport.publish([job(1)])).rejects.toBeInstanceOf(TransportClosedError);
  });

  it("is chosen by its scheme; another scheme is a usage error listing it", async () => {
    await expect(openDriver("redis://localhost", { drivers })).rejects.toBeInstanceOf(
      UnknownTargetError,
    );
    await expect(openDriver("redis://localhost", { drivers })).rejects.toThrow(/memory:…/);
  });
});
