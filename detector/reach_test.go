package detector

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// reachCounter is a Store that counts the rows recording a children checkpoint's reach that
// the detector writes.
type reachCounter struct {
	Store
	mu sync.Mutex
	n  int
}

func (s *reachCounter) WriteEvents(ctx context.Context, events []storage.CheckpointEvent) error {
	s.mu.Lock()
	for _, e := range events {
		if e.Name == model.ChildrenReachName {
			s.n++
		}
	}
	s.mu.Unlock()
	return s.Store.WriteEvents(ctx, events)
}

func (s *reachCounter) written() int { s.mu.Lock(); defer s.mu.Unlock(); return s.n }

// reachRows returns the rows of an order at all_delivered.
func (f *fixture) reachRows(key string) []storage.CheckpointEvent {
	f.t.Helper()
	rows, err := f.store.InstanceEvents(context.Background(), "acme", "order", key)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []storage.CheckpointEvent
	for _, r := range rows {
		if r.Checkpoint == "all_delivered" {
			out = append(out, r)
		}
	}
	return out
}

// A parent whose children complete its children checkpoint gets one row recording the reach,
// at the reach's time, once the reach is settled (the parent moved past it, or closed);
// judged again, read back and after a restart, no second one is written, and the row changes
// nothing of the judgement.
func TestChildrenReachIsRecordedOnce(t *testing.T) {
	f := familyFixture(t)
	counter := &reachCounter{Store: f.store}
	useCounter := func(c *Config) { c.Store = counter }
	d := f.detector(useCounter)
	f.order("o-1", 2, shippedAt)
	f.shipment("s-1", "o-1", "packed", 3*time.Minute)
	f.shipment("s-2", "o-1", "packed", 3*time.Minute)
	f.shipment("s-1", "o-1", "delivered", 5*time.Minute)
	f.tick(d, 6*time.Minute)
	if rows := f.reachRows("o-1"); len(rows) != 0 {
		t.Fatalf("one parcel of two, yet recorded: %+v", rows)
	}
	f.shipment("s-2", "o-1", "delivered", 7*time.Minute)
	f.tick(d, 8*time.Minute)
	if st := f.doc("order", "o-1"); st.Status != "running" || len(st.Expected) != 0 {
		t.Fatalf("all_delivered reached: %+v", st)
	}
	if rows := f.reachRows("o-1"); len(rows) != 0 {
		t.Fatalf("recorded before the order moved past all_delivered: %+v", rows)
	}
	f.order("o-1", 0, map[string]time.Duration{"closed": 9 * time.Minute})
	f.tick(d, 10*time.Minute)
	if st := f.doc("order", "o-1"); st.Status != "completed" {
		t.Fatalf("closed: %+v", st)
	}
	rows := f.reachRows("o-1")
	if len(rows) != 1 {
		t.Fatalf("%d rows at all_delivered, want 1", len(rows))
	}
	r := rows[0]
	want := flowstate.ChildrenReachEvent("acme", "order", "o-1", "order.id", "all_delivered", t0.Add(7*time.Minute))
	if r.EventID != want.EventID || !r.Time.Equal(want.Time) || r.Service != "flowwatch" || r.Name != model.ChildrenReachName ||
		r.Status != "ok" || r.KeyAttr != "order.id" {
		t.Fatalf("row %+v, want %+v", r, want)
	}
	// Read back by the next ticks: nothing changes.
	for _, at := range []time.Duration{11 * time.Minute, 2 * time.Hour} {
		f.tick(d, at)
		if st := f.doc("order", "o-1"); st.Status != "completed" || len(st.Violations) != 0 {
			t.Fatalf("at %s: %+v", at, st)
		}
	}
	if n := counter.written(); n != 1 {
		t.Fatalf("%d reach rows written, want 1", n)
	}
	d.Close()

	// A restart rebuilds the family from its rows, the record among them: nothing new.
	d2 := f.detector(useCounter)
	f.tick(d2, 2*time.Hour+time.Minute)
	if rows := f.reachRows("o-1"); len(rows) != 1 || counter.written() != 1 {
		t.Fatalf("after a restart: %d rows, %d written, want 1 and 1", len(rows), counter.written())
	}
	// The graph's counts see it, once.
	counts, err := f.store.CheckpointCounts(context.Background(), "acme", "order", t0, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range counts {
		if c.Checkpoint == "all_delivered" && c.Count != 1 {
			t.Fatalf("all_delivered counted %d", c.Count)
		}
	}
}

// A reach that does not hold yet is not recorded: `all` without an expected count is taken
// back by a child that comes after the others completed; the record, once the order moves
// on, is of the reach that held, at its time.
func TestChildrenReachTakenBackIsNotRecorded(t *testing.T) {
	f := familyFixture(t)
	d := f.detector()
	f.order("o-1", 0, shippedAt) // no parcel count: all = every known child
	f.shipment("s-1", "o-1", "packed", 3*time.Minute)
	f.shipment("s-1", "o-1", "delivered", 5*time.Minute)
	f.tick(d, 6*time.Minute)
	f.shipment("s-2", "o-1", "packed", 7*time.Minute)
	f.tick(d, 8*time.Minute)
	if st := f.doc("order", "o-1"); len(st.Expected) != 1 || st.Expected[0].Checkpoint != "all_delivered" {
		t.Fatalf("a second parcel on its way: %+v", st)
	}
	counts, err := f.store.CheckpointCounts(context.Background(), "acme", "order", t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range counts {
		if c.Checkpoint == "all_delivered" && c.Count != 0 {
			t.Fatalf("the graph counts o-1 at all_delivered (%d) while it still expects it", c.Count)
		}
	}
	f.shipment("s-2", "o-1", "delivered", 9*time.Minute)
	f.order("o-1", 0, map[string]time.Duration{"closed": 11 * time.Minute})
	f.tick(d, 12*time.Minute)
	if rows := f.reachRows("o-1"); len(rows) != 1 || !rows[0].Time.Equal(t0.Add(9*time.Minute)) {
		t.Fatalf("reach rows %+v, want one at 9m", rows)
	}
}

// blindToReach is a Store whose reads of new rows leave out the records of reaches: a
// detector on it never learns that the record is written.
type blindToReach struct{ reachCounter }

func (s *blindToReach) EventsSince(ctx context.Context, since time.Time, limit int) ([]storage.CheckpointEvent, error) {
	rows, err := s.Store.EventsSince(ctx, since, limit)
	return slices.DeleteFunc(rows, func(e storage.CheckpointEvent) bool { return e.Name == model.ChildrenReachName }), err
}

// Two detectors that each judge the family (one never reading the other's record back) write
// the record under the same id: the store holds one.
func TestChildrenReachRewrittenUnderTheSameID(t *testing.T) {
	f := familyFixture(t)
	d := f.detector()
	blind := &blindToReach{reachCounter{Store: f.store}}
	d2 := f.detector(func(c *Config) { c.Store = blind })
	f.order("o-1", 1, shippedAt)
	f.shipment("s-1", "o-1", "packed", 3*time.Minute)
	f.shipment("s-1", "o-1", "delivered", 5*time.Minute)
	f.order("o-1", 0, map[string]time.Duration{"closed": 6 * time.Minute})
	f.tick(d, 7*time.Minute)
	f.tick(d2, 8*time.Minute)
	if n := blind.written(); n != 1 {
		t.Fatalf("the second detector wrote %d records, want 1", n)
	}
	if rows := f.reachRows("o-1"); len(rows) != 1 || !rows[0].Time.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("rows at all_delivered: %+v", rows)
	}
	if st := f.doc("order", "o-1"); st.Status != "completed" {
		t.Fatalf("order: %+v", st)
	}
}

// A parent's recorded children checkpoints are bits of its kin, by ordinal; past the 32 bits,
// a map keeps them: each is marked once, whatever its place, and forgotten with its kin.
func TestReachedMarksPastThirtyTwoChildrenCheckpoints(t *testing.T) {
	const n = 34
	var b strings.Builder
	b.WriteString("apiVersion: flowwatch/v1\nkind: Flow\nname: big\nversion: 1\nkey: big.id\ncheckpoints:\n" +
		"  - { name: start, start: true, match: { service: s, span: start } }\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - { name: kids%02d, after: [start], within: 1h, children: { flow: kid%02d, complete: all } }\n", i, i)
	}
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "---\napiVersion: flowwatch/v1\nkind: Flow\nname: kid%02d\nversion: 1\nkey: kid.id\n"+
			"parent: { flow: big, key: big.id }\ncheckpoints:\n"+
			"  - { name: go, start: true, match: { service: k, span: go } }\n"+
			"  - { name: done, after: [go], terminal: success, match: { service: k, span: done } }\n", i)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f := set.Latest("big")
	if f.ChildrenOrdinal("kids33") != 33 || f.ChildrenOrdinal("start") != -1 {
		t.Fatalf("ordinals: kids33 %d, start %d", f.ChildrenOrdinal("kids33"), f.ChildrenOrdinal("start"))
	}
	d := &Detector{}
	d.fam.kins = map[string]*kin{}
	k := d.kinOf("p")
	for _, cp := range []string{"kids00", "kids31", "kids32", "kids33"} {
		if !d.markReached(k, f, cp) {
			t.Errorf("%s: not marked the first time", cp)
		}
		if d.markReached(k, f, cp) {
			t.Errorf("%s: marked twice", cp)
		}
	}
	if k.reached != 1|1<<31 || len(d.fam.reachedMore["p"]) != 2 {
		t.Fatalf("bits %b, more %v", k.reached, d.fam.reachedMore)
	}
	d.forgetKin("p")
	if _, ok := d.fam.reachedMore["p"]; ok {
		t.Fatal("reachedMore outlives the kin")
	}
}
