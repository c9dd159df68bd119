package detector

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// countingStore counts the instance reads the detector makes, and can hold batched reads
// back (a slow store) until released.
type countingStore struct {
	*storagetest.Memory
	mu      sync.Mutex
	single  int   // InstanceEvents calls: one instance a query
	batches []int // InstancesEvents calls: instances per query
	gate    chan struct{}
}

func (s *countingStore) InstanceEvents(ctx context.Context, tenant, flow, key string) ([]storage.CheckpointEvent, error) {
	s.mu.Lock()
	s.single++
	s.mu.Unlock()
	return s.Memory.InstanceEvents(ctx, tenant, flow, key)
}

func (s *countingStore) InstancesEvents(ctx context.Context, tenant, flow string, keys []string) (map[string][]storage.CheckpointEvent, error) {
	s.mu.Lock()
	s.batches = append(s.batches, len(keys))
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Memory.InstancesEvents(ctx, tenant, flow, keys)
}

func (s *countingStore) reads() (single int, batches []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.single, append([]int(nil), s.batches...)
}

// emitMany writes events of many instances in one batch, as a busy collector does.
func (f *fixture) emitMany(n int, cp, keyAttr string, at time.Duration, key func(int) string, mods ...func(*storage.CheckpointEvent)) {
	f.t.Helper()
	evs := make([]storage.CheckpointEvent, 0, n)
	for i := 0; i < n; i++ {
		f.seq++
		evs = append(evs, storage.CheckpointEvent{EventID: fmt.Sprintf("%016x", f.seq), Tenant: "acme", Flow: "order-fulfilment",
			Checkpoint: cp, Key: key(i), KeyAttr: keyAttr, Time: t0.Add(at), IngestTime: f.clk.Now(),
			TraceID: fmt.Sprintf("trace-%d", f.seq), Service: "svc", Name: cp, Status: "ok"})
		for _, m := range mods {
			m(&evs[len(evs)-1])
		}
	}
	if err := f.store.WriteEvents(context.Background(), evs); err != nil {
		f.t.Fatal(err)
	}
}

// Late and out-of-order events of instances the detector holds are applied to what it holds:
// no instance is read back for them. Instances first seen in the middle are checked by
// batched reads, never one query per instance; so are the instances of a stuck storm.
func TestNoPerInstanceReadInTheTick(t *testing.T) {
	f := newFixture(t)
	cs := &countingStore{Memory: f.store}
	d := f.detector(func(c *Config) { c.Store = cs; c.ReadBatch = 100 })
	key := func(i int) string { return fmt.Sprintf("o-%04d", i) }
	const n = 1000
	f.emitMany(n, "placed", "order.id", 0, key)
	f.tick(d, time.Second)
	// Out of order for the ones held: stock reserved "before" it was placed.
	f.emitMany(n, "stock_reserved", "order.id", -time.Second, key)
	// 250 orders first seen in the middle: their placement is in the store, ingested long
	// before this detector's rebuild window, so never read by it.
	mid := func(i int) string { return fmt.Sprintf("m-%04d", i) }
	f.emitMany(250, "placed", "order.id", 0, mid, func(e *storage.CheckpointEvent) { e.IngestTime = t0.Add(-90 * 24 * time.Hour) })
	f.emitMany(250, "stock_reserved", "order.id", time.Second, mid)
	f.tick(d, 2*time.Second)
	single, batches := cs.reads()
	if single != 0 || len(batches) != 3 {
		t.Fatalf("after out-of-order events: %d single reads, batched reads %v; want none single and 3 batches (250 unverified in 100s)", single, batches)
	}
	if got := d.Stats().Open; got != n+250 {
		t.Fatalf("open = %d, want %d", got, n+250)
	}
	// All of them go stuck in the same tick (paid is due at 2m).
	f.tick(d, 2*time.Minute+time.Second)
	single, batches = cs.reads()
	if single != 0 || len(batches) != 3+13 {
		t.Fatalf("after the storm: %d single reads, batched reads %v; want 13 more batches for 1,250 stuck", single, batches)
	}
	for _, b := range batches {
		if b > 100 {
			t.Fatalf("a batch of %d exceeds ReadBatch", b)
		}
	}
	if s := d.Stats(); s.Stuck != n+250 {
		t.Fatalf("stuck = %d", s.Stuck)
	}
	in := f.state("order-fulfilment", "m-0007")
	if in.Status != "stuck" || in.Reason == nil || len(in.Reason.TraceIDs) == 0 {
		t.Fatalf("an instance first seen in the middle, once read back: %+v", in)
	}
}

