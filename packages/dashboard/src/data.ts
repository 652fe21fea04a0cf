import { createHash } from "node:crypto";
import { SwitchyardError, catalogContracts } from "@switchyard/event-schema";
import type {
  Admin,
  CausationTree,
  ContractTopology,
  DeadLetterCounts,
  DeadLetterFilter,
  DeadLetterInfo,
  DeadLetterReason,
  DeadLetterStatus,
  DeliveryInfo,
  EventCounts,
  EventPage,
  EventQuery,
  HeartbeatInfo,
  Inspector,
  StoredEvent,
  SubscriberBacklog,
} from "@switchyard/transport";
import {
  type DaemonState,
  type HealthReport,
  contractTopology,
  daemonState,
  healthChecks,
  readAlertInputs,
} from "@switchyard/transport";

import type { ResolvedOptions } from "./options";

/** A request's query or body was not usable: a 400 naming the parameter. */
export class DashboardRequestError extends SwitchyardError {
  constructor(message: string) {
    super("INVALID_REQUEST", message);
  }
}

/**
 * The transport's inspector did not answer a page or an API read within `inspectorTimeoutMs`:
 * a 504. Code `INSPECTOR_TIMEOUT`.
 */
export class DashboardTimeoutError extends SwitchyardError {
  constructor(message: string) {
    super("INSPECTOR_TIMEOUT", message);
  }
}

/** Dead-letter statuses that still need attention (the `depth` of the counts). */
export const ATTENTION: readonly DeadLetterStatus[] = Object.freeze([
  "pending_retry",
  "retrying",
  "permanently_failed",
]);
const STATUSES: readonly DeadLetterStatus[] = [...ATTENTION, "replayed", "purged"];
const REASONS: readonly DeadLetterReason[] = [
  "max_attempts",
  "unrecoverable",
  "invalid_payload",
  "timeout",
];

/** Throughput windows the overview offers, by name. */
export const WINDOWS: Readonly<Record<string, { readonly ms: number; readonly bucketMs: number }>> =
  Object.freeze({
    "15m": { ms: 15 * 60_000, bucketMs: 30_000 },
    "1h": { ms: 3_600_000, bucketMs: 60_000 },
    "6h": { ms: 6 * 3_600_000, bucketMs: 5 * 60_000 },
    "24h": { ms: 24 * 3_600_000, bucketMs: 15 * 60_000 },
    "7d": { ms: 7 * 24 * 3_600_000, bucketMs: 3_600_000 },
  });

/** The window named by `?window=`, `1h` when absent. */
export function windowOf(name: string | undefined): { name: string; ms: number; bucketMs: number } {
  const key = name ?? "1h";
  // Own keys only: `constructor`, `toString` or `__proto__` are on every object's prototype.
  const window = Object.hasOwn(WINDOWS, key) ? WINDOWS[key] : undefined;
  if (!window)
    throw new DashboardRequestError(
      `window must be one of ${Object.keys(WINDOWS).join(", ")}; got ${JSON.stringify(key)}.`,
    );
  return { name: key, ...window };
}

/** A daemon with its state. */
export interface DaemonView extends HeartbeatInfo {
  readonly state: DaemonState;
}

/** What `GET <base>/api/overview` answers. */
export interface Overview {
  readonly transport: string;
  readonly generatedAt: string;
  readonly health: HealthReport;
  readonly backlog: {
    readonly subscribers: number;
    readonly lag: number;
    readonly pending: number;
    readonly inFlight: number;
    readonly retrying: number;
    readonly dead: number;
  };
  /** Subscribers with the largest lag first. */
  readonly subscribers: readonly SubscriberBacklog[];
  /** Absent when the transport stores no dead letters. */
  readonly deadLetters?: DeadLetterCounts;
  readonly daemons: Readonly<Record<DaemonState, number>> & { readonly total: number };
  readonly throughput: EventCounts & { readonly window: string };
  /** Reads that failed, by what was read. */
  readonly errors: Readonly<Record<string, string>>;
}

