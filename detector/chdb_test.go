package detector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// TestShardsOverRealStore runs three detector shards over one embedded ClickHouse (chDB)
// store, with an injected clock: every instance belongs to exactly one shard, stuck ones are
// explained from the store, each command is sent once, a restarted shard rebuilds only its own
// part and re-sends nothing, and an alias written by "another collector" resolves.
func TestShardsOverRealStore(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: t0}
	st, err := storage.OpenEmbedded(ctx, t.TempDir(), storage.Options{Database: "detector_test", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	set, err := model.Load("../model/testdata/flows")
	if err != nil {
		t.Fatal(err)
	}
	const shards, n = 3, 30
	sinks := make([]*sinkRec, shards)
	notifiers := make([]*recorder, shards)
	newShard := func(i int) *Detector {
		d, err := New(Config{Flows: func() *model.Set { return set }, Store: st, Now: clk.Now, Shard: i, Shards: shards,
			Alerting: AlertConfig{Notifiers: []Notifier{notifiers[i]}}, Sinks: []SinkConfig{{Sink: sinks[i]}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		if err := d.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return d
	}
	var ds []*Detector
	for i := 0; i < shards; i++ {
		sinks[i], notifiers[i] = &sinkRec{name: "nats"}, &recorder{}
		ds = append(ds, newShard(i))
	}
	var events []storage.CheckpointEvent
	ev := func(id, cp, key, attr string, at time.Duration) storage.CheckpointEvent {
		return storage.CheckpointEvent{EventID: storage.EventID("acme", "order-fulfilment", cp, key, "t-"+id, "", t0.Add(at).UnixNano(), cp), Tenant: "acme", Flow: "order-fulfilment", Checkpoint: cp, Key: key,
			KeyAttr: attr, Time: t0.Add(at), TraceID: "t-" + id, Service: "svc", Name: cp, Status: "ok"}
	}
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("o-%02d", i)
		events = append(events, ev(key+"-p", "placed", key, "order.id", 0), ev(key+"-s", "stock_reserved", key, "order.id", time.Second))
		if i%3 == 0 { // a third pay; their settlement is keyed by the payment id
			events = append(events, ev(key+"-paid", "paid", key, "payment.order_id", 2*time.Second),
				ev(key+"-set", "settled", "pay-"+key, "payment.id", 3*time.Second))
		}
	}
	if err := st.WriteEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	tick := func(at time.Duration) {
		t.Helper()
		clk.Set(t0.Add(at))
		for i, d := range ds {
			if err := d.Tick(ctx); err != nil {
				t.Fatalf("shard %d at %s: %v", i, at, err)
			}
			if err := d.Settle(ctx); err != nil {
				t.Fatalf("shard %d at %s: %v", i, at, err)
			}
		}
	}
	tick(10 * time.Second)
	// The alias rows arrive after the events (another collector): the settlements wait, then join.
	var aliases []storage.Alias
	for i := 0; i < n; i += 3 {
		key := fmt.Sprintf("o-%02d", i)
		aliases = append(aliases, storage.Alias{Tenant: "acme", Flow: "order-fulfilment", Attr: "payment.id", Value: "pay-" + key, Key: key, Time: t0})
	}
	if err := st.WriteAliases(ctx, aliases); err != nil {
		t.Fatal(err)
	}
	tick(20 * time.Second)
	tick(2*time.Minute + 10*time.Second) // unpaid orders are stuck (paid within 2m, action after 10s)
	total, stuck, commands, alerts := 0, 0, 0, 0
	for i, d := range ds {
		s := d.Stats()
		if s.Open == 0 {
			t.Fatalf("shard %d owns nothing", i)
		}
		total += s.Open
		stuck += s.Stuck
		commands += sinks[i].count()
		if a := notifiers[i].last(); a != nil {
			alerts += len(a)
		}
	}
	if total != n || stuck != n-n/3 || commands != n-n/3 || alerts != n-n/3 {
		t.Fatalf("open %d (want %d), stuck %d, commands %d, alerts %d (want %d each)", total, n, stuck, commands, alerts, n-n/3)
	}
	// A paid order moved on through its alias: settled is done, shipped is expected.
	if in, err := st.Instance(ctx, "acme", "order-fulfilment", "o-03"); err != nil || in == nil || in.Status != "running" || in.LastCheckpoint != "settled" {
		t.Fatalf("o-03 = %+v, %v", in, err)
	}
	// A stuck order is explained in the store.
	in, err := st.Instance(ctx, "acme", "order-fulfilment", "o-01")
	if err != nil || in == nil || in.Status != "stuck" || in.Reason == "" || in.Reason == "null" {
		t.Fatalf("o-01 = %+v, %v", in, err)
	}
	// Shard 1 restarts: same instances, nothing re-sent.
	before, sent := ds[1].Stats().Open, sinks[1].count()
	ds[1] = newShard(1)
	tick(2*time.Minute + 20*time.Second)
	if got := ds[1].Stats().Open; got != before || sinks[1].count() != sent {
		t.Fatalf("restarted shard: open %d (want %d), commands %d (want %d)", got, before, sinks[1].count(), sent)
	}
	recs, err := st.Commands(ctx, storage.AuditFilter{Tenant: "acme", Flow: "order-fulfilment", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		if r.Outcome == OutcomeSent {
			seen[r.ID]++
		}
	}
	if len(seen) != n-n/3 {
		t.Fatalf("recorded %d distinct sent commands, want %d", len(seen), n-n/3)
	}
}
