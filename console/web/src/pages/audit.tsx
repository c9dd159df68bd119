// Audit: the unblock commands and alert notifications flowwatch sent, and what came of them.
import { api, type Alert, type Command } from "../api";
import { AlertsTable, alertState, CommandsTable } from "../audit-tables";
import { Card, Empty, ErrorBox, Field, Loading, PageHeader } from "../components";
import { navigate, usePoll } from "../hooks";
import { FlowSelect, TextFilter } from "./stuck";

const limits = ["100", "500", "1000"];

export function AuditPage({ params }: { params: URLSearchParams }) {
  const tab = params.get("tab") === "alerts" ? "alerts" : "commands";
  const f = {
    tab,
    flow: params.get("flow") ?? "",
    tenant: params.get("tenant") ?? "",
    key: params.get("key") ?? "",
    outcome: params.get("outcome") ?? "",
    limit: limits.includes(params.get("limit") ?? "") ? params.get("limit")! : limits[0],
  };
  const set = (p: Partial<typeof f>) => navigate(["audit"], { ...f, ...p }, true);
  const flows = usePoll((s) => api.flows(s), ["flows"]);
  const q = { flow: f.flow, tenant: f.tenant, limit: f.limit };
  const data = usePoll<(Alert | Command)[]>((s) => (tab === "alerts" ? api.alerts(q, s) : api.commands(q, s)), [tab, f.flow, f.tenant, f.limit]);
  const all = data.data ?? [];
  const valueOf = (r: Alert | Command) => ("outcome" in r ? r.outcome : alertState(r));
  const values = [...new Set(all.map(valueOf))].sort();
  const rows = all.filter((r) => (!f.key || r.key.includes(f.key)) && (!f.outcome || valueOf(r) === f.outcome));
  return (
    <>
      <PageHeader title="Audit" sub="Every unblock command and alert notification flowwatch sent, newest first, with its outcome." />
      <div class="tabs" role="tablist">
        <button type="button" role="tab" aria-selected={tab === "commands"} class={tab === "commands" ? "on" : ""} onClick={() => set({ tab: "commands", outcome: "" })} data-tab="commands">
          Commands
        </button>
        <button type="button" role="tab" aria-selected={tab === "alerts"} class={tab === "alerts" ? "on" : ""} onClick={() => set({ tab: "alerts", outcome: "" })} data-tab="alerts">
          Alerts
        </button>
      </div>
      <div class="filters">
        <Field label="Flow">
          <FlowSelect flows={flows.data ?? []} value={f.flow} onChange={(v) => set({ flow: v })} />
        </Field>
        <Field label="Tenant">
          <TextFilter name="tenant" value={f.tenant} placeholder="all tenants" onChange={(v) => set({ tenant: v })} />
        </Field>
        <Field label="Key contains">
          <TextFilter name="key" value={f.key} placeholder="any key" onChange={(v) => set({ key: v })} />
        </Field>
        <Field label={tab === "alerts" ? "State" : "Outcome"}>
          <select name="outcome" value={f.outcome} onChange={(e) => set({ outcome: (e.target as HTMLSelectElement).value })}>
            <option value="">Any</option>
            {[...new Set([...values, f.outcome].filter(Boolean))].map((v) => (
              <option value={v}>{v.replace(/_/g, " ")}</option>
            ))}
          </select>
        </Field>
        <Field label="Newest">
          <select name="limit" value={f.limit} onChange={(e) => set({ limit: (e.target as HTMLSelectElement).value })}>
            {limits.map((l) => (
              <option value={l}>{l}</option>
            ))}
          </select>
        </Field>
      </div>
      <Card title={`${rows.length} ${tab}${rows.length < all.length ? ` of the newest ${all.length}` : ""}`}>
        <ErrorBox error={data.error} />
        {data.loading ? (
          <Loading />
        ) : rows.length === 0 ? (
          <Empty>{all.length ? `No ${tab} match these filters.` : tab === "alerts" ? "No alert was sent. Alerts go to Alertmanager or webhooks when an instance gets stuck." : "No unblock command was sent. Commands go out when a stuck checkpoint has an on_stuck action."}</Empty>
        ) : tab === "alerts" ? (
          <AlertsTable rows={rows as Alert[]} instances />
        ) : (
          <CommandsTable rows={rows as Command[]} instances />
        )}
      </Card>
    </>
  );
}
