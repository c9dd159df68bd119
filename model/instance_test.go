package model

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func loadExamples(t testing.TB) *Set {
	t.Helper()
	set, err := Load("testdata/flows")
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func ev(id, cp string, d time.Duration) Event {
	return Event{ID: id, Checkpoint: cp, Time: at(d), Service: "svc", TraceID: "trace-" + id, Status: "ok"}
}

func order(t testing.TB) *Instance {
	return NewInstance(loadExamples(t).Versions("order-fulfilment"), "acme", "o-1")
}

func TestHappyPathCompletes(t *testing.T) {
	in := order(t)
	for i, cp := range []string{"placed", "paid", "stock_reserved", "settled", "shipped", "delivered"} {
		in.Apply(ev(fmt.Sprint(i), cp, time.Duration(i)*time.Minute))
	}
	st := in.Evaluate(at(time.Hour))
	if st.Status != StatusCompleted || st.Version != 1 || len(st.Violations) != 0 || st.Reason != nil {
		t.Fatalf("state = %+v", st)
	}
	if st.EndedAt != at(5*time.Minute) || st.LastCheckpoint != "delivered" || st.StartedAt != t0 {
		t.Fatalf("times wrong: %+v", st)
	}
	if len(st.TraceIDs) != 6 {
		t.Fatalf("trace ids = %v", st.TraceIDs)
	}
}

func TestDeadlinesWithInjectedClock(t *testing.T) {
	in := order(t)
	in.Apply(ev("1", "placed", 0))
	// Right after placing: paid and stock_reserved expected within 2m.
	st := in.Evaluate(at(time.Minute))
	if st.Status != StatusRunning || len(st.Expected) != 2 || st.Expected[0].Deadline != at(2*time.Minute) {
		t.Fatalf("state = %+v", st)
	}
	if st.NextDeadline != at(2*time.Minute) {
		t.Fatalf("next deadline = %v", st.NextDeadline)
	}
	// Exactly at the deadline the instance is not overdue yet.
	if st := in.Evaluate(at(2 * time.Minute)); st.Status != StatusRunning {
		t.Fatalf("at the deadline: %s", st.Status)
	}
	in.Apply(ev("2", "stock_reserved", 30*time.Second))
	in.Apply(Event{ID: "e1", Time: at(40 * time.Second), Service: "payments", Name: "authorize", Status: "error",
		Message: "card issuer timeout", TraceID: "t-err", SpanID: "s-err"})
	st = in.Evaluate(at(5 * time.Minute))
	if st.Status != StatusStuck {
		t.Fatalf("want stuck, got %+v", st)
	}
	r := st.Reason
	if r.Checkpoint != "paid" || r.Service != "payments" || r.Since != t0 || r.Deadline != at(2*time.Minute) ||
		r.Overdue != 3*time.Minute || r.LastCheckpoint != "stock_reserved" {
		t.Fatalf("reason = %+v", r)
	}
	if r.LastError == nil || r.LastError.Message != "card issuer timeout" || r.LastError.Service != "payments" {
		t.Fatalf("last error = %+v", r.LastError)
	}
	if !strings.Contains(r.Summary, `"paid" expected from payments`) || !strings.Contains(r.Summary, "card issuer timeout") {
		t.Fatalf("summary = %s", r.Summary)
	}
	if !contains(r.TraceIDs, "t-err") || !contains(r.TraceIDs, "trace-1") {
		t.Fatalf("trace ids = %v", r.TraceIDs)
	}
}

func TestLateEventChangesVerdict(t *testing.T) {
	in := order(t)
	in.Apply(ev("1", "placed", 0))
	in.Apply(ev("2", "stock_reserved", time.Minute))
	if st := in.Evaluate(at(3 * time.Minute)); st.Status != StatusStuck {
		t.Fatalf("want stuck, got %s", st.Status)
	}
	// The payment happened in time; its event only arrives late (another collector, a queue).
	in.Apply(ev("3", "paid", 90*time.Second))
	st := in.Evaluate(at(3 * time.Minute))
	if st.Status != StatusRunning || st.Expected[0].Checkpoint != "settled" || st.Expected[0].Deadline != at(90*time.Second+5*time.Minute) {
		t.Fatalf("late event not re-evaluated: %+v", st)
	}
}

func TestOutOfOrderArrivalIsNotAViolation(t *testing.T) {
	in := order(t)
	in.Apply(ev("3", "paid", 2*time.Second))
	in.Apply(ev("2", "stock_reserved", time.Second))
	in.Apply(ev("1", "placed", 0))
	st := in.Evaluate(at(time.Minute))
	if len(st.Violations) != 0 || st.Status != StatusRunning {
		t.Fatalf("events arriving out of order but in event time order are fine: %+v", st)
	}
}

func TestViolations(t *testing.T) {
	in := order(t)
	in.Apply(ev("1", "placed", time.Minute))
	in.Apply(ev("0", "paid", 0))                   // event time before placed: out of order
	in.Apply(ev("2", "paid", 2*time.Minute))       // a second payment: duplicate checkpoint
	in.Apply(ev("3", "shipped", 3*time.Minute))    // settled and stock_reserved never seen: unexpected
	in.Apply(ev("4", "teleported", 4*time.Minute)) // not a checkpoint of the version
	st := in.Evaluate(at(4 * time.Minute))
	kinds := map[ViolationKind][]string{}
	for _, v := range st.Violations {
		kinds[v.Kind] = append(kinds[v.Kind], v.Checkpoint)
	}
	if fmt.Sprint(kinds[ViolationOutOfOrder]) != "[paid]" || fmt.Sprint(kinds[ViolationDuplicate]) != "[paid]" ||
		fmt.Sprint(kinds[ViolationUnexpected]) != "[shipped teleported]" {
		t.Fatalf("violations = %+v", st.Violations)
	}
	// shipped was reached: settled and stock_reserved are passed, not expected any more.
	for _, x := range st.Expected {
		if x.Checkpoint == "settled" || x.Checkpoint == "stock_reserved" {
			t.Fatalf("passed checkpoint still expected: %+v", st.Expected)
		}
	}
}

func TestDuplicateEventIDChangesNothing(t *testing.T) {
	in := order(t)
	if !in.Apply(ev("1", "placed", 0)) {
		t.Fatal("first apply refused")
	}
	before := in.Evaluate(at(time.Minute))
	if in.Apply(ev("1", "placed", 0)) {
		t.Fatal("duplicate event_id accepted")
	}
	after := in.Evaluate(at(time.Minute))
	if len(in.Events()) != 1 || len(after.Violations) != 0 || fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("duplicate changed the state: %+v vs %+v", before, after)
	}
}

