// The flowwatch console: a single page over the query API, routed through the location hash.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { needToken, setToken, token } from "./api";
import { loadConfig, type PageConfig } from "./config";
import { TokenDialog } from "./dialogs";
import { clock } from "./format";
import { ConfigContext, useConnection, useRoute } from "./hooks";
import { AuditPage } from "./pages/audit";
import { FlowsPage } from "./pages/flows";
import { InstancePage } from "./pages/instance";
import { StuckPage } from "./pages/stuck";
import "./style.css";

const pages = [
  { id: "flows", label: "Flows" },
  { id: "stuck", label: "Stuck" },
  { id: "audit", label: "Audit" },
];

function Logo() {
  return (
    <svg class="logo" viewBox="0 0 32 32" aria-hidden="true">
      <rect width="32" height="32" rx="7" />
      <circle cx="8" cy="16" r="3.2" class="l1" />
      <circle cx="24" cy="9" r="3.2" class="l2" />
      <circle cx="24" cy="23" r="3.2" class="l3" />
      <path d="M11 15 21 10M11 17 21 22" />
    </svg>
  );
}

function LiveIndicator() {
  const c = useConnection();
  const [, tick] = useState(0);
  useEffect(() => {
    const t = window.setInterval(() => tick((n) => n + 1), 1000);
    return () => window.clearInterval(t);
  }, []);
  if (c.state === "down") {
    return (
      <span class="live down" title={c.message}>
        <span class="dot" /> API unreachable
      </span>
    );
  }
  return (
    <span class="live" title="the pages reload every few seconds">
      <span class="dot" /> live{c.lastOk && <span class="muted"> · {clock(c.lastOk.getTime())}</span>}
    </span>
  );
}

/** Banner says so when the API does not answer; the pages keep what they last showed. */
function Banner() {
  const c = useConnection();
  if (c.state !== "down") return null;
  return (
    <div class="banner" role="alert" data-banner="down">
      <strong>Cannot reach the flowwatch API</strong> since {c.downSince ? clock(c.downSince.getTime()) : "just now"} ({c.message}). Retrying every few seconds
      {c.lastOk ? `; what you see is from ${clock(c.lastOk.getTime())}.` : "."}
    </div>
  );
}

function Page() {
  const { path, params } = useRoute();
  switch (path[0] ?? "flows") {
    case "stuck":
      return <StuckPage params={params} />;
    case "audit":
      return <AuditPage params={params} />;
    case "instance":
      if (path.length >= 3) return <InstancePage key={path.slice(1).join("/")} flow={path[1]} instanceKey={path.slice(2).join("/")} params={params} />;
      break;
    case "flows":
      return <FlowsPage params={params} />;
  }
  return (
    <div class="empty">
      No such page. <a href="#/flows">Go to the flows.</a>
    </div>
  );
}

function Shell({ cfg }: { cfg: PageConfig }) {
  const { path } = useRoute();
  const c = useConnection();
  const here = path[0] === "instance" ? "stuck" : (path[0] ?? "flows");
  return (
    <ConfigContext.Provider value={cfg}>
      <header class="top">
        <a class="brand" href="#/flows">
          <Logo />
          <span>flowwatch</span>
        </a>
        <nav>
          {pages.map((p) => (
            <a href={`#/${p.id}`} class={here === p.id ? "on" : ""} data-nav={p.id}>
              {p.label}
            </a>
          ))}
        </nav>
        <div class="top-right">
          <LiveIndicator />
          {token() && (
            <button type="button" class="btn link" onClick={() => setToken("")} title="forget the token kept in this tab">
              Sign out
            </button>
          )}
        </div>
      </header>
      <Banner />
      <main>{c.auth === "needed" ? null : <Page />}</main>
      {c.auth === "needed" && <TokenDialog message={c.authMessage} />}
    </ConfigContext.Provider>
  );
}

function App() {
  const [cfg, setCfg] = useState<PageConfig | null>(null);
  const [err, setErr] = useState("");
  useEffect(() => {
    let stopped = false;
    let timer = 0;
    const load = () =>
      loadConfig()
        .then((c) => {
          if (stopped) return;
          if (c.token_required && !token()) needToken();
          setCfg(c);
        })
        .catch((e: Error) => {
          if (stopped) return;
          setErr(e.message);
          timer = window.setTimeout(load, 3000);
        });
    load();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, []);
  if (!cfg) {
    return <div class="boot">{err ? <div class="banner">Cannot load the console's configuration ({err}); retrying…</div> : <span class="spinner" />}</div>;
  }
  return <Shell cfg={cfg} />;
}

render(<App />, document.getElementById("app")!);
