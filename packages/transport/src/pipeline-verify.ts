import { formatDuration } from "./health-checks";
import type { Inspector, StoredEvent } from "./inspector";

/**
 * The pipeline verification: did every stage of a declared pipeline fire for a key? One rule,
 * here, read by `switchyard pipeline verify` (one key) and the dashboard's Pipeline page (every
 * key in the window), so both give the same verdict. It asks only the inspector, so it holds on
 * every transport, like the health rule (`checkHealth`).
 *
 * The rule: an event counts for key `k` of a pipeline when it is of one of the pipeline's stage
 * types, was stored within the window, and its envelope `subject` or its payload's key field
 * (`config_key` for training) equals `k`. A stage flowed when at least one event counts for it.
 * Where the transport no longer holds the window's start (retention), a stage with no event is
 * not known (`uncertain`) rather than missing.
 */

/** Options of {@link verifyPipeline} and {@link verifyPipelineKeys}. */
export interface VerifyPipelineOptions {
  /** Length of the window ending at `now`, in hours. @defaultValue 24 */
  readonly hours?: number;
  /** End of the window (Unix ms). @defaultValue `Date.now()` */
  readonly now?: number;
  /**
   * The stages to check, in order: a catalog pipeline's `stages`
   * (`catalog.pipeline("training").stages`).
   */
  readonly stages: readonly string[];
  /**
   * The payload field linking the stages (a catalog pipeline's `key`); the envelope `subject`
   * matches too. @defaultValue "config_key"
   */
  readonly key?: string;
  /** Events read at most (oldest first); more make the result `truncated`. @defaultValue 100_000 */
  readonly maxEvents?: number;
  readonly signal?: AbortSignal;
}

/** One stage of a verification. */
export interface PipelineStageResult {
  /** The stage's event type, e.g. `"TRAINING_COMPLETED"`. */
  readonly type: string;
  /** Events of this type for the key within the window. */
  readonly count: number;
  /** Whether the stage flowed (`count > 0`). */
  readonly ok: boolean;
  /** When the newest of them was stored (RFC 3339). */
  readonly lastAt?: string;
  /**
   * Set on a stage with no event when the window reaches back past what is still stored
   * (`coveredSince`): none since then, and whether one came earlier in the window cannot be
   * known, its events being pruned. Shown as `?`, not `✗`.
   */
  readonly uncertain?: true;
}

/** What is true of a whole verification window. */
export interface PipelineWindow {
  readonly hours: number;
  /** Start of the window (RFC 3339). */
  readonly since: string;
  /** End of the window (RFC 3339). */
  readonly until: string;
  /**
   * From when on every event of the window is still stored (RFC 3339): `since`, unless retention
   * pruned events of the window's start (then later; see `warnings`).
   */
  readonly coveredSince: string;
  /** What makes the result less than it seems (retention, a read cut short). Empty when none. */
  readonly warnings: readonly string[];
}

/** The verdict for one key: `complete` (every stage flowed), `incomplete`, or `uncertain` (some stage cannot be known). */
export type PipelineVerdict = "complete" | "incomplete" | "uncertain";

/** One key's stages and verdict. */
export interface PipelineKeyResult {
  /** True when every stage flowed. */
  readonly ok: boolean;
  readonly verdict: PipelineVerdict;
  /** Every stage, in pipeline order. */
  readonly stages: readonly PipelineStageResult[];
  /** The stages with no event, in pipeline order (including the `uncertain` ones). */
  readonly missing: readonly string[];
  /** When the newest event of the key was stored (RFC 3339); absent when none. */
  readonly lastAt?: string;
}

/** The result of {@link verifyPipeline}: one key. */
export interface PipelineVerification extends PipelineWindow, PipelineKeyResult {
  readonly configKey: string;
}

