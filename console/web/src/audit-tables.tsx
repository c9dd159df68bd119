// The tables of commands and alerts sent: on the audit page (with the instance of each), and
// on an instance's page (its own only).
import type { Alert, Command } from "./api";
import { OutcomeBadge, Time } from "./components";
import { instanceHref } from "./hooks";

function Payload({ p }: { p: unknown }) {
  if (p === null || p === undefined) return null;
  return (
    <details class="payload">
      <summary>payload</summary>
      <pre>{JSON.stringify(p, null, 2)}</pre>
    </details>
  );
}

function InstanceCell({ flow, key_, tenant }: { flow: string; key_: string; tenant: string }) {
  if (!key_) return <span class="muted">{flow} (grouped)</span>;
  return (
    <>
      <a class="key" href={instanceHref(flow, key_, tenant)}>
        {key_}
      </a>
      <div class="muted small">
        {flow} · {tenant}
      </div>
    </>
  );
}

/** TriggerChip tells a command an operator's unblock sent (manual) from one flowwatch sent of
 * itself (auto). */
export function TriggerChip({ c }: { c: Command }) {
  return c.trigger === "manual" ? (
    <span class="chip trigger-manual" data-trigger="manual" title="sent at an operator's request (unblock)">
      manual
    </span>
  ) : (
    <span class="chip" data-trigger={c.trigger || "auto"} title="sent by flowwatch when the checkpoint was overdue">
      {c.trigger || "auto"}
    </span>
  );
}

/** alertState is what became of an alert notification: failed, or the state it told. */
export function alertState(a: Alert): string {
  return a.error ? "failed" : a.state;
}

export function CommandsTable({ rows, instances }: { rows: Command[]; instances: boolean }) {
  return (
    <table class={`table ${instances ? "audit-table" : "compact"}`}>
      <thead>
        <tr>
          <th>Time</th>
          {instances && <th>Instance</th>}
          <th>Checkpoint</th>
          <th>Attempt</th>
          <th>Trigger</th>
          <th>Sink · subject</th>
          <th>Outcome</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((c) => (
          <tr data-command={c.id}>
            <td>
              <Time t={c.time} />
            </td>
            {instances && (
              <td>
                <InstanceCell flow={c.flow} key_={c.key} tenant={c.tenant} />
              </td>
            )}
            <td class="cp">{c.checkpoint}</td>
            <td>#{c.attempt}</td>
            <td>
              <TriggerChip c={c} />
            </td>
            <td>
              {c.sink}
              {c.subject && <div class="muted small mono">{c.subject}</div>}
            </td>
            <td>
              <OutcomeBadge value={c.outcome} />
              {c.error && <div class="err-text small">{c.error}</div>}
              <Payload p={c.payload} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function AlertsTable({ rows, instances }: { rows: Alert[]; instances: boolean }) {
  return (
    <table class={`table ${instances ? "audit-table" : "compact"}`}>
      <thead>
        <tr>
          <th>Time</th>
          {instances && <th>Instance</th>}
          <th>Checkpoint</th>
          <th>State</th>
          <th>Sink</th>
          {instances && <th>Summary</th>}
        </tr>
      </thead>
      <tbody>
        {rows.map((a) => (
          <tr data-alert={a.fingerprint}>
            <td>
              <Time t={a.time} />
            </td>
            {instances && (
              <td>
                <InstanceCell flow={a.flow} key_={a.key} tenant={a.tenant} />
              </td>
            )}
            <td class="cp">{a.checkpoint}</td>
            <td>
              <OutcomeBadge value={alertState(a)} />
              {a.error && <div class="err-text small">{a.error}</div>}
            </td>
            <td>{a.sink}</td>
            {instances && <td class="summary-cell">{a.summary}</td>}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
