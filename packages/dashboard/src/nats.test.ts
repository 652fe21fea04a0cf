import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { openDriver } from "@switchyard/transport";
import { natsDriver } from "@switchyard/transport-nats";
import { afterAll, describe, it } from "vitest";
import { apiSuite } from "./test/api-suite";

// The JSON API contract on a real nats-server (NATS_URL, 127.0.0.1:4222 by default). Without one
// the suite is skipped with the reason printed; under CI=true it fails instead.
const url = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const run = `DASH_${Date.now().toString(36)}_${process.pid}`;

async function reachable(): Promise<string | undefined> {
  try {
    const nc = await connect({ servers: url, timeout: 2000, reconnect: false });
    try {
      await jetstreamManager(nc, { timeout: 2000 });
    } finally {
      await nc.close();
    }
    return undefined;
  } catch (error) {
    return `NATS with JetStream at ${url}: ${(error as Error).message}`;
  }
}

const unavailable = await reachable();
let streams = 0;

if (unavailable === undefined) {
  apiSuite("the NATS driver", () =>
    openDriver(`${url}/${run}_${++streams}?prefix=dash.${run.toLowerCase()}.${streams}`, {
      drivers: [natsDriver],
    }),
  );
  afterAll(async () => {
    const nc = await connect({ servers: url });
    const jsm = await jetstreamManager(nc);
    for await (const name of jsm.streams.names())
      if (name.startsWith(run)) await jsm.streams.delete(name);
    await nc.close();
  });
} else if (process.env.CI === "true")
  describe("the JSON API on the NATS driver", () => {
    it("has a nats-server (CI=true does not allow skipping)", () => {
      throw new Error(`${unavailable}. Under CI=true the NATS suite must run.`);
    });
  });
else {
  console.warn(`dashboard NATS suite skipped: ${unavailable}`);
  describe.skip(`the JSON API on the NATS driver — skipped: ${unavailable}`, () => {
    it("needs a nats-server", () => {});
  });
}
