import { DataQuery, DataSourceJsonData } from '@grafana/data';

/** What a query asks for; the backend's plugin.QueryType uses the same strings. */
export enum QueryType {
  Instances = 'instances',
  Timeline = 'timeline',
  Graph = 'graph',
  Series = 'series',
  Flows = 'flows',
}

export const QUERY_TYPES: Array<{ value: QueryType; label: string; description: string }> = [
  { value: QueryType.Instances, label: 'Instances', description: 'Instances as a table, with links to their traces' },
  { value: QueryType.Timeline, label: 'Instance timeline', description: 'One instance: checkpoints, stuck reason, violations' },
  { value: QueryType.Graph, label: 'Flow graph', description: 'Checkpoints and transitions for the Node Graph panel' },
  { value: QueryType.Series, label: 'Counts over time', description: 'Instances by status or events by checkpoint; usable in alert rules' },
  { value: QueryType.Flows, label: 'Flows', description: 'The loaded flow definitions' },
];

export const STATUSES = ['running', 'completed', 'failed', 'stuck', 'compensating', 'compensated', 'cancelled'] as const;
export type Status = (typeof STATUSES)[number];

export type SeriesBy = 'status' | 'checkpoint';

export interface FlowwatchQuery extends DataQuery {
  queryType?: QueryType;
  flow?: string;
  status?: Status | '';
  checkpoint?: string;
  tenant?: string;
  key?: string;
  /** counts over time: group by status (default) or checkpoint */
  by?: SeriesBy;
  /** counts over time: a Go duration such as 30s or 5m; empty uses the panel interval */
  step?: string;
  /** instances: at most this many rows (default 100) */
  limit?: number;
}

export const DEFAULT_QUERY: Partial<FlowwatchQuery> = {
  queryType: QueryType.Instances,
  status: 'stuck',
};

/** The trace ID placeholder of the trace URL template. */
export const TRACE_ID_PLACEHOLDER = '${traceId}';

/** jsonData of the data source; the API URL is the data source's url. */
export interface FlowwatchOptions extends DataSourceJsonData {
  /** a link template for trace IDs containing ${traceId}, e.g. a Jaeger UI trace page */
  traceUrl?: string;
  /** a Grafana tracing data source (Tempo, Jaeger) to open trace IDs in Explore */
  tracingDatasourceUid?: string;
  /** bound of one API call, seconds (default 30) */
  timeoutSeconds?: number;
  /** tenant used when a query names none */
  tenant?: string;
}

/** secureJsonData of the data source: never sent back to the browser. */
export interface FlowwatchSecureJsonData {
  token?: string;
}

/** One flow of the backend's flows resource. */
export interface FlowInfo {
  name: string;
  versions: number[];
  checkpoints: string[];
}
