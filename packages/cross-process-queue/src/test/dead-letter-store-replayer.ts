// Child process: replays every dead letter of one subscriber with store.replay() (as an operator's
// script would) and records which ids its target received. Starts only once every sibling is
// ready (a file barrier), so the replays really run at the same instant.
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
const report = await store.replay(
  { subscriber: "evaluator", limit: 1_000 },
  {
    to: {
      async replay(record) {
        appendFileSync(out, `${record.id}\n`);
        await sleep(1); // the requeue itself takes a moment
      },
    },
  },
);
writeFileSync(`${out}.report.json`, JSON.stringify(report));
store.close();
