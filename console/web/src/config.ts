// The page's settings, served by the console handler at console/config.json (console.go
// pageConfig is the other side of this contract).

export interface PageConfig {
  /** Link template of one trace, with {trace_id}; empty: no links. */
  trace_url: string;
  /** Whether the operator actions (cancel, unblock) are served. */
  operator_api: boolean;
  /** Whether the API wants a bearer token. */
  token_required: boolean;
  /** How often pages reload what they show, in milliseconds. */
  refresh_ms: number;
}

export const defaults: PageConfig = { trace_url: "", operator_api: false, token_required: false, refresh_ms: 5000 };

export async function loadConfig(): Promise<PageConfig> {
  const resp = await fetch("console/config.json", { cache: "no-store" });
  if (!resp.ok) throw new Error(`console/config.json answered ${resp.status}`);
  return { ...defaults, ...((await resp.json()) as Partial<PageConfig>) };
}

/** traceLink fills the template with a trace ID; "" when there is no template or no ID. */
export function traceLink(cfg: PageConfig, traceID: string): string {
  if (!cfg.trace_url || !traceID) return "";
  return cfg.trace_url.split("{trace_id}").join(encodeURIComponent(traceID));
}
