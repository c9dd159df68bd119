// Instance: one instance's story across its traces — events, what it waits for and by when,
// violations, why it is stuck, and the alerts and commands sent for it.
import { useState } from "preact/hooks";
import { api, type Alert, type Command, type Event, type Expected, type Flow, type InstanceDetail, type StuckAction } from "../api";
import { AlertsTable, alertState, CommandsTable, TriggerChip } from "../audit-tables";
import { Card, Empty, ErrorBox, Loading, OutcomeBadge, PageHeader, Service, StatusBadge, Time, TraceLink } from "../components";
import { ConfirmDialog, type ConfirmSpec } from "../dialogs";
import { FamilyCard } from "./family";
import { ago, clock, dur, iso, parseTime, short } from "../format";
import { href, useConfig, usePoll } from "../hooks";

/** Statuses after which nothing more is expected of an instance. */
const closed = new Set(["completed", "failed", "cancelled", "compensated"]);

const traceColors = ["#3b82f6", "#8b5cf6", "#0ea5e9", "#14b8a6", "#f59e0b", "#ec4899", "#6366f1", "#84cc16"];

function traceColorMap(events: Event[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of events) {
    if (e.trace_id && !m.has(e.trace_id)) m.set(e.trace_id, traceColors[m.size % traceColors.length]);
  }
  return m;
}

function isError(e: Event): boolean {
  return e.status === "error" || e.checkpoint === "";
}

/** isOperator tells an operator's action (checkpoint "@cancel" or "@unblock"): no flow can
 * declare a checkpoint starting with "@". */
function isOperator(e: Event): boolean {
  return e.checkpoint.startsWith("@");
}

/** operatorText says what an operator did, who, and why: "cancelled by alice@ops: customer
 * called", "unblock paid by alice@ops". */
function operatorText(e: Event): string {
  const what = e.checkpoint === "@cancel" ? "cancelled" : e.name || e.checkpoint.slice(1);
  return `${what} by ${e.by || "an operator"}${e.message ? `: ${e.message}` : ""}`;
}

/** Lanes draws the instance over time, one lane per trace: how the business process hopped
 * from trace to trace, and where its deadlines fall. */
