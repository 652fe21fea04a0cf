import { type AnyCatalog, SwitchyardError, isCatalog } from "@switchyard/event-schema";

/**
 * A pipeline to draw on the Pipeline page: the shape of a catalog's declared pipelines
 * (`catalog.pipelines` of `@switchyard/event-schema`), so a catalog can be passed as it is.
 */
export interface DashboardPipeline {
  readonly name: string;
  /** The payload field linking the events of one run (e.g. `config_key`). */
  readonly key: string;
  /** Event types, in flow order. */
  readonly stages: readonly string[];
  readonly description?: string;
}

/** Options of {@link createDashboard}. */
export interface DashboardOptions {
  /**
   * The path the dashboard is mounted at: every page, API route and asset is under it (e.g.
   * `"/ops/switchyard"`). @defaultValue `"/"`
   */
  readonly basePath?: string;
  /**
   * Operator actions (dead-letter replay and purge). Absent, the dashboard is read-only and the
   * server answers every write with 403. Present, a write must carry the token in the
   * `x-switchyard-token` header (a header a cross-site form cannot send, so writes are CSRF-safe).
   * @defaultValue undefined (read-only)
   */
  readonly actions?: { readonly token: string };
  /** Shown in the page titles and header. @defaultValue `"Switchyard"` */
  readonly title?: string;
  /**
   * The catalog in use (made by `defineCatalog`): its declared pipelines are drawn on the Pipeline
   * page, and its alert rules are checked in the health verdict (overview and `api/health`), as
   * `switchyard health` checks them (`checkHealth` of `@switchyard/transport`). An object with
   * only `pipelines` draws those and checks no alert rule.
   * @defaultValue none: no pipelines, no alert checks
   */
  readonly catalog?: AnyCatalog | { readonly pipelines: readonly DashboardPipeline[] };
  /**
   * Window of the catalog's "any occurrence" alert rules (a rate rule has its own window).
   * @defaultValue 3_600_000 (1 hour), as `switchyard health --alert-window`
   */
  readonly alertWindowMs?: number;
  /** A running daemon whose last heartbeat is older than this is stale. @defaultValue 120_000 */
  readonly staleAfterMs?: number;
  /** More unsettled deliveries than this makes the backlog check unhealthy. @defaultValue 1000 */
  readonly maxPending?: number;
  /** More dead letters than this makes the dead-letter check unhealthy. @defaultValue 100 */
  readonly maxDeadLetters?: number;
  /**
   * Longest a page or an API read waits for the inspector, in ms: then the read is aborted and
   * the answer is a 504 saying so, instead of a request that hangs with the transport. Each read
   * of the live tail is bound by it too: one that does not answer ends the stream with an `error`
   * event saying so (an EventSource reconnects and resumes). (`/metrics` is not bound by it: the
   * metrics have their own timeout.)
   * @defaultValue 30_000
   */
  readonly inspectorTimeoutMs?: number;
  /**
   * How often the live tail asks the inspector for new events, in ms (a wait beyond 2^31 − 1 ms,
   * about 24.8 days, is clamped to it). @defaultValue 1000
   */
  readonly tailIntervalMs?: number;
  /** Dead letters read at most to build the groups (a positive integer). @defaultValue 10_000 */
  readonly maxGroupScan?: number;
  /**
   * Events read at most, per declared pipeline, for the Pipeline page's per-key verification
   * (a key whose stages were not all read shows as not known; a positive integer).
   * @defaultValue 20_000
   */
  readonly maxPipelineScan?: number;
  /** Clock, for tests. @defaultValue Date.now */
  readonly now?: () => number;
}

/** The defaults of {@link DashboardOptions}. */
export const defaultDashboardOptions = Object.freeze({
  basePath: "/",
  title: "Switchyard",
  staleAfterMs: 120_000,
  alertWindowMs: 3_600_000,
  maxPending: 1000,
  maxDeadLetters: 100,
  inspectorTimeoutMs: 30_000,
  tailIntervalMs: 1000,
  maxGroupScan: 10_000,
  maxPipelineScan: 20_000,
});

/** An option of {@link createDashboard} or {@link serveDashboard} is not usable. */
export class DashboardOptionsError extends SwitchyardError {
  readonly option: string;

  constructor(option: string, message: string) {
    super("INVALID_DASHBOARD_OPTION", `${option}: ${message}`);
    this.option = option;
  }
}

/** The options with defaults applied, validated. */
export interface ResolvedOptions {
  /** `""` for the root, else `/path` without a trailing slash. */
  readonly base: string;
  readonly token: string | undefined;
  readonly title: string;
  readonly pipelines: readonly DashboardPipeline[];
  /** The catalog whose alert rules the health checks evaluate, when a whole catalog was given. */
  readonly alertCatalog: AnyCatalog | undefined;
  readonly alertWindowMs: number;
  readonly staleAfterMs: number;
  readonly maxPending: number;
  readonly maxDeadLetters: number;
  readonly inspectorTimeoutMs: number;
  readonly tailIntervalMs: number;
  readonly maxGroupScan: number;
  readonly maxPipelineScan: number;
  readonly now: () => number;
}

const positive = (option: string, value: number): number => {
  if (!Number.isFinite(value) || value <= 0)
    throw new DashboardOptionsError(option, `expected a positive number; got ${String(value)}.`);
  return value;
};

/** A count of records to read at most: a whole number, or every page read would be refused. */
const count = (option: string, value: number): number => {
  if (!Number.isInteger(value) || value <= 0)
    throw new DashboardOptionsError(option, `expected a positive integer; got ${String(value)}.`);
  return value;
};

/** Apply the defaults and validate, naming the option and what was expected. */
export function resolveOptions(options: DashboardOptions): ResolvedOptions {
  const merged = { ...defaultDashboardOptions, ...options };
  const basePath = merged.basePath;
  if (typeof basePath !== "string" || !basePath.startsWith("/") || /[?#\s]/.test(basePath))
    throw new DashboardOptionsError(
      "basePath",
      `expected a path starting with "/" (e.g. "/ops/switchyard"); got ${JSON.stringify(basePath)}.`,
    );
  const token = options.actions?.token;
  if (options.actions !== undefined && (typeof token !== "string" || token.length < 8))
    throw new DashboardOptionsError(
      "actions.token",
      "expected a secret of at least 8 characters (e.g. from `openssl rand -hex 16`).",
    );
  return {
    base: basePath.replace(/\/+$/, ""),
    token,
    title: String(merged.title),
    pipelines: options.catalog?.pipelines ?? [],
    alertCatalog: isCatalog(options.catalog) ? options.catalog : undefined,
    alertWindowMs: positive("alertWindowMs", merged.alertWindowMs),
    staleAfterMs: positive("staleAfterMs", merged.staleAfterMs),
    maxPending: positive("maxPending", merged.maxPending),
    maxDeadLetters: positive("maxDeadLetters", merged.maxDeadLetters),
    inspectorTimeoutMs: positive("inspectorTimeoutMs", merged.inspectorTimeoutMs),
    tailIntervalMs: positive("tailIntervalMs", merged.tailIntervalMs),
    maxGroupScan: count("maxGroupScan", merged.maxGroupScan),
    maxPipelineScan: count("maxPipelineScan", merged.maxPipelineScan),
    now: options.now ?? Date.now,
  };
}
