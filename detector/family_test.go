package detector

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/internal/testflows"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// familyFixture is a fixture on testflows.FamilySet: orders (placed, paid 2m, shipped 10m,
// all_delivered 1h by their shipments, closed; cancelled; refunded 30m after a failure) and
// shipments (packed, delivered 20m; lost).
func familyFixture(t *testing.T) *fixture {
	f := newFixture(t)
	f.set = testflows.FamilySet(t)
	return f
}

// order emits the order's checkpoints at the given times; placed carries its parcel count.
func (f *fixture) order(key string, parcels int, cps map[string]time.Duration) {
	f.t.Helper()
	for _, cp := range []string{"placed", "paid", "shipped", "closed", "cancelled", "refunded"} {
		at, ok := cps[cp]
		if !ok {
			continue
		}
		f.emit("order", cp, key, "order.id", at, func(e *storage.CheckpointEvent) {
			if cp == "placed" && parcels > 0 {
				e.Attributes = map[string]string{"order.parcel_count": fmt.Sprint(parcels)}
			}
		})
	}
}

// shipment emits a shipment's checkpoint; packed carries its order's key, as the warehouse's
// span does, the courier's events do not.
func (f *fixture) shipment(key, parent, cp string, at time.Duration) {
	f.t.Helper()
	f.emit("shipment", cp, key, "shipment.id", at, func(e *storage.CheckpointEvent) {
		if cp == "packed" {
			e.Attributes = map[string]string{model.AttrParentKey: parent}
		}
	})
}

