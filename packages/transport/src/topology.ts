import { type SchemaBreak, schemaBreaks } from "@switchyard/event-schema";
import type { AnnouncedType } from "./heartbeat";
import type { HeartbeatInfo } from "./inspector";

/** One daemon's side of a type in the topology. */
export interface TypeEndpoint {
  readonly daemon: string;
  readonly host: string;
  readonly pid: number;
  readonly version: number;
  readonly schemaHash: string;
  /** Its heartbeat is older than `staleAfterMs`: it may be gone. */
  readonly stale: boolean;
  /** The schema it announced, if it did. */
  readonly schema?: Record<string, unknown>;
}

/** A breaking difference between one publisher's schema and one consumer's. */
export interface ContractBreak {
  readonly publisher: string;
  readonly consumer: string;
  /** The payload path, e.g. `currency`, `model.size`. */
  readonly path: string;
  readonly problem: SchemaBreak["problem"];
  readonly message: string;
}

/** Something wrong with one type, as the announcements show it. */
export type TopologyIssue =
  | "published_not_consumed"
  | "consumed_not_published"
  | "schema_mismatch"
  | "incompatible"
  | "differs_from_catalog"
  | "not_in_catalog";

/** Each {@link TopologyIssue} in words, as `switchyard contracts` and the dashboard show it. */
export const TOPOLOGY_ISSUE_TEXT: Readonly<Record<TopologyIssue, string>> = {
  published_not_consumed: "published, no consumer",
  consumed_not_published: "consumed, no publisher",
  schema_mismatch: "schemas differ (not announced: cannot compare)",
  incompatible: "incompatible schemas",
  differs_from_catalog: "differs from the catalog",
  not_in_catalog: "not in the catalog",
};

/**
 * The issues that break a contract: `switchyard contracts check` fails on them and the dashboard
 * marks them unhealthy. The others (a type nobody consumes or publishes yet, one missing from the
 * catalog) are drift: shown, not failed.
 */
export const BREAKING_TOPOLOGY_ISSUES: ReadonlySet<TopologyIssue> = new Set<TopologyIssue>([
  "incompatible",
  "schema_mismatch",
  "differs_from_catalog",
]);

/** One event type in the live topology. */
export interface TypeTopology {
  readonly type: string;
  readonly publishers: readonly TypeEndpoint[];
  readonly consumers: readonly TypeEndpoint[];
  /** What is wrong, if anything (empty when publishers and consumers agree, and agree with the catalog). */
  readonly issues: readonly TopologyIssue[];
  /** Breaking differences between a publisher's and a consumer's announced schemas. */
  readonly breaks: readonly ContractBreak[];
  /** The catalog's contract of the type, when a catalog was given and has it. */
  readonly catalog?: AnnouncedType;
}

/** Options of {@link contractTopology}. */
export interface TopologyOptions {
  /**
   * The catalog's contracts (e.g. `catalogContracts(catalog)`), to flag announcements that differ
   * from it and types it lacks. @defaultValue none: announcements are only compared to each other
   */
  readonly catalog?: readonly AnnouncedType[];
  /** A heartbeat older than this marks its daemon stale (still listed). @defaultValue 120_000 */
  readonly staleAfterMs?: number;
  /** Leave stale daemons out. @defaultValue false */
  readonly skipStale?: boolean;
}

/** The announcements of every daemon, folded per type: the answer of `switchyard contracts`. */
export interface ContractTopology {
  readonly types: readonly TypeTopology[];
  /** Daemons whose heartbeats announce nothing (written by a manager that does not announce). */
  readonly silent: readonly string[];
  /** True when no type has an issue. */
  readonly consistent: boolean;
}

/**
 * Who publishes and who consumes each event type, from the contracts daemons announce in their
 * heartbeats — the rule behind the CLI's `switchyard contracts` and `switchyard contracts check`
 * (and the dashboard's Contracts page). Call it on `inspector.heartbeats()` of any driver.
 * Issues: a type published that no live daemon consumes (or consumed that none publishes); a
 * publisher and a consumer whose announced schemas differ in a breaking way (`incompatible`, with
 * the fields in `breaks`: see `schemaBreaks` of `@switchyard/event-schema` for the rules — additive
 * differences pass), or differ without schemas to compare (`schema_mismatch`); and, given a
 * catalog, announcements that differ from it or types it lacks.
 */
export function contractTopology(
  heartbeats: readonly HeartbeatInfo[],
  options: TopologyOptions = {},
): ContractTopology {
  const staleAfterMs = options.staleAfterMs ?? 120_000;
  const byType = new Map<string, { publishers: TypeEndpoint[]; consumers: TypeEndpoint[] }>();
  const silent: string[] = [];
  const slot = (type: string) => {
    let s = byType.get(type);
    if (!s) byType.set(type, (s = { publishers: [], consumers: [] }));
    return s;
  };
  for (const beat of heartbeats) {
    const stale = beat.ageMs > staleAfterMs;
    if (stale && options.skipStale) continue;
    if (!beat.contracts) {
      silent.push(beat.daemon);
      continue;
    }
    const endpoint = (t: AnnouncedType): TypeEndpoint => ({
      daemon: beat.daemon,
      host: beat.host,
      pid: beat.pid,
      version: t.version,
      schemaHash: t.schemaHash,
      stale,
      ...(t.schema ? { schema: t.schema } : {}),
    });
    for (const t of beat.contracts.publishes) slot(t.type).publishers.push(endpoint(t));
    for (const t of beat.contracts.subscribes) slot(t.type).consumers.push(endpoint(t));
  }
  const catalog = new Map((options.catalog ?? []).map((c) => [c.type, c]));
  const types = [...byType.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([type, { publishers, consumers }]): TypeTopology => {
      const issues: TopologyIssue[] = [];
      if (publishers.length > 0 && consumers.length === 0) issues.push("published_not_consumed");
      if (consumers.length > 0 && publishers.length === 0) issues.push("consumed_not_published");
      const all = [...publishers, ...consumers];
      // Each publisher against each consumer that announced another schema: compared field by
      // field when both announced their schema (breaking → incompatible; additive passes), else
      // only known to differ (schema_mismatch).
      const breaks: ContractBreak[] = [];
      let unknown = false;
      for (const p of publishers)
        for (const c of consumers) {
          if (p.schemaHash === c.schemaHash) continue;
          if (!p.schema || !c.schema) {
            unknown = true;
            continue;
          }
          for (const b of schemaBreaks(p.schema, c.schema))
            breaks.push({ publisher: p.daemon, consumer: c.daemon, ...b });
        }
      if (breaks.length > 0) issues.push("incompatible");
      if (unknown) issues.push("schema_mismatch");
      const expected = catalog.get(type);
      if (options.catalog && !expected) issues.push("not_in_catalog");
      if (
        expected &&
        all.some((e) => e.version !== expected.version || e.schemaHash !== expected.schemaHash)
      )
        issues.push("differs_from_catalog");
      return {
        type,
        publishers,
        consumers,
        issues,
        breaks,
        ...(expected ? { catalog: expected } : {}),
      };
    });
  return { types, silent, consistent: types.every((t) => t.issues.length === 0) };
}
