// Times, durations and numbers as the pages show them.

const nf = new Intl.NumberFormat("en-US");

export function num(n: number | undefined): string {
  return nf.format(n ?? 0);
}

export function parseTime(s: string | undefined): number {
  if (!s) return NaN;
  const t = Date.parse(s);
  // The zero time of Go ("0001-01-01T00:00:00Z") means "none".
  return t < -6e13 ? NaN : t;
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, "0");
}

/** clock is a local wall-clock time; the date is added when it is not today. */
export function clock(s: string | number | undefined, millis = false): string {
  const t = typeof s === "number" ? s : parseTime(s);
  if (Number.isNaN(t)) return "—";
  const d = new Date(t);
  let out = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (millis) out += `.${pad(d.getMilliseconds(), 3)}`;
  const now = new Date();
  if (d.toDateString() !== now.toDateString()) {
    out = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${out}`;
  }
  return out;
}

/** iso is the full UTC time, for tooltips. */
export function iso(s: string | number | undefined): string {
  const t = typeof s === "number" ? s : parseTime(s);
  return Number.isNaN(t) ? "" : new Date(t).toISOString();
}

/** dur formats milliseconds compactly: 850 ms, 1.2 s, 3m 20s, 2h 5m, 3d 4h. */
export function dur(ms: number): string {
  if (!Number.isFinite(ms)) return "—";
  const neg = ms < 0;
  ms = Math.abs(ms);
  let out: string;
  if (ms < 1000) out = `${Math.round(ms)} ms`;
  else if (ms < 10_000) out = `${(ms / 1000).toFixed(1)} s`;
  else if (ms < 60_000) out = `${Math.round(ms / 1000)} s`;
  else if (ms < 3_600_000) {
    const m = Math.floor(ms / 60_000);
    const s = Math.floor((ms % 60_000) / 1000);
    out = s ? `${m}m ${s}s` : `${m}m`;
  } else if (ms < 86_400_000) {
    const h = Math.floor(ms / 3_600_000);
    const m = Math.floor((ms % 3_600_000) / 60_000);
    out = m ? `${h}h ${m}m` : `${h}h`;
  } else {
    const d = Math.floor(ms / 86_400_000);
    const h = Math.floor((ms % 86_400_000) / 3_600_000);
    out = h ? `${d}d ${h}h` : `${d}d`;
  }
  return neg ? `-${out}` : out;
}

/** ago is "3m ago" or "in 20 s" relative to now. */
export function ago(s: string | number | undefined, now = Date.now()): string {
  const t = typeof s === "number" ? s : parseTime(s);
  if (Number.isNaN(t)) return "";
  const d = now - t;
  if (Math.abs(d) < 1000) return "just now";
  return d > 0 ? `${dur(d)} ago` : `in ${dur(-d)}`;
}

/** short shortens a trace or span ID for display. */
export function short(id: string, n = 8): string {
  return id.length > n ? id.slice(0, n) : id;
}

/** goDuration parses a Go duration string ("1m2.5s", "30s", "1h0m0s") into milliseconds. */
export function goDuration(s: string | undefined): number {
  if (!s) return NaN;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  let matched = "";
  for (const m of s.matchAll(/(-?[0-9.]+)(ns|us|µs|ms|s|m|h|d)/g)) {
    total += parseFloat(m[1]) * unit[m[2]];
    matched += m[0];
  }
  return matched === s ? total : NaN;
}