func TestAndJoinWaitsForAll(t *testing.T) {
	in := order(t)
	in.Apply(ev("1", "placed", 0))
	in.Apply(ev("2", "paid", time.Minute))
	in.Apply(ev("3", "settled", 2*time.Minute))
	st := in.Evaluate(at(150 * time.Second))
	for _, x := range st.Expected {
		if x.Checkpoint == "shipped" {
			t.Fatalf("shipped expected before stock_reserved: %+v", st.Expected)
		}
	}
	in.Apply(ev("4", "stock_reserved", 3*time.Minute))
	st = in.Evaluate(at(4 * time.Minute))
	if len(st.Expected) != 1 || st.Expected[0].Checkpoint != "shipped" || st.Expected[0].Since != at(3*time.Minute) {
		t.Fatalf("AND-join: deadline must count from the last predecessor: %+v", st.Expected)
	}
}

func TestAnyJoinAndFailureTerminal(t *testing.T) {
	set := loadExamples(t)
	pay := NewInstance(set.Versions("payment"), "default", "p-1")
	pay.Apply(ev("1", "requested", 0))
	pay.Apply(ev("2", "declined", 10*time.Second))
	st := pay.Evaluate(at(20 * time.Second))
	got := map[string]time.Time{}
	for _, x := range st.Expected {
		got[x.Checkpoint] = x.Deadline
	}
	if got["retried"] != at(70*time.Second) || got["authorized"] != at(3*time.Minute) {
		t.Fatalf("expected = %+v", st.Expected)
	}
	pay.Apply(ev("3", "retried", 30*time.Second))
	pay.Apply(ev("4", "authorized", 40*time.Second)) // ANY-join: requested is enough
	st = pay.Evaluate(at(time.Minute))
	if len(st.Violations) != 0 || st.Expected[0].Checkpoint != "captured" {
		t.Fatalf("any-join: %+v", st)
	}
	failed := NewInstance(set.Versions("payment"), "default", "p-2")
	failed.Apply(ev("1", "requested", 0))
	failed.Apply(ev("2", "declined", time.Second))
	failed.Apply(ev("3", "abandoned", 2*time.Second))
	st = failed.Evaluate(at(time.Hour))
	if st.Status != StatusFailed || len(st.Expected) != 0 || st.EndedAt != at(2*time.Second) {
		t.Fatalf("failure terminal: %+v", st)
	}
}

