// Stuck: the stuck instances with why, filtered by flow, checkpoint and tenant, one page of
// the API's cursor at a time.
import { useEffect, useState } from "preact/hooks";
import { api, type Flow, type Instance } from "../api";
import { Card, Empty, ErrorBox, Field, Loading, PageHeader, Service, Time, TraceLink } from "../components";
import { ago, dur, parseTime } from "../format";
import { instanceHref, navigate, usePoll } from "../hooks";

/** pageSize is the rows of one page: ?limit= in the location (1 to 1000), 50 by default. */
function pageSize(params: URLSearchParams): number {
  const n = Number(params.get("limit"));
  return Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 50;
}

/** Filters of the stuck and audit pages, kept in the location hash. */
export interface Filters {
  flow: string;
  checkpoint: string;
  tenant: string;
}

export function FlowSelect({ flows, value, onChange }: { flows: Flow[]; value: string; onChange: (v: string) => void }) {
  const names = [...new Set(flows.map((f) => f.name))].sort();
  if (value && !names.includes(value)) names.push(value);
  return (
    <select value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)} name="flow">
      <option value="">All flows</option>
      {names.map((n) => (
        <option value={n}>{n}</option>
      ))}
    </select>
  );
}

/** TextFilter applies its value on Enter, on leaving the field, or after a pause in typing. */
export function TextFilter({ value, onChange, placeholder, name }: { value: string; onChange: (v: string) => void; placeholder: string; name: string }) {
  const [v, setV] = useState(value);
  useEffect(() => setV(value), [value]);
  useEffect(() => {
    if (v === value) return;
    const t = window.setTimeout(() => onChange(v.trim()), 600);
    return () => window.clearTimeout(t);
  }, [v]);
  return (
    <input
      type="search"
      name={name}
      value={v}
      placeholder={placeholder}
      onInput={(e) => setV((e.target as HTMLInputElement).value)}
      onKeyDown={(e) => e.key === "Enter" && onChange(v.trim())}
      onBlur={() => v.trim() !== value && onChange(v.trim())}
    />
  );
}

function overdueMs(in_: Instance): number {
  const r = in_.reason;
  if (!r) return NaN;
  if (Number.isFinite(r.overdue_seconds)) return r.overdue_seconds * 1000;
  return Date.now() - parseTime(r.deadline);
}

function StuckRow({ in_ }: { in_: Instance }) {
  const r = in_.reason;
  const link = instanceHref(in_.flow, in_.key, in_.tenant);
  return (
    <>
      <tr class="row-main" data-key={in_.key}>
        <td>
          <a href={link} class="key" data-instance={in_.key}>
            {in_.key}
          </a>
          <div class="muted small">
            {in_.flow} · v{in_.version} · {in_.tenant}
          </div>
        </td>
        <td>
          <span class="cp">{r?.checkpoint ?? in_.expected.find((x) => x.overdue)?.checkpoint ?? "—"}</span>
        </td>
        <td>
          <Service name={r?.service ?? ""} />
        </td>
        <td class="overdue" title={r ? `deadline ${r.deadline}` : ""}>
          {r ? dur(overdueMs(in_)) : "—"}
          {r && <div class="muted small">deadline <Time t={r.deadline} /></div>}
        </td>
        <td>
          <span class="cp">{in_.last_checkpoint || "—"}</span>
          <div class="muted small">{ago(r?.last_checkpoint_at || in_.last_seen)}</div>
        </td>
        <td class="err-cell">
          {r?.last_error ? (
            <>
              <span class="err-text">{r.last_error.message || r.last_error.name}</span>
              <div class="muted small">
                <Service name={r.last_error.service} /> {r.last_error.name} {r.last_error.trace_id && <TraceLink id={r.last_error.trace_id} />}
              </div>
            </>
          ) : (
            <span class="muted">none seen</span>
          )}
        </td>
      </tr>
      {r?.summary && (
        <tr class="row-reason">
          <td colSpan={6}>
            <span class="reason-summary">{r.summary}</span>
          </td>
        </tr>
      )}
    </>
  );
}

