// Child process: claims due dead letters from a shared file and records which ids it replayed.
import { appendFileSync } from "node:fs";
import { SqliteDeadLetterStore } from "@switchyard/dlq";

const [path, out] = process.argv.slice(2) as [string, string];
const store = new SqliteDeadLetterStore({ path });
let idle = 0;
while (idle < 20) {
  const claimed = store.claimDue({ limit: 5, leaseMs: 30_000 });
  if (claimed.length === 0) {
    idle++;
    await new Promise((r) => setTimeout(r, 5));
    continue;
  }
  idle = 0;
  for (const record of claimed) {
    appendFileSync(out, `${record.id}\n`);
    store.settle(record, { status: "replayed" });
  }
}
store.close();