func TestOptionalCheckpointNeverStucks(t *testing.T) {
	in := order(t)
	in.Apply(ev("1", "placed", 0))
	in.Apply(ev("2", "paid", time.Second))
	in.Apply(ev("3", "stock_reserved", time.Second))
	in.Apply(ev("4", "settled", 2*time.Second))
	in.Apply(ev("5", "shipped", 3*time.Second))
	// delivered and cancelled have no `within`: nothing is expected, never stuck.
	st := in.Evaluate(at(365 * 24 * time.Hour))
	if st.Status != StatusRunning || len(st.Expected) != 0 || !st.NextDeadline.IsZero() {
		t.Fatalf("state = %+v", st)
	}
}

func TestVersionPinnedAtStart(t *testing.T) {
	set := loadExamples(t)
	v2start := set.Version("order-fulfilment", 2).ActiveFrom
	old := NewInstance(set.Versions("order-fulfilment"), "t", "old")
	old.Apply(Event{ID: "1", Checkpoint: "placed", Time: v2start.Add(-time.Minute)})
	// Events after v2 became active do not move an instance started before it.
	old.Apply(Event{ID: "2", Checkpoint: "paid", Time: v2start.Add(time.Minute)})
	st := old.Evaluate(v2start.Add(2 * time.Minute))
	if st.Version != 1 || len(st.Violations) != 0 {
		t.Fatalf("old instance re-judged: %+v", st)
	}
	fresh := NewInstance(set.Versions("order-fulfilment"), "t", "new")
	fresh.Apply(Event{ID: "1", Checkpoint: "placed", Time: v2start.Add(time.Minute)})
	fresh.Apply(Event{ID: "2", Checkpoint: "paid", Time: v2start.Add(2 * time.Minute)})
	st = fresh.Evaluate(v2start.Add(3 * time.Minute))
	// v2 puts fraud_checked before paid: paid without it is unexpected there.
	if st.Version != 2 || len(st.Violations) != 1 || st.Violations[0].Kind != ViolationUnexpected {
		t.Fatalf("new instance not on v2: %+v", st)
	}
	// A non-start event that arrives first does not pin the version: the start event decides.
	late := NewInstance(set.Versions("order-fulfilment"), "t", "late")
	late.Apply(Event{ID: "2", Checkpoint: "paid", Time: v2start.Add(time.Minute)})
	late.Apply(Event{ID: "1", Checkpoint: "placed", Time: v2start.Add(-time.Minute)})
	if st := late.Evaluate(v2start.Add(2 * time.Minute)); st.Version != 1 {
		t.Fatalf("pinned to %d", st.Version)
	}
}

func TestEmptyInstance(t *testing.T) {
	st := order(t).Evaluate(t0)
	if st.Status != StatusRunning || st.Version != 0 {
		t.Fatalf("%+v", st)
	}
}

// BenchmarkInstanceApply applies 10 events to a fresh instance and evaluates it.
func BenchmarkInstanceApply(b *testing.B) {
	set := loadExamples(b)
	versions := set.Versions("order-fulfilment")[:1]
	cps := []string{"placed", "paid", "stock_reserved", "settled", "shipped", "delivered"}
	events := make([]Event, 10)
	for i := range events {
		events[i] = Event{ID: fmt.Sprintf("e%02d", i), Checkpoint: cps[i%len(cps)], Time: at(time.Duration(i) * time.Second),
			Service: "svc", TraceID: fmt.Sprintf("trace%02d", i), Status: "ok"}
	}
	// two out of order
	events[3], events[4] = events[4], events[3]
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		in := NewInstance(versions, "acme", "o-1")
		for j := range events {
			in.Apply(events[j])
		}
		st := in.Evaluate(at(time.Hour))
		if st.Status == "" {
			b.Fatal("no status")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
}

// BenchmarkJudgeSmall judges the example order (7 checkpoints) with its first three reached:
// the detector's per-instance call. It must not allocate beyond the verdict's expected list.
func BenchmarkJudgeSmall(b *testing.B) {
	f := loadExamples(b).Version("order-fulfilment", 1)
	first := make([]time.Time, len(f.Checkpoints))
	for _, name := range []string{"placed", "paid", "stock_reserved"} {
		first[f.Checkpoint(name).Index] = t0
	}
	b.ReportAllocs()
	for b.Loop() {
		if v := f.Judge(Progress{First: first}, t0.Add(time.Hour)); v.Status != StatusStuck {
			b.Fatal(v.Status)
		}
	}
}
