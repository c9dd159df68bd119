// Families on the instance page: a sub-flow's parent, a parent's children with their statuses.
import type { InstanceDetail } from "../api";
import { Card, Empty, StatusBadge, Time } from "../components";
import { href } from "../hooks";

/** Family: a sub-flow's parent, a parent's children. */
export function FamilyCard({ in_ }: { in_: InstanceDetail }) {
  const kids = in_.children;
  if (!in_.parent && !kids) return null;
  return (
    <Card title={kids ? `Children (${kids.length})` : "Parent"} class="family-card">
      {in_.parent && (
        <p class="family-parent" data-parent>
          A child of <a href={href(["instance", in_.parent.flow, in_.parent.key], { tenant: in_.tenant })}>{in_.parent.flow} {in_.parent.key}</a>
        </p>
      )}
      {kids &&
        (kids.length === 0 ? (
          <Empty>No child yet.</Empty>
        ) : (
          <table class="table compact">
            <thead>
              <tr>
                <th>Child</th>
                <th>Status</th>
                <th>Ended by</th>
                <th>Why stuck</th>
              </tr>
            </thead>
            <tbody>
              {kids.map((k) => (
                <tr data-child={k.key}>
                  <td>
                    <a href={href(["instance", k.flow, k.key], { tenant: in_.tenant })}>
                      {k.flow} <span class="mono">{k.key}</span>
                    </a>
                  </td>
                  <td>
                    <StatusBadge status={k.status} />
                  </td>
                  <td>
                    {k.checkpoint ? <span class="cp">{k.checkpoint}</span> : "—"} {k.ended_at && <Time t={k.ended_at} />}
                  </td>
                  <td class="muted small">{k.summary ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ))}
    </Card>
  );
}

