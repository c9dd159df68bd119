package model

import (
	"strings"
	"testing"
	"time"
)

// familyYAML is a parent with a children checkpoint (all, with expect) and a compensation,
// its child flow, and a second family whose children checkpoint is complete: any.
const familyYAML = `apiVersion: flowwatch/v1
kind: Flow
name: order
version: 1
key: order.id
checkpoints:
  - {name: placed, start: true, match: {service: orders, span: place}}
  - {name: paid, after: [placed], within: 1m, match: {service: payments, event: paid}}
  - {name: shipped, after: [paid], within: 10m, match: {service: shipping, span: ship}}
  - name: all_delivered
    after: [shipped]
    within: 1h
    children: {flow: shipment, complete: all, expect: order.parcel_count}
  - {name: closed, after: [all_delivered], terminal: success, match: {service: orders, span: close}}
  - {name: cancelled, after: [placed], terminal: failure, match: {service: orders, span: cancel}}
  - {name: refunded, compensates: paid, within: 30m, match: {service: payments, event: refunded}}
---
apiVersion: flowwatch/v1
kind: Flow
name: shipment
version: 1
key: shipment.id
parent: {flow: order, key: order.id}
checkpoints:
  - {name: packed, start: true, match: {service: warehouse, span: pack}}
  - {name: delivered, after: [packed], within: 20m, terminal: success, match: {service: courier, event: delivered}}
  - {name: lost, after: [packed], terminal: failure, match: {service: courier, event: lost}}
---
apiVersion: flowwatch/v1
kind: Flow
name: auction
version: 1
key: auction.id
checkpoints:
  - {name: opened, start: true, match: {service: auctions, span: open}}
  - {name: sold, after: [opened], within: 1h, children: {flow: bid, complete: any}}
  - {name: settled, after: [sold], terminal: success, match: {service: auctions, span: settle}}
---
apiVersion: flowwatch/v1
kind: Flow
name: bid
version: 1
key: bid.id
parent: {flow: auction, key: auction.id}
checkpoints:
  - {name: placed, start: true, match: {service: bids, span: bid}}
  - {name: won, after: [placed], terminal: success, match: {service: bids, event: won}}
  - {name: outbid, after: [placed], terminal: failure, match: {service: bids, event: outbid}}
`

func familySet(t testing.TB) *Set {
	t.Helper()
	flows, probs := Parse("family.yaml", []byte(familyYAML))
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	if probs := checkFamilies(flows); len(probs) > 0 {
		t.Fatal(probs)
	}
	return NewSet(flows)
}

// progress reaches the named checkpoints of f at the given offsets from t0.
func progress(f *Flow, reached map[string]time.Duration) Progress {
	p := Progress{First: make([]time.Time, len(f.Checkpoints))}
	for name, d := range reached {
		p.First[f.Checkpoint(name).Index] = at(d)
	}
	return p
}

func shipment(key string, status Status, outcome Terminal, ended time.Duration, cp string) Child {
	c := Child{Flow: "shipment", Key: key, Status: status, Outcome: outcome, Checkpoint: cp}
	if outcome != NotTerminal {
		c.EndedAt = at(ended)
	}
	return c
}

var shippedOrder = map[string]time.Duration{"placed": 0, "paid": time.Minute, "shipped": 5 * time.Minute}

// shippedInstance is order o-1 placed, paid and shipped (shippedOrder).
func shippedInstance(set *Set) *Instance {
	in := NewInstance(set.Versions("order"), "acme", "o-1")
	for i, cp := range []string{"placed", "paid", "shipped"} {
		in.Apply(ev(string(rune('a'+i)), cp, shippedOrder[cp]))
	}
	return in
}

func TestChildrenAllReachedByTheLastChild(t *testing.T) {
	f := familySet(t).Latest("order")
	p := progress(f, shippedOrder)
	kids := []Child{
		shipment("s-1", StatusCompleted, TerminalSuccess, 20*time.Minute, "delivered"),
		shipment("s-2", StatusRunning, NotTerminal, 0, ""),
	}
	p.Broods = BroodsOf(kids)
	v := f.Judge(p, at(30*time.Minute))
	if v.Status != StatusRunning || len(v.Expected) != 1 || v.Expected[0].Checkpoint != "all_delivered" ||
		v.Expected[0].Children != "shipment" || v.Expected[0].Deadline != at(65*time.Minute) {
		t.Fatalf("one child of two delivered: %+v", v)
	}
	kids[1] = shipment("s-2", StatusCompleted, TerminalSuccess, 40*time.Minute, "delivered")
	p.Broods = BroodsOf(kids)
	v = f.Judge(p, at(45*time.Minute))
	// Reached when the last child was: closed is optional, nothing is expected any more.
	if v.Status != StatusRunning || len(v.Expected) != 0 {
		t.Fatalf("every child delivered: %+v", v)
	}
	in := shippedInstance(familySet(t))
	in.Apply(ev("z", "closed", 50*time.Minute))
	in.SetChildren(kids)
	if st := in.Evaluate(at(time.Hour)); st.Status != StatusCompleted || len(st.Violations) != 0 || len(st.Children) != 2 {
		t.Fatalf("closed after its children checkpoint: %+v", st)
	}
}

