// A consumer process of the kill-loop and shutdown suites: a router over the configured transport
// (the dead-letter store as the transport's sink) handling TORTURE_JOB as `subscriber`. It writes
// its ledger (see harness/ledger.ts) with appendFileSync, so a SIGKILL loses at most one line.
// With `drainOnSigterm`, SIGTERM closes the router (draining in-flight work) and exits 0.
import { SqliteDeadLetterStore } from "@switchyard/dlq";
import {
  LeaseLostError,
  RouterClosedError,
  UnrecoverableError,
  createRouter,
} from "@switchyard/router";
import { tortureCatalog } from "../harness/catalog";
import { type TransportSpec, openTransport } from "../harness/transports";
import { config, guard, logger, send, sleep } from "./common";

interface ConsumerConfig {
  readonly transport: TransportSpec;
  readonly dlqPath: string;
  readonly subscriber: string;
  readonly log: string;
  readonly concurrency: number;
  readonly leaseMs: number;
  readonly maxAttempts: number;
  /** Work per event: a random 0..workMs ms unless the event says `work_ms`. */
  readonly workMs: number;
  readonly drainTimeoutMs: number;
  readonly drainOnSigterm: boolean;
}

const c = config<ConsumerConfig>();
const { line, logger: log } = logger(c.log);
guard(line);

const store = new SqliteDeadLetterStore({ path: c.dlqPath, logger: log });
const transport = await openTransport(c.transport, {
  deadLetter: store,
  logger: log,
  drainTimeoutMs: c.drainTimeoutMs,
});
const router = createRouter({ catalog: tortureCatalog, transport, logger: log });

const subscription = router.subscribe(
  "TORTURE_JOB",
  async (event, ctx) => {
    const { key } = event.data;
    const attempt = ctx.attempt;
    line(`start ${key} ${attempt} ${Date.now()}`);
    if (event.data.poison) {
      line(`reject ${key} ${attempt} ${Date.now()}`);
      throw new UnrecoverableError(`poison event ${key}: rejected by design`);
    }
    const work = event.data.work_ms ?? Math.floor(Math.random() * (c.workMs + 1));
    try {
      if (work > 0) await sleep(work, ctx.signal);
    } catch (error) {
      // Why: `closed` = the subscription closed with this handler still running, so the
      // delivery is handed back (not an attempt); `lease` = its lease ran out.
      const reason: unknown = ctx.signal.reason;
      const why =
        reason instanceof RouterClosedError
          ? "closed"
          : reason instanceof LeaseLostError
            ? "lease"
            : "other";
      line(`abort ${key} ${attempt} ${Date.now()} ${why}`);
      throw error;
    }
    line(`done ${key} ${attempt} ${Date.now()}`);
  },
  {
    name: c.subscriber,
    concurrency: c.concurrency,
    leaseMs: c.leaseMs,
    maxAttempts: c.maxAttempts,
    backoff: { initialMs: 50, maxMs: 500 },
  },
);
await subscription.ready;

if (c.drainOnSigterm) {
  process.once("SIGTERM", () => {
    line(`sigterm ${Date.now()}`);
    void (async () => {
      try {
        await router.shutdown({ timeoutMs: c.drainTimeoutMs + 5_000 });
        store.close();
        line(`closed ${Date.now()}`);
        process.exit(0);
      } catch (error) {
        line(`error shutdown failed: ${String((error as Error)?.stack ?? error)}`);
        process.exit(71);
      }
    })();
  });
}
// The parent's "stop" at the end of a run: same graceful path.
process.on("message", (m) => {
  if (m !== "stop") return;
  void router.shutdown({ timeoutMs: c.drainTimeoutMs + 5_000 }).then(() => {
    store.close();
    send({ stopped: true });
    process.exit(0);
  });
});
line(`ready ${process.pid} ${Date.now()}`);
send({ ready: true, pid: process.pid });
