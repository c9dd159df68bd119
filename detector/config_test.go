package detector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/model"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "detector.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	t.Setenv("FLOWWATCH_SHARD_INDEX", "1")
	t.Setenv("FLOWWATCH_TOKEN", "s3cret")
	c, err := LoadConfig(writeConfig(t, `
store: { dsn: "clickhouse://ch:9000/flowwatch" }
flows: [/etc/flowwatch/flows]
tick: 2s
shard: { index: 0, count: 2 }
alerting: { alertmanagers: [http://am:9093], resend: 2m, group_by_checkpoint: true }
sinks:
  - { name: nats, type: nats, url: "nats://nats:4222", rate: 5 }
  - { name: ops, type: webhook, url: "http://ops/cmd", dry_run: true }
rebuild_window: 7d
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Shard.Index != 1 || c.Token != "s3cret" || time.Duration(c.Tick) != 2*time.Second ||
		time.Duration(c.RebuildWindow) != 7*24*time.Hour || c.Listen != DefaultListen || !c.Alerting.GroupByCheckpoint ||
		len(c.Sinks) != 2 || !c.Sinks[1].DryRun {
		t.Fatalf("config = %+v", c)
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	_, err := LoadConfig(writeConfig(t, `
store: { dsn: "clickhouse://ch:9000", embedded: ./data }
shard: { index: 3, count: 2 }
sinks:
  - { name: a, type: kafka }
  - { name: a, type: nats, url: "nats://x" }
`))
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"exactly one of 'dsn'", "'flows' must list", "'shard.index' 3", "'sinks[0].type' must be nats or webhook",
		"'sinks[0].url' is required", "'sinks[1].name' \"a\" is used twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if _, err := LoadConfig(writeConfig(t, "store: {dsn: x}\nflows: [f]\ncolour: blue\n")); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestAutoRebuildWindow(t *testing.T) {
	flows, probs := model.Parse("bench.yaml", []byte(benchFlow)) // start → paid|reserved (1h) → shipped (1h)
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	if got := autoRebuildWindow(model.NewSet(flows)); got != 5*time.Hour {
		t.Fatalf("auto rebuild window = %s, want 2×2h+1h", got)
	}
	set, err := model.Load("../model/testdata/flows") // onboarding: a 13-day horizon
	if err != nil {
		t.Fatal(err)
	}
	if got := autoRebuildWindow(set); got != DefaultRebuildWindow {
		t.Fatalf("capped window = %s", got)
	}
}
