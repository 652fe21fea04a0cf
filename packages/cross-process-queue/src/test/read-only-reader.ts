// Child process: opens a queue file read-only through sqliteDriver (as `switchyard subscribers`
// would) and prints what the inspector reports, or the error's code. Run as an unprivileged user
// by driver.test.ts, where a read-only directory really refuses writes.
import { parseTarget } from "@switchyard/transport";
import { sqliteDriver } from "../driver";

const [path] = process.argv.slice(2) as [string];
try {
  const driver = await sqliteDriver.open(parseTarget(path), { readOnly: true });
  const inspector = driver.inspector() as { snapshot?: unknown } & ReturnType<
    typeof driver.inspector
  >;
  const subscribers = await inspector.subscribers();
  const events = (await inspector.events()).events.length;
  await driver.close();
  console.log(JSON.stringify({ subscribers, events, snapshot: inspector.snapshot !== undefined }));
} catch (error) {
  console.log(JSON.stringify({ error: (error as { code?: string }).code ?? String(error) }));
}
