package deploy

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/flowwatch/flowwatch/detector"
)

// TestDetectorConfigsLoad loads the shipped detector configurations with the detector's own
// loader, in the environment each shard's container gets: every shard must start, as the
// shard its deployment means it to be, with the credentials its deployment passes.
func TestDetectorConfigsLoad(t *testing.T) {
	type shardRun struct {
		name, path string
		env        map[string]string
		wantIndex  int
	}
	var runs []shardRun

	// compose: one service per shard, FLOWWATCH_SHARD_INDEX set literally.
	f := composeConfig(t, filepath.Join("compose", "docker-compose.yaml"))
	for name, s := range f.Services {
		if f.flowwatchCommand(name) != "detector" {
			continue
		}
		p, _ := flagValue(s.Command, "config")
		idx, err := strconv.Atoi(s.Environment["FLOWWATCH_SHARD_INDEX"])
		if err != nil {
			t.Errorf("service %s: FLOWWATCH_SHARD_INDEX %q", name, s.Environment["FLOWWATCH_SHARD_INDEX"])
			continue
		}
		runs = append(runs, shardRun{"compose " + name, s.binds()[p], s.Environment, idx})
	}

	// Kubernetes: one pod per ordinal; the env comes from the downward API and the Secret.
	objs, _ := loadManifests(t)
	m := manifests{byKind: map[string]map[string]*k8sObject{}}
	for _, o := range objs {
		if m.byKind[o.Kind] == nil {
			m.byKind[o.Kind] = map[string]*k8sObject{}
		}
		m.byKind[o.Kind][o.Metadata.Name] = o
	}
	for _, o := range m.byKind["StatefulSet"] {
		var spec workloadSpec
		if err := decodeNodeStrict(&o.Spec, &spec); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		for _, c := range spec.Template.Spec.Containers {
			if len(c.Args) == 0 || c.Args[0] != "detector" {
				continue
			}
			p, _ := flagValue(c.Args, "config")
			_, files := k8sMountTable(m, spec.Template.Spec, c)
			content, ok := files[p]
			if !ok {
				t.Fatalf("%s: --config %s is not mounted", o, p)
			}
			path := filepath.Join(t.TempDir(), "detector.yaml")
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			replicas := 1
			if spec.Replicas != nil {
				replicas = *spec.Replicas
			}
			for ordinal := range replicas {
				env := map[string]string{}
				for _, e := range c.Env {
					switch {
					case e.ValueFrom == nil:
						env[e.Name] = e.Value
					case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.labels['apps.kubernetes.io/pod-index']":
						env[e.Name] = strconv.Itoa(ordinal)
					case e.ValueFrom.SecretKeyRef != nil:
						if v, ok := m.get("Secret", e.ValueFrom.SecretKeyRef.Name).dataKey(e.ValueFrom.SecretKeyRef.Key); ok {
							env[e.Name] = v
						}
					case e.ValueFrom.ResourceFieldRef != nil:
						env[e.Name] = "2147483648"
					}
				}
				runs = append(runs, shardRun{fmt.Sprintf("kubernetes %s-%d", o.Metadata.Name, ordinal), path, env, ordinal})
			}
		}
	}
	if len(runs) < 4 {
		t.Fatalf("found %d detector shards to load, want the two of compose and the two of Kubernetes", len(runs))
	}

	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			// Exactly the container's environment: a ${env:NAME} the deployment does not set
			// fails here as it would in the container.
			cfg, err := detector.LoadConfigEnv(r.path, func(k string) (string, bool) { v, ok := r.env[k]; return v, ok })
			if err != nil {
				t.Fatalf("detector.LoadConfig: %v", err)
			}
			if cfg.Shard.Index != r.wantIndex {
				t.Errorf("shard.index %d, want %d", cfg.Shard.Index, r.wantIndex)
			}
			if dsn, ok := r.env["FLOWWATCH_CLICKHOUSE_DSN"]; ok && cfg.Store.DSN != dsn {
				t.Errorf("the container passes FLOWWATCH_CLICKHOUSE_DSN (with the password, from the Secret), but the detector's store.dsn stays %q: the detector must let FLOWWATCH_CLICKHOUSE_DSN override store.dsn, as FLOWWATCH_TOKEN overrides token", redactDSN(cfg.Store.DSN))
			}
		})
	}
}

// redactDSN hides a DSN's password in messages.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}