/** The result of {@link verifyPipelineKeys}: every key with an event in the window, newest first. */
export interface PipelineKeysVerification extends PipelineWindow {
  /** The payload field linking the stages, e.g. `config_key`. */
  readonly key: string;
  readonly stages: readonly string[];
  readonly keys: readonly (PipelineKeyResult & { readonly key: string })[];
  /** True when more keys had events than `maxKeys` (the newest are kept). */
  readonly keysTruncated: boolean;
}

/**
 * The keys an event counts for in a pipeline linked by `field`: its envelope `subject` and its
 * payload's `field`, when they are strings (one, two, or none).
 */
export function pipelineKeysOf(event: StoredEvent, field: string): string[] {
  const data = event.envelope?.data as Record<string, unknown> | undefined;
  const keys: string[] = [];
  if (typeof event.subject === "string" && event.subject !== "") keys.push(event.subject);
  const value = data !== null && typeof data === "object" ? data[field] : undefined;
  if (typeof value === "string" && value !== "" && value !== event.subject) keys.push(value);
  return keys;
}

/**
 * Did every pipeline stage fire for one key within the last `hours`?
 *
 * @example
 * ```ts
 * // not runnable
 * const training = pipelineCatalog.pipeline("training")!;
 * const result = await verifyPipeline(driver.inspector(), "hex8_2p", { stages: training.stages, key: training.key });
 * if (!result.ok) console.log("stuck before", result.missing[0]);
 * ```
 */
export async function verifyPipeline(
  inspector: Inspector,
  configKey: string,
  options: VerifyPipelineOptions,
): Promise<PipelineVerification> {
  const scan = await scanWindow(inspector, options, (key) => key === configKey);
  const tally = scan.tallies.get(configKey) ?? new Map<string, Tally>();
  return { configKey, ...scan.window, ...keyResult(options.stages, tally, scan.truncated) };
}

/**
 * Every key with an event of the pipeline in the last `hours`, each with its stages and verdict:
 * what the dashboard's Pipeline page shows per key. Newest key first, `maxKeys` at most.
 *
 * @example
 * ```ts
 * // not runnable
 * const { keys } = await verifyPipelineKeys(inspector, { stages: training.stages, key: "config_key", hours: 6 });
 * for (const k of keys) console.log(k.key, k.verdict, k.missing);
 * ```
 */
export async function verifyPipelineKeys(
  inspector: Inspector,
  options: VerifyPipelineOptions & {
    /** Keys reported at most, the newest. @defaultValue 200 */
    readonly maxKeys?: number;
  },
): Promise<PipelineKeysVerification> {
  const maxKeys = options.maxKeys ?? 200;
  const scan = await scanWindow(inspector, options, () => true);
  const keys = [...scan.tallies.entries()]
    .map(([key, tally]) => ({ key, ...keyResult(options.stages, tally, scan.truncated) }))
    .sort((a, b) => (b.lastAt ?? "").localeCompare(a.lastAt ?? "") || a.key.localeCompare(b.key));
  return {
    key: options.key ?? "config_key",
    stages: options.stages,
    ...scan.window,
    keys: keys.slice(0, maxKeys),
    keysTruncated: keys.length > maxKeys,
  };
}

interface Tally {
  count: number;
  lastAt: number;
}

