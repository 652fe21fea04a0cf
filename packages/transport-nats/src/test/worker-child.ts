// A consumer process for the fault tests, run with `node --import tsx`. It subscribes as
// "workers" and reports on stdout, one JSON object a line: {"ready"}, {"started"}, {"handled"}.
// Usage: worker-child.ts <url> <stream> <prefix> <hang|ack>
import { natsTransport } from "../index";

const [url, stream, prefix, mode] = process.argv.slice(2);
if (!url || !stream || !prefix || (mode !== "hang" && mode !== "ack"))
  throw new Error("usage: worker-child.ts <url> <stream> <prefix> <hang|ack>");

const say = (message: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify(message)}\n`);
// If the parent goes away (its end of stdin closes), go too: no orphans.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();

const transport = natsTransport({ servers: url, stream, prefix, drainTimeoutMs: 500 });
await transport.subscribe({
  subscriber: "workers",
  types: ["JOB"],
  leaseMs: 1_500,
  handler: async (d) => {
    say({ started: d.envelope.id, attempt: d.attempt, pid: process.pid });
    if (mode === "hang") await new Promise(() => {}); // killed here
    say({ handled: d.envelope.id, attempt: d.attempt, pid: process.pid });
  },
});
say({ ready: true, pid: process.pid });
