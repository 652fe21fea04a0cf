// What tracing and metrics cost on the durable path: the router over the SQLite transport, one
// process, publish → claim → handle → ack, with OpenTelemetry off, with the API alone (no SDK
// registered: no-op tracer and meter) and with the SDK recording every span and instrument.
import { join } from "node:path";
import * as otelApi from "@opentelemetry/api";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { sqliteTransport } from "@switchyard/cross-process-queue";
import { pipelineCatalog } from "@switchyard/event-schema";
import { createRouter } from "@switchyard/router";
import { type Figure, type Ratio, fromRuns } from "./harness";

const GROUP = "sqlite: tracing and metrics overhead (events/s)";
const payload = { config_key: "hex8_2p", model_path: "models/hex8_2p/gen-3.pt", elo: 1612 };

type Mode = "off" | "api" | "sdk";
const names: Record<Mode, string> = {
  off: "switchyard router over SQLite, OpenTelemetry off",
  api: "switchyard router over SQLite, OpenTelemetry API without an SDK (no-op)",
  sdk: "switchyard router over SQLite, OpenTelemetry SDK tracing + metrics on",
};
const how: Record<Mode, string> = {
  off: "no `openTelemetry` option",
  api: "`openTelemetry: { api }` with no SDK registered (no-op tracer and meter)",
  sdk: "`openTelemetry` with the SDK's BasicTracerProvider (always-on sampler, no span processor) and MeterProvider (no reader)",
};

/** One run: `events` published one per call while a durable subscription consumes them. */
async function once(path: string, mode: Mode, events: number): Promise<number> {
  const transport = sqliteTransport({ path });
  const openTelemetry =
    mode === "api"
      ? { api: otelApi }
      : mode === "sdk"
        ? {
            api: otelApi,
            tracer: new BasicTracerProvider().getTracer("bench"),
            meter: new MeterProvider().getMeter("bench"),
          }
        : undefined;
  const router = createRouter({
    catalog: pipelineCatalog,
    transport,
    ...(openTelemetry ? { openTelemetry } : {}),
  });
  let handled = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const subscription = router.subscribe(
    "MODEL_PROMOTED",
    async () => {
      if (++handled === events) done();
    },
    { name: "bench" },
  );
  let timer: NodeJS.Timeout | undefined;
  try {
    await subscription.ready;
    const start = performance.now();
    for (let i = 0; i < events; i++) await router.publish("MODEL_PROMOTED", payload);
    await Promise.race([
      all,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${names[mode]}: ${handled} of ${events} handled in 60 s`)),
          60_000,
        );
      }),
    ]);
    return (events / (performance.now() - start)) * 1000;
  } finally {
    clearTimeout(timer);
    await router.shutdown();
    await transport.close();
  }
}

/**
 * Off, API-only and SDK, each `runs` times in rotated order (a fresh database file per run);
 * the figures are medians, the ratios medians of the per-round ratios against off.
 */
export async function tracingOverhead(
  dir: string,
  quick: boolean,
): Promise<{ figures: Figure[]; ratios: Ratio[]; settings: string }> {
  const events = quick ? 500 : 3_000;
  const runs = quick ? 1 : 5;
  const modes: Mode[] = ["off", "api", "sdk"];
  const rates: Record<Mode, number[]> = { off: [], api: [], sdk: [] };
  let file = 0;
  for (let r = 0; r < runs; r++) {
    for (let k = 0; k < modes.length; k++) {
      const mode = modes[(r + k) % modes.length]!;
      rates[mode].push(await once(join(dir, `otel-${file++}.db`), mode, events));
    }
  }
  const settings = (mode: Mode) =>
    `${how[mode]}; \`createRouter()\` defaults (validation on) over \`sqliteTransport()\` defaults, one durable subscription (concurrency 1) in the same process, ${events.toLocaleString("en")} events published one per call (awaited), payload ${JSON.stringify(payload).length} B JSON (3 fields) as \`MODEL_PROMOTED\`, timed until the last was handled; ${runs} run${runs > 1 ? "s" : ""} per mode in rotated order, a fresh file each`;
  const figures = modes.map((mode) => ({
    ...fromRuns(GROUP, names[mode], rates[mode]),
    settings: settings(mode),
  }));
  const perRound = (mode: Mode) =>
    rates[mode].map((v, i) => v / rates.off[i]!).sort((a, b) => a - b)[Math.floor(runs / 2)]!;
  const ratios: Ratio[] = (["api", "sdk"] as const).map((mode) => ({
    group: "sqlite",
    description: `${mode === "api" ? "OpenTelemetry API without SDK" : "OpenTelemetry SDK tracing + metrics"} vs off, router over SQLite (same settings; median of per-round ratios): ${names[mode]} / ${names.off}`,
    value: perRound(mode),
  }));
  return {
    figures,
    ratios,
    settings:
      "Tracing overhead on SQLite: the router publishes durable events through the SQLite transport and a durable subscription in the same process handles them, with OpenTelemetry off, with the API alone and with the SDK (spans sampled and ended, then dropped: no processor, so no export cost). Each event gets a `send` span on publish and a `process` span with its settle per delivery when an SDK is registered.",
  };
}