func TestChildrenAllWaitsForTheExpectedCount(t *testing.T) {
	f := familySet(t).Latest("order")
	p := progress(f, shippedOrder)
	p.Expect = map[string]int{"order.parcel_count": 3}
	kids := []Child{
		shipment("s-1", StatusCompleted, TerminalSuccess, 10*time.Minute, "delivered"),
		shipment("s-2", StatusCompleted, TerminalSuccess, 20*time.Minute, "delivered"),
	}
	p.Broods = BroodsOf(kids)
	// Every known child is delivered, but the order expects three.
	if v := f.Judge(p, at(30*time.Minute)); len(v.Expected) != 1 || v.Expected[0].Checkpoint != "all_delivered" {
		t.Fatalf("two of three: %+v", v)
	}
	v := f.Judge(p, at(2*time.Hour))
	if v.Status != StatusStuck {
		t.Fatalf("two of three, past the deadline: %+v", v)
	}
	p.Broods = BroodsOf(append(kids, shipment("s-3", StatusCompleted, TerminalSuccess, 30*time.Minute, "delivered")))
	if v := f.Judge(p, at(2*time.Hour)); v.Status != StatusRunning || len(v.Expected) != 0 {
		t.Fatalf("three of three: %+v", v)
	}
	// Without children, an `all` checkpoint is never reached: a parent waits for one.
	p.Broods, p.Expect = nil, nil
	if v := f.Judge(p, at(2*time.Hour)); v.Status != StatusStuck || v.Expected[0].Checkpoint != "all_delivered" {
		t.Fatalf("no child: %+v", v)
	}
}

func TestChildrenArrivingFirstCountFromTheParentsAfter(t *testing.T) {
	f := familySet(t).Latest("order")
	// Both parcels were delivered before the order was even shipped (the shipping events
	// came late): the checkpoint is reached when its `after` is, not before.
	kids := []Child{
		shipment("s-1", StatusCompleted, TerminalSuccess, 2*time.Minute, "delivered"),
		shipment("s-2", StatusCompleted, TerminalSuccess, 3*time.Minute, "delivered"),
	}
	in := shippedInstance(familySet(t))
	in.SetChildren(kids)
	in.Apply(ev("z", "closed", 6*time.Minute))
	st := in.Evaluate(at(time.Hour))
	if st.Status != StatusCompleted || len(st.Violations) != 0 {
		t.Fatalf("closed after children that came first: %+v", st)
	}
	// Before the parent's own `after`, the children checkpoint is not reached.
	early := progress(f, map[string]time.Duration{"placed": 0, "paid": time.Minute})
	early.Broods = BroodsOf(kids)
	if v := f.Judge(early, at(4*time.Minute)); v.Status != StatusRunning || v.Expected[0].Checkpoint != "shipped" {
		t.Fatalf("children first, parent not shipped: %+v", v)
	}
}

func TestChildrenAnyReachedByTheFirstSuccess(t *testing.T) {
	f := familySet(t).Latest("auction")
	bid := func(key string, outcome Terminal, ended time.Duration) Child {
		c := Child{Flow: "bid", Key: key, Status: StatusRunning, Outcome: outcome}
		if outcome != NotTerminal {
			c.EndedAt, c.Status = at(ended), StatusCompleted
			if outcome == TerminalFailure {
				c.Status, c.Checkpoint = StatusFailed, "outbid"
			}
		}
		return c
	}
	p := progress(f, map[string]time.Duration{"opened": 0})
	p.Broods = BroodsOf([]Child{bid("b-1", TerminalFailure, time.Minute), bid("b-2", NotTerminal, 0)})
	// One bid failed, another can still win: not failed.
	if v := f.Judge(p, at(2*time.Minute)); v.Status != StatusRunning || v.Expected[0].Checkpoint != "sold" {
		t.Fatalf("one outbid, one open: %+v", v)
	}
	p.Broods = BroodsOf([]Child{bid("b-1", TerminalFailure, time.Minute), bid("b-2", TerminalSuccess, 3*time.Minute)})
	if v := f.Judge(p, at(4*time.Minute)); v.Status != StatusRunning || len(v.Expected) != 0 {
		t.Fatalf("one won: %+v", v)
	}
	// Every bid failed: the auction fails with the last one.
	p.Broods = BroodsOf([]Child{bid("b-1", TerminalFailure, time.Minute), bid("b-2", TerminalFailure, 5*time.Minute)})
	v := f.Judge(p, at(6*time.Minute))
	if v.Status != StatusFailed || v.Failure == nil || v.Failure.Child.Key != "b-2" || v.EndedAt != at(5*time.Minute) {
		t.Fatalf("every bid outbid: %+v", v)
	}
}

