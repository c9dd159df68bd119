// The query API v1 (api/openapi.yaml) as the console uses it: documents, requests, the bearer
// token and the state of the connection that the header and the banner show.

export interface Checkpoint {
  name: string;
  start: boolean;
  after: string[];
  join: string;
  within?: string;
  terminal?: string;
  service: string;
  key: string;
  aliases?: string[];
  /** Set on a children checkpoint: reached by the instance's children (a sub-flow). */
  children?: { flow: string; complete: string; expect?: string };
  /** Set on a compensation: the checkpoint it undoes. */
  compensates?: string;
  /** Its on_stuck actions (what an unblock sends); absent when it has none. */
  on_stuck?: StuckAction[];
}

/** An on_stuck action: the sink a command goes to, and its subject (empty when none). */
export interface StuckAction {
  sink: string;
  subject: string;
}

export interface Flow {
  name: string;
  version: number;
  key: string;
  active_from?: string;
  /** Set on a sub-flow: its parent flow and the attribute holding the parent's key. */
  parent?: { flow: string; key: string };
  checkpoints: Checkpoint[];
}

export interface Expected {
  checkpoint: string;
  deadline: string;
  since: string;
  service: string;
  overdue: boolean;
  /** Set on a compensation, due after a failure: the step it undoes. */
  compensates?: string;
  /** Set on a children checkpoint: the child flow that reaches it. */
  children?: string;
}

export interface ErrorNote {
  service: string;
  name: string;
  message: string;
  trace_id: string;
  span_id: string;
  time: string;
}

export interface Reason {
  checkpoint: string;
  since: string;
  deadline: string;
  overdue: string;
  overdue_seconds: number;
  service: string;
  last_checkpoint: string;
  last_checkpoint_at?: string;
  last_error?: ErrorNote;
  trace_ids: string[];
  compensates?: string;
  failure?: Failure;
  children?: ChildrenReport;
  summary: string;
}

/** What failed an instance: its failure terminal, a failed child, or "@cancel". */
export interface Failure {
  checkpoint: string;
  time: string;
  child?: { flow: string; key: string; checkpoint: string };
}

/** How the children of a parent stuck at a children checkpoint fare. */
export interface ChildrenReport {
  flow: string;
  counts: Record<string, number>;
  stuck: { key: string; checkpoint: string; deadline: string; summary: string }[];
}

/** One child of a parent instance. */
export interface Child {
  flow: string;
  key: string;
  status: string;
  checkpoint?: string;
  ended_at?: string;
  summary?: string;
}

export interface Instance {
  tenant: string;
  flow: string;
  version: number;
  key: string;
  status: string;
  started_at: string;
  last_seen: string;
  last_checkpoint: string;
  expected: Expected[];
  reason: Reason | null;
}

export interface Event {
  checkpoint: string;
  time: string;
  service: string;
  name: string;
  trace_id: string;
  span_id: string;
  status: string;
  /** The span's status message; on an operator's action, the reason given. */
  message: string;
  /** Set on an operator's action (checkpoint "@cancel" or "@unblock"): who took it. */
  by?: string;
}

export interface Violation {
  kind: string;
  checkpoint: string;
  time: string;
  event_id: string;
  detail: string;
}

export interface InstanceDetail extends Instance {
  events: Event[];
  violations: Violation[];
  /** A sub-flow's instance: its parent. */
  parent?: { flow: string; key: string };
  /** A parent's children. */
  children?: Child[];
}

export interface GraphNode {
  id: string;
  count: number;
  stuck: number;
}

export interface GraphEdge {
  source: string;
  target: string;
  count: number;
  p50_ms: number;
  p95_ms: number;
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export interface Series {
  name: string;
  points: [number, number][];
}

export interface Alert {
  time: string;
  tenant: string;
  flow: string;
  version: number;
  key: string;
  checkpoint: string;
  state: string;
  sink: string;
  fingerprint: string;
  summary: string;
  error: string;
}

export interface Command {
  id: string;
  time: string;
  tenant: string;
  flow: string;
  version: number;
  key: string;
  checkpoint: string;
  attempt: number;
  sink: string;
  subject: string;
  outcome: string;
  /** manual when an operator's unblock sent it, else auto. */
  trigger: "auto" | "manual";
  error: string;
  payload: unknown;
}

/** ApiError is a failed request: a status and the API's {"error"} message, or status 0 when
 * the API could not be reached at all. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
  get unreachable(): boolean {
    return this.status === 0;
  }
}

// ---- the bearer token, kept for the browser session ----

const tokenKey = "flowwatch.token";

export function token(): string {
  try {
    return sessionStorage.getItem(tokenKey) ?? "";
  } catch {
    return "";
  }
}

export function setToken(t: string): void {
  try {
    if (t) sessionStorage.setItem(tokenKey, t);
    else sessionStorage.removeItem(tokenKey);
  } catch {
    // storage disabled: the token lives as long as the page
  }
  memoryToken = t;
  notify({ ...conn, auth: t ? "ok" : conn.auth, authMessage: "" });
}

let memoryToken = "";

function currentToken(): string {
  return token() || memoryToken;
}

// ---- the connection, as the header and the banner show it ----

export interface Connection {
  /** ok: the last request was answered; down: it was not (unreachable or a 5xx). */
  state: "ok" | "down";
  /** auth: "needed" when the API wants a token the page does not have (or has a wrong one). */
  auth: "ok" | "needed";
  authMessage: string;
  message: string;
  /** When the API was last answered, and since when it is down. */
  lastOk?: Date;
  downSince?: Date;
}

