// Child process: claims due dead letters from a shared file and records which ids it replayed.
// Starts only once every sibling is ready (a file barrier), so the processes really contend.
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { SqliteDeadLetterStore } from "../dead-letters";

const [path, out, me, siblings] = process.argv.slice(2) as [string, string, string, string];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
writeFileSync(`${path}.ready-${me}`, "");
for (
  let i = 0;
  i < 2000 && !siblings.split(",").every((s) => existsSync(`${path}.ready-${s}`));
  i++
)
  await sleep(5);

const store = new SqliteDeadLetterStore({ path });
let idle = 0;
while (idle < 20) {
  const claimed = store.claimDue({ limit: 5, leaseMs: 30_000 });
  if (claimed.length === 0) {
    idle++;
    await sleep(5);
    continue;
  }
  idle = 0;
  for (const record of claimed) {
    appendFileSync(out, `${record.id}\n`);
    await sleep(1); // the replay itself takes a moment
    store.settle(record, { status: "replayed" });
  }
}
store.close();
