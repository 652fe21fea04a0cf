import { join } from "node:path";
import * as contract from "@switchyard/transport";
import type { Driver } from "@switchyard/transport";
import { afterEach, describe, expect, it } from "vitest";
import {
  InspectorQueryError,
  SqliteDeadLetterStore,
  UnboundedPurgeError,
  sqliteDriver,
} from "./index";
import { tempQueue } from "./test/fixtures";

const queues: ReturnType<typeof tempQueue>[] = [];
const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  for (const q of queues.splice(0)) q.cleanup();
});

async function open(): Promise<{ q: ReturnType<typeof tempQueue>; driver: Driver }> {
  const q = tempQueue();
  queues.push(q);
  const driver = await sqliteDriver.open(
    { scheme: "sqlite", text: q.path, rest: q.path, params: {} },
    {},
  );
  closers.push(() => driver.close());
  return { q, driver };
}

describe("the SQLite package's query and purge errors are the contract's classes", () => {
  it("exports the very classes of @switchyard/transport", () => {
    expect(InspectorQueryError).toBe(contract.InspectorQueryError);
    expect(UnboundedPurgeError).toBe(contract.UnboundedPurgeError);
  });

  it("rejects a bad query with the contract's InspectorQueryError, naming the option", async () => {
    const { driver } = await open();
    const rejected = driver.inspector().events({ cursor: "not a cursor" });
    await expect(rejected).rejects.toBeInstanceOf(contract.InspectorQueryError);
    await expect(driver.admin().backup({ keep: 0 })).rejects.toMatchObject({
      code: "INVALID_QUERY",
      option: "keep",
    });
    await expect(driver.admin().backup({ keep: 0 })).rejects.toBeInstanceOf(
      contract.InspectorQueryError,
    );
  });

  it("refuses an unbounded purge with the contract's UnboundedPurgeError, from the admin and the store", async () => {
    const { q, driver } = await open();
    await expect(driver.admin().purge({})).rejects.toBeInstanceOf(contract.UnboundedPurgeError);
    const store = new SqliteDeadLetterStore({ path: join(q.dir, "dead-letters.db") });
    closers.push(() => store.close());
    expect(() => store.purge({})).toThrow(contract.UnboundedPurgeError);
    expect(() => store.purge({})).toThrow(/olderThan, type, status or subscriber/);
  });
});