function Lanes({ in_, alerts, commands, colors }: { in_: InstanceDetail; alerts: Alert[]; commands: Command[]; colors: Map<string, string> }) {
  const events = in_.events;
  const sent = [
    ...commands.map((c) => ({
      t: parseTime(c.time),
      label: `${c.trigger === "manual" ? "manual " : ""}command #${c.attempt}`,
      title: `${c.trigger === "manual" ? "manual (operator's) " : ""}unblock command #${c.attempt} for ${c.checkpoint} to ${c.sink}: ${c.outcome}`,
    })),
    ...alerts.map((a) => ({ t: parseTime(a.time), label: `alert ${a.state}`, title: `alert ${a.state} for ${a.checkpoint} to ${a.sink}` })),
  ].filter((x) => !Number.isNaN(x.t));
  const times = [...events.map((e) => parseTime(e.time)), ...sent.map((x) => x.t)].filter((t) => !Number.isNaN(t));
  const open = !closed.has(in_.status);
  const deadlines = in_.expected.map((x) => parseTime(x.deadline)).filter((t) => !Number.isNaN(t));
  const start = Math.min(...times, parseTime(in_.started_at) || Infinity);
  let end = Math.max(...times, ...(open ? [...deadlines, Date.now()] : []));
  if (!Number.isFinite(start) || !Number.isFinite(end)) return null;
  if (end - start < 1000) end = start + 1000;
  const pad = (end - start) * 0.04;
  const t0 = start - pad;
  const t1 = end + pad;
  const pos = (t: number) => `${(((t - t0) / (t1 - t0)) * 100).toFixed(3)}%`;
  const lanes = [...new Set(events.map((e) => e.trace_id))];
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => start + f * (end - start));
  return (
    <div class="lanes" data-lanes={lanes.length}>
      <div class="lane axis">
        <div class="lane-label muted small">trace</div>
        <div class="lane-track">
          {ticks.map((t) => (
            <span class="tick" style={{ left: pos(t) }}>
              {t === start ? clock(t) : `+${dur(t - start)}`}
            </span>
          ))}
        </div>
      </div>
      {lanes.map((tid) => (
        <div class="lane" data-trace={tid}>
          <div class="lane-label">
            <span class="swatch" style={{ background: colors.get(tid) ?? "#94a3b8" }} />
            {tid ? <TraceLink id={tid} /> : <span class="muted small">no trace</span>}
          </div>
          <div class="lane-track">
            <div class="lane-line" />
            {events
              .filter((e) => e.trace_id === tid)
              .map((e) => (
                <span
                  class={`mark${isError(e) ? " err" : ""}${(parseTime(e.time) - t0) / (t1 - t0) > 0.8 ? " flip" : ""}`}
                  style={{ left: pos(parseTime(e.time)), borderColor: colors.get(tid) ?? "#94a3b8" }}
                  title={`${isOperator(e) ? operatorText(e) : e.checkpoint || e.name} · ${e.service} · ${iso(e.time)}`}
                >
                  <span class="mark-label">{isOperator(e) ? `${e.checkpoint.slice(1)} by ${e.by || "an operator"}` : e.checkpoint || `⚠ ${e.name || "error"}`}</span>
                </span>
              ))}
          </div>
        </div>
      ))}
      {sent.length > 0 && (
        <div class="lane" data-lane="flowwatch">
          <div class="lane-label">
            <span class="swatch action" />
            <span class="small">sent by flowwatch</span>
          </div>
          <div class="lane-track">
            <div class="lane-line" />
            {sent
              .sort((a, b) => a.t - b.t)
              .filter((x, i, all) => i === 0 || x.t - all[i - 1].t > (t1 - t0) * 0.03)
              .map((x) => (
                <span class={`mark action${(x.t - t0) / (t1 - t0) > 0.8 ? " flip" : ""}`} style={{ left: pos(x.t) }} title={x.title}>
                  <span class="mark-label">{x.label}</span>
                </span>
              ))}
          </div>
        </div>
      )}
      {open &&
        in_.expected.map((x) => (
          <div class={`deadline${x.overdue ? " over" : ""}`} style={{ left: `calc(180px + (100% - 180px) * ${((parseTime(x.deadline) - t0) / (t1 - t0)).toFixed(4)})` }} title={`${x.checkpoint} due ${iso(x.deadline)}`}>
            <span>{x.checkpoint} due</span>
          </div>
        ))}
    </div>
  );
}

/** An entry of the timeline: a stored event, or a command or alert flowwatch sent. */
type Entry = { t: number; event: Event } | { t: number; command: Command } | { t: number; alert: Alert } | { t: number; expected: Expected };

function entries(in_: InstanceDetail, alerts: Alert[], commands: Command[]): Entry[] {
  const out: Entry[] = [
    ...in_.events.map((event) => ({ t: parseTime(event.time), event })),
    ...(closed.has(in_.status) ? [] : in_.expected.map((expected) => ({ t: parseTime(expected.deadline), expected }))),
    ...commands.map((command) => ({ t: parseTime(command.time), command })),
    ...alerts.map((alert) => ({ t: parseTime(alert.time), alert })),
  ];
  // Stable: events keep their stored order among equal times.
  return out.map((e, i) => ({ e, i })).sort((a, b) => a.e.t - b.e.t || a.i - b.i).map((x) => x.e);
}

function StatusChip({ status }: { status: string }) {
  // "unset" is what most spans carry: only ok and error say something.
  if (status !== "ok" && status !== "error") return null;
  return <span class={`chip status-${status}`}>{status}</span>;
}

/** OperatorItem is an operator's action in the timeline: what was done, by whom, and why. */
function OperatorItem({ e, start }: { e: Event; start: number }) {
  return (
    <li class="tl-item operator" data-checkpoint={e.checkpoint} data-event data-operator-by={e.by ?? ""}>
      <span class="tl-dot" />
      <div class="tl-time">
        <Time t={e.time} millis />
        <div class="muted small">{Number.isNaN(start) ? "" : `+${dur(parseTime(e.time) - start)}`}</div>
      </div>
      <div class="tl-main">
        <div class="tl-title">
          <span class="chip operator-chip">operator</span>
          <span class="operator-action">{operatorText(e)}</span>
        </div>
        <div class="tl-detail muted small">recorded through the operator API</div>
      </div>
      <div class="tl-trace" />
    </li>
  );
}

