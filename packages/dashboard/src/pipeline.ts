import { Graph, layout } from "@dagrejs/dagre";
import {
  type Inspector,
  type PipelineKeysVerification,
  verifyPipelineKeys,
} from "@switchyard/transport";
import { windowOf } from "./data";
import type { DashboardPipeline } from "./options";

/** A node of the pipeline graph: an event type or a subscriber. */
export interface PipelineNode {
  readonly id: string;
  readonly kind: "type" | "subscriber";
  readonly label: string;
  /** Second line: events in the window (type) or lag (subscriber). */
  readonly detail: string;
  /** Events of the type in the window (0 for subscribers). */
  readonly flow: number;
  /** A type published in the window that no subscriber consumes. */
  readonly drift: boolean;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** An edge: a stage to the next one of a declared pipeline, or a type to a subscriber consuming it. */
export interface PipelineEdge {
  readonly kind: "stage" | "consumes";
  readonly from: string;
  readonly to: string;
  /** Events of the edge's source type in the window. */
  readonly flow: number;
  /** SVG path data. */
  readonly path: string;
}

/** What `GET <base>/api/pipeline` answers: the graph laid out by dagre. */
export interface PipelineGraph {
  readonly window: string;
  readonly pipelines: readonly string[];
  readonly nodes: readonly PipelineNode[];
  readonly edges: readonly PipelineEdge[];
  readonly width: number;
  readonly height: number;
}

const NODE_W = 190;
const NODE_H = 44;

/**
 * The event system as a graph: every event type seen in the window, registered by a subscriber
 * or named by a declared pipeline; every durable subscriber; edges from each stage to the next
 * and from each type to its consumers, with the window's flow.
 */
export async function pipelineGraph(
  inspector: Inspector,
  pipelines: readonly DashboardPipeline[],
  windowName: string | undefined,
  now: number,
  signal?: AbortSignal,
): Promise<PipelineGraph> {
  const window = windowOf(windowName);
  const [subscribers, counts] = await Promise.all([
    inspector.subscribers({ signal }),
    inspector.counts({ since: now - window.ms, until: now, bucketMs: window.ms, signal }),
  ]);
  const durable = subscribers.filter((s) => !s.ephemeral);
  const types = new Set<string>([
    ...pipelines.flatMap((p) => p.stages),
    ...Object.keys(counts.totals),
    ...durable.flatMap((s) => s.types.filter((t) => !/[*>]/.test(t))),
  ]);
  const consumed = new Set(durable.flatMap((s) => s.types));
  const flowOf = (type: string) => counts.totals[type] ?? 0;

  const g = new Graph({ multigraph: false });
  g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 60, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const type of types) g.setNode(`t:${type}`, { width: NODE_W, height: NODE_H });
  for (const s of durable) g.setNode(`s:${s.subscriber}`, { width: NODE_W, height: NODE_H });
  const edges: { kind: "stage" | "consumes"; from: string; to: string; v: string; w: string }[] =
    [];
  for (const p of pipelines)
    for (let i = 1; i < p.stages.length; i++) {
      const [from, to] = [p.stages[i - 1]!, p.stages[i]!];
      if (g.hasEdge(`t:${from}`, `t:${to}`)) continue;
      g.setEdge(`t:${from}`, `t:${to}`);
      edges.push({ kind: "stage", from, to, v: `t:${from}`, w: `t:${to}` });
    }
  for (const s of durable)
    for (const type of s.types)
      if (types.has(type)) {
        g.setEdge(`t:${type}`, `s:${s.subscriber}`);
        edges.push({
          kind: "consumes",
          from: type,
          to: s.subscriber,
          v: `t:${type}`,
          w: `s:${s.subscriber}`,
        });
      }
  layout(g);

  const nodes: PipelineNode[] = [];
  for (const type of types) {
    const n = g.node(`t:${type}`) as { x: number; y: number };
    const flow = flowOf(type);
    nodes.push({
      id: `t:${type}`,
      kind: "type",
      label: type,
      detail: `${flow} event${flow === 1 ? "" : "s"}`,
      flow,
      drift:
        flow > 0 &&
        !consumed.has(type) &&
        !durable.some((s) => s.types.some((t) => t.includes("*") || t.includes(">"))),
      x: n.x,
      y: n.y,
      width: NODE_W,
      height: NODE_H,
    });
  }
  for (const s of durable) {
    const n = g.node(`s:${s.subscriber}`) as { x: number; y: number };
    nodes.push({
      id: `s:${s.subscriber}`,
      kind: "subscriber",
      label: s.subscriber,
      detail: `lag ${s.lag}${s.dead > 0 ? ` · ${s.dead} dead` : ""}`,
      flow: 0,
      drift: false,
      x: n.x,
      y: n.y,
      width: NODE_W,
      height: NODE_H,
    });
  }
  const graph = g.graph() as { width?: number; height?: number };
  return {
    window: window.name,
    pipelines: pipelines.map((p) => p.name),
    nodes,
    edges: edges.map((e) => {
      const label = g.edge(e.v, e.w) as { points?: { x: number; y: number }[] } | undefined;
      const points = label?.points ?? [];
      const path = points
        .map((p, i) => `${i === 0 ? "M" : "L"}${Math.round(p.x)},${Math.round(p.y)}`)
        .join(" ");
      return { kind: e.kind, from: e.from, to: e.to, flow: flowOf(e.from), path };
    }),
    width: Math.max(graph.width ?? 0, 1),
    height: Math.max(graph.height ?? 0, 1),
  };
}

/** One declared pipeline's verification per key (`GET <base>/api/pipeline/keys`). */
export interface PipelineKeysView extends PipelineKeysVerification {
  /** The pipeline's name, e.g. `training`. */
  readonly pipeline: string;
}

/** What `GET <base>/api/pipeline/keys` answers: per declared pipeline, every key's verdict. */
export interface PipelineKeys {
  readonly window: string;
  readonly pipelines: readonly PipelineKeysView[];
}

/**
 * Per declared pipeline, every key with an event in the window and its verdict: the rule of
 * `switchyard pipeline verify` (see `verifyPipelineKeys`), over the page's window.
 */
export async function pipelineKeys(
  inspector: Inspector,
  pipelines: readonly DashboardPipeline[],
  windowName: string | undefined,
  now: number,
  maxEvents: number,
  signal?: AbortSignal,
): Promise<PipelineKeys> {
  const window = windowOf(windowName);
  const views: PipelineKeysView[] = [];
  for (const p of pipelines)
    views.push({
      pipeline: p.name,
      ...(await verifyPipelineKeys(inspector, {
        stages: p.stages,
        key: p.key,
        hours: window.ms / 3_600_000,
        now,
        maxEvents,
        ...(signal ? { signal } : {}),
      })),
    });
  return { window: window.name, pipelines: views };
}
