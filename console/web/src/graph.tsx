// The flow graph: checkpoints laid out left to right by dagre, with what the API observed on
// each checkpoint and transition.
import dagre from "@dagrejs/dagre";
import { useMemo } from "preact/hooks";
import type { Checkpoint, Flow, Graph, GraphEdge, GraphNode } from "./api";
import { dur, goDuration, num } from "./format";
import { href } from "./hooks";

const nodeH = 78;
const minNodeW = 176;
const labelW = 132;
const labelH = 36;
const font = `"Inter", "Segoe UI", system-ui, -apple-system, Roboto, "Helvetica Neue", Arial, sans-serif`;

interface Point {
  x: number;
  y: number;
}

interface PlacedNode {
  cp: Checkpoint;
  x: number;
  y: number;
  w: number;
}

interface PlacedEdge {
  source: string;
  target: string;
  points: Point[];
  label: Point;
}

interface Layout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  edges: PlacedEdge[];
}

let measureCtx: CanvasRenderingContext2D | null | undefined;

function textWidth(text: string, css: string): number {
  if (measureCtx === undefined) measureCtx = document.createElement("canvas").getContext("2d");
  if (!measureCtx) return text.length * 8;
  measureCtx.font = css;
  return measureCtx.measureText(text).width;
}

function subtitle(cp: Checkpoint): string {
  const parts: string[] = [];
  if (cp.service) parts.push(cp.service);
  if (cp.within) parts.push(`within ${dur(goDuration(cp.within))}`);
  else if (!cp.start && !cp.terminal) parts.push("optional");
  return parts.join(" · ");
}

type Kind = "start" | "success" | "failure" | "children" | "compensation" | "step";

function kindOf(cp: Checkpoint): Kind {
  if (cp.start) return "start";
  if (cp.terminal === "success") return "success";
  if (cp.terminal === "failure") return "failure";
  if (cp.compensates) return "compensation";
  if (cp.children) return "children";
  return "step";
}

function tagOf(cp: Checkpoint): string {
  if (cp.start) return "START";
  if (cp.terminal) return cp.terminal.toUpperCase();
  if (cp.compensates) return `UNDOES ${cp.compensates.toUpperCase()}`;
  if (cp.children) return `${cp.children.complete.toUpperCase()} ${cp.children.flow.toUpperCase()}`;
  if (cp.after.length > 1) return cp.join === "any" ? "ANY-JOIN" : "AND-JOIN";
  return "";
}

/** layoutFlow places a flow version's checkpoints; it depends on the definition only, so the
 * picture stays put while the counts refresh. */
export function layoutFlow(flow: Flow): Layout {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 26, ranksep: 56, edgesep: 18, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const cp of flow.checkpoints) {
    const tag = tagOf(cp);
    const w = Math.max(
      minNodeW,
      Math.ceil(textWidth(cp.name, `600 14px ${font}`) + (tag ? textWidth(tag, `600 10px ${font}`) + 22 : 0) + 40),
      Math.ceil(textWidth(subtitle(cp), `12px ${font}`) + 36),
    );
    g.setNode(cp.name, { width: w, height: nodeH });
  }
  for (const cp of flow.checkpoints) {
    for (const p of cp.after) {
      if (g.hasNode(p)) g.setEdge(p, cp.name, { width: labelW, height: labelH, labelpos: "c" });
    }
  }
  dagre.layout(g);
  const byName = new Map(flow.checkpoints.map((c) => [c.name, c]));
  const nodes: PlacedNode[] = g.nodes().map((n) => {
    const v = g.node(n);
    return { cp: byName.get(n)!, x: v.x ?? 0, y: v.y ?? 0, w: v.width };
  });
  const edges: PlacedEdge[] = g.edges().map((e) => {
    const v = g.edge(e);
    return { source: e.v, target: e.w, points: (v.points ?? []) as Point[], label: { x: (v.x as number) ?? 0, y: (v.y as number) ?? 0 } };
  });
  const gl = g.graph();
  return { width: Math.ceil(gl.width ?? 0), height: Math.ceil(gl.height ?? 0), nodes, edges };
}

/** basis draws a smooth curve through the layout's edge points (a uniform cubic B-spline
 * that starts and ends on the first and last point). */