function EventItem({ e, start, color }: { e: Event; start: number; color?: string }) {
  if (isOperator(e)) return <OperatorItem e={e} start={start} />;
  return (
    <li class={`tl-item${isError(e) ? " err" : ""}`} data-checkpoint={e.checkpoint} data-event>
      <span class="tl-dot" style={{ background: isError(e) ? undefined : (color ?? "#94a3b8") }} />
      <div class="tl-time">
        <Time t={e.time} millis />
        <div class="muted small">{Number.isNaN(start) ? "" : `+${dur(parseTime(e.time) - start)}`}</div>
      </div>
      <div class="tl-main">
        <div class="tl-title">
          {e.checkpoint ? <span class="cp">{e.checkpoint}</span> : <span class="cp err-text">error</span>}
          <Service name={e.service} />
          <StatusChip status={e.status} />
        </div>
        <div class="tl-detail muted small">
          {e.name && <span class="mono">{e.name}</span>}
          {e.message && <span class={isError(e) ? "err-text" : ""}> — {e.message}</span>}
        </div>
      </div>
      <div class="tl-trace">
        {e.trace_id ? <TraceLink id={e.trace_id} /> : <span class="muted small">no trace</span>}
        {e.span_id && <div class="muted small mono">span {short(e.span_id, 16)}</div>}
      </div>
    </li>
  );
}

function ActionItem({ t, start, title, detail, outcome, kind, command }: { t: number; start: number; title: string; detail: string; outcome: string; kind: string; command?: Command }) {
  return (
    <li class={`tl-item action ${kind}`} data-action-entry={kind}>
      <span class="tl-dot" />
      <div class="tl-time">
        <Time t={t} millis />
        <div class="muted small">{Number.isNaN(start) ? "" : `+${dur(t - start)}`}</div>
      </div>
      <div class="tl-main">
        <div class="tl-title">
          <span class="action-title">{title}</span>
          {command && <TriggerChip c={command} />}
          <OutcomeBadge value={outcome} />
        </div>
        <div class="tl-detail muted small">{detail}</div>
      </div>
      <div class="tl-trace muted small">flowwatch</div>
    </li>
  );
}

function ExpectedItem({ x }: { x: Expected }) {
  return (
    <li class={`tl-item expected${x.overdue ? " over" : ""}`} data-expected={x.checkpoint}>
      <span class="tl-dot" />
      <div class="tl-time">
        <Time t={x.deadline} />
        <div class="muted small">deadline</div>
      </div>
      <div class="tl-main">
        <div class="tl-title">
          <span class="cp">{x.checkpoint}</span>
          <Service name={x.service} />
          <span class={`chip ${x.overdue ? "status-error" : "status-unset"}`}>{x.overdue ? "overdue" : "expected"}</span>
          {x.compensates && <span class="chip st-compensating">compensates {x.compensates}</span>}
          {x.children && <span class="chip status-unset">by its {x.children} children</span>}
        </div>
        <div class="tl-detail muted small">
          expected since <Time t={x.since} /> · {x.overdue ? `overdue by ${dur(Date.now() - parseTime(x.deadline))}` : `due ${ago(x.deadline)}`}
        </div>
      </div>
      <div class="tl-trace" />
    </li>
  );
}

