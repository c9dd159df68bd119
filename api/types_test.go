package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/model"
)

// testFlowYAML is a small flow with a parallel split, an AND-join and both terminals.
const testFlowYAML = `apiVersion: flowwatch/v1
kind: Flow
name: order
version: 1
key: order.id
checkpoints:
  - name: placed
    start: true
    match: { service: orders, span: "POST /orders" }
  - name: paid
    after: [placed]
    within: 2m
    key: payment.order_id
    aliases: [payment.id]
    match: { service: payments, event: payment.authorized }
  - name: reserved
    after: [placed]
    within: 5m
    match: { service: inventory, span: reserve }
  - name: settled
    after: [paid]
    within: 5m
    key: payment.id
    match: { service: ledger, event: payment.settled }
  - name: shipped
    after: [settled, reserved]
    within: 10m
    match: { service: shipping, span: "ship *" }
  - name: delivered
    after: [shipped]
    terminal: success
    match: { service: shipping, event: delivered }
  - name: cancelled
    after: [placed]
    terminal: failure
    match: { service: orders, span: cancel }
`

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func testSet(t testing.TB) *model.Set {
	t.Helper()
	flows, probs := model.Parse("order.yaml", []byte(testFlowYAML))
	if len(probs) > 0 {
		t.Fatalf("parse test flow: %v", probs)
	}
	return model.NewSet(flows)
}

// stuckState evaluates an instance that is stuck on "paid", has an error note, and a
// duplicate checkpoint violation; times are in a non-UTC zone with nanoseconds.
func stuckState(t testing.TB) model.State {
	t.Helper()
	zone := time.FixedZone("CET", 3600)
	base := t0.In(zone).Add(123456789 * time.Nanosecond)
	in := model.NewInstance(testSet(t).Versions("order"), "acme", "o-1")
	in.Apply(model.Event{ID: "e1", Checkpoint: "placed", Time: base, Service: "orders", Name: "POST /orders", TraceID: "t1", SpanID: "s1", Status: "ok"})
	in.Apply(model.Event{ID: "e2", Checkpoint: "reserved", Time: base.Add(10 * time.Second), Service: "inventory", Name: "reserve", TraceID: "t2", SpanID: "s2", Status: "ok"})
	in.Apply(model.Event{ID: "e3", Checkpoint: "reserved", Time: base.Add(20 * time.Second), Service: "inventory", Name: "reserve", TraceID: "t3", SpanID: "s3", Status: "ok"})
	in.Apply(model.Event{ID: "e4", Time: base.Add(30 * time.Second), Service: "payments", Name: "authorize", TraceID: "t4", SpanID: "s4", Status: "error", Message: "card declined"})
	st := in.Evaluate(t0.Add(5 * time.Minute))
	if st.Status != model.StatusStuck || st.Reason == nil || st.LastError == nil || len(st.Violations) != 1 {
		t.Fatalf("test state is not what the test needs: %+v", st)
	}
	return st
}

func TestStateDocsRoundTrip(t *testing.T) {
	st := stuckState(t)
	row := StateRow(st)
	got, err := InstanceFromState(row)
	if err != nil {
		t.Fatal(err)
	}
	want := InstanceFromModel(st)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, want)
	}
	if got.Reason.Overdue != Duration(st.Reason.Overdue) || got.Reason.OverdueSeconds != st.Reason.Overdue.Seconds() {
		t.Errorf("overdue = %v / %v, want %v", got.Reason.Overdue, got.Reason.OverdueSeconds, st.Reason.Overdue)
	}
	if got.Reason.LastError == nil || got.Reason.LastError.Message != "card declined" {
		t.Errorf("last error lost: %+v", got.Reason.LastError)
	}
	if got.Violations[0].Kind != "duplicate_checkpoint" || got.Violations[0].EventID != "e3" || got.Violations[0].Detail == "" {
		t.Errorf("violation = %+v", got.Violations[0])
	}
	if !got.StartedAt.Equal(st.StartedAt) || got.StartedAt.Location() != time.UTC || got.StartedAt.Nanosecond() != 123456789 {
		t.Errorf("started_at = %v, want %v in UTC with nanoseconds", got.StartedAt, st.StartedAt)
	}
}