// A stuck instance is written within one tick of its deadline even while the store is slow to
// explain others; the explanation follows when it answers.
func TestStuckIsWrittenWhileExplanationsWait(t *testing.T) {
	f := newFixture(t)
	gate := make(chan struct{})
	cs := &countingStore{Memory: f.store, gate: gate}
	d := f.detector(func(c *Config) { c.Store = cs; c.ExplainWait = time.Hour })
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.emit("order-fulfilment", "stock_reserved", "o-1", "order.id", time.Second)
	tick := func(at time.Duration) {
		t.Helper()
		f.clk.Set(t0.Add(at))
		if err := d.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	tick(time.Second)
	tick(2*time.Minute + time.Second) // the explanation read now waits on the gate
	in := f.state("order-fulfilment", "o-1")
	if in.Status != "stuck" || in.Reason == nil || in.Reason.Checkpoint != "paid" {
		t.Fatalf("not written stuck within the tick of its deadline: %+v", in)
	}
	if len(in.Reason.TraceIDs) != 0 {
		t.Fatalf("explained before the store answered? %+v", in.Reason)
	}
	// Meanwhile another instance starts and goes stuck: the waiting read holds nobody up.
	f.emit("order-fulfilment", "placed", "o-2", "order.id", 2*time.Minute+2*time.Second)
	tick(2*time.Minute + 3*time.Second)
	tick(4*time.Minute + 3*time.Second)
	if in := f.state("order-fulfilment", "o-2"); in.Status != "stuck" {
		t.Fatalf("o-2 = %s while o-1's explanation waits", in.Status)
	}
	if n := f.am.count(); n != 0 {
		t.Fatalf("alerted %d times before explained (ExplainWait is an hour)", n)
	}
	close(gate)
	if err := d.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	in = f.state("order-fulfilment", "o-1")
	if len(in.Reason.TraceIDs) != 2 {
		t.Fatalf("explained reason = %+v", in.Reason)
	}
	if a := f.am.last(); len(a) == 0 {
		t.Fatal("no alert once explained")
	}
}

// A restart judges every open instance before it is ready, but does not wait for the
// explanations of the stuck ones (their last error and traces): those follow from the loop.
// An instance first seen in the middle is still verified before Start returns.
func TestStartDoesNotWaitForExplanations(t *testing.T) {
	f := newFixture(t)
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.emit("order-fulfilment", "stock_reserved", "o-1", "order.id", time.Second)
	f.clk.Set(t0.Add(2*time.Minute + time.Second)) // o-1's payment is overdue at the restart
	gate := make(chan struct{})
	cs := &countingStore{Memory: f.store, gate: gate}
	started := make(chan *Detector, 1)
	go func() {
		started <- f.detector(func(c *Config) { c.Store = cs; c.ExplainWait = time.Hour })
	}()
	var d *Detector
	select {
	case d = <-started:
	case <-time.After(30 * time.Second): // a deadlock guard, not a measurement
		close(gate)
		t.Fatal("Start waited for the explanation of a stuck instance")
	}
	in := f.state("order-fulfilment", "o-1")
	if in.Status != "stuck" || in.Reason == nil || in.Reason.Checkpoint != "paid" || len(in.Reason.TraceIDs) != 0 {
		t.Fatalf("after Start, before the explanation: %+v", in)
	}
	close(gate)
	if err := d.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if in := f.state("order-fulfilment", "o-1"); len(in.Reason.TraceIDs) != 2 {
		t.Fatalf("explained reason = %+v", in.Reason)
	}

	// Verification is judging: a restart does wait for it.
	f.emit("order-fulfilment", "placed", "m-1", "order.id", 0, func(e *storage.CheckpointEvent) { e.IngestTime = t0.Add(-90 * 24 * time.Hour) })
	f.emit("order-fulfilment", "stock_reserved", "m-1", "order.id", time.Second)
	gate2 := make(chan struct{})
	cs2 := &countingStore{Memory: f.store, gate: gate2}
	started2 := make(chan *Detector, 1)
	go func() {
		started2 <- f.detector(func(c *Config) { c.Store = cs2; c.ExplainWait = time.Hour })
	}()
	select {
	case <-started2:
		t.Fatal("Start returned before the instance first seen in the middle was read back")
	case <-time.After(200 * time.Millisecond): // not started yet: the read is held
	}
	close(gate2)
	<-started2
}

// When the explanation does not come within ExplainWait, alerts and actions go out with what
// the detector holds: a slow store never silences an outage.
func TestExplainWaitBoundsTheDelay(t *testing.T) {
	f := newFixture(t)
	gate := make(chan struct{})
	defer close(gate)
	cs := &countingStore{Memory: f.store, gate: gate}
	d := f.detector(func(c *Config) { c.Store = cs; c.ExplainWait = 3 * time.Second })
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.emit("order-fulfilment", "stock_reserved", "o-1", "order.id", time.Second)
	for _, at := range []time.Duration{time.Second, 2*time.Minute + time.Second, 2*time.Minute + 3*time.Second, 2*time.Minute + 5*time.Second} {
		f.clk.Set(t0.Add(at))
		if err := d.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		if at == 2*time.Minute+3*time.Second && f.am.count() != 0 {
			t.Fatal("alerted before ExplainWait passed")
		}
	}
	waitFor(t, "the alert after ExplainWait", func() bool {
		f.am.mu.Lock()
		defer f.am.mu.Unlock()
		return len(f.am.alerts) == 1 && f.am.alerts[0][0].Labels["checkpoint"] == "paid"
	})
}

// aliasCounter records the size of every alias lookup.
type aliasCounter struct {
	*storagetest.Memory
	mu    sync.Mutex
	sizes []int
}

func (s *aliasCounter) ResolveAliases(ctx context.Context, tenant, flow, attr string, values []string) (map[string]string, error) {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(values))
	s.mu.Unlock()
	return s.Memory.ResolveAliases(ctx, tenant, flow, attr, values)
}