function Timeline({ in_, alerts, commands, colors }: { in_: InstanceDetail; alerts: Alert[]; commands: Command[]; colors: Map<string, string> }) {
  const start = parseTime(in_.started_at) || parseTime(in_.events[0]?.time);
  return (
    <ol class="timeline">
      {entries(in_, alerts, commands).map((x) =>
        "event" in x ? (
          <EventItem e={x.event} start={start} color={colors.get(x.event.trace_id)} />
        ) : "expected" in x ? (
          <ExpectedItem x={x.expected} />
        ) : "command" in x ? (
          <ActionItem
            kind="command"
            t={x.t}
            start={start}
            title={`${x.command.trigger === "manual" ? "Manual unblock" : "Unblock"} command #${x.command.attempt} for ${x.command.checkpoint}`}
            command={x.command}
            detail={`to ${x.command.sink}${x.command.subject ? ` ${x.command.subject}` : ""}${x.command.error ? ` — ${x.command.error}` : ""}`}
            outcome={x.command.outcome}
          />
        ) : (
          <ActionItem
            kind="alert"
            t={x.t}
            start={start}
            title={`Alert ${x.alert.state} for ${x.alert.checkpoint}`}
            detail={`to ${x.alert.sink}${x.alert.error ? ` — ${x.alert.error}` : ""}`}
            outcome={alertState(x.alert)}
          />
        ),
      )}
    </ol>
  );
}

function ReasonPanel({ in_ }: { in_: InstanceDetail }) {
  const r = in_.reason;
  if (!r) return null;
  const overdue = Number.isFinite(r.overdue_seconds) ? r.overdue_seconds * 1000 : Date.now() - parseTime(r.deadline);
  const child = r.failure?.child;
  if (in_.status !== "stuck" && child) {
    // Not overdue: failed by a child.
    return (
      <section class="reason" data-reason>
        <div class="reason-head">
          <span class="reason-icon" aria-hidden="true">!</span>
          <div>
            <h2>
              Failed: child <a href={href(["instance", child.flow, child.key], { tenant: in_.tenant })}>{child.flow} {child.key}</a> reached <span class="cp">{child.checkpoint}</span>
            </h2>
            <p class="reason-summary">{r.summary}</p>
          </div>
        </div>
      </section>
    );
  }
  return (
    <section class="reason" data-reason>
      <div class="reason-head">
        <span class="reason-icon" aria-hidden="true">!</span>
        <div>
          <h2>
            Waiting for {r.compensates ? "compensation " : ""}
            <span class="cp">{r.checkpoint}</span>
            {r.compensates && (
              <>
                {" "}(of <span class="cp">{r.compensates}</span>)
              </>
            )}
            {r.service && (
              <>
                {" "}from <Service name={r.service} />
              </>
            )}
            {r.children && <> from its {r.children.flow} children</>} — overdue by <strong>{dur(overdue)}</strong>
          </h2>
          <p class="reason-summary">{r.summary}</p>
          {r.children && (
            <ul class="children-report" data-children-report>
              <li>
                {Object.entries(r.children.counts)
                  .sort()
                  .map(([s, n]) => `${n} ${s}`)
                  .join(", ") || "no child yet"}
              </li>
              {r.children.stuck.map((k) => (
                <li>
                  <a href={href(["instance", r.children!.flow, k.key], { tenant: in_.tenant })}>{k.key}</a> awaits <span class="cp">{k.checkpoint}</span>, due <Time t={k.deadline} rel />
                </li>
              ))}
            </ul>
          )}
        </div>
      </div>
      <dl class="facts">
        <div>
          <dt>Expected since</dt>
          <dd>
            <Time t={r.since} />
          </dd>
        </div>
        <div>
          <dt>Deadline</dt>
          <dd>
            <Time t={r.deadline} rel />
          </dd>
        </div>
        <div>
          <dt>Last checkpoint</dt>
          <dd>
            <span class="cp">{r.last_checkpoint || "—"}</span> {r.last_checkpoint_at && <Time t={r.last_checkpoint_at} />}
          </dd>
        </div>
        <div>
          <dt>Traces</dt>
          <dd class="traces">{r.trace_ids.length ? r.trace_ids.map((t) => <TraceLink id={t} />) : <span class="muted">none</span>}</dd>
        </div>
      </dl>
      {r.last_error && (
        <div class="last-error">
          <div class="le-head">
            Last error · <Service name={r.last_error.service} /> <span class="mono">{r.last_error.name}</span> · <Time t={r.last_error.time} />
            {r.last_error.trace_id && <TraceLink id={r.last_error.trace_id} />}
          </div>
          <div class="le-msg">{r.last_error.message || "(no message)"}</div>
        </div>
      )}
    </section>
  );
}

