package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// oldFlows are the definitions the stored states were judged by.
const oldFlows = `apiVersion: flowwatch/v1
kind: Flow
name: order
version: 1
key: order.id
checkpoints:
  - name: placed
    start: true
    match: { service: orders, span: "POST /orders" }
  - name: paid
    after: [placed]
    within: 2m
    key: payment.order_id
    aliases: [payment.id]
    match: { service: payments, event: payment.authorized }
  - name: settled
    after: [paid]
    within: 5m
    key: payment.id
    match: { service: ledger, event: payment.settled }
  - name: delivered
    after: [settled]
    terminal: success
    match: { service: shipping, event: delivered }
  - name: cancelled
    after: [placed]
    terminal: failure
    match: { service: orders, span: cancel }
---
apiVersion: flowwatch/v1
kind: Flow
name: retired
version: 1
key: x.id
checkpoints:
  - name: begun
    start: true
    match: { service: x }
`

// newFlows give payment 15 minutes, settlement 20, and add a 5-minute deadline on delivery.
var newFlows = strings.NewReplacer("within: 2m", "within: 15m", "within: 5m", "within: 20m",
	"    after: [settled]\n", "    after: [settled]\n    within: 5m\n").Replace(strings.SplitN(oldFlows, "---", 2)[0])

var (
	rt0  = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	rNow = rt0.Add(10 * time.Minute)
)

type rev struct {
	cp, keyAttr, key string
	d                time.Duration
}

// seedReplay writes, as the detector would have, these instances judged by oldFlows at rNow:
//
//	default/A  completed                                   (unchanged)
//	default/B  stuck: paid overdue at +2m      → running: paid due at +15m
//	default/C  running: placed at +9m                      (unchanged)
//	default/D  running: settled (keyed by alias p-D) at +1m → stuck: delivered due at +6m
//	acme/B     stuck, like default/B            → running
//	default/R  of flow "retired", which the new definitions lack: skipped
func seedReplay(t *testing.T, w storage.Writer) {
	t.Helper()
	ctx := context.Background()
	flows, probs := model.Parse("old.yaml", []byte(oldFlows))
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	set := model.NewSet(flows)
	if err := w.WriteAliases(ctx, []storage.Alias{
		{Tenant: "default", Flow: "order", Attr: "payment.id", Value: "p-A", Key: "A", Time: rt0},
		{Tenant: "default", Flow: "order", Attr: "payment.id", Value: "p-D", Key: "D", Time: rt0},
	}); err != nil {
		t.Fatal(err)
	}
	inst := func(tenant, flow, key string, evs ...rev) {
		in := model.NewInstance(set.Versions(flow), tenant, key)
		var rows []storage.CheckpointEvent
		for _, e := range evs {
			ka, k := e.keyAttr, e.key
			if ka == "" {
				ka, k = "order.id", key
			}
			row := storage.CheckpointEvent{Tenant: tenant, Flow: flow, Checkpoint: e.cp, Key: k, KeyAttr: ka,
				Time: rt0.Add(e.d), IngestTime: rt0.Add(e.d), Service: "svc", Name: e.cp, Status: "ok"}
			row.EventID = storage.EventID(tenant, flow, e.cp, k, "", "", row.Time.UnixNano(), row.Name)
			rows = append(rows, row)
			in.Apply(model.Event{ID: row.EventID, Checkpoint: e.cp, Time: row.Time, Service: "svc", Name: e.cp, Status: "ok"})
		}
		if err := w.WriteEvents(ctx, rows); err != nil {
			t.Fatal(err)
		}
		st := flowstate.Row(in.Evaluate(rNow))
		st.UpdatedAt = rNow
		if err := w.WriteStates(ctx, []storage.InstanceState{st}); err != nil {
			t.Fatal(err)
		}
	}
	inst("default", "order", "A", rev{cp: "placed"}, rev{cp: "paid", d: time.Minute},
		rev{cp: "settled", keyAttr: "payment.id", key: "p-A", d: 2 * time.Minute}, rev{cp: "delivered", d: 3 * time.Minute})
	inst("default", "order", "B", rev{cp: "placed", d: time.Second})
	inst("default", "order", "C", rev{cp: "placed", d: 9 * time.Minute})
	inst("default", "order", "D", rev{cp: "placed", d: 2 * time.Second}, rev{cp: "paid", d: 30 * time.Second},
		rev{cp: "settled", keyAttr: "payment.id", key: "p-D", d: time.Minute})
	inst("acme", "order", "B", rev{cp: "placed", d: 3 * time.Second})
	inst("default", "retired", "R", rev{cp: "begun", d: 4 * time.Second})
}

func loadNew(t *testing.T) *model.Set {
	t.Helper()
	flows, probs := model.Parse("new.yaml", []byte(newFlows))
	if len(probs) > 0 {
		t.Fatalf("new flows: %v\n%s", probs, newFlows)
	}
	return model.NewSet(flows)
}

const wantSummary = "replayed 5 instances of 1 flow at 2026-11-26T10:10:00Z: 3 would change status " +
	"(running -> stuck 1, stuck -> running 2); 1 skipped, their flow not defined: retired 1"

