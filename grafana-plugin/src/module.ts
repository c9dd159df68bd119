import { DataSourcePlugin } from '@grafana/data';

import { ConfigEditor } from './components/ConfigEditor';
import { QueryEditor } from './components/QueryEditor';
import { DataSource } from './datasource';
import { FlowwatchOptions, FlowwatchQuery, FlowwatchSecureJsonData } from './types';

export const plugin = new DataSourcePlugin<DataSource, FlowwatchQuery, FlowwatchOptions, FlowwatchSecureJsonData>(
  DataSource
)
  .setConfigEditor(ConfigEditor)
  .setQueryEditor(QueryEditor);
