package detector

import (
	"context"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

const orderV1 = `apiVersion: flowwatch/v1
kind: Flow
name: order-fulfilment
version: 1
key: order.id
checkpoints:
  - { name: placed, start: true, match: { service: orders } }
  - { name: paid, after: [placed], within: 2m, match: { service: payments } }
  - { name: delivered, after: [paid], terminal: success, match: { service: shipping } }
`

// v2 adds a fraud check due within 30s, and gives payment 10 minutes.
const orderV2 = `apiVersion: flowwatch/v1
kind: Flow
name: order-fulfilment
version: 2
key: order.id
checkpoints:
  - { name: placed, start: true, match: { service: orders } }
  - { name: fraud_checked, after: [placed], within: 30s, match: { service: risk } }
  - { name: paid, after: [fraud_checked], within: 10m, match: { service: payments } }
  - { name: delivered, after: [paid], terminal: success, match: { service: shipping } }
`

func parseSet(t *testing.T, docs ...string) *model.Set {
	t.Helper()
	var flows []*model.Flow
	for _, d := range docs {
		fs, probs := model.Parse("flows.yaml", []byte(d))
		if len(probs) > 0 {
			t.Fatal(probs)
		}
		flows = append(flows, fs...)
	}
	return model.NewSet(flows)
}

// A version without active_from is active from when it was first loaded, as recorded in the
// store: v1's running instances stay v1 when v2 is loaded, after a restart and a read-back.
func TestNewVersionNeverRepinsRunningInstances(t *testing.T) {
	f := newFixture(t)
	f.set = parseSet(t, orderV1)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-1", "order.id", time.Second)
	f.tick(d, 2*time.Second)
	if in := f.state("order-fulfilment", "o-1"); in.Version != 1 {
		t.Fatalf("o-1 = v%d", in.Version)
	}
	// v2 is deployed (no active_from) a minute later; o-2 starts after that.
	f.set = parseSet(t, orderV1, orderV2)
	f.tick(d, time.Minute)
	f.emit("order-fulfilment", "placed", "o-2", "order.id", time.Minute+time.Second)
	f.tick(d, time.Minute+2*time.Second)
	if in := f.state("order-fulfilment", "o-2"); in.Version != 2 {
		t.Fatalf("o-2, started after v2 was loaded = v%d", in.Version)
	}
	vs, _ := f.store.FlowVersions(context.Background())
	if len(vs) != 2 || !vs[0].LoadedAt.Equal(t0) || !vs[1].LoadedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("recorded first loads = %+v", vs)
	}
	d.Close()

	// A restarted detector (and a store read back) judges o-1 by v1: stuck at paid after 2m,
	// not at fraud_checked after 30s.
	f.clk.Set(t0.Add(90 * time.Second))
	d2 := f.detector()
	f.tick(d2, 100*time.Second)
	if in := f.state("order-fulfilment", "o-1"); in.Version != 1 || in.Status != "running" {
		t.Fatalf("after restart, o-1 = v%d %s (v2 would have it stuck at fraud_checked)", in.Version, in.Status)
	}
	f.tick(d2, 2*time.Minute+2*time.Second)
	in := f.state("order-fulfilment", "o-1")
	if in.Version != 1 || in.Status != "stuck" || in.Reason == nil || in.Reason.Checkpoint != "paid" {
		t.Fatalf("o-1 after its v1 deadline = %+v", in)
	}
	if in := f.state("order-fulfilment", "o-2"); in.Version != 2 || in.Status != "stuck" || in.Reason.Checkpoint != "fraud_checked" {
		t.Fatalf("o-2 = %+v", in)
	}
	// An instance first seen in the middle (its start never read) is pinned by the store's
	// events, by the same activation.
	f.emit("order-fulfilment", "placed", "o-3", "order.id", 30*time.Second, func(e *storage.CheckpointEvent) {
		e.IngestTime = t0.Add(-90 * 24 * time.Hour)
	})
	f.emit("order-fulfilment", "paid", "o-3", "order.id", 40*time.Second)
	f.tick(d2, 2*time.Minute+3*time.Second)
	if in := f.state("order-fulfilment", "o-3"); in.Version != 1 || in.Status != "running" {
		t.Fatalf("o-3, placed before v2 was loaded, read back = v%d %s", in.Version, in.Status)
	}
}
