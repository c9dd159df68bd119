// Small pieces every page uses.
import type { ComponentChildren } from "preact";
import { ApiError } from "./api";
import { traceLink } from "./config";
import { ago, clock, iso, short } from "./format";
import { useConfig } from "./hooks";

/** Statuses with a style of their own; any other string the API returns is shown as is, in a
 * neutral badge. */
const knownStatuses = new Set(["running", "stuck", "completed", "failed", "compensating", "compensated", "cancelled"]);

export function statusClass(status: string): string {
  return knownStatuses.has(status) ? `st-${status}` : "st-other";
}

export function StatusBadge({ status }: { status: string }) {
  return (
    <span class={`badge ${statusClass(status)}`} data-status={status}>
      {status || "unknown"}
    </span>
  );
}

/** Command outcomes and alert states, styled like statuses. */
const outcomeClass: Record<string, string> = {
  succeeded: "st-completed",
  resolved: "st-completed",
  sent: "st-running",
  firing: "st-stuck",
  no_effect: "st-compensating",
  failed: "st-failed",
  dry_run: "st-other",
};

export function OutcomeBadge({ value }: { value: string }) {
  return <span class={`badge ${outcomeClass[value] ?? "st-other"}`}>{(value || "—").replace(/_/g, " ")}</span>;
}

export function Time({ t, millis = false, rel = false }: { t: string | number | undefined; millis?: boolean; rel?: boolean }) {
  return (
    <time title={iso(t)} class="time">
      {clock(t, millis)}
      {rel && <span class="muted"> · {ago(t)}</span>}
    </time>
  );
}

/** TraceLink opens a trace through the configured template, or shows the ID when there is
 * none. */
export function TraceLink({ id, label }: { id: string; label?: string }) {
  const cfg = useConfig();
  if (!id) return <span class="muted">—</span>;
  const url = traceLink(cfg, id);
  const text = label ?? short(id);
  if (!url) {
    return (
      <code class="trace" title={`trace ${id}`}>
        {text}
      </code>
    );
  }
  return (
    <a class="trace" href={url} target="_blank" rel="noopener noreferrer" title={`open trace ${id}`} data-trace-id={id}>
      <code>{text}</code>
      <svg class="ext" viewBox="0 0 12 12" aria-hidden="true">
        <path d="M4.5 2H2v8h8V7.5M7 2h3v3M10 2 5.5 6.5" />
      </svg>
    </a>
  );
}

export function Card({ title, actions, children, class: cls = "", id }: { title?: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren; class?: string; id?: string }) {
  return (
    <section class={`card ${cls}`} id={id}>
      {(title || actions) && (
        <header class="card-head">
          <h2>{title}</h2>
          {actions && <div class="card-actions">{actions}</div>}
        </header>
      )}
      {children}
    </section>
  );
}

export function PageHeader({ title, sub, children }: { title: ComponentChildren; sub?: ComponentChildren; children?: ComponentChildren }) {
  return (
    <div class="page-head">
      <div>
        <h1>{title}</h1>
        {sub && <p class="sub">{sub}</p>}
      </div>
      {children && <div class="page-tools">{children}</div>}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

export function Loading() {
  return (
    <div class="loading" aria-busy="true">
      <span class="spinner" /> Loading…
    </div>
  );
}

/** ErrorNote shows a failed request of one panel (the banner shows the connection's state). */
export function ErrorBox({ error }: { error?: ApiError }) {
  if (!error || error.unreachable || error.status >= 500 || error.status === 401) return null;
  return (
    <div class="error-box" role="alert">
      <strong>The API answered {error.status}.</strong> {error.message}
    </div>
  );
}

export function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <label class="field">
      <span>{label}</span>
      {children}
    </label>
  );
}

export function Service({ name }: { name: string }) {
  return name ? <span class="svc">{name}</span> : <span class="muted">—</span>;
}
