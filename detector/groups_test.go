package detector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

const payFlow = `apiVersion: flowwatch/v1
kind: Flow
name: pay
version: 1
key: order.id
checkpoints:
  - { name: placed, start: true, match: { service: shop } }
  - { name: paid, after: [placed], within: 2m, terminal: success, match: { service: payments } }
`

// Two shards group their alerts per checkpoint into one label set, sent to a real
// Alertmanager: the alert counts every shard's instances, and when one shard's instances move
// on it stays firing (no flapping) until the other's do too.
func TestGroupedAlertsAcrossShards(t *testing.T) {
	am := testsvc.AlertmanagerT(t)
	ctx := context.Background()
	// Alertmanager judges endsAt by its own clock: run the injected clock in the real past.
	base := time.Now().Add(-30 * time.Minute).UTC().Truncate(time.Second)
	clk := &clock{t: base}
	st, err := storage.OpenEmbedded(ctx, t.TempDir(), storage.Options{Database: "groups_test", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	flows, probs := model.Parse("pay.yaml", []byte(payFlow))
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	set := model.NewSet(flows)
	const shards = 2
	var ds []*Detector
	for i := 0; i < shards; i++ {
		d, err := New(Config{Flows: func() *model.Set { return set }, Store: st, Now: clk.Now, Shard: i, Shards: shards,
			Alerting: AlertConfig{Notifiers: []Notifier{&Alertmanager{URLs: []string{am.URL()}}}, GroupByCheckpoint: true}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		if err := d.Start(ctx); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	// 20 orders, split between the shards by key hash.
	byShard := make([][]string, shards)
	var evs []storage.CheckpointEvent
	for i := 0; i < 20; i++ {
		key := fmt.Sprintf("o-%02d", i)
		byShard[ShardOf("acme", "pay", key, shards)] = append(byShard[ShardOf("acme", "pay", key, shards)], key)
		evs = append(evs, storage.CheckpointEvent{Tenant: "acme", Flow: "pay", Checkpoint: "placed", Key: key, KeyAttr: "order.id",
			Time: base, Service: "shop", Name: "place", Status: "ok", TraceID: fmt.Sprintf("%032x", i+1), SpanID: "0000000000000001"})
	}
	if len(byShard[0]) == 0 || len(byShard[1]) == 0 {
		t.Fatalf("the keys do not split: %v", byShard)
	}
	if err := st.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	tick := func(at time.Duration) {
		t.Helper()
		clk.Set(base.Add(at))
		for _, d := range ds {
			if err := d.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			if err := d.Settle(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// alert returns the one alert Alertmanager holds for the group, or nil.
	alert := func() *amAlert {
		t.Helper()
		var found *amAlert
		for _, a := range amAlerts(t, am.URL()) {
			if a.Labels["checkpoint"] != "paid" || a.Labels["flow"] != "pay" {
				continue
			}
			if _, ok := a.Labels["key"]; ok || found != nil {
				t.Fatalf("not one grouped alert: %+v", amAlerts(t, am.URL()))
			}
			found = &a
		}
		return found
	}
	tick(time.Second)
	tick(2*time.Minute + time.Second) // every order is stuck
	tick(2*time.Minute + 7*time.Second)
	tick(2*time.Minute + 13*time.Second) // the counts are in; the alert is sent again with them
	waitFor(t, "the grouped alert counting both shards", func() bool {
		a := alert()
		return a != nil && a.Annotations["instances"] == "20"
	})

	// Shard 0's orders are paid: its members leave; shard 1 still holds its own.
	var paid []storage.CheckpointEvent
	for _, key := range byShard[0] {
		paid = append(paid, storage.CheckpointEvent{Tenant: "acme", Flow: "pay", Checkpoint: "paid", Key: key, KeyAttr: "order.id",
			Time: base.Add(3 * time.Minute), Service: "payments", Name: "paid", Status: "ok", TraceID: "ab", SpanID: "0000000000000002"})
	}
	if err := st.WriteEvents(ctx, paid); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint(len(byShard[1]))
	for i, at := range []time.Duration{3*time.Minute + time.Second, 3*time.Minute + 7*time.Second, 3*time.Minute + 13*time.Second, 4 * time.Minute} {
		tick(at)
		a := alert()
		if a == nil || a.Status.State != "active" {
			t.Fatalf("step %d: the group alert stopped firing while shard 1 holds %d stuck orders: %+v", i, len(byShard[1]), a)
		}
		if i >= 2 && a.Annotations["instances"] != want {
			t.Fatalf("step %d: instances = %s, want %s (shard 1's)", i, a.Annotations["instances"], want)
		}
	}
	// Shard 1's too: the alert resolves.
	paid = paid[:0]
	for _, key := range byShard[1] {
		paid = append(paid, storage.CheckpointEvent{Tenant: "acme", Flow: "pay", Checkpoint: "paid", Key: key, KeyAttr: "order.id",
			Time: base.Add(4 * time.Minute), Service: "payments", Name: "paid", Status: "ok", TraceID: "ab", SpanID: "0000000000000003"})
	}
	if err := st.WriteEvents(ctx, paid); err != nil {
		t.Fatal(err)
	}
	tick(4*time.Minute + time.Second)
	tick(4*time.Minute + 7*time.Second)
	tick(4*time.Minute + 13*time.Second)
	waitFor(t, "the group alert to resolve", func() bool { return alert() == nil })
}