const attempt = async <T>(read: () => Promise<T>): Promise<T | Error> => {
  try {
    return await read();
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
};

/** Every read the overview shows, made once each (a failed read is reported, not thrown). */
export async function overview(
  inspector: Inspector,
  options: ResolvedOptions,
  windowName: string | undefined,
  signal?: AbortSignal,
): Promise<Overview> {
  const window = windowOf(windowName);
  const now = options.now();
  const caps = inspector.capabilities;
  const [subscribers, heartbeats, deadLetters, counts, alerts] = await Promise.all([
    attempt(() => inspector.subscribers({ signal })),
    caps.heartbeats ? attempt(() => inspector.heartbeats({ signal })) : undefined,
    caps.deadLetters ? attempt(() => inspector.deadLetterCounts({ signal })) : undefined,
    attempt(() =>
      inspector.counts({ since: now - window.ms, until: now, bucketMs: window.bucketMs, signal }),
    ),
    options.alertCatalog
      ? readAlertInputs(inspector, options.alertCatalog, {
          now,
          alertWindowMs: options.alertWindowMs,
          ...(signal ? { signal } : {}),
        })
      : [],
  ]);
  const errors: Record<string, string> = {};
  if (subscribers instanceof Error) errors.subscribers = subscribers.message;
  if (heartbeats instanceof Error) errors.heartbeats = heartbeats.message;
  if (deadLetters instanceof Error) errors.deadLetters = deadLetters.message;
  if (counts instanceof Error) errors.counts = counts.message;
  const subs = subscribers instanceof Error ? [] : subscribers;
  const sum = (key: "pending" | "inFlight" | "retrying" | "dead" | "lag") =>
    subs.reduce((total, s) => total + s[key], 0);
  const daemons = { up: 0, stale: 0, stopped: 0, failed: 0, total: 0 };
  for (const beat of heartbeats instanceof Error || !heartbeats ? [] : heartbeats) {
    daemons[daemonState(beat, options.staleAfterMs)]++;
    daemons.total++;
  }
  return {
    transport: inspector.transport,
    generatedAt: new Date(now).toISOString(),
    health: healthChecks(
      { transport: inspector.transport, heartbeats, subscribers, deadLetters, alerts },
      {
        staleAfterMs: options.staleAfterMs,
        alertWindowMs: options.alertWindowMs,
        maxPending: options.maxPending,
        maxDeadLetters: options.maxDeadLetters,
        now,
      },
    ),
    backlog: {
      subscribers: subs.length,
      lag: sum("lag"),
      pending: sum("pending"),
      inFlight: sum("inFlight"),
      retrying: sum("retrying"),
      dead: sum("dead"),
    },
    subscribers: [...subs].sort(
      (a, b) => b.lag - a.lag || a.subscriber.localeCompare(b.subscriber),
    ),
    ...(deadLetters && !(deadLetters instanceof Error) ? { deadLetters } : {}),
    daemons,
    throughput:
      counts instanceof Error
        ? { window: window.name, bucketMs: window.bucketMs, buckets: [], totals: {} }
        : { window: window.name, ...counts },
    errors,
  };
}

/** Subscriber columns the Subscribers page sorts by. */
export const SUBSCRIBER_SORTS = [
  "subscriber",
  "lag",
  "pending",
  "inFlight",
  "retrying",
  "dead",
  "oldestPendingMs",
  "lastSeen",
] as const;
export type SubscriberSort = (typeof SUBSCRIBER_SORTS)[number];

/** Subscribers sorted by a column (`lag` descending by default). */
export async function subscribers(
  inspector: Inspector,
  sort: string | undefined,
  dir: string | undefined,
  signal?: AbortSignal,
): Promise<{ sort: SubscriberSort; dir: "asc" | "desc"; subscribers: SubscriberBacklog[] }> {
  const key = (sort ?? "lag") as SubscriberSort;
  if (!SUBSCRIBER_SORTS.includes(key))
    throw new DashboardRequestError(
      `sort must be one of ${SUBSCRIBER_SORTS.join(", ")}; got ${JSON.stringify(sort)}.`,
    );
  const direction = dir ?? (key === "subscriber" ? "asc" : "desc");
  if (direction !== "asc" && direction !== "desc")
    throw new DashboardRequestError(`dir must be asc or desc; got ${JSON.stringify(dir)}.`);
  const list = await inspector.subscribers({ signal });
  const value = (s: SubscriberBacklog): string | number => {
    const v = s[key];
    return typeof v === "number" || typeof v === "string" ? v : -1;
  };
  list.sort((a, b) => {
    const x = value(a);
    const y = value(b);
    const order =
      typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return (direction === "asc" ? order : -order) || a.subscriber.localeCompare(b.subscriber);
  });
  return { sort: key, dir: direction, subscribers: list };
}

const MAX_PAGE = 500;

/** The event query of `?type=&subject=&since=&until=&limit=&cursor=&order=`. */
export function eventQuery(params: URLSearchParams): EventQuery {
  const types = params
    .getAll("type")
    .flatMap((t) => t.split(","))
    .map((t) => t.trim())
    .filter(Boolean);
  const limitText = params.get("limit");
  const limit = limitText ? Number(limitText) : 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE)
    throw new DashboardRequestError(
      `limit must be an integer from 1 to ${MAX_PAGE}; got ${JSON.stringify(limitText)}.`,
    );
  const order = params.get("order") || "newest";
  if (order !== "newest" && order !== "oldest")
    throw new DashboardRequestError(
      `order must be newest or oldest; got ${JSON.stringify(order)}.`,
    );
  const time = (name: string) => {
    const text = params.get(name)?.trim();
    if (!text) return undefined;
    const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
    if (!Number.isFinite(ms))
      throw new DashboardRequestError(
        `${name} must be an RFC 3339 time (e.g. 2026-01-31T12:00:00Z) or ms since the epoch; got ${JSON.stringify(text)}.`,
      );
    return ms;
  };
  const since = time("since");
  const until = time("until");
  const subject = params.get("subject")?.trim();
  const cursor = params.get("cursor") || undefined;
  return {
    ...(types.length > 0 ? { types } : {}),
    ...(subject ? { subject } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    ...(cursor ? { cursor } : {}),
    limit,
    order,
  };
}

/** What `GET <base>/api/events/:id` answers. */
export interface EventDetail {
  readonly event: StoredEvent;
  /**
   * Its delivery to every subscriber registered for its type; with {@link EventDetail.history},
   * each carries its timeline (`history`, oldest first).
   */
  readonly deliveries: readonly DeliveryInfo[];
  /**
   * Whether the transport keeps a delivery timeline (`capabilities.history`). False: the
   * deliveries say only the attempts, the state and the last error.
   */
  readonly history: boolean;
  readonly causation?: CausationTree;
  /** Its dead letters, every status (one per subscriber that gave up on it, `maxScan` at most). */
  readonly deadLetters: readonly DeadLetterInfo[];
}

/** One event with its deliveries, causation and dead letters; `undefined` when unknown. */
export async function eventDetail(
  inspector: Inspector,
  id: string,
  signal?: AbortSignal,
  maxScan = 2000,
): Promise<EventDetail | undefined> {
  const event = await inspector.event(id, { signal });
  if (!event) return undefined;
  const caps = inspector.capabilities;
  const [deliveries, causation, dead] = await Promise.all([
    caps.deliveries ? inspector.deliveries(id, { signal }) : [],
    inspector.causation(id, { depth: 5, limit: 200, signal }),
    caps.deadLetters ? scanDeadLetters(inspector, { eventId: id }, maxScan, signal) : undefined,
  ]);
  return {
    event,
    deliveries,
    history: caps.history === true,
    ...(causation ? { causation } : {}),
    deadLetters: dead?.records ?? [],
  };
}

/** An events page. */
export function events(
  inspector: Inspector,
  query: EventQuery,
  signal?: AbortSignal,
): Promise<EventPage> {
  return inspector.events({ ...query, ...(signal ? { signal } : {}) });
}

/**
 * The dead-letter filter of `?eventId=&type=&subscriber=&reason=&status=` (status `attention` by
 * default, or `all`).
 */
export function deadLetterFilter(params: URLSearchParams): DeadLetterFilter {
  const eventId = params.get("eventId")?.trim();
  const type = params.get("type")?.trim();
  const subscriber = params.get("subscriber")?.trim();
  const reason = params.get("reason")?.trim();
  if (reason && !REASONS.includes(reason as DeadLetterReason))
    throw new DashboardRequestError(
      `reason must be one of ${REASONS.join(", ")}; got ${JSON.stringify(reason)}.`,
    );
  const statusText = params.get("status")?.trim() || "attention";
  let status: readonly DeadLetterStatus[] | undefined;
  if (statusText === "attention") status = ATTENTION;
  else if (statusText === "all") status = undefined;
  else {
    const list = statusText.split(",").map((s) => s.trim()) as DeadLetterStatus[];
    const bad = list.find((s) => !STATUSES.includes(s));
    if (bad !== undefined)
      throw new DashboardRequestError(
        `status must be attention, all or one of ${STATUSES.join(", ")}; got ${JSON.stringify(bad)}.`,
      );
    status = list;
  }
  return {
    ...(eventId ? { eventId } : {}),
    ...(type ? { type } : {}),
    ...(subscriber ? { subscriber } : {}),
    ...(reason ? { reason: reason as DeadLetterReason } : {}),
    ...(status ? { status } : {}),
  };
}

/** Dead letters with the same signature: the same failure, probably the same fix. */
export interface DeadLetterGroup {
  /** A stable id of the signature (for URLs and actions). */
  readonly id: string;
  readonly type: string;
  readonly subscriber: string;
  readonly reason: DeadLetterReason;
  /** The error's class name. */
  readonly errorName: string;
  /** The first line of the error message (at most 300 characters). */
  readonly message: string;
  readonly count: number;
  /** Earliest `firstFailedAt` of the group. */
  readonly firstSeen: string;
  /** Latest `lastFailedAt` of the group. */
  readonly lastSeen: string;
  /** One record of the group, to inspect. */
  readonly sampleId: string;
}

/** What `GET <base>/api/dead-letters` answers. */
export interface DeadLetterGroups {
  readonly filter: DeadLetterFilter;
  readonly groups: readonly DeadLetterGroup[];
  /** Records read. */
  readonly scanned: number;
  /** True when more records matched than `maxGroupScan`: the counts are of the newest read. */
  readonly truncated: boolean;
}

const firstLine = (text: unknown) =>
  (typeof text === "string" ? text : text == null ? "" : JSON.stringify(text))
    .split("\n", 1)[0]!
    .slice(0, 300);

function signature(d: DeadLetterInfo) {
  const errorName = typeof d.error?.name === "string" ? d.error.name : "Error";
  const message = firstLine(d.error?.message);
  const id = createHash("sha256")
    .update(JSON.stringify([d.eventType, d.subscriber, d.reason, errorName, message]))
    .digest("hex")
    .slice(0, 16);
  return { id, errorName, message };
}

/** Every dead letter matching the filter (to `max`), newest first. */
async function scanDeadLetters(
  inspector: Inspector,
  filter: DeadLetterFilter,
  max: number,
  signal?: AbortSignal,
): Promise<{ records: DeadLetterInfo[]; truncated: boolean }> {
  const records: DeadLetterInfo[] = [];
  let cursor: string | undefined;
  do {
    const page = await inspector.deadLetters({
      ...filter,
      limit: Math.min(500, max - records.length),
      ...(cursor ? { cursor } : {}),
      ...(signal ? { signal } : {}),
    });
    records.push(...page.deadLetters);
    cursor = page.next;
  } while (cursor && records.length < max);
  return { records, truncated: cursor !== undefined };
}

/** Dead letters grouped by signature (type, subscriber, reason, error class, first message line). */
export async function deadLetterGroups(
  inspector: Inspector,
  filter: DeadLetterFilter,
  max: number,
  signal?: AbortSignal,
): Promise<DeadLetterGroups & { readonly members: ReadonlyMap<string, readonly string[]> }> {
  const { records, truncated } = await scanDeadLetters(inspector, filter, max, signal);
  const groups = new Map<string, DeadLetterGroup>();
  const members = new Map<string, string[]>();
  for (const d of records) {
    const sig = signature(d);
    const seen = groups.get(sig.id);
    // Added to in place: a copy per record would make a group of n members cost n² / 2 copies.
    const ids = members.get(sig.id);
    if (ids) ids.push(d.id);
    else members.set(sig.id, [d.id]);
    groups.set(
      sig.id,
      seen
        ? {
            ...seen,
            count: seen.count + 1,
            firstSeen: d.firstFailedAt < seen.firstSeen ? d.firstFailedAt : seen.firstSeen,
            lastSeen: d.lastFailedAt > seen.lastSeen ? d.lastFailedAt : seen.lastSeen,
          }
        : {
            id: sig.id,
            type: d.eventType,
            subscriber: d.subscriber,
            reason: d.reason,
            errorName: sig.errorName,
            message: sig.message,
            count: 1,
            firstSeen: d.firstFailedAt,
            lastSeen: d.lastFailedAt,
            sampleId: d.id,
          },
    );
  }
  const sorted = [...groups.values()].sort(
    (a, b) => b.count - a.count || b.lastSeen.localeCompare(a.lastSeen),
  );
  return { filter, groups: sorted, scanned: records.length, truncated, members };
}

/** The fields of a dead-letter filter in a query or an action body. */
const FILTER_FIELDS: readonly string[] = ["eventId", "type", "subscriber", "reason", "status"];

/** The target of a dead-letter action: one record, one group, or a filter. */
export type ActionTarget =
  | { readonly id: string }
  | { readonly group: string; readonly filter?: DeadLetterFilter }
  | { readonly filter: DeadLetterFilter };

/** The fields of an action's body. */
const BODY_FIELDS: readonly string[] = ["id", "group", "filter", "dryRun", "again"];

/** Parse an action's JSON body: `{ id } | { group, filter? } | { filter }`, plus `dryRun`, `again`. */
export function actionBody(body: unknown): {
  target: ActionTarget;
  dryRun: boolean;
  again: boolean;
} {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new DashboardRequestError(
      "the body must be a JSON object: { id } | { group } | { filter }, with dryRun.",
    );
  const b = body as Record<string, unknown>;
  // A field the action does not know (`"dryrun": true`, `"dry_run": true`) must not be ignored:
  // the count the caller meant would run as the destructive action itself.
  const stray = Object.keys(b).find((key) => !BODY_FIELDS.includes(key));
  if (stray !== undefined)
    throw new DashboardRequestError(
      `${JSON.stringify(stray)} is not a field of an action body: use ${BODY_FIELDS.join(", ")}.`,
    );
  // A flag that is not a boolean (`"dryRun": "true"`) must not be read as false: that would turn a
  // count into the destructive action itself.
  const flag = (name: "dryRun" | "again"): boolean => {
    const value = b[name];
    if (value !== undefined && typeof value !== "boolean")
      throw new DashboardRequestError(
        `${name} must be true or false; got ${JSON.stringify(value)}.`,
      );
    return value === true;
  };
  const dryRun = flag("dryRun");
  const again = flag("again");
  const given = ["id", "group", "filter"].filter((k) => b[k] !== undefined);
  const filterOf = (value: unknown): DeadLetterFilter => {
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new DashboardRequestError(
        "filter must be an object such as { eventId, type, subscriber, reason, status }.",
      );
    const params = new URLSearchParams();
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      if (!FILTER_FIELDS.includes(key))
        throw new DashboardRequestError(
          `filter.${key} is not a filter field: use ${FILTER_FIELDS.join(", ")}.`,
        );
      if (typeof v !== "string")
        throw new DashboardRequestError(
          `filter.${key} must be a string; got ${JSON.stringify(v)}.`,
        );
      params.set(key, v);
    }
    return deadLetterFilter(params);
  };
  if (typeof b.id === "string" && b.id && given.length === 1)
    return { target: { id: b.id }, dryRun, again };
  if (
    typeof b.group === "string" &&
    b.group &&
    (given.length === 1 || (given.length === 2 && b.filter !== undefined))
  )
    return {
      target: { group: b.group, ...(b.filter !== undefined ? { filter: filterOf(b.filter) } : {}) },
      dryRun,
      again,
    };
  if (b.filter !== undefined && given.length === 1) {
    const filter = filterOf(b.filter);
    if (
      filter.eventId === undefined &&
      filter.type === undefined &&
      filter.subscriber === undefined &&
      filter.reason === undefined
    )
      throw new DashboardRequestError(
        "a filter action needs at least one of eventId, type, subscriber or reason (acting on every dead letter is for the CLI).",
      );
    return { target: { filter }, dryRun, again };
  }
  throw new DashboardRequestError(
    'name exactly one target: { id: "<dead letter id>" }, { group: "<group id>" } or { filter: { eventId, type, subscriber, reason } }.',
  );
}

