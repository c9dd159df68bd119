import React, { ChangeEvent, useEffect, useMemo, useState } from 'react';
import { QueryEditorProps, SelectableValue } from '@grafana/data';
import { Alert, InlineField, InlineFieldRow, Input, RadioButtonGroup, Select, Stack } from '@grafana/ui';

import { DataSource, isRunnable } from '../datasource';
import { FlowInfo, FlowwatchOptions, FlowwatchQuery, QUERY_TYPES, QueryType, SeriesBy, STATUSES, Status } from '../types';

type Props = QueryEditorProps<DataSource, FlowwatchQuery, FlowwatchOptions>;

const LABEL_WIDTH = 14;

const STATUS_OPTIONS: Array<SelectableValue<Status | ''>> = [
  { label: 'any', value: '' },
  ...STATUSES.map((s) => ({ label: s, value: s })),
];

const BY_OPTIONS: Array<SelectableValue<SeriesBy>> = [
  { label: 'status', value: 'status', description: 'instances by their status, by last seen' },
  { label: 'checkpoint', value: 'checkpoint', description: 'events per checkpoint' },
];

/** Which fields a query type uses. */
const FIELDS: Record<QueryType, Array<'flow' | 'status' | 'checkpoint' | 'tenant' | 'key' | 'by' | 'step' | 'limit'>> = {
  [QueryType.Instances]: ['flow', 'status', 'checkpoint', 'tenant', 'key', 'limit'],
  [QueryType.Timeline]: ['flow', 'key', 'tenant'],
  [QueryType.Graph]: ['flow', 'tenant'],
  [QueryType.Series]: ['flow', 'by', 'step', 'tenant'],
  [QueryType.Flows]: [],
};

function option(v?: string): SelectableValue<string> | null {
  return v ? { label: v, value: v } : null;
}

