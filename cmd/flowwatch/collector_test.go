package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"gopkg.in/yaml.v3"

	"github.com/flowwatch/flowwatch/collector/distribution"
)

func TestCollectorComponents(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 0, dispatch(context.Background(), []string{"collector", "components"}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "name: flow")
	assert.Contains(t, out.String(), "otlp")
}

func TestCollectorNeedsConfig(t *testing.T) {
	var out, errb bytes.Buffer
	assert.Equal(t, 2, dispatch(context.Background(), []string{"collector"}, &out, &errb))
	assert.Contains(t, errb.String(), "--config FILE")
}

// TestCollectorExampleValidates checks examples/collector.yaml against the distribution's
// components. Until the flow exporter is registered the example's `flow` exporter is swapped
// for `debug`; once it is, the example is validated as it is.
func TestCollectorExampleValidates(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "collector.yaml"))
	require.NoError(t, err)
	factories, err := distribution.Components()
	require.NoError(t, err)
	if _, ok := factories.Exporters[component.MustNewType("flow")]; !ok {
		data = withoutFlowExporter(t, data)
	}
	path := filepath.Join(t.TempDir(), "collector.yaml")
	require.NoError(t, os.WriteFile(path, data, 0o600))

	var out, errb bytes.Buffer
	assert.Equal(t, 0, dispatch(context.Background(), []string{"collector", "validate", "--config", path}, &out, &errb), errb.String())
}

func withoutFlowExporter(t *testing.T, data []byte) []byte {
	t.Helper()
	var conf map[string]any
	require.NoError(t, yaml.Unmarshal(data, &conf))
	exporters := conf["exporters"].(map[string]any)
	require.Contains(t, exporters, "flow")
	delete(exporters, "flow")
	pipelines := conf["service"].(map[string]any)["pipelines"].(map[string]any)
	for _, p := range pipelines {
		ids := p.(map[string]any)["exporters"].([]any)
		for i, id := range ids {
			if id == "flow" {
				ids[i] = "debug"
			}
		}
	}
	out, err := yaml.Marshal(conf)
	require.NoError(t, err)
	return out
}

// TestCollectorConfigsBatchAfterTheQueue: in examples/collector.yaml and in the pipeline
// `flowwatch run` builds, the flow exporter's queue is on disk and does the batching, and no
// batch processor stands before it — it would acknowledge spans still in memory, which a
// killed collector loses (internal/ingestbench kills one to check).
func TestCollectorConfigsBatchAfterTheQueue(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "collector.yaml"))
	require.NoError(t, err)
	run := collectorConfig(&runOptions{otlpGRPC: "127.0.0.1:4317", otlpHTTP: "127.0.0.1:4318"}, "flows", t.TempDir())
	for name, data := range map[string][]byte{"examples/collector.yaml": example, "flowwatch run": []byte(run)} {
		t.Run(name, func(t *testing.T) {
			var conf struct {
				Exporters map[string]struct {
					Queue struct {
						Storage string         `yaml:"storage"`
						Batch   map[string]any `yaml:"batch"`
					} `yaml:"sending_queue"`
				} `yaml:"exporters"`
				Service struct {
					Pipelines map[string]struct{ Processors, Exporters []string } `yaml:"pipelines"`
				} `yaml:"service"`
			}
			require.NoError(t, yaml.Unmarshal(data, &conf))
			flowPipelines := 0
			for pname, p := range conf.Service.Pipelines {
				if !slices.ContainsFunc(p.Exporters, isFlowExporter) {
					continue
				}
				flowPipelines++
				for _, id := range p.Processors {
					assert.NotEqual(t, "batch", strings.SplitN(id, "/", 2)[0], "pipeline %s: a batch processor before the flow exporter", pname)
				}
				for _, id := range p.Exporters {
					if isFlowExporter(id) {
						q := conf.Exporters[id].Queue
						assert.NotEmpty(t, q.Storage, "pipeline %s: the flow exporter's queue must be on disk", pname)
						assert.NotEmpty(t, q.Batch, "pipeline %s: the flow exporter's queue does the batching", pname)
					}
				}
			}
			assert.Equal(t, 2, flowPipelines, "traces and logs pipelines into the flow exporter")
		})
	}
}

func isFlowExporter(id string) bool { return strings.SplitN(id, "/", 2)[0] == "flow" }
