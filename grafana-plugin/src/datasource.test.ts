import { DataSourceInstanceSettings } from '@grafana/data';

import { DataSource, isRunnable, parseVariableQuery } from './datasource';
import { FlowwatchOptions, QueryType } from './types';

const vars: Record<string, string> = { $flow: 'order-fulfilment', $key: 'o-1', $tenant: 'acme' };

jest.mock('@grafana/runtime', () => ({
  ...jest.requireActual('@grafana/runtime'),
  getTemplateSrv: () => ({
    replace: (s: string) => s.replace(/\$\w+/g, (m) => vars[m] ?? m),
  }),
}));

function newDataSource() {
  const ds = new DataSource({
    id: 1,
    uid: 'flowwatch',
    type: 'flowwatch-flowwatch-datasource',
    name: 'flowwatch',
    jsonData: {},
    meta: { id: 'flowwatch-flowwatch-datasource' },
    access: 'proxy',
    readOnly: false,
  } as unknown as DataSourceInstanceSettings<FlowwatchOptions>);
  const getResource = jest.fn(async (path: string, params?: Record<string, string>) => {
    if (path === 'flows') {
      return { flows: [{ name: 'order-fulfilment', versions: [1], checkpoints: ['placed', 'paid'] }] };
    }
    return { keys: [`${params?.flow}:${params?.status ?? ''}`] };
  });
  ds.getResource = getResource as unknown as DataSource['getResource'];
  return { ds, getResource };
}

describe('variable queries', () => {
  it('reads flows, checkpoints and keys with arguments', () => {
    expect(parseVariableQuery('flows')).toEqual({ kind: 'flows', args: {} });
    expect(parseVariableQuery(' keys  flow=order-fulfilment status=stuck ')).toEqual({
      kind: 'keys',
      args: { flow: 'order-fulfilment', status: 'stuck' },
    });
    expect(parseVariableQuery('checkpoints flow=refund')).toEqual({ kind: 'checkpoints', args: { flow: 'refund' } });
  });

  it('rejects what it does not understand, saying what it expects', () => {
    expect(() => parseVariableQuery('instances')).toThrow(/unknown variable query "instances": use flows/);
    expect(() => parseVariableQuery('keys status=stuck')).toThrow(/needs flow=NAME/);
    expect(() => parseVariableQuery('keys flow')).toThrow(/not name=value/);
  });

  it('answers them from the backend resources, variables replaced', async () => {
    const { ds, getResource } = newDataSource();
    expect(await ds.metricFindQuery('flows')).toEqual([{ text: 'order-fulfilment', value: 'order-fulfilment' }]);
    expect(await ds.metricFindQuery('checkpoints flow=$flow')).toEqual([
      { text: 'placed', value: 'placed' },
      { text: 'paid', value: 'paid' },
    ]);
    expect(await ds.metricFindQuery('keys flow=$flow status=stuck')).toEqual([
      { text: 'order-fulfilment:stuck', value: 'order-fulfilment:stuck' },
    ]);
    expect(getResource).toHaveBeenLastCalledWith('keys', { flow: 'order-fulfilment', status: 'stuck' });
  });
});

describe('DataSource', () => {
  it('replaces template variables in every text field of a query', () => {
    const { ds } = newDataSource();
    const q = ds.applyTemplateVariables(
      { refId: 'A', queryType: QueryType.Timeline, flow: '$flow', key: '$key', tenant: '$tenant', status: 'stuck' },
      {}
    );
    expect(q).toEqual({
      refId: 'A',
      queryType: QueryType.Timeline,
      flow: 'order-fulfilment',
      key: 'o-1',
      tenant: 'acme',
      status: 'stuck',
      checkpoint: undefined,
      step: undefined,
    });
  });

  it('does not send hidden or incomplete queries', () => {
    const { ds } = newDataSource();
    expect(ds.filterQuery({ refId: 'A', queryType: QueryType.Graph, flow: 'f' })).toBe(true);
    expect(ds.filterQuery({ refId: 'A', queryType: QueryType.Graph })).toBe(false);
    expect(ds.filterQuery({ refId: 'A', queryType: QueryType.Graph, flow: 'f', hide: true })).toBe(false);
  });
});

describe('isRunnable', () => {
  it('needs a flow for graphs and series, and a key too for timelines', () => {
    expect(isRunnable({ refId: 'A' })).toBe(true);
    expect(isRunnable({ refId: 'A', queryType: QueryType.Graph })).toBe(false);
    expect(isRunnable({ refId: 'A', queryType: QueryType.Series, flow: 'f' })).toBe(true);
    expect(isRunnable({ refId: 'A', queryType: QueryType.Timeline, flow: 'f' })).toBe(false);
    expect(isRunnable({ refId: 'A', queryType: QueryType.Timeline, flow: 'f', key: 'k' })).toBe(true);
  });
});