function AuditTables({ alerts, commands }: { alerts: Alert[]; commands: Command[] }) {
  return (
    <div class="grid2">
      <Card title={`Commands sent (${commands.length})`} class="commands-card">
        {commands.length === 0 ? <Empty>No unblock command was sent for this instance.</Empty> : <CommandsTable rows={commands} instances={false} />}
      </Card>
      <Card title={`Alerts sent (${alerts.length})`} class="alerts-card">
        {alerts.length === 0 ? <Empty>No alert was sent for this instance.</Empty> : <AlertsTable rows={alerts} instances={false} />}
      </Card>
    </div>
  );
}

/** stuckActions are the on_stuck actions of a checkpoint of the instance's flow version; empty
 * when it has none, undefined while the flows are not known. */
function stuckActions(flows: Flow[] | undefined, in_: InstanceDetail, checkpoint: string): StuckAction[] | undefined {
  if (!flows) return undefined;
  const f = flows.find((f) => f.name === in_.flow && f.version === in_.version);
  return f?.checkpoints.find((c) => c.name === checkpoint)?.on_stuck ?? [];
}

function sinks(actions: StuckAction[]): string {
  return actions.map((a) => (a.subject ? `${a.sink} ${a.subject}` : a.sink)).join(", ");
}

/** UnblockButton offers the unblock of an overdue checkpoint that has on_stuck actions, and
 * says so of one that has none (the API would refuse it: there is nothing to send). */
function UnblockButton({ in_, x, actions, onAsk }: { in_: InstanceDetail; x: Expected; actions: StuckAction[]; onAsk: (s: ConfirmSpec) => void }) {
  if (actions.length === 0) {
    return (
      <span class="muted small no-unblock" data-no-unblock={x.checkpoint} title={`${x.checkpoint} has no on_stuck action: an unblock would have nothing to send`}>
        {x.checkpoint}: no on_stuck action
      </span>
    );
  }
  return (
    <button
      type="button"
      class="btn"
      data-action="unblock"
      data-checkpoint={x.checkpoint}
      onClick={() =>
        onAsk({
          title: `Unblock ${x.checkpoint}?`,
          body: (
            <p>
              Sends the next attempt of <b>{x.checkpoint}</b>'s <code>on_stuck</code> action{actions.length === 1 ? "" : "s"} (to {sinks(actions)}) now for <b>{in_.key}</b> ({in_.flow}, tenant {in_.tenant}), recorded as a manual trigger.
            </p>
          ),
          confirm: `Unblock ${x.checkpoint}`,
          run: (by) => api.unblock(in_.flow, in_.key, in_.tenant, x.checkpoint, by),
          done: `Unblock of ${x.checkpoint} requested; the command shows below once sent.`,
        })
      }
    >
      Unblock {x.checkpoint}…
    </button>
  );
}

function Actions({ in_, flows, onAsk }: { in_: InstanceDetail; flows: Flow[] | undefined; onAsk: (s: ConfirmSpec) => void }) {
  const cfg = useConfig();
  if (!cfg.operator_api || closed.has(in_.status)) return null;
  return (
    <div class="actions" data-operator-actions>
      {in_.expected
        .filter((x) => x.overdue)
        .map((x) => {
          // Nothing is offered while the flows are not known.
          const actions = stuckActions(flows, in_, x.checkpoint);
          return actions && <UnblockButton in_={in_} x={x} actions={actions} onAsk={onAsk} />;
        })}
      <button
        type="button"
        class="btn danger-outline"
        data-action="cancel"
        onClick={() =>
          onAsk({
            title: `Cancel ${in_.key}?`,
            body: (
              <p>
                The instance becomes <b>cancelled</b>: its alert resolves, no further command is sent, and its compensations become due. This is recorded in the store with your name and reason.
              </p>
            ),
            confirm: "Cancel instance",
            danger: true,
            askReason: true,
            run: (by, reason) => api.cancel(in_.flow, in_.key, in_.tenant, reason, by),
            done: "Cancel requested; the detector applies it on its next tick.",
          })
        }
      >
        Cancel instance…
      </button>
    </div>
  );
}

