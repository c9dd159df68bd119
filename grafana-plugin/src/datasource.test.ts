import { isRunnable, parseVariableQuery } from './datasource';
import { QueryType } from './types';

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
