package deploy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/collector/distribution"
)

// TestCollectorConfigsValidate runs the shipped collector configurations through the collector
// flowwatch ships (`flowwatch collector validate`): every component type must exist in the
// distribution and every component's own Validate must accept its settings. Only the flows
// folder is redirected to examples/flows, since /etc/flowwatch/flows exists in the containers
// only.
func TestCollectorConfigsValidate(t *testing.T) {
	t.Setenv("FLOWWATCH_CLICKHOUSE_DSN", "clickhouse://flowwatch:secret@clickhouse:9000/flowwatch")
	flows, err := filepath.Abs(flowsDir)
	if err != nil {
		t.Fatal(err)
	}

	configs := map[string]string{"compose/collector.yaml": filepath.Join("compose", "collector.yaml")}
	objs, _ := loadManifests(t)
	for _, o := range objs {
		if o.Kind != "ConfigMap" || o.Metadata.Name != "flowwatch-collector" {
			continue
		}
		p := filepath.Join(t.TempDir(), "collector.yaml")
		if err := os.WriteFile(p, []byte(o.Data["collector.yaml"]), 0o644); err != nil {
			t.Fatal(err)
		}
		configs["kubernetes ConfigMap flowwatch-collector"] = p
	}
	if len(configs) != 2 {
		t.Fatalf("found %d collector configurations, want the compose file and the Kubernetes ConfigMap", len(configs))
	}

	for name, path := range configs {
		t.Run(name, func(t *testing.T) {
			abs, err := filepath.Abs(path)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			code := distribution.Run(ctx, []string{
				"validate",
				"--config", "file:" + abs,
				"--config", "yaml:processors::flow::flows: [" + flows + "]",
			}, &stdout, &stderr)
			if code != 0 {
				t.Errorf("flowwatch collector validate %s: exit %d\n%s%s", name, code, stdout.String(), stderr.String())
			}
		})
	}
}
