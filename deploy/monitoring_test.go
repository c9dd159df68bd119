package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/flowwatch/flowwatch/detector"
)

// podMonitor is a Prometheus Operator PodMonitor (monitoring.coreos.com/v1), the fields used.
type podMonitor struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       struct {
		Selector            labelSelector `yaml:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `yaml:"port"`
			Path     string `yaml:"path"`
			Interval string `yaml:"interval"`
		} `yaml:"podMetricsEndpoints"`
	} `yaml:"spec"`
}

// TestPrometheusOperatorMonitors: kubernetes/monitoring applies the base manifests and a
// PodMonitor per flowwatch workload; each selects that workload's pods and scrapes a port
// its containers name, at /metrics.
func TestPrometheusOperatorMonitors(t *testing.T) {
	dir := filepath.Join(k8sDir, "monitoring")
	var kust struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Namespace  string   `yaml:"namespace"`
		Resources  []string `yaml:"resources"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(data, &kust); err != nil {
		t.Fatalf("monitoring/kustomization.yaml: %v", err)
	}
	if kust.Kind != "Kustomization" || kust.Namespace != k8sNamespace || !slices.Contains(kust.Resources, "../") {
		t.Fatalf("monitoring/kustomization.yaml must build on ../ in namespace %s: %+v", k8sNamespace, kust)
	}

	objs, _ := loadManifests(t)
	var monitors []podMonitor
	for _, res := range kust.Resources[1:] {
		data, err := os.ReadFile(filepath.Join(dir, res))
		if err != nil {
			t.Fatalf("monitoring/kustomization.yaml lists %s: %v", res, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		for {
			var pm podMonitor
			if err := dec.Decode(&pm); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", res, err)
			}
			monitors = append(monitors, pm)
		}
	}
	covered := map[string]bool{}
	for _, pm := range monitors {
		name := pm.Metadata.Name
		if pm.APIVersion != "monitoring.coreos.com/v1" || pm.Kind != "PodMonitor" || pm.Metadata.Namespace != k8sNamespace ||
			pm.Metadata.Labels["app.kubernetes.io/part-of"] != "flowwatch" {
			t.Errorf("%s: apiVersion %q kind %q namespace %q labels %v", name, pm.APIVersion, pm.Kind, pm.Metadata.Namespace, pm.Metadata.Labels)
		}
		var ports []string
		selected := 0
		for _, o := range objs {
			if o.Kind != "Deployment" && o.Kind != "StatefulSet" {
				continue
			}
			var spec workloadSpec
			if err := decodeNodeStrict(&o.Spec, &spec); err != nil {
				t.Fatal(err)
			}
			if !selects(pm.Spec.Selector.MatchLabels, spec.Template.Metadata.Labels) {
				continue
			}
			selected++
			covered[o.Kind+"/"+o.Metadata.Name] = true
			for _, c := range spec.Template.Spec.Containers {
				for _, p := range c.Ports {
					ports = append(ports, p.Name)
				}
			}
		}
		if selected != 1 {
			t.Errorf("%s selects the pods of %d workloads, want 1", name, selected)
		}
		if len(pm.Spec.PodMetricsEndpoints) == 0 {
			t.Errorf("%s: no podMetricsEndpoints", name)
		}
		for _, e := range pm.Spec.PodMetricsEndpoints {
			if !slices.Contains(ports, e.Port) || e.Path != "/metrics" {
				t.Errorf("%s: endpoint port %q path %q: want a named container port (%v) and /metrics", name, e.Port, e.Path, ports)
			}
		}
	}
	for _, w := range []string{"Deployment/flowwatch-collector", "StatefulSet/flowwatch-detector"} {
		if !covered[w] {
			t.Errorf("no PodMonitor scrapes %s", w)
		}
	}
}

// TestComposeSecretsFromEnvironment: the compose shape's secrets reach the containers as
// environment variables, never as text in the mounted configurations: the detectors sign
// webhooks with FLOWWATCH_WEBHOOK_SECRET (an ${env:...} reference in detector.yaml), and the
// demo that receives them verifies with the same value.
func TestComposeSecretsFromEnvironment(t *testing.T) {
	f := composeConfig(t, filepath.Join("compose", "docker-compose.yaml"))
	raw, err := os.ReadFile(filepath.Join("compose", "detector.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file detector.FileConfig
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(file.Store.DSN, ":flowwatch@") {
		t.Errorf("detector.yaml holds the ClickHouse password in store.dsn: pass FLOWWATCH_CLICKHOUSE_DSN instead")
	}
	for _, s := range file.Sinks {
		if s.Type == "webhook" && s.Secret != "${env:FLOWWATCH_WEBHOOK_SECRET}" {
			t.Errorf("sink %s: secret %q, want ${env:FLOWWATCH_WEBHOOK_SECRET}", s.Name, s.Secret)
		}
	}
	secrets := map[string]string{}
	for name, s := range f.Services {
		switch f.flowwatchCommand(name) {
		case "detector", "demo":
			v := s.Environment["FLOWWATCH_WEBHOOK_SECRET"]
			if _, err := detector.WebhookKey(v); err != nil {
				t.Errorf("service %s: FLOWWATCH_WEBHOOK_SECRET: %v", name, err)
			}
			secrets[name] = v
			if f.flowwatchCommand(name) == "detector" && !strings.HasPrefix(s.Environment["FLOWWATCH_CLICKHOUSE_DSN"], "clickhouse://") {
				t.Errorf("service %s: no FLOWWATCH_CLICKHOUSE_DSN", name)
			}
		}
	}
	if len(secrets) != 3 {
		t.Fatalf("want the two detectors and the demo, got %v", secrets)
	}
	for name, v := range secrets {
		if v != secrets["demo"] {
			t.Errorf("service %s signs with another secret than the demo verifies", name)
		}
	}
}