// doc is the stored state of an instance with its documents.
func (f *fixture) doc(flow, key string) flowstate.Document {
	f.t.Helper()
	st, err := f.store.Instance(context.Background(), "acme", flow, key)
	if err != nil || st == nil {
		f.t.Fatalf("no state for %s/%s: %v", flow, key, err)
	}
	d, err := flowstate.Parse(*st)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

var shippedAt = map[string]time.Duration{"placed": 0, "paid": time.Minute, "shipped": 2 * time.Minute}

// Every parcel delivered: the order reaches all_delivered, then closes; the shipments are
// judged on their own.
func TestFamilyCompletes(t *testing.T) {
	f := familyFixture(t)
	d := f.detector()
	f.order("o-1", 2, shippedAt)
	f.shipment("s-1", "o-1", "packed", 3*time.Minute)
	f.shipment("s-2", "o-1", "packed", 3*time.Minute)
	f.shipment("s-1", "o-1", "delivered", 5*time.Minute)
	f.tick(d, 6*time.Minute)
	if st := f.doc("order", "o-1"); st.Status != "running" || len(st.Expected) != 1 || st.Expected[0].Checkpoint != "all_delivered" ||
		st.Expected[0].Children != "shipment" {
		t.Fatalf("one of two parcels: %+v", st)
	}
	if st := f.doc("shipment", "s-1"); st.Status != "completed" {
		t.Fatalf("s-1: %+v", st)
	}
	f.shipment("s-2", "o-1", "delivered", 7*time.Minute)
	f.tick(d, 8*time.Minute)
	if st := f.doc("order", "o-1"); st.Status != "running" || len(st.Expected) != 0 {
		t.Fatalf("both parcels: %+v", st)
	}
	f.order("o-1", 0, map[string]time.Duration{"closed": 9 * time.Minute})
	f.tick(d, 10*time.Minute)
	if st := f.doc("order", "o-1"); st.Status != "completed" {
		t.Fatalf("closed: %+v", st)
	}
	if s := d.Stats(); s.Open != 0 || s.Completed != 3 {
		t.Fatalf("stats = %+v", s)
	}
	if n := len(d.fam.kins) + len(d.fam.kids); n != 0 {
		t.Fatalf("the family is still held: %d", n)
	}
}

// Children that come first (their rows before their parent's) are linked, and judged with
// the parent when it appears.
func TestChildrenBeforeTheirParent(t *testing.T) {
	f := familyFixture(t)
	d := f.detector()
	f.shipment("s-1", "o-1", "packed", time.Minute)
	f.shipment("s-1", "o-1", "delivered", 2*time.Minute)
	f.tick(d, 3*time.Minute)
	if st := f.doc("shipment", "s-1"); st.Status != "completed" {
		t.Fatalf("s-1: %+v", st)
	}
	f.order("o-1", 1, shippedAt)
	f.tick(d, 4*time.Minute)
	// Delivered before the order was shipped: all_delivered is reached when shipped was.
	if st := f.doc("order", "o-1"); st.Status != "running" || len(st.Expected) != 0 {
		t.Fatalf("children first: %+v", st)
	}
	f.tick(d, 2*time.Hour) // no deadline left: never stuck
	if st := f.doc("order", "o-1"); st.Status != "running" {
		t.Fatalf("later: %+v", st)
	}
}

// A parcel lost in transit: its shipment is stuck (its own alert), and its order, stuck at
// all_delivered, explains itself through its children.
func TestParentStuckAtItsChildren(t *testing.T) {
	f := familyFixture(t)
	d := f.detector()
	f.order("o-1", 3, shippedAt)
	for _, s := range []string{"s-1", "s-2", "s-3"} {
		f.shipment(s, "o-1", "packed", 3*time.Minute)
	}
	f.shipment("s-1", "o-1", "delivered", 10*time.Minute)
	f.tick(d, 30*time.Minute) // s-2 and s-3 overdue (23m)
	if st := f.doc("shipment", "s-2"); st.Status != "stuck" || st.Reason.Checkpoint != "delivered" {
		t.Fatalf("s-2: %+v", st)
	}
	f.shipment("s-3", "o-1", "delivered", 31*time.Minute)
	f.tick(d, 2*time.Hour+3*time.Minute) // all_delivered due 2m + 1h
	st := f.doc("order", "o-1")
	r := st.Reason
	if st.Status != "stuck" || r == nil || r.Checkpoint != "all_delivered" || r.Children == nil ||
		r.Children.Counts["completed"] != 2 || r.Children.Counts["stuck"] != 1 || len(r.Children.Stuck) != 1 ||
		r.Children.Stuck[0].Key != "s-2" || r.Children.Stuck[0].Checkpoint != "delivered" ||
		!strings.Contains(r.Summary, `expected from its shipment children`) || !strings.Contains(r.Summary, `"s-2" awaits "delivered"`) {
		t.Fatalf("order stuck at its children: %+v", r)
	}
	alerted := map[string]bool{}
	for _, n := range f.am.alerts {
		for _, a := range n {
			alerted[a.Labels["flow"]+"/"+a.Labels["key"]+"/"+a.Labels["checkpoint"]] = a.EndsAt == nil
		}
	}
	if !alerted["shipment/s-2/delivered"] || !alerted["order/o-1/all_delivered"] {
		t.Fatalf("alerts = %v", alerted)
	}
	// The parcel turns up: the shipment completes, then the order.
	f.shipment("s-2", "o-1", "delivered", 2*time.Hour+4*time.Minute)
	f.tick(d, 2*time.Hour+5*time.Minute)
	if st := f.doc("order", "o-1"); st.Status != "running" || st.Reason != nil {
		t.Fatalf("after the last parcel: %+v", st)
	}
}

// A lost parcel fails its order: the reason names the child, the refund of the payment is
// due; overdue, it is stuck with a reason naming the compensation and the step, its on_stuck
// action retries the refund; when the refund comes the order is compensated.
func TestFailedChildFailsTheParentAndItsRefundIsDue(t *testing.T) {
	f := familyFixture(t)
	d := f.detector()
	f.order("o-1", 2, shippedAt)
	f.shipment("s-1", "o-1", "packed", 3*time.Minute)
	f.shipment("s-2", "o-1", "packed", 3*time.Minute)
	f.shipment("s-2", "o-1", "lost", 4*time.Minute)
	f.tick(d, 5*time.Minute)
	st := f.doc("order", "o-1")
	if st.Status != "compensating" || len(st.Expected) != 1 || st.Expected[0].Checkpoint != "refunded" ||
		st.Expected[0].Compensates != "paid" || !st.Expected[0].Deadline.Equal(t0.Add(34*time.Minute)) {
		t.Fatalf("failed by its child: %+v", st)
	}
	if r := st.Reason; r == nil || r.Failure == nil || r.Failure.Child == nil || r.Failure.Child.Key != "s-2" ||
		r.Failure.Child.Checkpoint != "lost" || !strings.Contains(r.Summary, `failed: child shipment "s-2" reached "lost"`) {
		t.Fatalf("the reason names the child: %+v", st.Reason)
	}
	if s := d.Stats(); s.Compensating != 1 {
		t.Fatalf("stats = %+v", s)
	}
	f.tick(d, 34*time.Minute+time.Second)
	st = f.doc("order", "o-1")
	if st.Status != "stuck" || st.Reason.Checkpoint != "refunded" || st.Reason.Compensates != "paid" ||
		!strings.Contains(st.Reason.Summary, `compensation "refunded" (of "paid") expected from payments`) {
		t.Fatalf("refund overdue: %+v", st.Reason)
	}
	f.tick(d, 34*time.Minute+12*time.Second) // on_stuck: after 10s
	if f.nats.count() != 1 || f.nats.cmds[0].Subject != "payments.refund" {
		t.Fatalf("commands = %+v", f.nats.cmds)
	}
	f.order("o-1", 0, map[string]time.Duration{"refunded": 35 * time.Minute})
	f.tick(d, 36*time.Minute)
	if st := f.doc("order", "o-1"); st.Status != "compensated" || len(st.Expected) != 0 {
		t.Fatalf("refunded: %+v", st)
	}
	cmds, _ := f.store.Commands(context.Background(), storage.AuditFilter{Key: "o-1"})
	if len(cmds) != 1 || cmds[0].Outcome != OutcomeSucceeded || cmds[0].Checkpoint != "refunded" {
		t.Fatalf("command records = %+v", cmds)
	}
	if s := d.Stats(); s.Compensated != 1 || s.Compensating != 0 || s.Open != 1 { // s-1, never delivered
		t.Fatalf("stats = %+v", s)
	}
}

// An order cancelled by an operator after payment stays open until its refund is done; one
// cancelled before payment closes at once.
func TestCancelAfterPaymentAwaitsTheRefund(t *testing.T) {
	f := familyFixture(t)
	d := f.detector()
	f.order("o-1", 1, map[string]time.Duration{"placed": 0, "paid": time.Minute})
	f.order("o-2", 1, map[string]time.Duration{"placed": 0})
	f.tick(d, 90*time.Second)
	for _, key := range []string{"o-1", "o-2"} {
		ev := flowstate.OperatorEvent("acme", "order", key, model.OperatorCancel, "", "ann", "customer called", t0.Add(100*time.Second))
		ev.IngestTime = f.clk.Now()
		if err := f.store.WriteEvents(context.Background(), []storage.CheckpointEvent{ev}); err != nil {
			t.Fatal(err)
		}
	}
	f.tick(d, 2*time.Minute)
	if st := f.doc("order", "o-1"); st.Status != "compensating" || st.Expected[0].Checkpoint != "refunded" {
		t.Fatalf("cancelled after payment: %+v", st)
	}
	if st := f.doc("order", "o-2"); st.Status != "cancelled" {
		t.Fatalf("cancelled before payment: %+v", st)
	}
	f.tick(d, 35*time.Minute)
	if st := f.doc("order", "o-1"); st.Status != "stuck" || !strings.Contains(st.Reason.Summary, "after it failed: cancelled by an operator") {
		t.Fatalf("refund overdue: %+v", st.Reason)
	}
	// A restart reads the cancel again, and agrees.
	d2 := f.detector()
	f.tick(d2, 36*time.Minute)
	if s := d2.Stats(); s.Stuck != 1 {
		t.Fatalf("after a restart: %+v", s)
	}
	f.order("o-1", 0, map[string]time.Duration{"refunded": 37 * time.Minute})
	f.tick(d2, 38*time.Minute)
	if st := f.doc("order", "o-1"); st.Status != "compensated" {
		t.Fatalf("refunded: %+v", st)
	}
}

// Two shards judge families: each holds every child of the parents it owns, however the
// children's own keys hash, and only those; a child's rows that do not carry the parent's key
// find it all the same.
func TestTwoShardsJudgeWholeFamilies(t *testing.T) {
	f := familyFixture(t)
	shards := []*Detector{
		f.detector(func(c *Config) { c.Shard, c.Shards = 0, 2 }),
		f.detector(func(c *Config) { c.Shard, c.Shards = 1, 2 }),
	}
	owner := map[string]int{}
	for i := range 8 {
		o := fmt.Sprintf("o-%d", i)
		owner[o] = ShardOf("acme", "order", o, 2)
		f.order(o, 2, shippedAt)
		for j := range 2 {
			s := fmt.Sprintf("s-%d-%d", i, j)
			f.shipment(s, o, "packed", 3*time.Minute)
			if i%2 == 0 || j == 0 {
				f.shipment(s, o, "delivered", 4*time.Minute) // odd orders lose their second parcel
			}
		}
	}
	for _, d := range shards {
		f.tick(d, 5*time.Minute)
	}
	if owner["o-0"] == owner["o-1"] && owner["o-1"] == owner["o-2"] {
		t.Fatal("the test's orders all hash to one shard")
	}
	for i := range 8 {
		o := fmt.Sprintf("o-%d", i)
		st := f.doc("order", o)
		if st.Shard != owner[o] {
			t.Errorf("%s written by shard %d, owned by %d", o, st.Shard, owner[o])
		}
		want := 0 // every parcel delivered: nothing expected
		if i%2 == 1 {
			want = 1 // all_delivered
		}
		if len(st.Expected) != want {
			t.Errorf("%s: %+v", o, st)
		}
		for j := range 2 {
			if c := f.doc("shipment", fmt.Sprintf("s-%d-%d", i, j)); c.Shard != owner[o] {
				t.Errorf("shipment %d of %s written by shard %d, owned by %d", j, o, c.Shard, owner[o])
			}
		}
	}
	for n, d := range shards {
		// Each shard holds the families of its parents: the orders (open until closed), and
		// the lost shipments of the odd ones.
		want := 0
		for i := range 8 {
			if owner[fmt.Sprintf("o-%d", i)] == n {
				want += 1 + i%2
			}
		}
		if s := d.Stats(); s.Open != want {
			t.Errorf("shard %d holds %d open instances, want %d", n, s.Open, want)
		}
	}
}

// A child row that does not carry its parent's key, of a child whose start this detector
// never read, finds its parent in the store (the family_links the start row made).
func TestChildParentFoundInTheStore(t *testing.T) {
	f := familyFixture(t)
	f.order("o-1", 1, shippedAt)
	f.shipment("s-1", "o-1", "packed", 3*time.Minute)
	// A detector that starts later, its rebuild window past the rows above.
	f.clk.Set(t0.Add(30 * time.Minute))
	d := f.detector(func(c *Config) { c.RebuildWindow = 5 * time.Minute })
	f.shipment("s-1", "", "delivered", 31*time.Minute)
	f.tick(d, 32*time.Minute)
	if st := f.doc("shipment", "s-1"); st.Status != "completed" {
		t.Fatalf("s-1: %+v", st)
	}
	if _, ok := d.fam.parents[parentCacheKey("acme", "shipment", "s-1")]; !ok {
		t.Fatal("the parent was not looked up")
	}
}

// Children stored as stuck, older than the rebuild window, are taken back by the shard of
// their parent only: their rows tell it.
func TestRestoredStuckChildrenReturnToTheirParentsShard(t *testing.T) {
	f := familyFixture(t)
	owner := map[string]int{}
	for i := range 6 {
		o := fmt.Sprintf("o-%d", i)
		owner[o] = ShardOf("acme", "order", o, 2)
		f.order(o, 1, shippedAt)
		f.shipment(fmt.Sprintf("s-%d", i), o, "packed", 3*time.Minute)
	}
	first := f.detector()
	f.tick(first, 30*time.Minute) // every shipment stuck at delivered (due 23m)
	if s := first.Stats(); s.Stuck != 6 {
		t.Fatalf("stats = %+v", s)
	}
	first.Close()
	// Two shards start later, their rebuild window past every row: only the stored states
	// bring the stuck shipments back.
	f.clk.Set(t0.Add(50 * time.Minute))
	for n := range 2 {
		d := f.detector(func(c *Config) { c.Shard, c.Shards, c.RebuildWindow = n, 2, 10*time.Minute })
		want := 0
		for _, o := range owner {
			if o == n {
				want++
			}
		}
		if s := d.Stats(); s.Stuck != want || s.Open != want || len(d.fam.kids) != want {
			t.Errorf("shard %d: %+v, %d linked; want %d stuck shipments", n, s, len(d.fam.kids), want)
		}
	}
}

// A parent stuck at its children tells how they fare now: a child stuck after it is named in
// its stored reason.
func TestParentReasonFollowsItsChildren(t *testing.T) {
	f := familyFixture(t)
	d := f.detector()
	f.order("o-1", 1, shippedAt)
	f.shipment("s-1", "o-1", "packed", 50*time.Minute) // delivered due at 70m
	f.tick(d, 63*time.Minute)                          // all_delivered due at 62m
	r := f.doc("order", "o-1").Reason
	if r == nil || r.Children == nil || r.Children.Counts["running"] != 1 || len(r.Children.Stuck) != 0 {
		t.Fatalf("at 63m: %+v", r)
	}
	f.tick(d, 71*time.Minute)
	r = f.doc("order", "o-1").Reason
	if r == nil || r.Children == nil || r.Children.Counts["stuck"] != 1 || len(r.Children.Stuck) != 1 || r.Children.Stuck[0].Key != "s-1" {
		t.Fatalf("at 71m: %+v", r)
	}
}

// parentLookups counts the children whose parents the detector asks the store for.
type parentLookups struct {
	Store
	mu   sync.Mutex
	keys int
}

func (s *parentLookups) ParentKeys(ctx context.Context, tenant, flow string, keys []string) (map[string]string, error) {
	s.mu.Lock()
	s.keys += len(keys)
	s.mu.Unlock()
	return s.Store.ParentKeys(ctx, tenant, flow, keys)
}

// A child's rows read together with its start (a rebuild reads them so by the thousand) find
// its parent in that start, even a row ingested before it: none is asked of the store. A child
// whose start is not among them still is.
func TestChildrenRowsReadWithTheirStartNeedNoLookup(t *testing.T) {
	f := familyFixture(t)
	f.order("o-1", 2, shippedAt)
	f.shipment("s-1", "", "delivered", 4*time.Minute) // ingested before its start
	f.shipment("s-1", "o-1", "packed", 3*time.Minute)
	f.shipment("s-2", "o-1", "packed", 3*time.Minute)
	f.shipment("s-2", "", "delivered", 5*time.Minute)
	lookups := &parentLookups{Store: f.store}
	d := f.detector(func(c *Config) { c.Store = lookups })
	f.tick(d, 6*time.Minute)
	if lookups.keys != 0 {
		t.Fatalf("asked the store for the parents of %d children read with their starts", lookups.keys)
	}
	for _, s := range []string{"s-1", "s-2"} {
		if st := f.doc("shipment", s); st.Status != "completed" {
			t.Fatalf("%s: %+v", s, st)
		}
	}
	if st := f.doc("order", "o-1"); st.Status != "running" || len(st.Expected) != 0 {
		t.Fatalf("o-1 with both parcels delivered, all_delivered reached, awaits nothing due: %+v", st)
	}
	// A late row of a child whose start this read does not hold is looked up.
	f.clk.Set(t0.Add(30 * time.Minute))
	d2 := f.detector(func(c *Config) { c.Store = lookups; c.RebuildWindow = 5 * time.Minute })
	f.shipment("s-1", "", "delivered", 31*time.Minute)
	f.tick(d2, 32*time.Minute)
	if lookups.keys == 0 {
		t.Fatal("a child without its start in the read was not looked up")
	}
}