func TestStateDocsJSONShape(t *testing.T) {
	x, r, v := StateDocs(stuckState(t))
	var reason map[string]any
	if err := json.Unmarshal([]byte(r), &reason); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"checkpoint", "since", "deadline", "overdue", "overdue_seconds", "service",
		"last_checkpoint", "last_checkpoint_at", "last_error", "trace_ids", "summary"} {
		if _, ok := reason[k]; !ok {
			t.Errorf("reason has no %q: %s", k, r)
		}
	}
	// deadline is placed+2m = 10:02:00.123456789; evaluated at 10:05:00 → 2m59.876543211s.
	if reason["overdue"] != "2m59.876543211s" {
		t.Errorf("overdue = %v", reason["overdue"])
	}
	if reason["deadline"] != "2026-11-26T10:02:00.123456789Z" {
		t.Errorf("deadline = %v, want RFC 3339 UTC", reason["deadline"])
	}
	le := reason["last_error"].(map[string]any)
	for _, k := range []string{"service", "name", "message", "trace_id", "span_id", "time"} {
		if _, ok := le[k]; !ok {
			t.Errorf("last_error has no %q", k)
		}
	}
	var expected []map[string]any
	if err := json.Unmarshal([]byte(x), &expected); err != nil {
		t.Fatal(err)
	}
	if len(expected) != 1 || expected[0]["checkpoint"] != "paid" || expected[0]["overdue"] != true {
		t.Errorf("expected = %s", x)
	}
	for _, k := range []string{"checkpoint", "deadline", "since", "service", "overdue"} {
		if _, ok := expected[0][k]; !ok {
			t.Errorf("expected has no %q", k)
		}
	}
	if !strings.Contains(v, `"kind":"duplicate_checkpoint"`) || !strings.Contains(v, `"event_id":"e3"`) {
		t.Errorf("violations = %s", v)
	}
}

func TestStateDocsEmpties(t *testing.T) {
	in := model.NewInstance(testSet(t).Versions("order"), "default", "o-2")
	in.Apply(model.Event{ID: "a", Checkpoint: "placed", Time: t0})
	in.Apply(model.Event{ID: "b", Checkpoint: "cancelled", Time: t0.Add(time.Second)})
	st := in.Evaluate(t0.Add(time.Hour))
	x, r, v := StateDocs(st)
	if x != EmptyExpected || r != EmptyReason || v != EmptyViolations {
		t.Fatalf("empties = %q %q %q", x, r, v)
	}
	for _, docs := range [][3]string{{x, r, v}, {"", "", ""}, {"null", "null", "null"}, {"[]", "{}", "[]"}} {
		row := StateRow(st)
		row.Expected, row.Reason, row.Violations = docs[0], docs[1], docs[2]
		got, err := InstanceFromState(row)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != "failed" || got.Expected == nil || len(got.Expected) != 0 || got.Reason != nil || got.Violations != nil {
			t.Errorf("docs %q: got %+v", docs, got)
		}
		b, _ := json.Marshal(got)
		if !strings.Contains(string(b), `"expected":[]`) || !strings.Contains(string(b), `"reason":null`) {
			t.Errorf("docs %q: JSON %s", docs, b)
		}
	}
}

func TestInstanceFromStateBadJSON(t *testing.T) {
	row := StateRow(stuckState(t))
	row.Reason = `{"overdue": 12}`
	if _, err := InstanceFromState(row); err == nil || !strings.Contains(err.Error(), "parse reason of acme/order/o-1") {
		t.Fatalf("err = %v", err)
	}
	row = StateRow(stuckState(t))
	row.Expected = `{`
	if _, err := InstanceFromState(row); err == nil || !strings.Contains(err.Error(), "parse expected") {
		t.Fatalf("err = %v", err)
	}
}
