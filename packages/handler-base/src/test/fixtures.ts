import { type AnyCatalog, type PipelineCatalog, pipelineCatalog } from "@switchyard/event-schema";
import { type Logger, type Router, type RouterOptions, createRouter } from "@switchyard/router";

/** Resolves after `ms`. */
export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Poll `check` until it returns true (bounded). */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until)
      throw new Error(`condition not met within ${timeoutMs} ms: ${check.toString()}`);
    await delay(5);
  }
}

/**
 * Whether `promise` settles within `ms` (without failing the test when it rejects). Its timer is
 * cleared either way, so tests can count the timers left behind.
 */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Block the event loop (a synchronous handler gone wrong). */
export function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spinning on purpose
  }
}

/** A logger that remembers what it was told. */
export function memoryLogger(): Logger & {
  lines: { level: string; obj: unknown; msg: string | undefined }[];
} {
  const lines: { level: string; obj: unknown; msg: string | undefined }[] = [];
  const at = (level: string) => (obj: unknown, msg?: string) =>
    void lines.push({ level, obj, msg });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** A clock the test moves by hand. */
export function manualClock(start = Date.UTC(2026, 0, 3)) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => void (now += ms),
  };
}

const routers: Router<AnyCatalog>[] = [];

/** A router over the pipeline catalog (or `options.catalog`), shut down by {@link closeRouters}. */
export function makeRouter(
  options: Partial<RouterOptions<PipelineCatalog>> = {},
): Router<PipelineCatalog> {
  const router = createRouter({ catalog: pipelineCatalog, ...options });
  routers.push(router as unknown as Router<AnyCatalog>);
  return router;
}

/** Shut down every router made by {@link makeRouter} (call in afterEach). */
export async function closeRouters(): Promise<void> {
  await Promise.all(routers.splice(0).map((r) => r.shutdown({ timeoutMs: 100 })));
}

/** A valid payload of each pipeline event type the tests publish. */
export const payloads = {
  training: (config_key = "hex8_2p", loss = 0.12) => ({
    config_key,
    model_path: `models/${config_key}.pt`,
    loss,
  }),
  evaluation: (config_key = "hex8_2p", elo = 1600) => ({
    config_key,
    model_path: `models/${config_key}.pt`,
    elo,
    games_played: 200,
  }),
  selfplay: (config_key = "hex8_2p", quality_score = 0.9) => ({
    config_key,
    games_generated: 100,
    quality_score,
  }),
};
