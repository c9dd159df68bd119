import React from 'react';
import { readFileSync } from 'fs';
import { join } from 'path';
import { act, fireEvent, render, screen, waitFor } from '@testing-library/react';

import { DataSource } from '../datasource';
import { FlowwatchQuery, QueryType, STATUSES } from '../types';
import { QueryEditor } from './QueryEditor';

const FLOWS = [
  { name: 'order-fulfilment', versions: [1, 2], checkpoints: ['placed', 'paid', 'shipped'] },
  { name: 'refund', versions: [1], checkpoints: ['requested', 'refunded'] },
];

function setup(query: Partial<FlowwatchQuery>, getFlows = jest.fn().mockResolvedValue(FLOWS)) {
  const onChange = jest.fn();
  const onRunQuery = jest.fn();
  const datasource = { getFlows } as unknown as DataSource;
  const utils = render(
    <QueryEditor
      query={{ refId: 'A', ...query } as FlowwatchQuery}
      onChange={onChange}
      onRunQuery={onRunQuery}
      datasource={datasource}
    />
  );
  return { ...utils, onChange, onRunQuery, getFlows };
}

async function flowsLoaded(getFlows: jest.Mock) {
  await waitFor(() => expect(getFlows).toHaveBeenCalled());
  await act(async () => {});
}

describe('QueryEditor', () => {
  it('shows the instances filters and not the series ones', async () => {
    const { getFlows } = setup({ queryType: QueryType.Instances });
    await flowsLoaded(getFlows);
    for (const label of ['Flow', 'Checkpoint', 'Key', 'Tenant', 'Limit']) {
      expect(screen.getByLabelText(label)).toBeInTheDocument();
    }
    expect(screen.getByText('stuck')).toBeInTheDocument();
    expect(screen.queryByLabelText('Step')).not.toBeInTheDocument();
  });

  it('shows only flow, count by and step for counts over time', async () => {
    const { getFlows } = setup({ queryType: QueryType.Series, flow: 'refund' });
    await flowsLoaded(getFlows);
    expect(screen.getByLabelText('Step')).toBeInTheDocument();
    expect(screen.getByText('checkpoint')).toBeInTheDocument();
    expect(screen.queryByLabelText('Key')).not.toBeInTheDocument();
    expect(screen.queryByLabelText('Checkpoint')).not.toBeInTheDocument();
  });

  it('switches the query type and runs the query when it is complete', async () => {
    const { onChange, onRunQuery, getFlows } = setup({ queryType: QueryType.Instances, flow: 'refund' });
    await flowsLoaded(getFlows);
    fireEvent.click(screen.getByLabelText('Flow graph'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ queryType: QueryType.Graph, flow: 'refund' }));
    expect(onRunQuery).toHaveBeenCalledTimes(1);
  });

  it('does not run an instance timeline without a key, and says why', async () => {
    const { onChange, onRunQuery, getFlows } = setup({ queryType: QueryType.Instances, flow: 'refund' });
    await flowsLoaded(getFlows);
    fireEvent.click(screen.getByLabelText('Instance timeline'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ queryType: QueryType.Timeline }));
    expect(onRunQuery).not.toHaveBeenCalled();
  });

  it('explains an incomplete timeline query', async () => {
    const { getFlows } = setup({ queryType: QueryType.Timeline, flow: 'refund' });
    await flowsLoaded(getFlows);
    expect(screen.getByText('An instance timeline needs a flow and a key.')).toBeInTheDocument();
  });

  it('filters on a status at once', async () => {
    const { onChange, onRunQuery, getFlows } = setup({ queryType: QueryType.Instances, status: 'stuck' });
    await flowsLoaded(getFlows);
    fireEvent.click(screen.getByLabelText('failed'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ status: 'failed' }));
    expect(onRunQuery).toHaveBeenCalledTimes(1);
  });

  it.each(['compensating', 'compensated', 'cancelled'])('offers the status %s and filters on it at once', async (status) => {
    const { onChange, onRunQuery, getFlows } = setup({ queryType: QueryType.Instances, flow: 'refund', status: 'stuck' });
    await flowsLoaded(getFlows);
    fireEvent.click(screen.getByLabelText(status));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ status, flow: 'refund' }));
    expect(onRunQuery).toHaveBeenCalledTimes(1);
  });

  it('offers every status of the backend, and any', async () => {
    const { getFlows } = setup({ queryType: QueryType.Instances });
    await flowsLoaded(getFlows);
    // plugin.Statuses in pkg/plugin/query.go (which a Go test holds to the model's)
    const backend = readFileSync(join(__dirname, '../../pkg/plugin/query.go'), 'utf8');
    const list = /var Statuses = \[\]string\{([^}]*)\}/.exec(backend);
    expect(list).not.toBeNull();
    const statuses = [...list![1].matchAll(/"([a-z_]+)"/g)].map((m) => m[1]);
    expect(statuses).toEqual(expect.arrayContaining(['compensating', 'compensated', 'cancelled']));
    for (const s of ['any', ...statuses]) {
      expect(screen.getByLabelText(s)).toBeInTheDocument();
    }
    expect([...STATUSES].sort()).toEqual([...statuses].sort());
  });

  it('takes a key as typed and runs on blur', async () => {
    const { onChange, onRunQuery, getFlows } = setup({ queryType: QueryType.Timeline, flow: 'order-fulfilment' });
    await flowsLoaded(getFlows);
    const key = screen.getByLabelText('Key');
    fireEvent.change(key, { target: { value: 'o-42' } });
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ key: 'o-42', flow: 'order-fulfilment' }));
    expect(onRunQuery).not.toHaveBeenCalled();
  });

  it('offers the flows the API has loaded and picks one', async () => {
    const { onChange, getFlows } = setup({ queryType: QueryType.Graph });
    await flowsLoaded(getFlows);
    const input = screen.getByLabelText('Flow');
    fireEvent.keyDown(input, { key: 'ArrowDown' });
    fireEvent.click(await screen.findByText('refund'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ flow: 'refund', checkpoint: '' }));
  });

  it("offers the chosen flow's checkpoints", async () => {
    const { onChange, getFlows } = setup({ queryType: QueryType.Instances, flow: 'order-fulfilment' });
    await flowsLoaded(getFlows);
    fireEvent.keyDown(screen.getByLabelText('Checkpoint'), { key: 'ArrowDown' });
    fireEvent.click(await screen.findByText('paid'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ checkpoint: 'paid' }));
    expect(screen.queryByText('requested')).not.toBeInTheDocument();
  });

  it('says when the flows cannot be listed', async () => {
    const getFlows = jest.fn().mockRejectedValue(new Error('HTTP 401: missing or invalid bearer token'));
    setup({ queryType: QueryType.Instances }, getFlows);
    expect(await screen.findByText('HTTP 401: missing or invalid bearer token')).toBeInTheDocument();
  });
});
