import { jetstream } from "@nats-io/jetstream";
import { type NatsConnection, connect } from "@nats-io/transport-node";
import { join } from "node:path";
import { sqliteTransport } from "@switchyard/cross-process-queue";
import { createEnvelope } from "@switchyard/event-schema";
import {
  type NatsTransport,
  durableName,
  natsTransport,
  receiptStreamName,
} from "@switchyard/transport-nats";
import { afterEach, beforeEach, expect, it } from "vitest";
import {
  NATS_URL,
  deleteStream,
  describeIf,
  eventually,
  natsAvailable,
  uniqueNames,
} from "../../transport-nats/src/test/nats";
import { cli, tempDir } from "./test/fixture";

describeIf(await natsAvailable(), "switchyard audit on NATS", { tags: ["slow"] }, () => {
  let names: { stream: string; prefix: string };
  let transport: NatsTransport;
  let admin: NatsConnection;
  const args = () => ["audit", "--transport", `${NATS_URL}/${names.stream}?prefix=${names.prefix}`];

  beforeEach(async () => {
    names = uniqueNames("audit");
    admin = await connect({ servers: NATS_URL });
    transport = natsTransport({
      servers: NATS_URL,
      ...names,
      receipts: true,
      pullExpiresMs: 1_000,
    });
  });
  afterEach(async () => {
    await transport.close();
    await deleteStream(NATS_URL, names.stream);
    await deleteStream(NATS_URL, receiptStreamName(names.stream));
    await admin.close();
  });

  it("exits 1 naming an event the ack floor passed unhandled, and 0 once --repair handed it back", async () => {
    const handled: number[] = [];
    const subscribe = () =>
      transport.subscribe({
        subscriber: "worker",
        types: ["JOB"],
        handler: async (d) => void handled.push((d.envelope.data as { n: number }).n),
      });
    const job = (n: number) =>
      createEnvelope({ type: "JOB", source: "cli-audit-test", data: { n } });
    const first = await subscribe();
    await transport.publish([job(1)]);
    await eventually(() => handled.length === 1, "job 1 handled");
    await first.close();
    const skipped = job(2);
    await transport.publish([skipped]);
    // Acknowledged without a handler: what a server that moved the ack floor past it leaves behind.
    const consumer = await jetstream(admin).consumers.get(
      names.stream,
      durableName(names.prefix, "worker", "JOB"),
    );
    await (await consumer.next({ expires: 2_000 }))!.ackAck();

    const found = await cli([...args(), "--json"]);
    expect(found.code, found.stderr).toBe(1);
    const report = found.json();
    expect(report.gaps).toBe(1);
    expect(report.consumers[0].unhandled.map((u: { id: string }) => u.id)).toEqual([skipped.id]);
    const text = await cli(args());
    expect(text.stdout).toContain(`${skipped.id} (stream seq`);
    expect(text.stdout).toContain("--repair");

    const repaired = await cli([...args(), "--repair"]);
    expect(repaired.code).toBe(0);
    expect(repaired.stdout).toContain("1 event handed back");
    await subscribe();
    await eventually(() => handled.includes(2), "job 2 handled after the repair");
    await eventually(async () => (await cli(args())).code === 0, "a clean audit");
  });

  it("says audit is not supported on a transport without an ack floor (SQLite)", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const db = join(dir, "coordination.db");
      await sqliteTransport({ path: db, pruneIntervalMs: 0 }).close();
      const run = await cli(["audit", "--db", db]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain("audit is not supported on sqlite");
    } finally {
      cleanup();
    }
  });
});