func TestFailedChildFailsTheParentAndDuesItsCompensations(t *testing.T) {
	set := familySet(t)
	in := shippedInstance(set)
	in.SetChildren([]Child{
		shipment("s-1", StatusCompleted, TerminalSuccess, 10*time.Minute, "delivered"),
		shipment("s-2", StatusFailed, TerminalFailure, 15*time.Minute, "lost"),
	})
	st := in.Evaluate(at(20 * time.Minute))
	// paid was reached before the failure: its refund is due 30m after it.
	if st.Status != StatusCompensating || st.Failure == nil || st.Failure.Checkpoint != "all_delivered" ||
		len(st.Expected) != 1 || st.Expected[0].Checkpoint != "refunded" || st.Expected[0].Compensates != "paid" ||
		st.Expected[0].Deadline != at(45*time.Minute) || st.NextDeadline != at(45*time.Minute) {
		t.Fatalf("failed child: %+v", st)
	}
	if r := st.Reason; r == nil || r.Failure == nil || r.Failure.Child.Key != "s-2" ||
		!strings.Contains(r.Summary, `failed: child shipment "s-2" reached "lost"`) {
		t.Fatalf("the reason names the child: %+v", st.Reason)
	}
	// Overdue: stuck, the reason names the compensation, the step and the failure.
	st = in.Evaluate(at(50 * time.Minute))
	if st.Status != StatusStuck || st.Reason.Checkpoint != "refunded" || st.Reason.Compensates != "paid" ||
		!strings.Contains(st.Reason.Summary, `compensation "refunded" (of "paid") expected from payments`) ||
		!strings.Contains(st.Reason.Summary, `after it failed: child shipment "s-2" reached "lost"`) {
		t.Fatalf("overdue refund: %+v", st.Reason)
	}
}

func TestCompensations(t *testing.T) {
	set := familySet(t)
	order := func(cps ...string) *Instance {
		in := NewInstance(set.Versions("order"), "acme", "o-1")
		for i, cp := range cps {
			in.Apply(ev(string(rune('a'+i)), cp, time.Duration(i)*time.Minute))
		}
		return in
	}
	// Cancelled after payment: the refund is due within 30m of the cancel (at 2m).
	in := order("placed", "paid", "cancelled")
	if st := in.Evaluate(at(10 * time.Minute)); st.Status != StatusCompensating || st.Expected[0].Deadline != at(32*time.Minute) ||
		st.Failure.Checkpoint != "cancelled" || st.EndedAt != (time.Time{}) {
		t.Fatalf("due: %+v", st)
	}
	st := in.Evaluate(at(40 * time.Minute))
	if st.Status != StatusStuck || st.Reason.Checkpoint != "refunded" || st.Reason.Overdue != 8*time.Minute ||
		!strings.Contains(st.Reason.Summary, `after it failed: "cancelled" at`) {
		t.Fatalf("overdue: %+v", st)
	}
	in.Apply(ev("r", "refunded", 41*time.Minute))
	if st := in.Evaluate(at(42 * time.Minute)); st.Status != StatusCompensated || st.EndedAt != at(41*time.Minute) ||
		len(st.Expected) != 0 || len(st.Violations) != 0 {
		t.Fatalf("done: %+v", st)
	}
	// Cancelled before payment: nothing to compensate, failed.
	if st := order("placed", "cancelled").Evaluate(at(time.Hour)); st.Status != StatusFailed || len(st.Expected) != 0 {
		t.Fatalf("nothing to compensate: %+v", st)
	}
	// A refund before any failure undid nothing: an unexpected violation.
	early := order("placed", "paid", "refunded")
	st = early.Evaluate(at(3 * time.Minute))
	if st.Status != StatusRunning || len(st.Violations) != 1 || st.Violations[0].Kind != ViolationUnexpected ||
		st.Violations[0].Checkpoint != "refunded" || !strings.Contains(st.Violations[0].Detail(), "before the instance failed") {
		t.Fatalf("refund before a failure: %+v", st.Violations)
	}
	// A refund before the failure does not count as done.
	early.Apply(ev("x", "cancelled", 4*time.Minute))
	if st := early.Evaluate(at(5 * time.Minute)); st.Status != StatusCompensating {
		t.Fatalf("refund before the failure counted: %+v", st)
	}
}

