package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
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

// TestCollectorConfigsBatchAfterTheQueue: in every collector configuration flowwatch ships —
// examples/collector.yaml, the pipeline `flowwatch run` builds, deploy/compose's collector.yaml
// and the Kubernetes ConfigMap flowwatch-collector — the flow exporter's queue is enabled, on
// disk (a file_storage extension the service starts) and does the batching, and no batch
// processor stands before it: it would acknowledge spans still in memory, which a killed
// collector loses (internal/ingestbench kills one to check). deploy's tests check that the
// queue's folder is a volume of the container.
func TestCollectorConfigsBatchAfterTheQueue(t *testing.T) {
	root := filepath.Join("..", "..")
	example, err := os.ReadFile(filepath.Join(root, "examples", "collector.yaml"))
	require.NoError(t, err)
	compose, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "collector.yaml"))
	require.NoError(t, err)
	k8s := kubernetesConfigMapData(t, filepath.Join(root, "deploy", "kubernetes", "collector.yaml"), "flowwatch-collector", "collector.yaml")
	run := collectorConfig(&runOptions{otlpGRPC: "127.0.0.1:4317", otlpHTTP: "127.0.0.1:4318"}, "flows", t.TempDir())
	configs := map[string][]byte{
		"examples/collector.yaml":                         example,
		"flowwatch run":                                   []byte(run),
		"deploy/compose/collector.yaml":                   compose,
		"deploy/kubernetes ConfigMap flowwatch-collector": []byte(k8s),
	}
	for name, data := range configs {
		t.Run(name, func(t *testing.T) {
			for _, err := range batchAfterTheQueue(data) {
				t.Error(err)
			}
		})
	}
}

// batchAfterTheQueue returns what breaks the rule in one collector configuration: every
// pipeline into a flow exporter has no batch processor, and every such exporter's sending
// queue is enabled, batches, and is stored by a file_storage extension the service starts.
func batchAfterTheQueue(data []byte) []error {
	var conf struct {
		Extensions map[string]struct {
			Directory string `yaml:"directory"`
		} `yaml:"extensions"`
		Exporters map[string]struct {
			Queue struct {
				Enabled *bool          `yaml:"enabled"`
				Storage string         `yaml:"storage"`
				Batch   map[string]any `yaml:"batch"`
			} `yaml:"sending_queue"`
		} `yaml:"exporters"`
		Service struct {
			Extensions []string                                            `yaml:"extensions"`
			Pipelines  map[string]struct{ Processors, Exporters []string } `yaml:"pipelines"`
		} `yaml:"service"`
	}
	if err := yaml.Unmarshal(data, &conf); err != nil {
		return []error{fmt.Errorf("parse collector config: %w", err)}
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	flowPipelines := 0
	for _, pname := range slices.Sorted(maps.Keys(conf.Service.Pipelines)) {
		p := conf.Service.Pipelines[pname]
		if !slices.ContainsFunc(p.Exporters, isFlowExporter) {
			continue
		}
		flowPipelines++
		for _, id := range p.Processors {
			if componentType(id) == "batch" {
				fail("pipeline %s: processor %s: a batch processor before the flow exporter", pname, id)
			}
		}
		for _, id := range p.Exporters {
			if !isFlowExporter(id) {
				continue
			}
			exp, ok := conf.Exporters[id]
			if !ok {
				fail("pipeline %s: exporter %s is not defined", pname, id)
				continue
			}
			q := exp.Queue
			if q.Enabled != nil && !*q.Enabled {
				fail("pipeline %s: exporters.%s.sending_queue is disabled", pname, id)
			}
			if len(q.Batch) == 0 {
				fail("pipeline %s: exporters.%s.sending_queue.batch: not set, the queue must do the batching", pname, id)
			}
			if componentType(q.Storage) != "file_storage" {
				fail("pipeline %s: exporters.%s.sending_queue.storage: %q, want a file_storage extension (the queue on disk)", pname, id, q.Storage)
				continue
			}
			if ext, ok := conf.Extensions[q.Storage]; !ok || ext.Directory == "" {
				fail("pipeline %s: exporters.%s.sending_queue.storage: extension %s is not defined with a directory", pname, id, q.Storage)
			}
			if !slices.Contains(conf.Service.Extensions, q.Storage) {
				fail("pipeline %s: exporters.%s.sending_queue.storage: extension %s is not in service.extensions", pname, id, q.Storage)
			}
		}
	}
	if flowPipelines != 2 {
		fail("%d pipelines into the flow exporter, want 2 (traces and logs)", flowPipelines)
	}
	return errs
}

// kubernetesConfigMapData is one key of a ConfigMap in a multi-document manifest file.
func kubernetesConfigMapData(t *testing.T, file, name, key string) string {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	dec := yaml.NewDecoder(f)
	for {
		var obj struct {
			Kind     string                `yaml:"kind"`
			Metadata struct{ Name string } `yaml:"metadata"`
			Data     map[string]string     `yaml:"data"`
		}
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "parse %s", file)
		if obj.Kind == "ConfigMap" && obj.Metadata.Name == name {
			data, ok := obj.Data[key]
			require.True(t, ok, "%s: ConfigMap %s has no key %s", file, name, key)
			return data
		}
	}
	t.Fatalf("%s: no ConfigMap %s", file, name)
	return ""
}

// componentType is the type of a collector component ID ("batch" of "batch/2").
func componentType(id string) string { return strings.SplitN(id, "/", 2)[0] }

func isFlowExporter(id string) bool { return componentType(id) == "flow" }