let conn: Connection = { state: "ok", auth: "ok", authMessage: "", message: "" };
const listeners = new Set<(c: Connection) => void>();

function notify(c: Connection): void {
  conn = c;
  listeners.forEach((l) => l(conn));
}

export function connection(): Connection {
  return conn;
}

export function onConnection(l: (c: Connection) => void): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

/** needToken asks for a token before the first request (the configuration says one is
 * required and none is kept). */
export function needToken(message = ""): void {
  notify({ ...conn, auth: "needed", authMessage: message });
}

function answered(): void {
  if (conn.state !== "ok" || !conn.lastOk || Date.now() - conn.lastOk.getTime() > 1000) {
    notify({ ...conn, state: "ok", message: "", lastOk: new Date(), downSince: undefined });
  }
}

function failed(message: string): void {
  notify({ ...conn, state: "down", message, downSince: conn.downSince ?? new Date() });
}

// ---- requests ----

type Params = Record<string, string | number | undefined | null>;

export function query(params: Params): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

async function request<T>(method: string, path: string, signal?: AbortSignal, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const t = currentToken();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp: Response;
  try {
    // Relative to the page: the console works behind a path prefix too.
    resp = await fetch(path.replace(/^\//, ""), {
      method,
      headers,
      signal,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    if (signal?.aborted) throw e;
    const msg = "cannot reach the flowwatch API";
    failed(msg);
    throw new ApiError(0, msg);
  }
  let doc: unknown = null;
  const text = await resp.text();
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = null;
  }
  if (resp.ok) {
    answered();
    return doc as T;
  }
  const msg =
    doc && typeof doc === "object" && "error" in doc && typeof (doc as { error: unknown }).error === "string"
      ? (doc as { error: string }).error
      : `${resp.status} ${resp.statusText}`.trim();
  if (resp.status === 401) {
    answered();
    if (currentToken()) setToken("");
    needToken(msg);
  } else if (resp.status >= 500) {
    failed(`the API answered ${resp.status}: ${msg}`);
  } else {
    answered();
  }
  throw new ApiError(resp.status, msg);
}

export const get = <T>(path: string, signal?: AbortSignal) => request<T>("GET", path, signal);
export const post = <T>(path: string, body: unknown) => request<T>("POST", path, undefined, body);

const seg = encodeURIComponent;

export const api = {
  flows: (s?: AbortSignal) => get<{ flows: Flow[] }>("/api/v1/flows", s).then((d) => d.flows ?? []),
  instances: (p: Params, s?: AbortSignal) =>
    get<{ instances: Instance[]; next_cursor: string }>(`/api/v1/instances${query(p)}`, s),
  instance: (flow: string, key: string, tenant: string, s?: AbortSignal) =>
    get<InstanceDetail>(`/api/v1/flows/${seg(flow)}/instances/${seg(key)}${query({ tenant })}`, s),
  graph: (flow: string, from: number, to: number, s?: AbortSignal) =>
    get<Graph>(`/api/v1/flows/${seg(flow)}/graph${query({ from, to })}`, s),
  series: (flow: string, p: Params, s?: AbortSignal) =>
    get<{ series: Series[] }>(`/api/v1/flows/${seg(flow)}/series${query(p)}`, s).then((d) => d.series ?? []),
  alerts: (p: Params, s?: AbortSignal) =>
    get<{ alerts: Alert[] }>(`/api/v1/alerts${query(p)}`, s).then((d) => d.alerts ?? []),
  commands: (p: Params, s?: AbortSignal) =>
    get<{ commands: Command[] }>(`/api/v1/commands${query(p)}`, s).then((d) => d.commands ?? []),
  // Operator actions (DESIGN.md "Query API v1"): served only when the operator API is on.
  cancel: (flow: string, key: string, tenant: string, reason: string, by: string) =>
    post<unknown>(`/api/v1/flows/${seg(flow)}/instances/${seg(key)}/cancel${query({ tenant })}`, { reason, by }),
  unblock: (flow: string, key: string, tenant: string, checkpoint: string, by: string) =>
    post<unknown>(`/api/v1/flows/${seg(flow)}/instances/${seg(key)}/unblock${query({ tenant })}`, { checkpoint, by }),
};
