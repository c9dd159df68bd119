import React from 'react';
import { fireEvent, render, screen } from '@testing-library/react';
import { DataSourceSettings } from '@grafana/data';

import { FlowwatchOptions, FlowwatchSecureJsonData } from '../types';
import { ConfigEditor, traceUrlProblem, urlProblem } from './ConfigEditor';

function settings(patch: Partial<DataSourceSettings<FlowwatchOptions, FlowwatchSecureJsonData>> = {}) {
  return {
    id: 1,
    uid: 'flowwatch',
    orgId: 1,
    name: 'flowwatch',
    type: 'flowwatch-flowwatch-datasource',
    typeName: 'flowwatch',
    typeLogoUrl: '',
    access: 'proxy',
    url: 'http://localhost:8080',
    user: '',
    database: '',
    basicAuth: false,
    basicAuthUser: '',
    isDefault: false,
    withCredentials: false,
    readOnly: false,
    jsonData: {},
    secureJsonFields: {},
    ...patch,
  } as DataSourceSettings<FlowwatchOptions, FlowwatchSecureJsonData>;
}

function setup(options = settings()) {
  const onOptionsChange = jest.fn();
  render(<ConfigEditor options={options} onOptionsChange={onOptionsChange} />);
  return { onOptionsChange };
}

describe('ConfigEditor', () => {
  it('sets the API URL', () => {
    const { onOptionsChange } = setup();
    fireEvent.change(screen.getByLabelText('URL'), { target: { value: 'http://flowwatch:8080' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith(expect.objectContaining({ url: 'http://flowwatch:8080' }));
  });

  it('keeps the token in secureJsonData, never in jsonData', () => {
    const { onOptionsChange } = setup();
    fireEvent.change(screen.getByLabelText('API token'), { target: { value: 's3cret' } });
    const next = onOptionsChange.mock.calls.at(-1)[0];
    expect(next.secureJsonData).toEqual({ token: 's3cret' });
    expect(JSON.stringify(next.jsonData)).not.toContain('s3cret');
  });

  it('shows a saved token as configured and resets it', () => {
    const { onOptionsChange } = setup(settings({ secureJsonFields: { token: true } }));
    expect(screen.getByDisplayValue('configured')).toBeInTheDocument();
    fireEvent.click(screen.getByRole('button', { name: 'Reset' }));
    const next = onOptionsChange.mock.calls.at(-1)[0];
    expect(next.secureJsonFields.token).toBe(false);
    expect(next.secureJsonData.token).toBe('');
  });

  it('sets the trace link settings, tenant and timeout in jsonData', () => {
    const { onOptionsChange } = setup();
    fireEvent.change(screen.getByLabelText('Trace URL template'), {
      target: { value: 'http://jaeger:16686/trace/${traceId}' },
    });
    expect(onOptionsChange.mock.calls.at(-1)[0].jsonData).toEqual({ traceUrl: 'http://jaeger:16686/trace/${traceId}' });
    fireEvent.change(screen.getByLabelText('Tracing data source UID'), { target: { value: 'tempo' } });
    expect(onOptionsChange.mock.calls.at(-1)[0].jsonData).toEqual({ tracingDatasourceUid: 'tempo' });
    fireEvent.change(screen.getByLabelText('Default tenant'), { target: { value: 'acme' } });
    expect(onOptionsChange.mock.calls.at(-1)[0].jsonData).toEqual({ tenant: 'acme' });
    fireEvent.change(screen.getByLabelText('Timeout'), { target: { value: '5' } });
    expect(onOptionsChange.mock.calls.at(-1)[0].jsonData).toEqual({ timeoutSeconds: 5 });
  });

  it('says what is wrong with the URL and the trace template', () => {
    setup(settings({ url: 'localhost:8080', jsonData: { traceUrl: 'http://jaeger/trace/' } }));
    expect(screen.getByText('Use an http:// or https:// URL')).toBeInTheDocument();
    expect(screen.getByText('The template must contain ${traceId} where the trace ID goes')).toBeInTheDocument();
  });

  it('validates URLs and templates', () => {
    expect(urlProblem('')).toMatch(/Required/);
    expect(urlProblem('not a url')).toMatch(/Not a URL/);
    expect(urlProblem('https://flowwatch.example:8443/')).toBeUndefined();
    expect(traceUrlProblem('')).toBeUndefined();
    expect(traceUrlProblem('http://tempo/${traceId}')).toBeUndefined();
  });
});
