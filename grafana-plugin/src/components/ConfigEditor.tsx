import React, { ChangeEvent } from 'react';
import { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { InlineField, Input, SecretInput, Stack, Text } from '@grafana/ui';

import { FlowwatchOptions, FlowwatchSecureJsonData, TRACE_ID_PLACEHOLDER } from '../types';

type Props = DataSourcePluginOptionsEditorProps<FlowwatchOptions, FlowwatchSecureJsonData>;

const LABEL_WIDTH = 22;
const INPUT_WIDTH = 50;

/** urlProblem says what is wrong with the API URL, or undefined. */
export function urlProblem(url: string | undefined): string | undefined {
  if (!url) {
    return 'Required: where flowwatch serves its API, e.g. http://localhost:8080';
  }
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      return 'Use an http:// or https:// URL';
    }
  } catch {
    return 'Not a URL: use e.g. http://localhost:8080';
  }
  return undefined;
}

/** traceUrlProblem says what is wrong with the trace URL template, or undefined. */
export function traceUrlProblem(template: string | undefined): string | undefined {
  if (template && !template.includes(TRACE_ID_PLACEHOLDER)) {
    return `The template must contain ${TRACE_ID_PLACEHOLDER} where the trace ID goes`;
  }
  return undefined;
}

export function ConfigEditor({ options, onOptionsChange }: Props) {
  const { jsonData, secureJsonFields } = options;
  const secureJsonData = (options.secureJsonData ?? {}) as FlowwatchSecureJsonData;

  const setJSON =
    <K extends keyof FlowwatchOptions>(key: K, parse: (v: string) => FlowwatchOptions[K]) =>
    (e: ChangeEvent<HTMLInputElement>) =>
      onOptionsChange({ ...options, jsonData: { ...jsonData, [key]: parse(e.currentTarget.value) } });
  const asText = (v: string) => v;
  const asSeconds = (v: string) => {
    const n = parseInt(v, 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  };

  const urlError = urlProblem(options.url);
  const traceError = traceUrlProblem(jsonData.traceUrl);

  return (
    <Stack direction="column" gap={1}>
      <Text element="h4">flowwatch API</Text>
      <InlineField
        label="URL"
        labelWidth={LABEL_WIDTH}
        interactive
        tooltip="The address flowwatch serves its query API on (flowwatch run, or the detector)"
        invalid={!!urlError}
        error={urlError}
      >
        <Input
          id="config-url"
          aria-label="URL"
          width={INPUT_WIDTH}
          value={options.url ?? ''}
          placeholder="http://localhost:8080"
          onChange={(e: ChangeEvent<HTMLInputElement>) => onOptionsChange({ ...options, url: e.currentTarget.value })}
        />
      </InlineField>
      <InlineField label="API token" labelWidth={LABEL_WIDTH} tooltip="The bearer token flowwatch was started with; empty when it requires none">
        <SecretInput
          id="config-token"
          aria-label="API token"
          width={INPUT_WIDTH}
          isConfigured={!!secureJsonFields?.token}
          value={secureJsonData.token ?? ''}
          placeholder="bearer token"
          onReset={() =>
            onOptionsChange({
              ...options,
              secureJsonFields: { ...secureJsonFields, token: false },
              secureJsonData: { ...secureJsonData, token: '' },
            })
          }
          onChange={(e: ChangeEvent<HTMLInputElement>) =>
            onOptionsChange({ ...options, secureJsonData: { ...secureJsonData, token: e.currentTarget.value } })
          }
        />
      </InlineField>
      <InlineField label="Default tenant" labelWidth={LABEL_WIDTH} tooltip="Used by queries that name no tenant; empty means all tenants">
        <Input
          id="config-tenant"
          aria-label="Default tenant"
          width={INPUT_WIDTH}
          value={jsonData.tenant ?? ''}
          placeholder="all tenants"
          onChange={setJSON('tenant', asText)}
        />
      </InlineField>
      <InlineField label="Timeout (seconds)" labelWidth={LABEL_WIDTH}>
        <Input
          id="config-timeout"
          aria-label="Timeout"
          type="number"
          width={INPUT_WIDTH}
          value={jsonData.timeoutSeconds ?? ''}
          placeholder="30"
          onChange={setJSON('timeoutSeconds', asSeconds)}
        />
      </InlineField>
      <Text element="h4">Trace links</Text>
      <InlineField
        label="Trace URL template"
        labelWidth={LABEL_WIDTH}
        interactive
        tooltip={`A link for trace IDs, with ${TRACE_ID_PLACEHOLDER}: e.g. http://jaeger:16686/trace/${TRACE_ID_PLACEHOLDER}`}
        invalid={!!traceError}
        error={traceError}
      >
        <Input
          id="config-trace-url"
          aria-label="Trace URL template"
          width={INPUT_WIDTH}
          value={jsonData.traceUrl ?? ''}
          placeholder={`http://jaeger:16686/trace/${TRACE_ID_PLACEHOLDER}`}
          onChange={setJSON('traceUrl', asText)}
        />
      </InlineField>
      <InlineField
        label="Tracing data source UID"
        labelWidth={LABEL_WIDTH}
        tooltip="A Tempo or Jaeger data source of this Grafana: trace IDs then also open in Explore"
      >
        <Input
          id="config-tracing-uid"
          aria-label="Tracing data source UID"
          width={INPUT_WIDTH}
          value={jsonData.tracingDatasourceUid ?? ''}
          placeholder="tempo"
          onChange={setJSON('tracingDatasourceUid', asText)}
        />
      </InlineField>
    </Stack>
  );
}
