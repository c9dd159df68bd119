package detector

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// benchStore feeds prepared rows and swallows writes: the benchmarks measure the detector,
// not a store.
type benchStore struct {
	storagetest.Memory // unused reader methods
	feed               []storage.CheckpointEvent
	placed             map[string]time.Time // key → placed time, for reading an instance back
}

func (s *benchStore) EventsSince(_ context.Context, _ time.Time, _ int) ([]storage.CheckpointEvent, error) {
	out := s.feed
	s.feed = nil
	return out, nil
}
func (s *benchStore) InstanceEvents(_ context.Context, tenant, flow, key string) ([]storage.CheckpointEvent, error) {
	t, ok := s.placed[key]
	if !ok {
		return nil, nil
	}
	return []storage.CheckpointEvent{{EventID: key, Tenant: tenant, Flow: flow, Checkpoint: "start", Key: key, Time: t}}, nil
}
func (s *benchStore) CountEvents(context.Context, time.Time, time.Time) (uint64, error) {
	return 0, nil
}
func (s *benchStore) EventRefs(context.Context, time.Time, time.Time) ([]storage.EventRef, error) {
	return nil, nil
}
func (s *benchStore) InstancesEvents(ctx context.Context, tenant, flow string, keys []string) (map[string][]storage.CheckpointEvent, error) {
	out := make(map[string][]storage.CheckpointEvent, len(keys))
	for _, k := range keys {
		out[k], _ = s.InstanceEvents(ctx, tenant, flow, k)
	}
	return out, nil
}
func (s *benchStore) WriteStates(context.Context, []storage.InstanceState) error   { return nil }
func (s *benchStore) WriteAlerts(context.Context, []storage.AlertRecord) error     { return nil }
func (s *benchStore) WriteCommands(context.Context, []storage.CommandRecord) error { return nil }
func (s *benchStore) CommandsSince(context.Context, time.Time) ([]storage.CommandRecord, error) {
	return nil, nil
}

const benchFlow = `apiVersion: flowwatch/v1
kind: Flow
name: bench
version: 1
key: order.id
checkpoints:
  - {name: start, start: true, match: {service: a, span: start}}
  - {name: paid, after: [start], within: 1h, match: {service: b, event: paid}}
  - {name: reserved, after: [start], within: 1h, match: {service: c, span: reserve}}
  - {name: shipped, after: [paid, reserved], within: 1h, match: {service: d, span: ship}}
  - {name: done, after: [shipped], terminal: success, match: {service: d, event: delivered}}
`

func benchSet(b *testing.B) *model.Set {
	flows, probs := model.Parse("bench.yaml", []byte(benchFlow))
	if len(probs) > 0 {
		b.Fatal(probs)
	}
	return model.NewSet(flows)
}

