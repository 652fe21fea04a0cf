import { EventValidationError } from "@switchyard/event-schema";
import { afterEach, describe, expect, it } from "vitest";
import { type SqliteTransport, sqliteTransport } from "./index";
import { eventually, job, tempQueue } from "./test/fixtures";

let queue: ReturnType<typeof tempQueue> | undefined;
let transport: SqliteTransport | undefined;
afterEach(async () => {
  await transport?.close();
  queue?.cleanup();
  transport = queue = undefined;
});

describe("ids with an unpaired surrogate", () => {
  it("rejects them on publish instead of storing two distinct ids as one", async () => {
    queue = tempQueue();
    transport = sqliteTransport({ path: queue.path, pruneIntervalMs: 0 });
    const seen: string[] = [];
    await transport.subscribe({
      subscriber: "ids",
      types: ["JOB"],
      handler: async (delivery) => void seen.push(delivery.envelope.id),
    });
    const first = job(1, "JOB", { id: "evt-\ud800" });
    const second = job(2, "JOB", { id: "evt-\ud801" });
    await expect(transport.publish([first])).rejects.toBeInstanceOf(EventValidationError);
    await expect(transport.publish([second])).rejects.toBeInstanceOf(EventValidationError);
    const good = job(3, "JOB", { id: "evt-😀" });
    expect(await transport.publish([good])).toEqual({ published: 1, duplicates: 0 });
    await eventually(() => seen.length === 1, "the well-formed event");
    expect(seen).toEqual(["evt-😀"]);
  });
});
