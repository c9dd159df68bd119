// Flows: every flow's live graph, with its instances by status over the chosen range.
import { api, type Flow, type Graph, type Series } from "../api";
import { Card, Empty, ErrorBox, Loading, PageHeader, statusClass } from "../components";
import { clock, num } from "../format";
import { FlowGraph, GraphLegend } from "../graph";
import { href, navigate, usePoll } from "../hooks";

export const ranges: { id: string; label: string; ms: number }[] = [
  { id: "15m", label: "15 min", ms: 15 * 60_000 },
  { id: "1h", label: "1 hour", ms: 3_600_000 },
  { id: "6h", label: "6 hours", ms: 6 * 3_600_000 },
  { id: "24h", label: "24 hours", ms: 24 * 3_600_000 },
  { id: "7d", label: "7 days", ms: 7 * 24 * 3_600_000 },
];

export function rangeOf(id: string | null): { id: string; label: string; ms: number } {
  return ranges.find((r) => r.id === id) ?? ranges[1];
}

export function RangePicker({ value, onChange }: { value: string; onChange: (id: string) => void }) {
  return (
    <div class="seg" role="group" aria-label="time range">
      {ranges.map((r) => (
        <button type="button" class={r.id === value ? "on" : ""} aria-pressed={r.id === value} data-range={r.id} onClick={() => onChange(r.id)} title={`the last ${r.label}`}>
          {r.id}
        </button>
      ))}
    </div>
  );
}

/** The statuses always shown, in this order; any other status the API counts follows. */
const mainStatuses = ["running", "completed", "failed"];
const statusOrder = ["running", "stuck", "completed", "failed", "compensating", "compensated", "cancelled"];

function totals(series: Series[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of series) out.set(s.name, (s.points ?? []).reduce((a, p) => a + (p[1] ?? 0), 0));
  return out;
}

/** latestVersions keeps one flow per name, its highest version, with the others' numbers. */
function latestVersions(flows: Flow[]): { flow: Flow; versions: Flow[] }[] {
  const by = new Map<string, Flow[]>();
  for (const f of flows) by.set(f.name, [...(by.get(f.name) ?? []), f]);
  return [...by.values()].map((vs) => {
    vs.sort((a, b) => a.version - b.version);
    return { flow: vs[vs.length - 1], versions: vs };
  });
}

function Stat({ label, value, cls, link, hint }: { label: string; value: number; cls: string; link?: string; hint: string }) {
  const body = (
    <>
      <span class="stat-v">{num(value)}</span>
      <span class="stat-l">{label}</span>
    </>
  );
  return link ? (
    <a class={`stat ${cls}`} href={link} title={hint} data-stat={label}>
      {body}
    </a>
  ) : (
    <div class={`stat ${cls}`} title={hint} data-stat={label}>
      {body}
    </div>
  );
}

function FlowCard({ flow, versions, range }: { flow: Flow; versions: Flow[]; range: { id: string; label: string; ms: number } }) {
  const poll = usePoll(
    async (signal) => {
      const to = Date.now();
      const from = to - range.ms;
      const [graph, series] = await Promise.all([
        api.graph(flow.name, from, to, signal),
        api.series(flow.name, { from, to, step: `${range.ms}ms`, by: "status" }, signal),
      ]);
      return { graph, series };
    },
    [flow.name, range.id],
    true,
  );
  const graph: Graph | undefined = poll.data?.graph;
  const byStatus = totals(poll.data?.series ?? []);
  // Stuck is "now" (every stuck instance counts once, at the checkpoint it waits for);
  // the others are the instances last active in the range.
  const stuckNow = (graph?.nodes ?? []).reduce((a, n) => a + n.stuck, 0);
  const others = [...byStatus.keys()].filter((s) => s !== "stuck" && !mainStatuses.includes(s) && (byStatus.get(s) ?? 0) > 0);
  others.sort((a, b) => (statusOrder.indexOf(a) + 1 || 99) - (statusOrder.indexOf(b) + 1 || 99) || a.localeCompare(b));
  const future = versions.filter((v) => v.active_from && Date.parse(v.active_from) > Date.now());
  const title = (
    <>
      <a href={href(["stuck"], { flow: flow.name })} class="flow-name">
        {flow.name}
      </a>
      <span class="ver">v{flow.version}</span>
      {versions.length > 1 && <span class="muted small">versions {versions.map((v) => v.version).join(", ")} loaded</span>}
    </>
  );
  return (
    <Card title={title} class="flow-card" id={`flow-${flow.name}`} actions={<span class="muted small">key {flow.key}</span>}>
      {future.length > 0 && (
        <p class="note">
          v{future.map((v) => v.version).join(", v")} becomes active {clock(future[0].active_from)}; instances keep the version that was active when they started. The graph shows v{flow.version}.
        </p>
      )}
      <div class="stats">
        <Stat label="stuck now" value={stuckNow} cls={`st-stuck${stuckNow ? " hot" : ""}`} link={href(["stuck"], { flow: flow.name })} hint="stuck instances of this flow now; open them" />
        {mainStatuses.map((s) => (
          <Stat label={s} value={byStatus.get(s) ?? 0} cls={statusClass(s)} hint={`${s} instances last active in the last ${range.label}`} />
        ))}
        {others.map((s) => (
          <Stat label={s} value={byStatus.get(s) ?? 0} cls={statusClass(s)} hint={`${s} instances last active in the last ${range.label}`} />
        ))}
        <div class="stat-note muted small">
          by status: instances last active in the last {range.label}
          <br />
          nodes: instances that reached the checkpoint
        </div>
      </div>
      <ErrorBox error={poll.error} />
      {poll.data ? (
        <div class={poll.stale ? "stale" : ""}>
          <FlowGraph flow={flow} graph={graph} />
        </div>
      ) : (
        poll.loading && <Loading />
      )}
    </Card>
  );
}

export function FlowsPage({ params }: { params: URLSearchParams }) {
  const range = rangeOf(params.get("range"));
  const flows = usePoll((signal) => api.flows(signal), ["flows"]);
  const groups = latestVersions(flows.data ?? []);
  return (
    <>
      <PageHeader title="Flows" sub="Each flow's checkpoints with the instances that reached them, the time between them, and where instances are stuck.">
        <RangePicker value={range.id} onChange={(id) => navigate(["flows"], { range: id }, true)} />
      </PageHeader>
      <ErrorBox error={flows.error} />
      {flows.loading && <Loading />}
      {flows.data && groups.length === 0 && <Empty>No flows are loaded. Point flowwatch at flow files with --flows (run) or flows: (detector configuration).</Empty>}
      {groups.map((g) => (
        <FlowCard key={g.flow.name} flow={g.flow} versions={g.versions} range={range} />
      ))}
      {groups.length > 0 && <GraphLegend />}
    </>
  );
}