function basis(pts: Point[]): string {
  if (pts.length === 0) return "";
  const f = (n: number) => n.toFixed(1);
  if (pts.length < 3) return `M${f(pts[0].x)},${f(pts[0].y)}` + pts.slice(1).map((p) => `L${f(p.x)},${f(p.y)}`).join("");
  // Repeat the end points so the spline is clamped to them.
  const p = [pts[0], pts[0], ...pts, pts[pts.length - 1], pts[pts.length - 1]];
  let d = `M${f(pts[0].x)},${f(pts[0].y)}`;
  for (let i = 1; i + 2 < p.length; i++) {
    const [a, b, c] = [p[i - 1], p[i], p[i + 1]];
    const q = p[i + 2];
    const c1 = { x: (2 * b.x + c.x) / 3, y: (2 * b.y + c.y) / 3 };
    const c2 = { x: (b.x + 2 * c.x) / 3, y: (b.y + 2 * c.y) / 3 };
    const end = { x: (b.x + 4 * c.x + q.x) / 6, y: (b.y + 4 * c.y + q.y) / 6 };
    if (i === 1) {
      const start = { x: (a.x + 4 * b.x + c.x) / 6, y: (a.y + 4 * b.y + c.y) / 6 };
      d += `L${f(start.x)},${f(start.y)}`;
    }
    d += `C${f(c1.x)},${f(c1.y)} ${f(c2.x)},${f(c2.y)} ${f(end.x)},${f(end.y)}`;
  }
  return d;
}

function NodeBox({ flow, n, data }: { flow: string; n: PlacedNode; data?: GraphNode }) {
  const { cp, w } = n;
  const kind = kindOf(cp);
  const tag = tagOf(cp);
  const stuck = data?.stuck ?? 0;
  const count = data?.count ?? 0;
  const tagW = tag ? textWidth(tag, `600 10px ${font}`) + 12 : 0;
  const stuckText = `${num(stuck)} stuck`;
  const stuckW = textWidth(stuckText, `600 11px ${font}`) + 16;
  const join = cp.after.length > 1;
  const tip =
    `${cp.name}: ${num(count)} instance(s) reached it in the range` +
    (stuck ? `; ${num(stuck)} stuck waiting for it now` : "") +
    (cp.within ? `; due within ${cp.within} of its predecessors` : "") +
    (join ? `; waits for ${cp.join === "any" ? "any" : "all"} of ${cp.after.join(", ")}` : "") +
    ". Open its stuck instances.";
  return (
    <a href={href(["stuck"], { flow, checkpoint: cp.name })} class={`node k-${kind}${stuck ? " has-stuck" : ""}${count ? "" : " idle"}`} data-checkpoint={cp.name}>
      <title>{tip}</title>
      <g transform={`translate(${(n.x - w / 2).toFixed(1)},${(n.y - nodeH / 2).toFixed(1)})`}>
        <rect class="box" width={w} height={nodeH} rx="10" />
        {(kind === "success" || kind === "failure") && <rect class="inner" x="3.5" y="3.5" width={w - 7} height={nodeH - 7} rx="7" />}
        <rect class="accent" x="0" y="10" width="4" height={nodeH - 20} rx="2" />
        <text class="name" x="16" y="24">
          {cp.name}
        </text>
        {tag && (
          <g class={`tag tag-${kind}`} transform={`translate(${(w - tagW - 10).toFixed(1)},11)`}>
            <rect width={tagW} height="17" rx="4" />
            <text x={tagW / 2} y="12" text-anchor="middle">
              {tag}
            </text>
          </g>
        )}
        <text class="sub" x="16" y="43">
          {subtitle(cp)}
        </text>
        <text class="count" x="16" y="66">
          <tspan class="count-n" data-count={count}>
            {num(count)}
          </tspan>
          <tspan class="count-l"> reached</tspan>
        </text>
        {stuck > 0 && (
          <g class="stuck-pill" transform={`translate(${(w - stuckW - 10).toFixed(1)},52)`}>
            <rect width={stuckW} height="19" rx="9.5" />
            <text x={stuckW / 2} y="13.5" text-anchor="middle" data-stuck={stuck}>
              {stuckText}
            </text>
          </g>
        )}
        {join && (
          <g class="join" transform={`translate(0,${nodeH / 2})`}>
            <path d="M0,-8 8,0 0,8 -8,0Z" />
            {cp.join === "any" ? <circle r="3" /> : <path class="plus" d="M-3.5,0H3.5M0,-3.5V3.5" />}
          </g>
        )}
      </g>
    </a>
  );
}