// openInstances builds a detector holding n open instances whose deadlines (placed + 1h) are
// spread one microsecond apart from base.
func openInstances(b *testing.B, n int, base time.Time) (*Detector, *benchStore, *clock) {
	set := benchSet(b)
	st := &benchStore{placed: make(map[string]time.Time, n)}
	clk := &clock{t: base}
	d, err := New(Config{Flows: func() *model.Set { return set }, Store: st, Now: clk.Now, ReadLimit: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.Close)
	const batch = 100_000
	for i := 0; i < n; i += batch {
		feed := make([]storage.CheckpointEvent, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			key := fmt.Sprintf("order-%08d", j)
			t := base.Add(time.Duration(j) * time.Microsecond)
			st.placed[key] = t
			feed = append(feed, storage.CheckpointEvent{EventID: key, Tenant: "acme", Flow: "bench", Checkpoint: "start",
				Key: key, KeyAttr: "order.id", Time: t, IngestTime: base})
		}
		st.feed = feed
		if err := d.Tick(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	return d, st, clk
}

// BenchmarkTick: 1M open instances, 1,000 of them expiring in each tick. They become stuck:
// each is written at once by the tick (ns/tick: what the detector's owner does in the tick),
// then read back in batches, explained and written again (ns/explained: the tick plus the
// settling of its read-backs).
func BenchmarkTick(b *testing.B) {
	for _, open := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("open=%d", open), func(b *testing.B) {
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			d, _, clk := openInstances(b, open, base)
			if got := d.Stats().Open; got != open {
				b.Fatalf("open = %d", got)
			}
			const perTick = 1000
			expired := 0
			var ticking time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if expired+perTick > open {
					b.StopTimer()
					d2, _, c2 := openInstances(b, open, base)
					d, clk, expired = d2, c2, 0
					runtime.GC()
					b.StartTimer()
				}
				expired += perTick
				clk.Set(base.Add(time.Hour + time.Duration(expired)*time.Microsecond))
				start := time.Now()
				if err := d.Tick(context.Background()); err != nil {
					b.Fatal(err)
				}
				ticking += time.Since(start)
				if err := d.Settle(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if s := d.Stats(); s.Stuck == 0 || s.Stuck > perTick*b.N {
				b.Fatalf("stuck = %d after %d ticks", s.Stuck, b.N)
			}
			b.ReportMetric(float64(ticking.Nanoseconds())/float64(b.N), "ns/tick")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/explained")
		})
	}
}

// BenchmarkOpenInstanceMemory reports the heap bytes one open instance costs.
func BenchmarkOpenInstanceMemory(b *testing.B) {
	const n = 1_000_000
	for i := 0; i < b.N; i++ {
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		d, st, clk := openInstances(b, n, base)
		st.placed = nil // the bench store's own map is not the detector's
		// Move the cursor past the overlap window, as steady traffic does, so the event ids
		// kept for dedup (a cost of the read rate, not of open instances) are released.
		later := base.Add(time.Hour)
		clk.Set(later)
		st.feed = []storage.CheckpointEvent{{EventID: "tick", Tenant: "acme", Flow: "other", Key: "x", Time: later, IngestTime: later}}
		if err := d.Tick(context.Background()); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if d.Stats().Open != n {
			b.Fatal("not all open")
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/instance")
		runtime.KeepAlive(d)
	}
}

const benchFamily = `apiVersion: flowwatch/v1
kind: Flow
name: parent
version: 1
key: order.id
checkpoints:
  - {name: start, start: true, match: {service: a, span: start}}
  - {name: kids, after: [start], within: 1h, children: {flow: child, complete: all}}
  - {name: done, after: [kids], terminal: success, match: {service: a, span: done}}
  - {name: refunded, compensates: start, within: 1h, match: {service: a, event: refund}}
---
apiVersion: flowwatch/v1
kind: Flow
name: child
version: 1
key: parcel.id
parent: {flow: parent, key: order.id}
checkpoints:
  - {name: start, start: true, match: {service: b, span: pack}}
  - {name: delivered, after: [start], within: 1h, terminal: success, match: {service: c, event: delivered}}
`

// BenchmarkOpenFamilyMemory: 1M open instances in families — 200k parents, each with four
// open children — cost per open instance (a family's links and counts included).
func BenchmarkOpenFamilyMemory(b *testing.B) {
	const parents, children = 200_000, 4
	path := filepath.Join(b.TempDir(), "family.yaml")
	if err := os.WriteFile(path, []byte(benchFamily), 0o600); err != nil {
		b.Fatal(err)
	}
	set, err := model.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		st := &benchStore{}
		clk := &clock{t: base}
		d, err := New(Config{Flows: func() *model.Set { return set }, Store: st, Now: clk.Now, ReadLimit: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		const batch = 20_000
		for p := 0; p < parents; p += batch {
			feed := make([]storage.CheckpointEvent, 0, batch*(1+children))
			for j := p; j < p+batch; j++ {
				key := fmt.Sprintf("order-%08d", j)
				t := base.Add(time.Duration(j) * time.Microsecond)
				feed = append(feed, storage.CheckpointEvent{EventID: key, Tenant: "acme", Flow: "parent", Checkpoint: "start",
					Key: key, KeyAttr: "order.id", Time: t, IngestTime: base})
				for c := range children {
					kid := fmt.Sprintf("parcel-%08d-%d", j, c)
					feed = append(feed, storage.CheckpointEvent{EventID: kid, Tenant: "acme", Flow: "child", Checkpoint: "start",
						Key: kid, KeyAttr: "parcel.id", Time: t, IngestTime: base, Attributes: map[string]string{model.AttrParentKey: key}})
				}
			}
			st.feed = feed
			if err := d.Tick(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		later := base.Add(time.Hour)
		clk.Set(later)
		st.feed = []storage.CheckpointEvent{{EventID: "tick", Tenant: "acme", Flow: "other", Key: "x", Time: later, IngestTime: later}}
		if err := d.Tick(context.Background()); err != nil {
			b.Fatal(err)
		}
		if len(d.fam.parents) != 0 {
			b.Fatalf("one shard caches %d parent keys of its own children", len(d.fam.parents))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		n := parents * (1 + children)
		if d.Stats().Open != n {
			b.Fatalf("open = %d, want %d", d.Stats().Open, n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/instance")
		runtime.KeepAlive(d)
		d.Close()
	}
}
