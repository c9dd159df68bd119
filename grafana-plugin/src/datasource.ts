import { CoreApp, DataSourceInstanceSettings, MetricFindValue, ScopedVars } from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv } from '@grafana/runtime';

import { DEFAULT_QUERY, FlowInfo, FlowwatchOptions, FlowwatchQuery, QueryType } from './types';

/** The variable queries metricFindQuery understands. */
export const VARIABLE_QUERY_HELP = 'flows | checkpoints flow=NAME | keys flow=NAME [status=stuck] [tenant=T]';

export interface VariableQuery {
  kind: 'flows' | 'checkpoints' | 'keys';
  args: Record<string, string>;
}

/** parseVariableQuery reads "keys flow=order-fulfilment status=stuck"; it throws on anything else. */
export function parseVariableQuery(query: string): VariableQuery {
  const words = query.trim().split(/\s+/).filter(Boolean);
  const kind = words[0] ?? '';
  if (kind !== 'flows' && kind !== 'checkpoints' && kind !== 'keys') {
    throw new Error(`unknown variable query "${query}": use ${VARIABLE_QUERY_HELP}`);
  }
  const args: Record<string, string> = {};
  for (const w of words.slice(1)) {
    const i = w.indexOf('=');
    if (i <= 0) {
      throw new Error(`"${w}" is not name=value in variable query "${query}"`);
    }
    args[w.slice(0, i)] = w.slice(i + 1);
  }
  if ((kind === 'keys' || kind === 'checkpoints') && !args.flow) {
    throw new Error(`variable query "${query}" needs flow=NAME`);
  }
  return { kind, args };
}

/** What a query needs before it is worth sending. */
export function isRunnable(q: FlowwatchQuery): boolean {
  switch (q.queryType ?? QueryType.Instances) {
    case QueryType.Timeline:
      return !!q.flow && !!q.key;
    case QueryType.Graph:
    case QueryType.Series:
      return !!q.flow;
    default:
      return true;
  }
}

export class DataSource extends DataSourceWithBackend<FlowwatchQuery, FlowwatchOptions> {
  constructor(instanceSettings: DataSourceInstanceSettings<FlowwatchOptions>) {
    super(instanceSettings);
  }

  getDefaultQuery(_: CoreApp): Partial<FlowwatchQuery> {
    return DEFAULT_QUERY;
  }

  applyTemplateVariables(query: FlowwatchQuery, scopedVars: ScopedVars): FlowwatchQuery {
    const t = getTemplateSrv();
    const r = (v?: string) => (v ? t.replace(v, scopedVars) : v);
    return {
      ...query,
      flow: r(query.flow),
      checkpoint: r(query.checkpoint),
      tenant: r(query.tenant),
      key: r(query.key),
      step: r(query.step),
    };
  }

  filterQuery(query: FlowwatchQuery): boolean {
    return !query.hide && isRunnable(query);
  }

  /** The loaded flows with their checkpoint names (backend resource "flows"). */
  async getFlows(): Promise<FlowInfo[]> {
    const res = await this.getResource<{ flows?: FlowInfo[] }>('flows');
    return res.flows ?? [];
  }

  /** Instance keys of a flow (backend resource "keys"). */
  async getKeys(flow: string, status?: string, tenant?: string): Promise<string[]> {
    const params: Record<string, string> = { flow };
    if (status) {
      params.status = status;
    }
    if (tenant) {
      params.tenant = tenant;
    }
    const res = await this.getResource<{ keys?: string[] }>('keys', params);
    return res.keys ?? [];
  }

  /** Template variables: see VARIABLE_QUERY_HELP. */
  async metricFindQuery(query: string, options?: { scopedVars?: ScopedVars }): Promise<MetricFindValue[]> {
    const vq = parseVariableQuery(getTemplateSrv().replace(query, options?.scopedVars));
    const text = (values: string[]) => values.map((v) => ({ text: v, value: v }));
    switch (vq.kind) {
      case 'flows':
        return text((await this.getFlows()).map((f) => f.name));
      case 'checkpoints': {
        const f = (await this.getFlows()).find((f) => f.name === vq.args.flow);
        return text(f?.checkpoints ?? []);
      }
      case 'keys':
        return text(await this.getKeys(vq.args.flow, vq.args.status, vq.args.tenant));
    }
  }
}