export function QueryEditor({ query, onChange, onRunQuery, datasource }: Props) {
  const [flows, setFlows] = useState<FlowInfo[]>([]);
  const [loadError, setLoadError] = useState<string>();

  useEffect(() => {
    let live = true;
    datasource
      .getFlows()
      .then((f) => live && setFlows(f))
      .catch((e: unknown) => live && setLoadError(e instanceof Error ? e.message : String(e)));
    return () => {
      live = false;
    };
  }, [datasource]);

  const queryType = query.queryType ?? QueryType.Instances;
  const fields = FIELDS[queryType] ?? [];
  const flowOptions = useMemo(() => flows.map((f) => ({ label: f.name, value: f.name })), [flows]);
  const checkpointOptions = useMemo(
    () => (flows.find((f) => f.name === query.flow)?.checkpoints ?? []).map((c) => ({ label: c, value: c })),
    [flows, query.flow]
  );

  // change updates the query; run also runs it (selections run at once, text on blur).
  const change = (patch: Partial<FlowwatchQuery>, run: boolean) => {
    const next = { ...query, ...patch };
    onChange(next);
    if (run && isRunnable(next)) {
      onRunQuery();
    }
  };
  const text = (name: keyof FlowwatchQuery) => (e: ChangeEvent<HTMLInputElement>) =>
    change({ [name]: e.currentTarget.value }, false);
  const blur = () => {
    if (isRunnable(query)) {
      onRunQuery();
    }
  };

  return (
    <Stack direction="column" gap={1}>
      <InlineFieldRow>
        <InlineField label="Query type" labelWidth={LABEL_WIDTH}>
          <RadioButtonGroup<QueryType>
            options={QUERY_TYPES}
            value={queryType}
            onChange={(v) => change({ queryType: v }, true)}
          />
        </InlineField>
      </InlineFieldRow>
      <InlineFieldRow>
        {fields.includes('flow') && (
          <InlineField label="Flow" labelWidth={LABEL_WIDTH} tooltip="A flow name, or a variable such as $flow">
            <Select
              inputId="flowwatch-flow"
              aria-label="Flow"
              width={28}
              options={flowOptions}
              value={option(query.flow)}
              allowCustomValue
              isClearable
              placeholder="all flows"
              onChange={(v) => change({ flow: v?.value ?? '', checkpoint: '' }, true)}
            />
          </InlineField>
        )}
        {fields.includes('checkpoint') && (
          <InlineField label="Checkpoint" labelWidth={LABEL_WIDTH} tooltip="The last checkpoint, or an expected one">
            <Select
              inputId="flowwatch-checkpoint"
              aria-label="Checkpoint"
              width={24}
              options={checkpointOptions}
              value={option(query.checkpoint)}
              allowCustomValue
              isClearable
              placeholder="any"
              onChange={(v) => change({ checkpoint: v?.value ?? '' }, true)}
            />
          </InlineField>
        )}
      </InlineFieldRow>
      {fields.includes('status') && (
        <InlineFieldRow>
          <InlineField label="Status" labelWidth={LABEL_WIDTH}>
            <RadioButtonGroup<Status | ''>
              options={STATUS_OPTIONS}
              value={query.status ?? ''}
              onChange={(v) => change({ status: v }, true)}
            />
          </InlineField>
        </InlineFieldRow>
      )}
      <InlineFieldRow>
        {fields.includes('key') && (
          <InlineField label="Key" labelWidth={LABEL_WIDTH} tooltip="The business key, e.g. an order id, or $key">
            <Input
              id="flowwatch-key"
              aria-label="Key"
              width={28}
              value={query.key ?? ''}
              placeholder={queryType === QueryType.Timeline ? 'required' : 'any'}
              onChange={text('key')}
              onBlur={blur}
            />
          </InlineField>
        )}
        {fields.includes('tenant') && (
          <InlineField label="Tenant" labelWidth={LABEL_WIDTH}>
            <Input
              id="flowwatch-tenant"
              aria-label="Tenant"
              width={20}
              value={query.tenant ?? ''}
              placeholder="data source default"
              onChange={text('tenant')}
              onBlur={blur}
            />
          </InlineField>
        )}
        {fields.includes('limit') && (
          <InlineField label="Limit" labelWidth={LABEL_WIDTH} tooltip="At most this many instances (default 100)">
            <Input
              id="flowwatch-limit"
              aria-label="Limit"
              type="number"
              width={12}
              min={1}
              max={5000}
              value={query.limit ?? ''}
              placeholder="100"
              onChange={(e: ChangeEvent<HTMLInputElement>) => {
                const n = parseInt(e.currentTarget.value, 10);
                change({ limit: Number.isFinite(n) ? n : undefined }, false);
              }}
              onBlur={blur}
            />
          </InlineField>
        )}
      </InlineFieldRow>
      {(fields.includes('by') || fields.includes('step')) && (
        <InlineFieldRow>
          <InlineField label="Count by" labelWidth={LABEL_WIDTH}>
            <RadioButtonGroup<SeriesBy>
              options={BY_OPTIONS}
              value={query.by ?? 'status'}
              onChange={(v) => change({ by: v }, true)}
            />
          </InlineField>
          <InlineField label="Step" labelWidth={LABEL_WIDTH} tooltip="e.g. 30s, 5m; empty uses the panel interval">
            <Input
              id="flowwatch-step"
              aria-label="Step"
              width={12}
              value={query.step ?? ''}
              placeholder="auto"
              onChange={text('step')}
              onBlur={blur}
            />
          </InlineField>
        </InlineFieldRow>
      )}
      {!isRunnable(query) && (
        <Alert severity="info" title="Incomplete query">
          {queryType === QueryType.Timeline ? 'An instance timeline needs a flow and a key.' : 'Choose a flow.'}
        </Alert>
      )}
      {loadError && (
        <Alert severity="warning" title="Cannot list flows">
          {loadError}
        </Alert>
      )}
    </Stack>
  );
}
