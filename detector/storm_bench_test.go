package detector

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// benchEvents are n instances' start events, placed (and ingested) every step from base.
func benchEvents(n int, base time.Time, step time.Duration) []storage.CheckpointEvent {
	evs := make([]storage.CheckpointEvent, n)
	for j := range evs {
		key := fmt.Sprintf("order-%08d", j)
		t := base.Add(time.Duration(j) * step)
		evs[j] = storage.CheckpointEvent{EventID: fmt.Sprintf("%016x", uint64(j)+1), Tenant: "acme", Flow: "bench", Checkpoint: "start",
			Key: key, KeyAttr: "order.id", Time: t, IngestTime: t, Service: "a", Name: "start", Status: "ok",
			TraceID: fmt.Sprintf("%032x", j+1), SpanID: fmt.Sprintf("%016x", j+1)}
	}
	return evs
}

// openEmbedded opens a chDB store in a fresh folder, with the detector's clock.
func openEmbedded(b *testing.B, clk *clock) storage.Store {
	b.Helper()
	st, err := storage.OpenEmbedded(context.Background(), b.TempDir(), storage.Options{Database: "bench", Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return st
}

func writeEvents(b *testing.B, st storage.Writer, evs []storage.CheckpointEvent) {
	b.Helper()
	for i := 0; i < len(evs); i += 50_000 {
		if err := st.WriteEvents(context.Background(), evs[i:min(i+50_000, len(evs))]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStuckStorm: 100,000 open instances whose events are in the store, 1,000 of them
// going stuck in one tick: written at once, read back in batches, explained, written again.
// ms/tick is the tick and the settling of its read-backs, against the real embedded store
// (chDB) and, side by side, a fake that answers instantly (the detector's own cost).
func BenchmarkStuckStorm(b *testing.B) {
	const open, perTick = 100_000, 1000
	for _, kind := range []string{"fake", "embedded"} {
		b.Run("store="+kind, func(b *testing.B) {
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clk := &clock{t: base}
			// The instances started over the last hour, one every 36ms (28 a second).
			const step = 36 * time.Millisecond
			evs := benchEvents(open, base, step)
			var st Store
			if kind == "embedded" {
				st = openEmbedded(b, clk)
				writeEvents(b, st, evs)
			} else {
				fs := &benchStore{feed: evs, placed: make(map[string]time.Time, open)}
				for _, e := range evs {
					fs.placed[e.Key] = e.Time
				}
				st = fs
			}
			set := benchSet(b)
			d, err := New(Config{Flows: func() *model.Set { return set }, Store: st, Now: clk.Now, ReadLimit: 200_000,
				RebuildWindow: 24 * time.Hour, ExplainWait: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(d.Close)
			clk.Set(base.Add(time.Hour))
			if err := d.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			if d.Stats().Open != open {
				b.Fatalf("open = %d", d.Stats().Open)
			}
			if b.N*perTick > open {
				b.Fatalf("b.N %d is more than the instances can give (use -benchtime %dx at most)", b.N, open/perTick)
			}
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				clk.Set(base.Add(time.Hour + time.Duration(i*perTick)*step)) // deadlines: start + 1h
				if err := d.Tick(context.Background()); err != nil {
					b.Fatal(err)
				}
				if err := d.Settle(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if s := d.Stats(); s.Stuck != b.N*perTick {
				b.Fatalf("stuck = %d after %d ticks, want %d", s.Stuck, b.N, b.N*perTick)
			}
			if kind == "embedded" {
				in, err := st.Instance(context.Background(), "acme", "bench", fmt.Sprintf("order-%08d", perTick/2))
				if err != nil || in == nil || in.Status != "stuck" || in.Reason == "" {
					b.Fatalf("a stuck instance in the store: %+v, %v", in, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/tick")
		})
	}
}

// BenchmarkIngest applies events through the detector's read path in ticks of 10,000: half
// open new instances, half move open ones on, and an instance's events are shuffled across
// ticks (its payment read a tick before or after its start). With the real embedded store
// (chDB) the reads of the new rows and the checks of instances first seen in the middle are
// part of the cost; the fake feeds the rows and answers instantly: the detector's own.
func BenchmarkIngest(b *testing.B) {
	for _, kind := range []string{"fake", "embedded"} {
		b.Run("store="+kind, func(b *testing.B) {
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clk := &clock{t: base}
			var st Store
			var write2 func([]storage.CheckpointEvent)
			if kind == "embedded" {
				es := openEmbedded(b, clk)
				st, write2 = es, func(evs []storage.CheckpointEvent) { writeEvents(b, es, evs) }
			} else {
				fs := &benchStore{}
				st, write2 = fs, func(evs []storage.CheckpointEvent) { fs.feed = evs }
			}
			set := benchSet(b)
			d, err := New(Config{Flows: func() *model.Set { return set }, Store: st, Now: clk.Now, ReadLimit: 50_000, RebuildWindow: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(d.Close)
			if err := d.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			const batch = 10_000
			rng := rand.New(rand.NewPCG(1, 2))
			mk := func(round int) []storage.CheckpointEvent {
				var evs []storage.CheckpointEvent
				for j := 0; j < batch/2; j++ {
					key := fmt.Sprintf("o-%d-%d", round, j)
					t := base.Add(time.Duration(round) * time.Second)
					evs = append(evs, storage.CheckpointEvent{EventID: fmt.Sprintf("%08x%08x", round, 2*j+1), Tenant: "acme", Flow: "bench",
						Checkpoint: "start", Key: key, KeyAttr: "order.id", Time: t, Service: "a", Name: "start", Status: "ok"},
						storage.CheckpointEvent{EventID: fmt.Sprintf("%08x%08x", round, 2*j+2), Tenant: "acme", Flow: "bench",
							Checkpoint: "paid", Key: key, KeyAttr: "order.id", Time: t.Add(time.Millisecond), Service: "b", Name: "paid", Status: "ok"})
				}
				return evs
			}
			var carry []storage.CheckpointEvent
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				now := base.Add(time.Duration(i+1) * time.Second)
				clk.Set(now)
				var next []storage.CheckpointEvent
				write := append([]storage.CheckpointEvent(nil), carry...)
				for _, e := range mk(i) {
					switch {
					case e.Checkpoint == "paid" && rng.IntN(2) == 0: // read a tick after its start
						next = append(next, e)
					case e.Checkpoint == "start" && rng.IntN(4) == 0: // read a tick after its payment
						next = append(next, e)
					default:
						write = append(write, e)
					}
				}
				carry = next
				for j := range write {
					write[j].IngestTime = now
				}
				write2(write)
				b.StartTimer()
				if err := d.Tick(context.Background()); err != nil {
					b.Fatal(err)
				}
				if err := d.Settle(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
		})
	}
}

// BenchmarkRebuild is a detector's start on a store that four minutes of busy traffic left:
// 325,000 events of 65,000 instances (start, payment, reservation, shipment, delivery; one in
// five still open), read back and judged until every open instance is. events/s is the rate
// of the whole rebuild.
func BenchmarkRebuild(b *testing.B) {
	const instances = 65_000
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: base}
	st := openEmbedded(b, clk)
	cps := []string{"start", "paid", "reserved", "shipped", "done"}
	var evs []storage.CheckpointEvent
	for j := 0; j < instances; j++ {
		at := base.Add(time.Duration(j) * 3700 * time.Microsecond) // four minutes
		n := len(cps)
		if j%5 == 0 {
			n = 3 // open: waiting for its shipment
		}
		for c := 0; c < n; c++ {
			t := at.Add(time.Duration(c) * 500 * time.Millisecond)
			evs = append(evs, storage.CheckpointEvent{EventID: fmt.Sprintf("%08x%08x", j, c), Tenant: "acme", Flow: "bench",
				Checkpoint: cps[c], Key: fmt.Sprintf("order-%08d", j), KeyAttr: "order.id", Time: t, IngestTime: t.Add(time.Second),
				Service: "svc", Name: cps[c], Status: "ok", TraceID: fmt.Sprintf("%032x", j+1), SpanID: fmt.Sprintf("%016x", c+1)})
		}
	}
	writeEvents(b, st, evs)
	set := benchSet(b)
	clk.Set(base.Add(5 * time.Minute))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := New(Config{Flows: func() *model.Set { return set }, Store: st, Now: clk.Now})
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if s := d.Stats(); s.Open != instances/5 {
			b.Fatalf("open = %d, want %d", s.Open, instances/5)
		}
		d.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(len(evs)*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/rebuild")
}