export function StuckPage({ params }: { params: URLSearchParams }) {
  const f: Filters = { flow: params.get("flow") ?? "", checkpoint: params.get("checkpoint") ?? "", tenant: params.get("tenant") ?? "" };
  const limit = pageSize(params);
  const set = (p: Partial<Filters>) => navigate(["stuck"], { ...f, ...p, limit: params.get("limit") ?? undefined }, true);
  const filterKey = JSON.stringify([f, limit]);
  // The page's cursor and the cursors of the pages before it (Previous pops, Next pushes),
  // for the filters they were made with: new filters start at the first page.
  const [pages, setPages] = useState({ key: filterKey, before: [] as string[], cursor: "" });
  const { before, cursor } = pages.key === filterKey ? pages : { before: [] as string[], cursor: "" };
  const flows = usePoll((s) => api.flows(s), ["flows"]);
  const list = usePoll((s) => api.instances({ status: "stuck", flow: f.flow, checkpoint: f.checkpoint, tenant: f.tenant, limit, cursor }, s), [filterKey, cursor]);
  const checkpoints = [...new Set((flows.data ?? []).filter((x) => x.name === f.flow).flatMap((x) => x.checkpoints.map((c) => c.name)))];
  const rows = list.data?.instances ?? [];
  const next = list.data?.next_cursor ?? "";
  const page = before.length + 1;
  return (
    <>
      <PageHeader title="Stuck instances" sub="Instances past the deadline of a checkpoint they wait for, and why: who owns that checkpoint, what happened last, the last error." />
      <div class="filters">
        <Field label="Flow">
          <FlowSelect flows={flows.data ?? []} value={f.flow} onChange={(v) => set({ flow: v, checkpoint: "" })} />
        </Field>
        <Field label="Checkpoint">
          {f.flow ? (
            <select name="checkpoint" value={f.checkpoint} onChange={(e) => set({ checkpoint: (e.target as HTMLSelectElement).value })}>
              <option value="">Any checkpoint</option>
              {checkpoints.map((c) => (
                <option value={c}>{c}</option>
              ))}
            </select>
          ) : (
            <TextFilter name="checkpoint" value={f.checkpoint} placeholder="any checkpoint" onChange={(v) => set({ checkpoint: v })} />
          )}
        </Field>
        <Field label="Tenant">
          <TextFilter name="tenant" value={f.tenant} placeholder="all tenants" onChange={(v) => set({ tenant: v })} />
        </Field>
        {(f.flow || f.checkpoint || f.tenant) && (
          <button type="button" class="btn ghost" onClick={() => navigate(["stuck"], {}, true)}>
            Clear filters
          </button>
        )}
      </div>
      <Card
        title={
          <>
            {list.data ? (rows.length === 0 && page === 1 ? "Nothing stuck" : `${rows.length}${next ? "+" : ""} stuck`) : "Stuck"}
            {page > 1 && <span class="muted small"> · page {page}</span>}
          </>
        }
        actions={
          <div class="pager">
            <button type="button" class="btn" disabled={page === 1} data-prev onClick={() => setPages({ key: filterKey, before: before.slice(0, -1), cursor: before[before.length - 1] ?? "" })}>
              ← Previous
            </button>
            <button type="button" class="btn" disabled={!next} data-next onClick={() => setPages({ key: filterKey, before: [...before, cursor], cursor: next })}>
              Next →
            </button>
          </div>
        }
      >
        <ErrorBox error={list.error} />
        {list.loading ? (
          <Loading />
        ) : rows.length === 0 ? (
          <Empty>{f.flow || f.checkpoint || f.tenant ? "No stuck instance matches these filters." : "No instance is stuck. Every instance is within its deadlines."}</Empty>
        ) : (
          <table class="table stuck-table">
            <thead>
              <tr>
                <th>Instance</th>
                <th>Waiting for</th>
                <th>Owner</th>
                <th>Overdue</th>
                <th>Last checkpoint</th>
                <th>Last error</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((in_) => (
                <StuckRow key={`${in_.tenant}/${in_.flow}/${in_.key}`} in_={in_} />
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </>
  );
}