func TestOperatorCancelAndCompensations(t *testing.T) {
	set := familySet(t)
	cancel := Event{ID: "op", Checkpoint: OperatorCancel, Time: at(3 * time.Minute)}
	// Cancelled by an operator after payment: the refund is due.
	in := NewInstance(set.Versions("order"), "acme", "o-1")
	in.Apply(ev("a", "placed", 0))
	in.Apply(ev("b", "paid", time.Minute))
	in.Apply(cancel)
	st := in.Evaluate(at(4 * time.Minute))
	if st.Status != StatusCompensating || st.Failure.Checkpoint != OperatorCancel || st.Expected[0].Deadline != at(33*time.Minute) {
		t.Fatalf("cancelled after payment: %+v", st)
	}
	st = in.Evaluate(at(34 * time.Minute))
	if st.Status != StatusStuck || !strings.Contains(st.Reason.Summary, "after it failed: cancelled by an operator at") {
		t.Fatalf("cancelled, refund overdue: %+v", st.Reason)
	}
	// Before payment: closed as cancelled, nothing awaited.
	none := NewInstance(set.Versions("order"), "acme", "o-2")
	none.Apply(ev("a", "placed", 0))
	none.Apply(cancel)
	if st := none.Evaluate(at(time.Hour)); st.Status != StatusCancelled || st.EndedAt != at(3*time.Minute) || len(st.Expected) != 0 {
		t.Fatalf("cancelled before payment: %+v", st)
	}
	// A cancel while compensating gives the compensations up: closed as cancelled.
	failed := NewInstance(set.Versions("order"), "acme", "o-3")
	failed.Apply(ev("a", "placed", 0))
	failed.Apply(ev("b", "paid", time.Minute))
	failed.Apply(ev("c", "cancelled", 2*time.Minute))
	failed.Apply(cancel)
	if st := failed.Evaluate(at(time.Hour)); st.Status != StatusCancelled || st.EndedAt != at(3*time.Minute) || len(st.Expected) != 0 {
		t.Fatalf("cancelled while compensating: %+v", st)
	}
}

func TestStuckAtChildrenExplainsThroughThem(t *testing.T) {
	set := familySet(t)
	in := shippedInstance(set)
	lost := shipment("s-2", StatusStuck, NotTerminal, 0, "")
	lost.Reason = &Reason{Checkpoint: "delivered", Deadline: at(30 * time.Minute), Summary: "shipment s-2: ..."}
	in.SetChildren([]Child{
		shipment("s-1", StatusCompleted, TerminalSuccess, 10*time.Minute, "delivered"),
		lost,
		shipment("s-3", StatusCancelled, NotTerminal, 0, ""),
	})
	in.children[2].Cancelled = true
	st := in.Evaluate(at(2 * time.Hour))
	r := st.Reason
	if st.Status != StatusStuck || r == nil || r.Checkpoint != "all_delivered" || r.Children == nil ||
		r.Children.Counts[StatusCompleted] != 1 || r.Children.Counts[StatusStuck] != 1 || len(r.Children.Stuck) != 1 ||
		r.Children.Stuck[0].Key != "s-2" || r.Children.Stuck[0].Checkpoint != "delivered" {
		t.Fatalf("stuck at children: %+v", r)
	}
	want := `"all_delivered" expected from its shipment children by 2026-11-26T11:05:00Z, overdue by 55m0s (children: 1 cancelled, 1 completed, 1 stuck; stuck: "s-2" awaits "delivered" due 2026-11-26T10:30:00Z)`
	if !strings.Contains(r.Summary, want) {
		t.Fatalf("summary = %s", r.Summary)
	}
}