export function InstancePage({ flow, instanceKey: key, params }: { flow: string; instanceKey: string; params: URLSearchParams }) {
  const tenant = params.get("tenant") ?? "";
  const [ask, setAsk] = useState<ConfirmSpec | null>(null);
  const [notice, setNotice] = useState("");
  const poll = usePoll(
    async (signal) => {
      const [in_, alerts, commands] = await Promise.all([
        api.instance(flow, key, tenant, signal),
        // This instance's audit records (the key filter is exact; tenant and flow narrow it).
        api.alerts({ flow, tenant, key, limit: 1000 }, signal),
        api.commands({ flow, tenant, key, limit: 1000 }, signal),
      ]);
      return { in_, alerts: alerts.filter((a) => a.key === key), commands: commands.filter((c) => c.key === key) };
    },
    [flow, key, tenant],
  );
  // The flow definitions say which overdue checkpoint has an on_stuck action to unblock.
  const flows = usePoll((s) => api.flows(s), ["flows"]);
  const d = poll.data;
  const colors = traceColorMap(d?.in_.events ?? []);
  const traces = colors.size;
  return (
    <>
      <PageHeader
        title={
          <>
            <span class="crumb">
              <a href={href(["stuck"], { flow })}>{flow}</a> /
            </span>{" "}
            <span class="key mono">{key}</span> {d && <StatusBadge status={d.in_.status} />}
          </>
        }
        sub={
          d && (
            <>
              v{d.in_.version} · tenant {d.in_.tenant} · started <Time t={d.in_.started_at} rel /> · last seen <Time t={d.in_.last_seen} rel /> · {d.in_.events.length} events across {traces} trace{traces === 1 ? "" : "s"}
            </>
          )
        }
      >
        {d && <Actions in_={d.in_} flows={flows.data} onAsk={(s) => { setNotice(""); setAsk(s); }} />}
      </PageHeader>
      {notice && (
        <div class="notice" role="status">
          {notice}
        </div>
      )}
      <ErrorBox error={poll.error} />
      {poll.loading && <Loading />}
      {d && (
        <>
          <ReasonPanel in_={d.in_} />
          <FamilyCard in_={d.in_} />
          <Card title="Across traces" class="lanes-card">
            {d.in_.events.length ? <Lanes in_={d.in_} alerts={d.alerts} commands={d.commands} colors={colors} /> : <Empty>No events are stored for this instance any more (they expire by event time).</Empty>}
          </Card>
          <Card title={`Timeline (${d.in_.events.length} events${d.commands.length + d.alerts.length ? `, ${d.commands.length + d.alerts.length} sent by flowwatch` : ""})`} class="timeline-card">
            {d.in_.events.length || d.in_.expected.length ? <Timeline in_={d.in_} alerts={d.alerts} commands={d.commands} colors={colors} /> : <Empty>No events.</Empty>}
          </Card>
          {d.in_.violations.length > 0 && (
            <Card title={`Conformance violations (${d.in_.violations.length})`} class="violations-card">
              <table class="table compact">
                <thead>
                  <tr>
                    <th>Kind</th>
                    <th>Checkpoint</th>
                    <th>Time</th>
                    <th>Detail</th>
                  </tr>
                </thead>
                <tbody>
                  {d.in_.violations.map((v) => (
                    <tr data-violation={v.kind}>
                      <td>
                        <span class="chip status-error">{v.kind.replace(/_/g, " ")}</span>
                      </td>
                      <td class="cp">{v.checkpoint}</td>
                      <td>
                        <Time t={v.time} millis />
                      </td>
                      <td>{v.detail}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </Card>
          )}
          <AuditTables alerts={d.alerts} commands={d.commands} />
        </>
      )}
      {ask && (
        <ConfirmDialog
          spec={ask}
          onClose={() => setAsk(null)}
          onDone={(msg) => {
            setAsk(null);
            setNotice(msg);
            poll.reload();
          }}
        />
      )}
    </>
  );
}
