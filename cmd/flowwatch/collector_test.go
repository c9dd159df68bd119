package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
