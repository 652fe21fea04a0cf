import { defineEvent, pipelineCatalog } from "@switchyard/event-schema";
import { z } from "zod";

/** The load the torture suites push through the transports: one unit of work, identified by `key`. */
export const TortureJob = defineEvent({
  type: "TORTURE_JOB",
  description: "A unit of torture load; `key` identifies it in the ledgers",
  durable: true,
  data: z.looseObject({
    key: z.string().min(1),
    /** Designed to fail: the handler rejects it with `UnrecoverableError`. */
    poison: z.boolean().optional(),
    /** How long the handler works on it, in ms (otherwise the consumer's default). */
    work_ms: z.number().int().nonnegative().optional(),
  }),
});

/** A second durable type, so subscribers with several types (and partial workers) are exercised. */
export const TortureTick = defineEvent({
  type: "TORTURE_TICK",
  description: "A second kind of torture load",
  durable: true,
  data: z.looseObject({ key: z.string().min(1) }),
});

/** The pipeline catalog plus the torture load types. */
export const tortureCatalog = pipelineCatalog.extend([TortureJob, TortureTick]);
export type TortureCatalog = typeof tortureCatalog;