/** Read the window once and count, per key and stage, the events that count for it. */
async function scanWindow(
  inspector: Inspector,
  options: VerifyPipelineOptions,
  wanted: (key: string) => boolean,
): Promise<{
  window: PipelineWindow;
  tallies: Map<string, Map<string, Tally>>;
  /** The window is not complete from `coveredSince` on (a stage with no event is not known). */
  truncated: boolean;
}> {
  const hours = options.hours ?? 24;
  if (!(hours > 0) || !Number.isFinite(hours))
    throw new RangeError(`verifyPipeline: hours must be a positive number, got ${String(hours)}.`);
  if (options.stages.length === 0)
    throw new RangeError("verifyPipeline: stages is empty; pass a catalog pipeline's stages.");
  const until = options.now ?? Date.now();
  const since = until - hours * 3_600_000;
  const field = options.key ?? "config_key";
  const maxEvents = options.maxEvents ?? 100_000;
  if (!Number.isInteger(maxEvents) || maxEvents < 1)
    throw new RangeError(
      `verifyPipeline: maxEvents must be a positive integer, got ${String(maxEvents)}.`,
    );
  const signal = options.signal;
  const tallies = new Map<string, Map<string, Tally>>();
  let read = 0;
  let cursor: string | undefined;
  do {
    const page = await inspector.events({
      types: options.stages,
      since,
      // `until` of the inspector is exclusive: an event stored in the very millisecond `now`
      // names is in the window.
      until: until + 1,
      order: "oldest",
      limit: Math.min(1000, maxEvents - read),
      ...(cursor ? { cursor } : {}),
      ...(signal ? { signal } : {}),
    });
    for (const event of page.events) {
      const at = Date.parse(event.storedAt);
      for (const key of pipelineKeysOf(event, field)) {
        if (!wanted(key)) continue;
        let stages = tallies.get(key);
        if (!stages) tallies.set(key, (stages = new Map<string, Tally>()));
        const row = stages.get(event.type);
        if (row) {
          row.count++;
          row.lastAt = Math.max(row.lastAt, at);
        } else stages.set(event.type, { count: 1, lastAt: at });
      }
    }
    read += page.events.length;
    cursor = page.next;
  } while (cursor && read < maxEvents);
  const cut = cursor !== undefined;

  // Logs number events from 1 (SQLite `seq`, the JetStream stream sequence): an oldest stored
  // event past 1 means older ones were removed, and the window is complete only from there on.
  const oldest = (
    await inspector.events({ limit: 1, order: "oldest", ...(signal ? { signal } : {}) })
  ).events[0];
  const horizon = oldest && oldest.seq > 1 ? Date.parse(oldest.storedAt) : undefined;
  const covered = horizon !== undefined ? Math.max(since, Math.min(horizon, until)) : since;
  const warnings: string[] = [];
  if (covered > since) {
    const note = `older events were removed by the ${inspector.transport} transport's retention`;
    warnings.push(
      `The ${hours} h window starts before ${new Date(covered).toISOString()} (${formatDuration(until - covered)} ago), where ` +
        `the stored events begin: ${note}. Only the last ${formatDuration(until - covered)} ` +
        `are checked in full; a stage with no event since then (?) may have fired earlier.`,
    );
  }
  if (cut)
    warnings.push(
      `Only the oldest ${read} events of the window were read (maxEvents): a stage with no event (?) may have fired later.`,
    );
  return {
    window: {
      hours,
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      coveredSince: new Date(covered).toISOString(),
      warnings,
    },
    tallies,
    truncated: covered > since || cut,
  };
}

function keyResult(
  types: readonly string[],
  tally: ReadonlyMap<string, Tally>,
  truncated: boolean,
): PipelineKeyResult {
  let last: number | undefined;
  const stages = types.map((type): PipelineStageResult => {
    const row = tally.get(type);
    if (row && row.count > 0) {
      last = Math.max(last ?? row.lastAt, row.lastAt);
      return { type, count: row.count, ok: true, lastAt: new Date(row.lastAt).toISOString() };
    }
    return truncated
      ? { type, count: 0, ok: false, uncertain: true }
      : { type, count: 0, ok: false };
  });
  const missing = stages.filter((s) => !s.ok).map((s) => s.type);
  const verdict: PipelineVerdict =
    missing.length === 0
      ? "complete"
      : stages.some((s) => s.uncertain)
        ? "uncertain"
        : "incomplete";
  return {
    ok: missing.length === 0,
    verdict,
    stages,
    missing,
    ...(last !== undefined ? { lastAt: new Date(last).toISOString() } : {}),
  };
}