/** What a dead-letter action answers. */
export interface ActionOutcome {
  readonly action: "replay" | "purge";
  readonly dryRun: boolean;
  /** Records the action matched (with `dryRun`: would act on). */
  readonly count: number;
  /** Replay: ids replayed. */
  readonly replayed?: readonly string[];
  readonly skipped?: readonly { readonly id: string; readonly reason: string }[];
  readonly failed?: readonly { readonly id: string; readonly error: string }[];
  /** Backups taken first. */
  readonly backups?: readonly string[];
}

/** The ids of a group (empty when the group no longer exists). */
async function groupIds(
  inspector: Inspector,
  group: string,
  filter: DeadLetterFilter | undefined,
  max: number,
  signal?: AbortSignal,
): Promise<readonly string[]> {
  const found = await deadLetterGroups(inspector, filter ?? { status: ATTENTION }, max, signal);
  return found.members.get(group) ?? [];
}

/** Replay or purge one record, a group or a filter; with `dryRun`, count only. */
export async function deadLetterAction(
  action: "replay" | "purge",
  inspector: Inspector,
  admin: Admin,
  request: { target: ActionTarget; dryRun: boolean; again: boolean },
  max: number,
  signal?: AbortSignal,
): Promise<ActionOutcome> {
  const { target, dryRun, again } = request;
  const filters: DeadLetterFilter[] =
    "id" in target
      ? [{ id: target.id }]
      : "group" in target
        ? (await groupIds(inspector, target.group, target.filter, max, signal)).map((id) => ({
            id,
          }))
        : [target.filter];
  if ("group" in target && filters.length === 0)
    throw new DashboardRequestError(
      `no dead letters in group ${JSON.stringify(target.group)} (handled already, or a stale page: reload).`,
    );
  const opts = { ...(signal ? { signal } : {}) };
  if (action === "replay") {
    const replayed: string[] = [];
    const skipped: { id: string; reason: string }[] = [];
    const failed: { id: string; error: string }[] = [];
    let count = 0;
    for (const filter of filters) {
      const result = await admin.replay(filter, { dryRun, again, ...opts });
      count += dryRun ? result.wouldReplay.length : result.replayed.length;
      replayed.push(...result.replayed);
      skipped.push(...result.skipped);
      failed.push(...result.failed);
    }
    return { action, dryRun, count, replayed, skipped, failed };
  }
  // Purge: a group of many records is purged record by record; the admin backs up before each
  // destructive call, so take the whole group in one call when its filter matches it exactly.
  let purgeFilters = filters;
  if ("group" in target && filters.length > 1) {
    const group = (
      await deadLetterGroups(inspector, target.filter ?? { status: ATTENTION }, max, signal)
    ).groups.find((g) => g.id === target.group);
    if (group) {
      const exact: DeadLetterFilter = {
        type: group.type,
        subscriber: group.subscriber,
        reason: group.reason,
        status: ATTENTION,
      };
      const probe = await admin.purge(exact, { dryRun: true, ...opts });
      if (probe.count === filters.length) purgeFilters = [exact];
    }
  }
  let count = 0;
  const backups: string[] = [];
  for (const filter of purgeFilters) {
    const result = await admin.purge(filter, { dryRun, ...opts });
    count += result.count;
    if (result.backup) backups.push(result.backup);
  }
  return { action, dryRun, count, backups };
}

