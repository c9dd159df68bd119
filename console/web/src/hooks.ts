// Routing through the location hash, and data that reloads itself every few seconds.
import { createContext } from "preact";
import { useCallback, useContext, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, connection, onConnection, type Connection } from "./api";
import { defaults, type PageConfig } from "./config";

export const ConfigContext = createContext<PageConfig>(defaults);

export function useConfig(): PageConfig {
  return useContext(ConfigContext);
}

// ---- routes: #/page/segment/segment?param=value ----

export interface Route {
  path: string[];
  params: URLSearchParams;
}

function parseHash(): Route {
  const h = location.hash.replace(/^#\/?/, "");
  const [p, q = ""] = h.split("?", 2);
  const path = p.split("/").filter(Boolean).map(decodeURIComponent);
  return { path, params: new URLSearchParams(q) };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(parseHash);
  useEffect(() => {
    const on = () => setRoute(parseHash());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

/** href builds a hash link from path segments and parameters (empty ones are left out). */
export function href(path: string[], params: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return `#/${path.map(encodeURIComponent).join("/")}${s ? `?${s}` : ""}`;
}

export function navigate(path: string[], params: Record<string, string | undefined> = {}, replace = false): void {
  const h = href(path, params);
  if (replace) history.replaceState(null, "", h);
  else location.hash = h;
  if (replace) dispatchEvent(new HashChangeEvent("hashchange"));
}

export function instanceHref(flow: string, key: string, tenant: string): string {
  return href(["instance", flow, key], { tenant });
}

// ---- the connection ----

export function useConnection(): Connection {
  const [c, setC] = useState(connection);
  useEffect(() => onConnection(setC), []);
  return c;
}

// ---- polling ----

export interface Poll<T> {
  data?: T;
  /** stale: data is of the previous parameters, shown while the new ones load (keepPrevious). */
  stale?: boolean;
  error?: ApiError;
  loading: boolean;
  updatedAt?: Date;
  reload: () => void;
}

/** usePoll loads data now, whenever deps change, and again every refresh_ms after each load
 * ends (never two loads at once; none while the tab is hidden). The last data is kept while
 * a reload fails, so a page survives the API being briefly down. With keepPrevious, the data of
 * the previous parameters stays (marked stale) until the new ones have loaded. */
export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[], keepPrevious = false): Poll<T> {
  const cfg = useConfig();
  // The parameters the shown data is for: data loaded for other ones is never shown.
  const key = JSON.stringify(deps);
  const [state, setState] = useState<{ key: string; data?: T; error?: ApiError; updatedAt?: Date }>({ key });
  const loadRef = useRef(load);
  loadRef.current = load;
  const [nonce, setNonce] = useState(0);
  const reload = useCallback(() => setNonce((n) => n + 1), []);

  useEffect(() => {
    let stopped = false;
    let inflight = false;
    let timer: number | undefined;
    let ctrl: AbortController | undefined;
    const tick = async () => {
      if (stopped || inflight) return;
      if (document.hidden) {
        timer = window.setTimeout(tick, cfg.refresh_ms);
        return;
      }
      inflight = true;
      ctrl = new AbortController();
      try {
        const data = await loadRef.current(ctrl.signal);
        if (!stopped) setState({ key, data, updatedAt: new Date() });
      } catch (e) {
        if (!stopped) {
          const err = e instanceof ApiError ? e : new ApiError(0, e instanceof Error ? e.message : String(e));
          setState((s) => (s.key === key ? { ...s, error: err } : { key, error: err }));
        }
      }
      inflight = false;
      if (!stopped) timer = window.setTimeout(tick, cfg.refresh_ms);
    };
    tick();
    const onVisible = () => {
      if (!document.hidden) {
        window.clearTimeout(timer);
        tick();
      }
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      stopped = true;
      window.clearTimeout(timer);
      ctrl?.abort();
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [key, nonce, cfg.refresh_ms]);

  if (state.key !== key) return keepPrevious && state.data !== undefined ? { data: state.data, stale: true, loading: true, reload } : { loading: true, reload };
  return { data: state.data, error: state.error, updatedAt: state.updatedAt, loading: state.data === undefined && !state.error, reload };
}