// A backlog of alias-keyed events (a busy tick, or one after a store outage) is resolved in
// bounded queries: one too big for the store to run would hold every one of them back.
func TestAliasLookupsAreBounded(t *testing.T) {
	f := newFixture(t)
	ac := &aliasCounter{Memory: f.store}
	d := f.detector(func(c *Config) { c.Store = ac; c.ReadBatch = 100 })
	key := func(i int) string { return fmt.Sprintf("o-%04d", i) }
	const n = 250
	f.emitMany(n, "placed", "order.id", 0, key)
	var aliases []storage.Alias
	for i := 0; i < n; i++ {
		aliases = append(aliases, storage.Alias{Tenant: "acme", Flow: "order-fulfilment", Attr: "payment.id", Value: "pay-" + key(i), Key: key(i), Time: t0})
	}
	if err := f.store.WriteAliases(context.Background(), aliases); err != nil {
		t.Fatal(err)
	}
	f.emitMany(n, "settled", "payment.id", time.Second, func(i int) string { return "pay-" + key(i) })
	f.tick(d, 2*time.Second)
	ac.mu.Lock()
	sizes := append([]int(nil), ac.sizes...)
	ac.mu.Unlock()
	if len(sizes) != 3 || sizes[0] != 100 || sizes[2] != 50 {
		t.Fatalf("alias lookups of %v values; want 100, 100, 50", sizes)
	}
	if in := f.state("order-fulfilment", "o-0200"); in.LastCheckpoint != "settled" {
		t.Fatalf("o-0200's settlement (keyed by its payment id) did not join it: %+v", in)
	}
}
