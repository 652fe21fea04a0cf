import { defineCatalog, defineEvent } from "@switchyard/event-schema";
import { z } from "zod";

/** A small catalog for router tests: local (non-durable) and durable types. */
export const testCatalog = defineCatalog([
  defineEvent({
    type: "JOB_STARTED",
    description: "t",
    data: z.looseObject({ n: z.number().int() }),
  }),
  defineEvent({
    type: "JOB_FINISHED",
    description: "t",
    data: z.looseObject({ n: z.number().int(), ok: z.boolean().optional() }),
  }),
  defineEvent({
    type: "JOB_FAILED",
    description: "t",
    data: z.looseObject({ n: z.number().int(), error: z.string() }),
  }),
  defineEvent({ type: "NODE_JOINED", description: "t", data: z.looseObject({ host: z.string() }) }),
  defineEvent({
    type: "MODEL_SAVED",
    description: "t",
    durable: true,
    data: z.looseObject({ config_key: z.string(), n: z.number() }),
  }),
  defineEvent({
    type: "MODEL_LOADED",
    description: "t",
    durable: true,
    data: z.looseObject({ config_key: z.string() }),
  }),
]);
export type TestCatalog = typeof testCatalog;

/** Resolves after `ms`. */
export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `check` until it returns true (bounded). */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await delay(5);
  }
}

/** A logger that remembers what it was told. */
export function memoryLogger() {
  const lines: { level: string; obj: unknown; msg: string | undefined }[] = [];
  const at = (level: string) => (obj: unknown, msg?: string) =>
    void lines.push({ level, obj, msg });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