func checkReplayOutput(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 3 changes and a summary, got:\n%s", out)
	}
	want := []string{
		"default/order/D: running -> stuck (version 1 -> 1): order D: \"delivered\" expected from shipping by 2026-11-26T10:06:00Z",
		"acme/order/B: stuck -> running (version 1 -> 1)",
		"default/order/B: stuck -> running (version 1 -> 1)",
	}
	got := strings.Join(lines[:3], "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if lines[3] != wantSummary {
		t.Errorf("summary:\n got %s\nwant %s", lines[3], wantSummary)
	}
}

func TestReplayOnMemoryStore(t *testing.T) {
	store := &storagetest.Memory{}
	seedReplay(t, store)
	var out bytes.Buffer
	sum, err := replay(context.Background(), store, loadNew(t), replayOptions{At: rNow, PageSize: 2}, &out)
	if err != nil {
		t.Fatal(err)
	}
	checkReplayOutput(t, out.String())
	if sum.Foreign != 0 {
		t.Errorf("foreign = %d", sum.Foreign)
	}

	out.Reset()
	if _, err := replay(context.Background(), store, loadNew(t), replayOptions{At: rNow, Tenant: "acme"}, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "acme/order/B: stuck -> running") ||
		!strings.Contains(got, "replayed 1 instance of 1 flow") {
		t.Errorf("tenant acme:\n%s", got)
	}
}

// strayReader returns, with B's events, a settled row keyed by p-A: an alias of A.
type strayReader struct{ *storagetest.Memory }

func (s strayReader) InstanceEvents(ctx context.Context, tenant, flow, key string) ([]storage.CheckpointEvent, error) {
	rows, err := s.Memory.InstanceEvents(ctx, tenant, flow, key)
	if key == "B" && tenant == "default" {
		rows = append(rows, storage.CheckpointEvent{EventID: "00000000000000ff", Tenant: tenant, Flow: flow,
			Checkpoint: "paid", Key: "p-A", KeyAttr: "payment.id", Time: rt0.Add(time.Minute)})
	}
	return rows, err
}

func TestReplayLeavesOutOtherInstancesAliasRows(t *testing.T) {
	store := &storagetest.Memory{}
	seedReplay(t, store)
	var out bytes.Buffer
	sum, err := replay(context.Background(), strayReader{store}, loadNew(t), replayOptions{At: rNow}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Foreign != 1 || !strings.Contains(out.String(), "default/order/B: stuck -> running") {
		t.Errorf("foreign %d:\n%s", sum.Foreign, out.String())
	}
}

// TestReplaySameDefinitionsLater: replaying the definitions that judged the stored states
// changes nothing, even when evaluated later than the states were written (deadlines that
// passed meanwhile count on both sides). The new definitions, evaluated later, also turn the
// instances whose old deadline passed meanwhile (C) back to running.
func TestReplaySameDefinitionsLater(t *testing.T) {
	store := &storagetest.Memory{}
	seedReplay(t, store)
	flows, probs := model.Parse("old.yaml", []byte(oldFlows))
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	later := rNow.Add(5 * time.Minute)
	var out bytes.Buffer
	sum, err := replay(context.Background(), store, model.NewSet(flows), replayOptions{At: later}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Changed != 0 || sum.Instances != 6 {
		t.Errorf("same definitions: %+v\n%s", sum, out.String())
	}
	out.Reset()
	if _, err := replay(context.Background(), store, loadNew(t), replayOptions{At: later}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "default/order/C: stuck -> running") {
		t.Errorf("new definitions later:\n%s", out.String())
	}
}

func TestReplayUsageAndErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "new.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(newFlows), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(strings.Replace(newFlows, "after: [placed]", "after: [nowhere]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--store", dir}, 2, "--flows is required"},
		{[]string{"--flows", good}, 2, "exactly one of --store and --dsn"},
		{[]string{"--flows", good, "--store", dir, "--dsn", "clickhouse://x"}, 2, "exactly one of --store and --dsn"},
		{[]string{"--flows", good, "--store", dir, "--at", "noon"}, 2, "--at"},
		{[]string{"--flows", good, "--store", dir, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--flows", bad, "--store", dir}, 1, "bad.yaml:"},
		{[]string{"--flows", good, "--store", dir, "--flow", "nope"}, 1, `flow "nope" is not defined`},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := dispatch(context.Background(), append([]string{"replay"}, c.args...), &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
}

// TestReplayOnEmbeddedStore runs the command on the real embedded store (chDB), seeded
// through storage.Writer.
func TestReplayOnEmbeddedStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := storage.OpenEmbedded(ctx, filepath.Join(dir, "data"), storage.Options{Database: "replay_test"})
	if err != nil {
		t.Fatalf("open the embedded store (run `make chdb` first): %v", err)
	}
	if err := store.Migrate(ctx); err != nil {
		store.Close()
		t.Fatal(err)
	}
	seedReplay(t, store)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	flows := filepath.Join(dir, "new.yaml")
	if err := os.WriteFile(flows, []byte(newFlows), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := dispatch(ctx, []string{"replay", "--flows", flows, "--store", filepath.Join(dir, "data"),
		"--database", "replay_test", "--at", rNow.Format(time.RFC3339)}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	t.Logf("replay printed:\n%s", stdout.String())
	checkReplayOutput(t, stdout.String())
}
