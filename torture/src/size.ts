/**
 * The one place that reads the run size. `pnpm test` (CI) runs the bounded sizes, which keep the
 * whole torture project under ~90 s on a loaded 2-core machine; `pnpm test:torture` sets
 * `TORTURE=full` for the sizes of the issue (10,000 events through the kill loop, 20 s of
 * contention), under ~10 minutes.
 */
export const FULL = process.env.TORTURE === "full";

/** Sizes of every torture suite, bounded or full. */
export const size = FULL
  ? {
      mode: "full",
      killLoop: { events: 10_000, poison: 10, consumers: 3, publishMs: 30_000, maxKills: 40 },
      badInput: { fuzzRuns: 2_000, transportFuzzRuns: 1_000 },
      contention: { durationMs: 20_000, maxPerPublisher: 60_000 },
      shutdown: { events: 4_000, consumers: 3, publishMs: 20_000, maxTerms: 20 },
      serverCrash: { events: 10_000, publishMs: 40_000, minKills: 100, maxKills: 150, runs: 3 },
      /** Time allowed after the load for the backlog to drain. */
      drainMs: 120_000,
    }
  : {
      mode: "bounded",
      killLoop: { events: 1_500, poison: 4, consumers: 3, publishMs: 5_000, maxKills: 5 },
      badInput: { fuzzRuns: 200, transportFuzzRuns: 150 },
      contention: { durationMs: 5_000, maxPerPublisher: 10_000 },
      shutdown: { events: 800, consumers: 2, publishMs: 4_000, maxTerms: 4 },
      serverCrash: { events: 2_000, publishMs: 10_000, minKills: 15, maxKills: 40, runs: 1 },
      drainMs: 45_000,
    };

/** Per-test timeout: the sizes above plus process start-up (~1 s each) and draining. */
export const testTimeoutMs = FULL ? 300_000 : 110_000;