/** Heartbeats with their state, failed and stale first. */
/** The Contracts page: who publishes and consumes each type, from the daemons' announcements. */
export interface ContractsView extends ContractTopology {
  /** Whether the transport stores heartbeats (where announcements travel). */
  readonly supported: boolean;
  /** Whether the announcements were compared with the dashboard's catalog too. */
  readonly catalogCompared: boolean;
}

/**
 * The contracts daemons announce in their heartbeats, folded per type by `contractTopology` (the
 * rule of `switchyard contracts`), compared with the catalog when the dashboard was given a whole
 * catalog; a heartbeat older than `staleAfterMs` marks its daemon stale.
 */
export async function contractsView(
  inspector: Inspector,
  options: Pick<ResolvedOptions, "alertCatalog" | "staleAfterMs">,
  signal?: AbortSignal,
): Promise<ContractsView> {
  const supported = inspector.capabilities.heartbeats;
  const beats = supported ? await inspector.heartbeats({ signal }) : [];
  const catalog = options.alertCatalog;
  return {
    ...contractTopology(beats, {
      staleAfterMs: options.staleAfterMs,
      ...(catalog ? { catalog: catalogContracts(catalog) } : {}),
    }),
    supported,
    catalogCompared: catalog !== undefined,
  };
}

export async function daemons(
  inspector: Inspector,
  staleAfterMs: number,
  signal?: AbortSignal,
): Promise<DaemonView[]> {
  if (!inspector.capabilities.heartbeats) return [];
  const order: Record<DaemonState, number> = { failed: 0, stale: 1, stopped: 2, up: 3 };
  return (await inspector.heartbeats({ signal }))
    .map((beat) => ({ ...beat, state: daemonState(beat, staleAfterMs) }))
    .sort((a, b) => order[a.state] - order[b.state] || a.daemon.localeCompare(b.daemon));
}