function EdgeLabel({ e, data }: { e: PlacedEdge; data?: GraphEdge }) {
  const x = e.label.x - labelW / 2;
  const y = e.label.y - labelH / 2;
  const count = data?.count ?? 0;
  return (
    <g class={`edge-label${count ? "" : " idle"}`} transform={`translate(${x.toFixed(1)},${y.toFixed(1)})`} data-edge={`${e.source}->${e.target}`}>
      <title>{`${e.source} → ${e.target}: ${num(count)} instance(s) in the range${count ? `, median ${dur(data!.p50_ms)}, 95th percentile ${dur(data!.p95_ms)}` : ""}`}</title>
      <rect width={labelW} height={labelH} rx="6" />
      {count ? (
        <>
          <text class="lat" x={labelW / 2} y="15" text-anchor="middle">
            p50 {dur(data!.p50_ms)} · p95 {dur(data!.p95_ms)}
          </text>
          <text class="n" x={labelW / 2} y="29" text-anchor="middle">
            {num(count)} passed
          </text>
        </>
      ) : (
        <text class="n" x={labelW / 2} y="22" text-anchor="middle">
          no traffic
        </text>
      )}
    </g>
  );
}

/** FlowGraph draws one flow version with the counts of the graph endpoint. */
export function FlowGraph({ flow, graph }: { flow: Flow; graph?: Graph }) {
  const layout = useMemo(() => layoutFlow(flow), [JSON.stringify(flow.checkpoints)]);
  const nodes = new Map((graph?.nodes ?? []).map((n) => [n.id, n]));
  const edges = new Map((graph?.edges ?? []).map((e) => [`${e.source}\u0000${e.target}`, e]));
  const max = Math.max(1, ...(graph?.edges ?? []).map((e) => e.count));
  const markerId = `arrow-${flow.name}`;
  return (
    <div class="graph-wrap">
      <svg class="flow-graph" viewBox={`0 0 ${layout.width} ${layout.height}`} width={layout.width} height={layout.height} role="img" aria-label={`graph of flow ${flow.name}`} data-flow={flow.name}>
        <defs>
          <marker id={markerId} viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto-start-reverse">
            <path d="M0,0 10,5 0,10z" class="arrow" />
          </marker>
        </defs>
        {layout.edges.map((e) => {
          const d = edges.get(`${e.source}\u0000${e.target}`);
          const wdt = d?.count ? 1.4 + 2.6 * Math.sqrt(d.count / max) : 1.2;
          return <path key={`${e.source}->${e.target}`} class={`edge${d?.count ? "" : " idle"}`} d={basis(e.points)} stroke-width={wdt.toFixed(2)} marker-end={`url(#${markerId})`} />;
        })}
        {layout.edges.map((e) => (
          <EdgeLabel key={`l:${e.source}->${e.target}`} e={e} data={edges.get(`${e.source}\u0000${e.target}`)} />
        ))}
        {layout.nodes.map((n) => (
          <NodeBox key={n.cp.name} flow={flow.name} n={n} data={nodes.get(n.cp.name)} />
        ))}
      </svg>
    </div>
  );
}

export function GraphLegend() {
  return (
    <div class="legend">
      <span class="lg lg-start">start</span>
      <span class="lg lg-step">checkpoint</span>
      <span class="lg lg-join">join (all / any)</span>
      <span class="lg lg-success">success terminal</span>
      <span class="lg lg-failure">failure terminal</span>
      <span class="lg lg-children">reached by children</span>
      <span class="lg lg-compensation">compensation</span>
      <span class="lg lg-stuck">has stuck instances</span>
      <span class="muted">Edges: time between checkpoints (p50 · p95), instances that passed.</span>
    </div>
  );
}
