import { createEnvelope } from "@switchyard/event-schema";
import { createDashboard, serveDashboard } from "@switchyard/dashboard";
import { memoryDriver, openDriver } from "@switchyard/transport";

// Any driver: sqlite:data/coordination/coordination.db, nats://127.0.0.1:4222/SWITCHYARD, memory:…
await using driver = await openDriver("memory:readme-dashboard", { drivers: [memoryDriver] });
await driver
  .transport()
  .publish([
    createEnvelope({ type: "MODEL_PROMOTED", source: "promoter", data: { config_key: "hex8_2p" } }),
  ]);

// A Fetch handler; read-only unless actions: { token } is given.
const dashboard = createDashboard(driver, { basePath: "/ops" });
const response = await dashboard(
  new Request("http://localhost/ops/api/events?type=MODEL_PROMOTED"),
);
const page = (await response.json()) as { events: { type: string; subject?: string }[] };
console.log(page.events.map((e) => `${e.type} ${e.subject}`)); // [ 'MODEL_PROMOTED hex8_2p' ]

const write = await dashboard(
  new Request("http://localhost/ops/api/dead-letters/purge", { method: "POST", body: "{}" }),
);
console.log(write.status); // 403

// Or serve it (what `switchyard dashboard` runs); 127.0.0.1 by default.
const served = await serveDashboard({ driver, port: 0, actions: { token: "change-me-please" } });
console.log((await fetch(`${served.url}api/subscribers`)).status); // 200
await served.close();