func TestParentKeyAndExpectFromEvents(t *testing.T) {
	set := familySet(t)
	child := NewInstance(set.Versions("shipment"), "acme", "s-1")
	child.Apply(Event{ID: "1", Checkpoint: "packed", Time: at(0), Attributes: map[string]string{AttrParentKey: "o-1"}})
	if child.ParentKey() != "o-1" {
		t.Fatalf("parent key = %q", child.ParentKey())
	}
	in := NewInstance(set.Versions("order"), "acme", "o-1")
	in.Apply(Event{ID: "a", Checkpoint: "placed", Time: at(0), Attributes: map[string]string{"order.parcel_count": "1"}})
	in.Apply(Event{ID: "b", Checkpoint: "paid", Time: at(time.Minute), Attributes: map[string]string{"order.parcel_count": "2"}})
	in.Apply(ev("c", "shipped", 2*time.Minute))
	in.SetChildren([]Child{shipment("s-1", StatusCompleted, TerminalSuccess, 3*time.Minute, "delivered")})
	// The latest count (2) wins: one delivered parcel is not all.
	if st := in.Evaluate(at(4 * time.Minute)); len(st.Expected) != 1 || st.Expected[0].Checkpoint != "all_delivered" {
		t.Fatalf("expect 2: %+v", st)
	}
}

func TestAsChild(t *testing.T) {
	set := familySet(t)
	ship := func(cps ...string) Child {
		in := NewInstance(set.Versions("shipment"), "acme", "s-1")
		for i, cp := range cps {
			in.Apply(ev(string(rune('a'+i)), cp, time.Duration(i)*time.Minute))
		}
		return in.Evaluate(at(time.Hour)).AsChild()
	}
	if c := ship("packed", "delivered"); c.Outcome != TerminalSuccess || c.EndedAt != at(time.Minute) || c.Checkpoint != "delivered" {
		t.Fatalf("delivered: %+v", c)
	}
	if c := ship("packed", "lost"); c.Outcome != TerminalFailure || c.Checkpoint != "lost" || c.Status != StatusFailed {
		t.Fatalf("lost: %+v", c)
	}
	if c := ship("packed"); c.Outcome != NotTerminal || c.Status != StatusStuck || c.Reason == nil {
		t.Fatalf("stuck: %+v", c)
	}
}

// The children checkpoint's reach, derived from the children, is what the detector records as
// a row of the parent; that row (read back, or replayed) changes nothing of the parent's
// evaluation: not the reach (a child that comes later still counts), nor a violation, nor
// the last seen.
func TestChildrenReachRecordIsIgnoredByTheJudgement(t *testing.T) {
	set := familySet(t)
	f := set.Latest("order")
	kids := []Child{shipment("s-1", StatusCompleted, TerminalSuccess, 20*time.Minute, "delivered")}
	p := progress(f, shippedOrder)
	p.Broods = BroodsOf(kids)
	got := f.ReachedByChildren(p)
	if len(got) != 1 || got[0].Checkpoint.Name != "all_delivered" || !got[0].Time.Equal(at(20*time.Minute)) {
		t.Fatalf("reached by children: %+v", got)
	}
	if got := f.ReachedByChildren(progress(f, shippedOrder)); got != nil {
		t.Fatalf("no children, yet reached: %+v", got)
	}
	if !f.IsChildrenReach("all_delivered") || f.IsChildrenReach("shipped") || f.IsChildrenReach("@cancel") {
		t.Fatal("IsChildrenReach")
	}

	plain, recorded := shippedInstance(set), shippedInstance(set)
	recorded.Apply(Event{ID: "r", Checkpoint: "all_delivered", Time: at(20 * time.Minute), Service: "flowwatch",
		Name: ChildrenReachName, Status: "ok"})
	// A second child, running: `all` is not reached any more, record or not.
	kids = append(kids, shipment("s-2", StatusRunning, NotTerminal, 0, ""))
	plain.SetChildren(kids)
	recorded.SetChildren(kids)
	now := at(30 * time.Minute)
	a, b := plain.Evaluate(now), recorded.Evaluate(now)
	if a.Status != StatusRunning || len(a.Expected) != 1 || a.Expected[0].Checkpoint != "all_delivered" {
		t.Fatalf("without the record: %+v", a)
	}
	if b.Status != a.Status || len(b.Expected) != 1 || b.Expected[0] != a.Expected[0] || len(b.Violations) != 0 ||
		!b.LastSeen.Equal(a.LastSeen) || b.LastCheckpoint != a.LastCheckpoint {
		t.Fatalf("the record changed the evaluation:\nwith    %+v\nwithout %+v", b, a)
	}
	// And Judge, given a time for the children checkpoint, derives it all the same.
	p = progress(f, map[string]time.Duration{"placed": 0, "paid": time.Minute, "shipped": 5 * time.Minute, "all_delivered": 6 * time.Minute})
	if v := f.Judge(p, now); v.Status != StatusRunning || len(v.Expected) != 1 || v.Expected[0].Checkpoint != "all_delivered" {
		t.Fatalf("a time given for the children checkpoint counted: %+v", v)
	}
}
