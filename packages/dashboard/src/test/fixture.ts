import { createEnvelope } from "@switchyard/event-schema";
import type {
  DaemonHeartbeat,
  DeliveryInfo,
  DeliveryStep,
  Driver,
  Inspector,
} from "@switchyard/transport";
import { UnrecoverableError, memoryDriver, openDriver } from "@switchyard/transport";

/** A payload built to break a page that does not escape: markup, a huge string, deep nesting. */
export function hostilePayload(depth = 200) {
  let nested: unknown = { bottom: "<img src=x onerror=alert(1)>" };
  for (let i = 0; i < depth; i++) nested = { level: i, nested };
  return {
    config_key: "<script>window.__pwned=1</script>",
    note: '</pre><script>window.__pwned=2</script><a href="javascript:alert(1)">x</a>',
    long: "A".repeat(300_000),
    nested,
  };
}

/** Poll until `check` holds (bounded). */
export async function until(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** What {@link seed} put in the transport. */
export interface Seeded {
  readonly rootId: string;
  readonly childId: string;
  readonly hostileId: string;
  readonly failingType: string;
}

/**
 * Real traffic through a driver's transport: a pipeline of two stages (a root event and the event
 * it caused), a subscriber that acks, one that always fails (3 dead letters, one signature) and
 * one that fails unrecoverably (1 dead letter), a hostile payload, and two daemons' heartbeats.
 */
export async function seed(driver: Driver): Promise<Seeded> {
  const transport = driver.transport();
  const inspector = driver.inspector();
  const root = createEnvelope({
    type: "TRAINING_COMPLETED",
    source: "trainer",
    data: { config_key: "hex8_2p", epochs: 3 },
  });
  const child = createEnvelope({
    type: "MODEL_PROMOTED",
    source: "promoter",
    data: { config_key: "hex8_2p", elo: 1612 },
    causationid: root.id,
  });
  const hostile = createEnvelope({
    type: "HOSTILE_EVENT",
    source: "attacker",
    data: hostilePayload(),
    subject: "<b>bold</b>",
  });
  const failing = [1, 2, 3].map((n) =>
    createEnvelope({
      type: "SELFPLAY_FAILED",
      source: "selfplay",
      data: { config_key: `cfg${n}` },
    }),
  );
  const poison = createEnvelope({
    type: "POISON_PILL",
    source: "selfplay",
    data: { config_key: "bad" },
  });

  await transport.subscribe({
    subscriber: "promoter",
    types: ["TRAINING_COMPLETED"],
    handler: async () => {},
  });
  await transport.subscribe({
    subscriber: "auditor",
    types: ["MODEL_PROMOTED", "HOSTILE_EVENT"],
    handler: async () => {},
  });
  await transport.subscribe({
    subscriber: "selfplay_watch",
    types: ["SELFPLAY_FAILED"],
    maxAttempts: 2,
    backoff: { initialMs: 1, maxMs: 2 },
    handler: async (d) => {
      throw new Error(
        `disk full\nwhile writing ${String((d.envelope.data as { config_key: string }).config_key)}`,
      );
    },
  });
  await transport.subscribe({
    subscriber: "pill_eater",
    types: ["POISON_PILL"],
    handler: async () => {
      throw new UnrecoverableError("<script>alert('dead')</script> cannot parse");
    },
  });
  await transport.publish([root, child, hostile, ...failing, poison]);
  await until(async () => (await inspector.deadLetterCounts()).depth === 4);
  await until(async () => (await inspector.subscribers()).every((s) => s.lag === 0));

  const sink = driver.heartbeatSink();
  await sink.write(daemonBeat("trainer_daemon", "running", Date.now()));
  await sink.write(daemonBeat("old_daemon", "running", Date.now() - 600_000));
  await sink.write(daemonBeat("crashy_daemon", "crashed", Date.now()));
  return {
    rootId: root.id,
    childId: child.id,
    hostileId: hostile.id,
    failingType: "SELFPLAY_FAILED",
  };
}

/** A daemon's heartbeat at `at` (Unix ms), with `extra` (e.g. the contracts it announces). */
export function daemonBeat(
  daemon: string,
  status: "running" | "stopped" | "crashed",
  at: number,
  extra: Partial<DaemonHeartbeat> = {},
): DaemonHeartbeat {
  return {
    daemon,
    pid: 4242,
    host: "localhost",
    status,
    health: {
      healthy: status === "running",
      status: status === "running" ? "healthy" : "unhealthy",
      message: status === "crashed" ? "boom <b>x</b>" : "ok",
      details: {},
    },
    stats: {
      eventsProcessed: 7,
      eventsDeduplicated: 0,
      successCount: 7,
      errorsCount: 0,
      successRate: 1,
      lastActivity: at,
      cyclesRun: 0,
      cycleFailures: 0,
      consecutiveCycleFailures: 0,
      eventsEmitted: 1,
      emitFailures: 0,
      consecutiveEmitFailures: 0,
    },
    restarts: status === "crashed" ? 2 : 0,
    startedAt: status === "running" ? new Date(at - 60_000).toISOString() : null,
    at: new Date(at).toISOString(),
    ...extra,
  };
}

let counter = 0;
/** A fresh memory driver (its own named store). */
export async function memory(): Promise<Driver> {
  return openDriver(`memory:dashboard-test-${process.pid}-${++counter}-${Date.now()}`, {
    drivers: [memoryDriver],
  });
}

/** GET a path through a handler, as JSON. */
export async function getJson(handler: (r: Request) => Promise<Response>, path: string) {
  const response = await handler(new Request(`http://dash.test${path}`));
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers, checked by value
  const body: any = await response.json();
  return { status: response.status, body, response };
}

export type { Inspector };

/**
 * The real inspector with a timeline of known steps instead of the driver's own, so a test can
 * name every row the page shows (the drivers' own timelines are checked in the API suite): one
 * claim per attempt, a retry scheduled between attempts with the last error, then the ack or the
 * dead-lettering, built from each delivery's real state. `extra` adds steps after those (e.g. a
 * fenced settle carrying hostile text).
 */
export function withHistory(
  inspector: Inspector,
  extra: (d: DeliveryInfo) => readonly DeliveryStep[] = () => [],
): Inspector {
  const stepsOf = (d: DeliveryInfo): DeliveryStep[] => {
    const at = d.updatedAt ?? new Date().toISOString();
    const steps: DeliveryStep[] = [];
    for (let attempt = 1; attempt <= d.attempts; attempt++) {
      steps.push({ at, kind: "claimed", attempt, by: "worker-1" });
      if (attempt < d.attempts)
        steps.push({
          at,
          kind: "retry_scheduled",
          attempt,
          delayMs: 250 * attempt,
          ...(d.lastError ? { error: d.lastError } : {}),
        });
    }
    if (d.state === "acked") steps.push({ at, kind: "acked", attempt: d.attempts });
    if (d.state === "dead")
      steps.push({
        at,
        kind: "dead_lettered",
        attempt: d.attempts,
        ...(d.deadReason ? { reason: d.deadReason } : {}),
        ...(d.lastError ? { error: d.lastError } : {}),
      });
    return [...steps, ...extra(d)];
  };
  const capabilities = { ...inspector.capabilities, history: true };
  const deliveries = async (id: string, options?: { readonly signal?: AbortSignal }) =>
    (await inspector.deliveries(id, options)).map((d) => ({ ...d, history: stepsOf(d) }));
  return new Proxy(inspector, {
    get(target, property) {
      if (property === "capabilities") return capabilities;
      if (property === "deliveries") return deliveries;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? (value as () => unknown).bind(target) : value;
    },
  });
}
